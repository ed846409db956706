/**
 * The learned head gates of one model (Voita et al. 2019, section 6.1): a log-alpha vector per gated
 * attention layer, turned into Hard Concrete samples during training, deterministic gates at test time,
 * and the expected-L0 penalty under an explicit convention (`sum` over heads, the paper's formula, or
 * `layer-mean`, the reference code's mean over gated layers of per-layer sums). Implements the trainer's
 * GateProvider. Gates receive the model's shape, not the model: gates/ does not import model/.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import Papa from 'papaparse';
import type { GateConfig } from '../config/schema.js';
import { type AttentionType, ATTENTION_TYPES, headKey } from '../config/head-id.js';
import { type PerHead, type HeadLayout, originalId } from '../config/head-layout.js';
import type { GateTensors } from '../model/transformer.js';
import { Rng, deriveSeed } from '../util/random.js';
import { appendLine } from '../util/fs.js';
import { annealedTarget, lagrangianGradients, selectTopHeads } from './lagrangian.js';
import {
  constantLogAlpha,
  glorotUniformLogAlpha,
  probNonZeroTensor,
  probOneTensor,
  probZeroTensor,
  sampleGateTensor,
  samplePerHeadNoise,
  testGateTensor,
} from './hard-concrete.js';

export interface GateState {
  key: string;
  logAlpha: number;
  pOpen: number;
  pZero: number;
  pOne: number;
  testGate: number;
}

/** One budget group of the Lagrangian controller: the heads it counts, its target, its multipliers. */
interface BudgetGroup {
  name: string;
  stacks: AttentionType[];
  target: number;
  fullCount: number;
  lambda1: number;
  lambda2: number;
}

export class HeadGates {
  readonly variables = new Map<string, tf.Variable>();
  private readonly names: Array<{ stack: AttentionType; layer: number; name: string; heads: number }> = [];
  private trajectoryPath: string | null = null;
  /** exact-budget groups (empty: the lambda penalty) */
  private readonly groups: BudgetGroup[] = [];
  private readonly targetWarmupSteps: number;

  constructor(
    readonly config: GateConfig,
    /** heads per layer for each attention type (from the model) */
    readonly shape: Record<AttentionType, readonly number[]>,
    seed: number,
    opts: {
      /** where each head position sits in the original model (absent: position = original id) */
      layout?: HeadLayout | null;
      /** train.maxSteps, for the default target warm-up (half of it) */
      maxSteps?: number;
    } = {},
  ) {
    this.layout = opts.layout ?? null;
    const rng = new Rng(deriveSeed(seed, 'gate-init'));
    for (const stack of ATTENTION_TYPES) {
      if (!config.attention.includes(stack)) continue;
      shape[stack].forEach((heads, layer) => {
        const name = `gate.${stack}.${layer}`;
        const init = config.logAlphaInit.kind === 'glorot' ? glorotUniformLogAlpha(heads, rng) : constantLogAlpha(heads, config.logAlphaInit.value);
        // tidy frees the initial tensor; the variable keeps its own reference to the data
        this.variables.set(
          name,
          tf.tidy(() => tf.variable(tf.tensor1d(init), true, `${name}#${seed}#${HeadGates.counter++}`)),
        );
        this.names.push({ stack, layer, name, heads });
      });
    }
    const t = config.targetHeads;
    const countOf = (stacks: AttentionType[]) => this.names.filter((n) => stacks.includes(n.stack)).reduce((a, n) => a + n.heads, 0);
    if (typeof t === 'number')
      this.groups.push({ name: 'all', stacks: [...config.attention], target: t, fullCount: countOf([...config.attention]), lambda1: 0, lambda2: 0 });
    else if (t)
      for (const stack of ATTENTION_TYPES) {
        const n = t[stack];
        if (n !== undefined) this.groups.push({ name: stack, stacks: [stack], target: n, fullCount: countOf([stack]), lambda1: 0, lambda2: 0 });
      }
    this.targetWarmupSteps = config.targetWarmupSteps ?? Math.floor((opts.maxSteps ?? 0) / 2);
  }
  private static counter = 0;
  private readonly layout: HeadLayout | null;

  /** True when an exact head budget (Lagrangian controller) replaces the lambda penalty. */
  get isBudgeted(): boolean {
    return this.groups.length > 0;
  }

  /** The original head id of position `pos` in a layer (differs from pos in a physically pruned model). */
  originalHead(stack: AttentionType, layer: number, pos: number): number {
    return this.layout ? originalId(this.layout, stack, layer, pos) : pos;
  }

  private get opts() {
    return { beta: this.config.beta };
  }

  /** Total number of gated heads. */
  get gatedHeadCount(): number {
    return this.names.reduce((a, n) => a + n.heads, 0);
  }

  private build(f: (logAlpha: tf.Variable, n: { stack: AttentionType; layer: number; heads: number }) => tf.Tensor): GateTensors {
    const out: Partial<Record<AttentionType, Array<tf.Tensor | null>>> = {};
    for (const stack of this.config.attention) out[stack] = this.shape[stack].map(() => null);
    for (const n of this.names) out[n.stack]![n.layer] = n.heads ? f(this.variables.get(n.name)!, n) : null;
    return out;
  }

