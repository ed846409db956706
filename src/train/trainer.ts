/**
 * The training loop: token-budget batches in a seeded order, gradient accumulation, global-norm
 * clipping, Adam with an inverse-square-root schedule, an optional gate penalty (lambda * E[L0], see
 * gates/), dev loss and dev BLEU every N steps, atomic checkpoints every N steps and at the end, and a
 * live progress line. Everything random derives from config.seed, and the data position, Adam state and
 * step are checkpointed, so a resumed run reproduces the uninterrupted one exactly.
 */
import * as tf from '@tensorflow/tfjs';
import type { ResolvedConfig } from '../config/schema.js';
import type { Transformer, GateTensors } from '../model/transformer.js';
import { groupOf } from '../model/params.js';
import { type Batch, type EncodedPair, makeBatch, planBatches } from '../data/batches.js';
import { deriveSeed, Rng } from '../util/random.js';
import type { RunFolder } from '../util/run-folder.js';
import { HeadsError, OutOfMemoryError } from '../util/errors.js';
import { Adam, clipByGlobalNorm } from './adam.js';
import { inverseSqrtLr } from './schedule.js';
import { labelSmoothedCrossEntropySum, nllSum, targetWeights } from './objective.js';
import { type DataPosition, type LoadedCheckpoint, type NamedArrays, writeCheckpoint } from './checkpoint.js';
import { ProgressLine, eta, formatDuration, formatRate } from './progress.js';

/** What the trainer needs from head gates (gates/head-gates.ts implements it). */
export interface GateProvider {
  /** trainable log-alpha variables by parameter name (`gate.enc-self.0`) */
  readonly variables: ReadonlyMap<string, tf.Variable>;
  /** stochastic gates for one training batch (call inside the gradient closure) */
  sampleGates(seed: number, batchSize: number): GateTensors;
  /** deterministic test-time gates */
  testGates(): GateTensors;
  /** true when the penalty is an exact-budget Lagrangian term (added as is, not times l0Lambda) */
  readonly isBudgeted?: boolean;
  /** the penalty term multiplied by lambda (its convention is the provider's) */
  penalty(step: number): tf.Scalar;
  /** numbers for logs: expected open heads etc. */
  summary(): Record<string, number>;
  /** extra scalar state to checkpoint (e.g. Lagrange multipliers), and its restore */
  extraState(): Record<string, number>;
  restoreExtraState(s: Record<string, number>): void;
  /** update after the optimizer step (e.g. Lagrange multiplier ascent); optional */
  afterStep?(step: number): void;
  /** CSV trajectory row per log step; optional */
  logStep?(step: number): void;
}

export interface StepResult {
  step: number;
  /** label-smoothed cross-entropy per target token */
  loss: number;
  /** lambda * penalty (0 without gates) */
  penalty: number;
  gradNorm: number;
  lr: number;
  tgtTokens: number;
  srcTokens: number;
  elapsedMs: number;
}

export interface EvalResult {
  devLoss: number;
  devPerplexity: number;
  devBleu?: number;
}

export interface TrainerOptions {
  config: ResolvedConfig;
  model: Transformer;
  train: readonly EncodedPair[];
  valid: readonly EncodedPair[];
  run: RunFolder | null;
  gates?: GateProvider | null;
  progress?: ProgressLine;
  /** dev BLEU on the first N dev sentences: decode + score (provided by the caller, see eval/) */
  devBleu?: (model: Transformer, gates: GateTensors | undefined) => Promise<number>;
  /** polled between steps: a SIGINT/SIGTERM handler sets it */
  isStopRequested?: () => boolean;
}

export class Trainer {
  step = 0;
  position: DataPosition = { epoch: 0, batch: 0 };
  readonly adam: Adam;
  private plan: number[][] | null = null;
  private readonly trainable: Map<string, tf.Variable>;
  private readonly varNameToParam = new Map<string, string>();
  private readonly progress: ProgressLine;
  readonly history: StepResult[] = [];

