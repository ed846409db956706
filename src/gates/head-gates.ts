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
import { Rng, deriveSeed } from '../util/random.js';
import { appendLine } from '../util/fs.js';
import { constantLogAlpha, glorotUniformLogAlpha, probNonZeroTensor, probOneTensor, probZeroTensor, sampleGateTensor, samplePerHeadNoise, testGateTensor } from './hard-concrete.js';

/** Per attention type, per layer: one tensor per layer or null (ungated). Same shape as model GateTensors. */
export type GateValues = Partial<Record<AttentionType, ReadonlyArray<tf.Tensor | null>>>;

export interface GateState {
  key: string;
  logAlpha: number;
  pOpen: number;
  pZero: number;
  pOne: number;
  testGate: number;
}

export class HeadGates {
  readonly variables = new Map<string, tf.Variable>();
  private readonly names: Array<{ stack: AttentionType; layer: number; name: string; heads: number }> = [];
  private trajectoryPath: string | null = null;

  constructor(
    readonly config: GateConfig,
    /** heads per layer for each attention type (from the model) */
    readonly shape: Record<AttentionType, readonly number[]>,
    seed: number,
  ) {
    const rng = new Rng(deriveSeed(seed, 'gate-init'));
    for (const stack of ATTENTION_TYPES) {
      if (!config.attention.includes(stack)) continue;
      shape[stack].forEach((heads, layer) => {
        const name = `gate.${stack}.${layer}`;
        const init = config.logAlphaInit.kind === 'glorot' ? glorotUniformLogAlpha(Math.max(heads, 1), rng).slice(0, heads) : constantLogAlpha(Math.max(heads, 1), config.logAlphaInit.value).slice(0, heads);
        this.variables.set(name, tf.variable(tf.tensor1d(init), true, `${name}#${seed}#${HeadGates.counter++}`));
        this.names.push({ stack, layer, name, heads });
      });
    }
  }
  private static counter = 0;

  private get opts() {
    return { beta: this.config.beta };
  }

  /** Total number of gated heads. */
  get gatedHeadCount(): number {
    return this.names.reduce((a, n) => a + n.heads, 0);
  }

  private build(f: (logAlpha: tf.Variable, n: { stack: AttentionType; layer: number; heads: number }) => tf.Tensor): GateValues {
    const out: Partial<Record<AttentionType, Array<tf.Tensor | null>>> = {};
    for (const stack of this.config.attention) out[stack] = this.shape[stack].map(() => null);
    for (const n of this.names) out[n.stack]![n.layer] = n.heads ? f(this.variables.get(n.name)!, n) : null;
    return out;
  }

  /** Hard Concrete samples: one noise draw per head per batch ([h]) or per sentence ([B, h]). */
  sampleGates(seed: number, batchSize: number): GateValues {
    return this.build((la, n) => {
      const shape = this.config.noise === 'batch' ? [n.heads] : [batchSize, n.heads];
      return sampleGateTensor(la, samplePerHeadNoise(shape, deriveSeed(seed, `${n.stack}.${n.layer}`)), this.opts);
    });
  }

  /** Deterministic test-time gates clip(sigmoid(logAlpha)(zeta-gamma)+gamma, 0, 1). */
  testGates(): GateValues {
    return tf.tidy((() => this.build((la) => testGateTensor(la, this.opts))) as () => tf.TensorContainer) as GateValues;
  }

  /** Expected L0 under the configured convention (differentiable). */
  penalty(): tf.Scalar {
    return tf.tidy(() => {
      const perLayer = this.names.filter((n) => n.heads > 0).map((n) => probNonZeroTensor(this.variables.get(n.name)!, this.opts).sum());
      if (!perLayer.length) return tf.scalar(0);
      const total = tf.addN(perLayer);
      return (this.config.penalty === 'sum' ? total : total.div(perLayer.length)) as tf.Scalar;
    });
  }

  /** Every gated head's numbers (P(open), P(0), P(1), deterministic gate). */
  states(): GateState[] {
    const out: GateState[] = [];
    for (const n of this.names) {
      if (!n.heads) continue;
      const la = this.variables.get(n.name)!;
      const [pOpen, pZero, pOne, tg, raw] = tf.tidy(() => [probNonZeroTensor(la, this.opts), probZeroTensor(la, this.opts), probOneTensor(la, this.opts), testGateTensor(la, this.opts), la.clone()].map((t) => t.dataSync()));
      for (let h = 0; h < n.heads; h++)
        out.push({ key: headKey({ stack: n.stack, layer: n.layer, head: h }), logAlpha: raw![h]!, pOpen: pOpen![h]!, pZero: pZero![h]!, pOne: pOne![h]!, testGate: tg![h]! });
    }
    return out;
  }

  summary(): Record<string, number> {
    const s = this.states();
    return {
      expectedOpenHeads: s.reduce((a, x) => a + x.pOpen, 0),
      keptHeads: s.filter((x) => x.pOne > x.pZero).length,
      closedHeads: s.filter((x) => x.testGate === 0).length,
      gatedHeads: s.length,
    };
  }

  extraState(): Record<string, number> {
    return {};
  }
  restoreExtraState(_s: Record<string, number>): void {}

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