  /** Hard Concrete samples: one noise draw per head per batch ([h]) or per sentence ([B, h]). */
  sampleGates(seed: number, batchSize: number): GateTensors {
    return this.build((la, n) => {
      const shape = this.config.noise === 'batch' ? [n.heads] : [batchSize, n.heads];
      return sampleGateTensor(la, samplePerHeadNoise(shape, deriveSeed(seed, `${n.stack}.${n.layer}`)), this.opts);
    });
  }

  /** Deterministic test-time gates clip(sigmoid(logAlpha)(zeta-gamma)+gamma, 0, 1). */
  testGates(): GateTensors {
    return tf.tidy((() => this.build((la) => testGateTensor(la, this.opts))) as () => tf.TensorContainer) as GateTensors;
  }

  /** Per-layer sums of P(open) (differentiable), with the layer's stack. */
  private openPerLayer(): Array<{ stack: AttentionType; open: tf.Scalar }> {
    return this.names
      .filter((n) => n.heads > 0)
      .map((n) => ({ stack: n.stack, open: probNonZeroTensor(this.variables.get(n.name)!, this.opts).sum() as tf.Scalar }));
  }

  /**
   * The penalty the trainer adds. Lambda mode: the expected L0 under the configured convention (`sum`
   * over heads, or `layer-mean`), multiplied by train.l0Lambda in the trainer. Budget mode: the
   * Lagrangian sum over groups of lambda1 (E - N(t)) + lambda2 (E - N(t))^2, added as is.
   */
  penalty(step = 0): tf.Scalar {
    return tf.tidy(() => {
      const perLayer = this.openPerLayer();
      if (!perLayer.length) return tf.scalar(0);
      if (!this.isBudgeted) {
        const total = tf.addN(perLayer.map((x) => x.open));
        return (this.config.penalty === 'sum' ? total : total.div(perLayer.length)) as tf.Scalar;
      }
      const terms = this.groups.map((g) => {
        const e = tf.addN(perLayer.filter((x) => g.stacks.includes(x.stack)).map((x) => x.open));
        const d = e.sub(this.targetAt(g, step));
        return d.mul(g.lambda1).add(d.square().mul(g.lambda2));
      });
      return tf.addN(terms) as tf.Scalar;
    });
  }

  private targetAt(g: BudgetGroup, step: number): number {
    return annealedTarget(step, { fullCount: g.fullCount, targetCount: g.target, warmupSteps: this.targetWarmupSteps });
  }

  /** Expected open heads per group, as numbers. */
  private expectedOpen(stacks: readonly AttentionType[]): number {
    return this.states()
      .filter((s) => stacks.some((st) => s.key.startsWith(`${st}.`)))
      .reduce((a, s) => a + s.pOpen, 0);
  }

  /** Gradient ascent on the Lagrange multipliers (d/dlambda1 = E - N, d/dlambda2 = (E - N)^2). */
  afterStep(step: number): void {
    for (const g of this.groups) {
      const d = lagrangianGradients(this.expectedOpen(g.stacks), this.targetAt(g, step), g.lambda1, g.lambda2);
      g.lambda1 += this.config.lagrangianLr * d.dLambda1;
      g.lambda2 += this.config.lagrangianLr * d.dLambda2;
    }
  }

  /**
   * The heads kept at the end, as positions per stack per layer: the paper's rule P(g=1) > P(g=0)
   * (log alpha > 0), or, with a budget, exactly the target number by P(open) in each group.
   */
  keptPositions(): PerHead {
    const out = {} as PerHead;
    for (const stack of ATTENTION_TYPES) out[stack] = this.shape[stack].map((h) => Array.from({ length: h }, (_, i) => i));
    const byKey = new Map(this.states().map((st) => [st.key, st]));
    const stateOf = (stack: AttentionType, layer: number, pos: number) => byKey.get(this.keyOf(stack, layer, pos))!;
    const byStack = (stack: AttentionType) => this.names.filter((n) => n.stack === stack);
    for (const stack of this.config.attention) for (const n of byStack(stack)) out[stack][n.layer] = [];
    const groups = this.isBudgeted ? this.groups : [];
    const budgeted = new Set(groups.flatMap((g) => g.stacks));
    for (const g of groups) {
      const heads = this.names.filter((n) => g.stacks.includes(n.stack)).flatMap((n) => Array.from({ length: n.heads }, (_, h) => ({ n, h })));
      const p = heads.map(({ n, h }) => stateOf(n.stack, n.layer, h).pOpen);
      for (const i of selectTopHeads(p, Math.min(g.target, heads.length))) out[heads[i]!.n.stack][heads[i]!.n.layer]!.push(heads[i]!.h);
    }
    for (const n of this.names) {
      if (budgeted.has(n.stack)) continue;
      for (let h = 0; h < n.heads; h++) {
        const st = stateOf(n.stack, n.layer, h);
        if (st.pOne > st.pZero) out[n.stack][n.layer]!.push(h);
      }
    }
    for (const stack of ATTENTION_TYPES) out[stack] = out[stack].map((l) => l.sort((a, b) => a - b));
    return out;
  }