  constructor(private readonly o: TrainerOptions) {
    const t = o.config.train;
    this.adam = new Adam({ beta1: t.adamBeta1, beta2: t.adamBeta2, eps: t.adamEps });
    this.progress = o.progress ?? new ProgressLine(process.stderr, true);
    const groups = t.trainOnly ? new Set(t.trainOnly) : null;
    this.trainable = new Map();
    for (const [name, v] of o.model.params.vars) if (!groups || groups.has(groupOf(name))) this.trainable.set(name, v);
    if (o.gates) for (const [name, v] of o.gates.variables) if (!groups || groups.has('gates')) this.trainable.set(name, v);
    for (const [name, v] of this.trainable) this.varNameToParam.set(v.name, name);
    if (!this.trainable.size) throw new HeadsError(`train.trainOnly: ${JSON.stringify(t.trainOnly)} selects no parameters`);
  }

  /** Parameters that receive gradients (names). */
  trainableNames(): string[] {
    return [...this.trainable.keys()];
  }

  private epochPlan(epoch: number): number[][] {
    const rng = new Rng(deriveSeed(this.o.config.seed, 'data', epoch));
    return planBatches(this.o.train as EncodedPair[], { maxTokensPerBatch: this.microBatchTokens(), rng });
  }

  /** Token budget of one micro-batch: the step's budget split over accumulation steps. */
  microBatchTokens(): number {
    const t = this.o.config.train;
    return Math.max(1, Math.floor(t.maxTokensPerBatch / t.accumulateSteps));
  }

  /** The next `n` micro-batches in the seeded order, advancing the data position. */
  private nextBatches(n: number): Batch[] {
    const out: Batch[] = [];
    while (out.length < n) {
      if (!this.plan) this.plan = this.epochPlan(this.position.epoch);
      if (this.position.batch >= this.plan.length) {
        this.position = { epoch: this.position.epoch + 1, batch: 0 };
        this.plan = null;
        continue;
      }
      out.push(makeBatch(this.o.train as EncodedPair[], this.plan[this.position.batch]!));
      this.position = { ...this.position, batch: this.position.batch + 1 };
    }
    return out;
  }

  /** One optimizer step over `accumulateSteps` micro-batches. */
  async trainStep(): Promise<StepResult> {
    const t0 = performance.now();
    const cfg = this.o.config;
    const step = this.step + 1;
    const batches = this.nextBatches(cfg.train.accumulateSteps);
    const tgtTokens = batches.reduce((a, b) => a + b.tgtTokens, 0);
    const srcTokens = batches.reduce((a, b) => a + b.srcTokens, 0);
    const varList = [...this.trainable.values()];
    let sum: Map<string, tf.Tensor> | null = null;
    let lossSum = 0;
    let penalty = 0;
    for (let i = 0; i < batches.length; i++) {
      const b = batches[i]!;
      const seed = deriveSeed(cfg.seed, 'step', step * 1000 + i);
      const src = tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32');
      const tgtIn = tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32');
      const tgtOut = tf.tensor2d(b.tgtOut, [b.batchSize, b.tgtLen], 'int32');
      const parts: { ce?: tf.Scalar; pen?: tf.Scalar } = {};
      const { value, grads } = guardWasmHeap(b, () => tf.variableGrads(() => {
        const gates = this.o.gates?.sampleGates(deriveSeed(cfg.seed, 'gates', step * 1000 + i), b.batchSize);
        const logits = this.o.model.forward(src, tgtIn, { isTraining: true, seed, gates });
        const ce = labelSmoothedCrossEntropySum(logits, tgtOut.reshape([-1]) as tf.Tensor1D, targetWeights(tgtOut), cfg.train.labelSmoothing).div(tgtTokens) as tf.Scalar;
        parts.ce = tf.keep(ce.clone());
        // lambda mode: l0Lambda * E[L0]; budget mode: the Lagrangian term as it is
        const coef = this.o.gates?.isBudgeted ? 1 : cfg.train.l0Lambda;
        if (this.o.gates && i === 0 && coef > 0) {
          const pen = this.o.gates.penalty(step).mul(coef) as tf.Scalar;
          parts.pen = tf.keep(pen.clone());
          return ce.add(pen) as tf.Scalar;
        }
        return ce;
      }, varList));
      lossSum += (await parts.ce!.data())[0]!;
      if (parts.pen) penalty = (await parts.pen.data())[0]!;
      tf.dispose([src, tgtIn, tgtOut, value, parts.ce, parts.pen]);
      const named = new Map<string, tf.Tensor>();
      for (const [vn, g] of Object.entries(grads)) named.set(this.varNameToParam.get(vn) ?? vn, g);
      if (!sum) sum = named;
      else {
        for (const [k, g] of named) {
          const prev = sum.get(k);
          if (prev) {
            sum.set(k, tf.add(prev, g));
            tf.dispose([prev, g]);
          } else sum.set(k, g);
        }
      }
    }
    const { grads, norm } = clipByGlobalNorm(sum!, cfg.train.clipNorm);
    if (!Number.isFinite(norm) || !Number.isFinite(lossSum)) {
      tf.dispose([...grads.values()]);
      throw new NonFiniteError(step, lossSum, norm, batches.flatMap((b) => b.indices).slice(0, 10));
    }
    const lr = inverseSqrtLr(step, cfg.train.peakLr, cfg.train.warmupSteps);
    const gateScale = cfg.gates.lrScale;
    this.adam.apply(this.trainable, grads, lr, (name) => (name.startsWith('gate.') ? gateScale : 1));
    tf.dispose([...grads.values()]);
    this.o.gates?.afterStep?.(step);
    this.step = step;
    const r: StepResult = { step, loss: lossSum, penalty, gradNorm: norm, lr, tgtTokens, srcTokens, elapsedMs: performance.now() - t0 };
    this.history.push(r);
    return r;
  }

  /** Dev loss (NLL per token, eval mode, deterministic gates) and optionally dev BLEU. */
  async evaluate(withBleu = true): Promise<EvalResult> {
    const cfg = this.o.config;
    let nll = 0;
    let tokens = 0;
    const gates = this.o.gates?.testGates();
    const rng = new Rng(0);
    for (const idx of planBatches(this.o.valid as EncodedPair[], { maxTokensPerBatch: this.microBatchTokens(), rng })) {
      const b = makeBatch(this.o.valid as EncodedPair[], idx);
      const s = tf.tidy(() => {
        const src = tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32');
        const tgtIn = tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32');
        const tgtOut = tf.tensor2d(b.tgtOut, [b.batchSize, b.tgtLen], 'int32');
        const logits = this.o.model.forward(src, tgtIn, { isTraining: false, gates });
        return nllSum(logits, tgtOut.reshape([-1]) as tf.Tensor1D, targetWeights(tgtOut));
      });
      nll += (await s.data())[0]!;
      s.dispose();
      tokens += b.tgtTokens;
    }
    const devLoss = nll / Math.max(tokens, 1);
    const out: EvalResult = { devLoss, devPerplexity: Math.exp(devLoss) };
    if (withBleu && this.o.devBleu && cfg.train.devBleuSentences > 0) out.devBleu = await this.o.devBleu(this.o.model, gates);
    if (gates) disposeGates(gates);
    return out;
  }

  /** Write a checkpoint of the current state into the run folder. */
  async saveCheckpoint(): Promise<string | null> {
    if (!this.o.run) return null;
    const params: NamedArrays = await this.o.model.params.toArrays();
    if (this.o.gates) for (const [name, v] of this.o.gates.variables) params[name] = { shape: v.shape.slice(), data: (await v.data()) as Float32Array };
    const adam = await this.adam.state();
    return writeCheckpoint(
      this.o.run.path,
      { step: this.step, dataPosition: this.position, adamStep: adam.step, config: this.o.config, extra: this.o.gates?.extraState() ?? {} },
      params,
      adam.tensors,
      this.o.config.train.keepCheckpoints,
    );
  }

  /** Restore weights, gates, optimizer state, step and data position from a checkpoint. */
  restore(c: LoadedCheckpoint, opts: { weightsOnly?: boolean } = {}): void {
    const gateVars = this.o.gates?.variables;
    for (const [name, { shape, data }] of Object.entries(c.params)) {
      if (this.o.model.params.has(name)) this.o.model.params.assign(name, shape, data);
      else if (gateVars?.has(name)) tf.tidy(() => gateVars.get(name)!.assign(tf.tensor(data, shape, 'float32')));
    }
    if (opts.weightsOnly) return;
    this.adam.load(c.state.adamStep, c.optimizer);
    this.step = c.state.step;
    this.position = c.state.dataPosition;
    this.plan = null;
    this.o.gates?.restoreExtraState(c.state.extra);
  }