  /**
   * Gates of the pruned model: the removed positions 0, the kept ones at their deterministic test-time
   * gate (1 once converged). This is exactly what the exporter folds into W_O, so the BLEU of a pruning
   * run equals the BLEU of its exported model.
   */
  prunedGates(kept: PerHead): GateTensors {
    const out: Partial<Record<AttentionType, Array<tf.Tensor | null>>> = {};
    for (const n of this.names) {
      out[n.stack] ??= this.shape[n.stack].map(() => null);
      if (!n.heads) continue;
      const test = tf.tidy(() => testGateTensor(this.variables.get(n.name)!, this.opts).dataSync());
      out[n.stack]![n.layer] = tf.tensor1d(Array.from({ length: n.heads }, (_, i) => (kept[n.stack][n.layer]!.includes(i) ? test[i]! : 0)));
    }
    return out;
  }

  /** 0/1 gates keeping exactly `kept` positions (kept heads at 1, whatever their gate value). */
  binaryGates(kept: PerHead): GateTensors {
    const out: Partial<Record<AttentionType, Array<tf.Tensor | null>>> = {};
    for (const stack of ATTENTION_TYPES) {
      if (!this.config.attention.includes(stack)) continue;
      out[stack] = this.shape[stack].map((h, l) => (h ? tf.tensor1d(Array.from({ length: h }, (_, i) => (kept[stack][l]!.includes(i) ? 1 : 0))) : null));
    }
    return out;
  }

  private keyOf(stack: AttentionType, layer: number, pos: number): string {
    return headKey({ stack, layer, head: this.originalHead(stack, layer, pos) });
  }

  /** Every gated head's numbers (P(open), P(0), P(1), deterministic gate). */
  states(): GateState[] {
    const out: GateState[] = [];
    for (const n of this.names) {
      if (!n.heads) continue;
      const la = this.variables.get(n.name)!;
      const [pOpen, pZero, pOne, tg, raw] = tf.tidy(() =>
        [probNonZeroTensor(la, this.opts), probZeroTensor(la, this.opts), probOneTensor(la, this.opts), testGateTensor(la, this.opts), la.clone()].map((t) =>
          t.dataSync(),
        ),
      );
      for (let h = 0; h < n.heads; h++)
        out.push({ key: this.keyOf(n.stack, n.layer, h), logAlpha: raw![h]!, pOpen: pOpen![h]!, pZero: pZero![h]!, pOne: pOne![h]!, testGate: tg![h]! });
    }
    return out;
  }

  /** Heads whose deterministic gate is strictly between 0 and 1: not settled (gates.settle waits for none). */
  fractionalGates(): string[] {
    return this.states()
      .filter((s) => s.testGate > 0 && s.testGate < 1)
      .map((s) => s.key);
  }

  /** The first step at which the gates may count as settled: after the budget's target warm-up (0 without a budget). */
  get settleFromStep(): number {
    return this.isBudgeted ? this.targetWarmupSteps : 0;
  }

  summary(): Record<string, number> {
    const s = this.states();
    const out: Record<string, number> = {
      expectedOpenHeads: s.reduce((a, x) => a + x.pOpen, 0),
      keptHeads: s.filter((x) => x.pOne > x.pZero).length,
      closedHeads: s.filter((x) => x.testGate === 0).length,
      gatedHeads: s.length,
    };
    for (const stack of this.config.attention) out[`expectedOpen.${stack}`] = s.filter((x) => x.key.startsWith(`${stack}.`)).reduce((a, x) => a + x.pOpen, 0);
    for (const g of this.groups) {
      out[`lambda1.${g.name}`] = g.lambda1;
      out[`lambda2.${g.name}`] = g.lambda2;
    }
    return out;
  }

  /** Lagrange multipliers, checkpointed so a resumed budget run continues exactly. */
  extraState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const g of this.groups) {
      out[`lambda1.${g.name}`] = g.lambda1;
      out[`lambda2.${g.name}`] = g.lambda2;
    }
    return out;
  }

  restoreExtraState(s: Record<string, number>): void {
    for (const g of this.groups) {
      g.lambda1 = s[`lambda1.${g.name}`] ?? 0;
      g.lambda2 = s[`lambda2.${g.name}`] ?? 0;
    }
  }

  /** Append each log step's P(open) per head to a CSV (one column per head). */
  setTrajectoryFile(path: string): void {
    this.trajectoryPath = path;
  }
  logStep(step: number): void {
    if (!this.trajectoryPath) return;
    const s = this.states();
    // a resumed run appends to the file it started, so the header is written only once
    if (!existsSync(this.trajectoryPath)) appendLine(this.trajectoryPath, Papa.unparse([['step', ...s.map((x) => x.key)]]));
    appendLine(this.trajectoryPath, Papa.unparse([[step, ...s.map((x) => Number(x.pOpen.toFixed(6)))]]));
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose();
    this.variables.clear();
  }
}