  /** Train to config.train.maxSteps with logging, evaluation and checkpoints. */
  async run(): Promise<{ steps: number; lastEval: EvalResult | null; stoppedEarly: boolean; elapsedMs: number }> {
    const cfg = this.o.config.train;
    const t0 = performance.now();
    const startStep = this.step;
    let windowTokens = 0;
    let windowMs = 0;
    let windowLoss = 0;
    let windowN = 0;
    let lastEval: EvalResult | null = null;
    let stoppedEarly = false;
    while (this.step < cfg.maxSteps) {
      // a step awaits only promises that resolve as microtasks on wasm/cpu, so without this the event
      // loop never polls and SIGINT/SIGTERM handlers (and worker messages) would wait for the whole run
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.o.isStopRequested?.()) {
        stoppedEarly = true;
        break;
      }
      const r = await this.trainStep();
      windowTokens += r.tgtTokens;
      windowMs += r.elapsedMs;
      windowLoss += r.loss;
      windowN++;
      const isLast = this.step === cfg.maxSteps;
      if (this.step % cfg.logEverySteps === 0 || isLast) {
        const tokPerSec = (windowTokens / windowMs) * 1000;
        const elapsed = performance.now() - t0;
        const summary = this.o.gates?.summary() ?? {};
        const record = { step: this.step, loss: windowLoss / windowN, penalty: r.penalty, lr: r.lr, gradNorm: r.gradNorm, tgtTokensPerSec: tokPerSec, epoch: this.position.epoch, elapsedMs: Math.round(elapsed), ...summary };
        this.o.run?.appendMetrics(record);
        this.o.gates?.logStep?.(this.step);
        const gateText = 'expectedOpenHeads' in summary ? ` | E[open] ${summary['expectedOpenHeads']!.toFixed(1)}` : '';
        this.progress.update(
          `step ${this.step}/${cfg.maxSteps} | loss ${record.loss.toFixed(3)}${gateText} | ${formatRate(tokPerSec)} tok/s | lr ${r.lr.toExponential(1)} | ETA ${formatDuration(eta(this.step - startStep, cfg.maxSteps - startStep, elapsed))}`,
        );
        windowTokens = windowMs = windowLoss = windowN = 0;
      }
      if ((cfg.evalEverySteps > 0 && this.step % cfg.evalEverySteps === 0) || isLast) {
        lastEval = await this.evaluate();
        this.o.run?.appendMetrics({ step: this.step, ...lastEval });
        this.progress.log(`step ${this.step} | dev loss ${lastEval.devLoss.toFixed(3)} | dev ppl ${lastEval.devPerplexity.toFixed(2)}${lastEval.devBleu !== undefined ? ` | dev BLEU ${lastEval.devBleu.toFixed(2)}` : ''}`);
      }
      if (this.step % cfg.checkpointEverySteps === 0 || isLast) await this.saveCheckpoint();
    }
    if (stoppedEarly) {
      const dir = await this.saveCheckpoint();
      this.progress.log(`stopped at step ${this.step}; checkpoint ${dir ?? '(no run folder)'}`);
    }
    this.progress.done();
    return { steps: this.step - startStep, lastEval, stoppedEarly, elapsedMs: performance.now() - t0 };
  }

  dispose(): void {
    this.adam.dispose();
  }
}

/**
 * The wasm heap (4 GiB at most) fails mid-kernel with a RuntimeError ("memory access out of bounds",
 * "Aborted()"), which leaves the backend unusable: report it as an out-of-memory error naming the batch.
 */
export function guardWasmHeap<T>(b: Batch, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if ((e instanceof Error && e.name === 'RuntimeError') || /memory access out of bounds|Aborted\(|table index is out of bounds/.test(String(e)))
      throw new OutOfMemoryError(
        `out of memory in the ${tf.getBackend()} heap on a micro-batch of ${b.batchSize} sentences x ${Math.max(b.srcLen, b.tgtLen)} tokens ` +
          `(${b.batchSize * Math.max(b.srcLen, b.tgtLen)} padded tokens): lower train.maxTokensPerBatch or raise train.accumulateSteps (${String(e).slice(0, 80)})`,
      );
    throw e;
  }
}

export function disposeGates(g: GateTensors): void {
  for (const list of Object.values(g)) for (const t of list ?? []) t?.dispose();
}

export class NonFiniteError extends HeadsError {
  constructor(readonly step: number, loss: number, gradNorm: number, readonly sentenceIndices: number[]) {
    super(`non-finite ${Number.isFinite(loss) ? 'gradient' : 'loss'} at step ${step} (loss ${loss}, gradient norm ${gradNorm}); batch sentences ${sentenceIndices.join(',')}...`);
  }
}
