/**
 * The training loop: token-budget batches in a seeded order, gradient accumulation, global-norm
 * clipping, Adam with an inverse-square-root schedule, an optional gate penalty (lambda * E[L0], see
 * gates/), dev loss and dev BLEU every N steps, atomic checkpoints every N steps and at the end, and a
 * live progress line. Everything random derives from config.seed, and the data position, Adam state and
 * step are checkpointed, so a resumed run reproduces the uninterrupted one exactly.
 *
 * The step itself (loss = CE + lambda * penalty, clipping, Adam) is step.ts; it runs in-process
 * (in-process-runner.ts) or, with `train.workers` > 1 (wasm or cpu backend), on worker threads
 * (workers/step-runner.ts), where the step has N * ceil(accumulateSteps / N) micro-batches sharing
 * `maxTokensPerBatch`. Either way the model (and gates) on this thread holds the trained weights after
 * every step (the gate penalty and Lagrangian controller stay on this thread).
 * Micro-batches estimated above the wasm heap budget are split by rows (train/memory-split.ts).
 * Mixture-of-experts models (model.moe) add their load-balancing loss in the micro-batch gradient, and
 * the log record carries each MoE layer's expert shares and dropped claims over the logging window.
 * Gradual magnitude pruning (train.magnitudePruning, gradual-pruning.ts) recomputes its masks on the main
 * thread after the update of each scheduled step and holds pruned weights and their Adam moments at zero
 * after every update: in-process through MaskTensors, on the workers in the shared Adam update (`keep`).
 * Quantization-aware training (train.quantAware, quant-aware.ts) changes the training forward only.
 */
import * as tf from '@tensorflow/tfjs';
import type { ResolvedConfig } from '../config/schema.js';
import type { RuntimeOptions } from '../config/runtime.js';
import type { Transformer, GateTensors } from '../model/transformer.js';
import { disposeGates } from '../model/gate-tensors.js';
import { groupOf } from '../model/params.js';
import { type Batch, type EncodedPair, makeBatch, planBatches } from '../data/batches.js';
import { deriveSeed, Rng } from '../util/random.js';
import type { RunFolder } from '../util/run-folder.js';
import { CheckpointError, FileSystemError, HeadsError } from '../util/errors.js';
export { guardWasmHeap } from './memory-split.js';
import { Adam } from './adam.js';
import { lossImplementation, nllSum, targetWeights } from './objective.js';
import { type HeapModel, chunkRowsFor, heapBudgetBytes } from './memory-split.js';
import { NonFiniteError, type StepRunner, learningRate, optimizerStep } from './step.js';
import { InProcessRunner } from './in-process-runner.js';
import { type GateSpec, WorkerStepRunner } from './workers/step-runner.js';
import { resolveWorkerCount } from './workers/pool.js';
import { type DataPosition, type LoadedCheckpoint, type NamedArrays, checkpointDirName, readCheckpoint, writeCheckpoint } from '../io/checkpoint.js';
import { EarlyStopping, earliestStopStep } from './early-stopping.js';
import { join } from 'node:path';
import { ProgressLine, formatRate, trainingEta } from './progress.js';
import { type RoutingCounts, addRoutingCounts, routingSummary } from '../model/moe.js';
import type { WeightMasks } from '../compress/magnitude-pruning.js';
import { MaskTensors, isPruningStep, maskSparsity, pruningMasksAt } from './gradual-pruning.js';
export { NonFiniteError } from './step.js';
import { quantAwareWeights } from './quant-aware.js';

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
  /** heads whose deterministic gate is strictly between 0 and 1 (gates.settle stops once there are none) */
  fractionalGates?(): string[];
  /** the first step at which the gates may count as settled (budget mode: the end of the target warm-up) */
  readonly settleFromStep?: number;
}

/** Why a run ended before train.maxSteps by one of its rules (a stop request is `stoppedEarly`). */
export type StopRule = 'early-stopping' | 'settled';

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
  /** MoE models: the load-balancing term in the step's loss (auxLossWeight * aux) */
  moeAux?: number;
  /** MoE models: claims per expert per MoE layer in this step */
  routing?: RoutingCounts;
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
  /** the process's cores, heap budget and test faults (the CLI reads them from the environment); absent: defaults */
  runtime?: RuntimeOptions;
}

export class Trainer {
  step = 0;
  position: DataPosition = { epoch: 0, batch: 0 };
  /** steps whose batches were dropped for a non-finite loss or gradient (train.skipNonFinite) */
  skippedNonFinite = 0;
  /** step of the newest checkpoint written or restored (named when a non-finite step stops the run) */
  private lastCheckpointStep: number | null = null;
  /** step of the newest checkpoint written or restored (null: none yet) */
  get lastCheckpoint(): number | null {
    return this.lastCheckpointStep;
  }
  readonly adam: Adam;
  private plan: number[][] | null = null;
  private readonly trainable: Map<string, tf.Variable>;
  private readonly varNameToParam = new Map<string, string>();
  private readonly progress: ProgressLine;
  readonly history: StepResult[] = [];
  /** worker threads in use (1: in-process) */
  readonly workerCount: number;
  /** where the step's arithmetic runs (in-process or on the workers) */
  private readonly runner: StepRunner;
  /** per-phase milliseconds of the last worker step (slowest worker), for benchmarks and diagnostics */
  get lastWorkerPhases(): { compute: number; reduce: number; update: number; load: number } | null {
    return this.runner instanceof WorkerStepRunner ? this.runner.lastPhases : null;
  }
  /** gradual magnitude pruning: the current masks (null before the first pruning step) and their sparsity */
  private masks: WeightMasks | null = null;
  private maskTensors: MaskTensors | null = null;
  private sparsity = 0;
  /** train.earlyStopping's bookkeeping (null: off) */
  readonly earlyStopping: EarlyStopping | null;
  /** gates.settle: the step at which no gate was fractional any more (null: not settled) */
  settledAtStep: number | null = null;

  constructor(private readonly o: TrainerOptions) {
    const t = o.config.train;
    this.adam = new Adam({ beta1: t.adamBeta1, beta2: t.adamBeta2, eps: t.adamEps });
    this.progress = o.progress ?? new ProgressLine(process.stderr, true);
    this.earlyStopping = t.earlyStopping ? new EarlyStopping(t.earlyStopping) : null;
    const groups = t.trainOnly ? new Set(t.trainOnly) : null;
    this.trainable = new Map();
    for (const [name, v] of o.model.params.vars) if (!groups || groups.has(groupOf(name))) this.trainable.set(name, v);
    if (o.gates) for (const [name, v] of o.gates.variables) if (!groups || groups.has('gates')) this.trainable.set(name, v);
    for (const [name, v] of this.trainable) this.varNameToParam.set(v.name, name);
    if (!this.trainable.size) throw new HeadsError(`train.trainOnly: ${JSON.stringify(t.trainOnly)} selects no parameters`);
    // workers rebuild the gates from their config and shape (HeadGates); other providers train in-process
    this.workerCount = o.gates && gateSpec(o.gates) === null ? 1 : resolveWorkerCount(t.workers, tf.getBackend(), o.runtime?.cores);
    const chunkRows = (b: Batch) => this.chunkRows(b);
    this.runner =
      this.workerCount > 1
        ? new WorkerStepRunner({
            workers: this.workerCount,
            config: o.config,
            model: o.model,
            gateVariables: o.gates?.variables ?? new Map(),
            gateSpec: o.gates ? gateSpec(o.gates) : null,
            trainable: this.trainable,
            adam: this.adam,
            chunkRows,
            masks: () => this.masks,
            faultNonFinite: o.runtime?.faultNonFinite,
          })
        : new InProcessRunner({
            context: {
              model: o.model,
              gates: o.gates ?? null,
              varList: [...this.trainable.values()],
              varNameToParam: this.varNameToParam,
              seed: o.config.seed,
              labelSmoothing: t.labelSmoothing,
              weightView: quantAwareWeights(t.quantAware),
              faultNonFinite: o.runtime?.faultNonFinite,
            },
            trainable: this.trainable,
            adam: this.adam,
            clipNorm: t.clipNorm,
            gateScale: o.config.gates.lrScale,
            chunkRows,
            masks: () => this.maskTensors,
          });
  }

  /** Parameters that receive gradients (names). */
  trainableNames(): string[] {
    return [...this.trainable.keys()];
  }

  private epochPlan(epoch: number): number[][] {
    const rng = new Rng(deriveSeed(this.o.config.seed, 'data', epoch));
    return planBatches(this.o.train as EncodedPair[], { maxTokensPerBatch: this.microBatchTokens(), rng });
  }

  /** Micro-batches per step: accumulateSteps, rounded up to a multiple of the worker count. */
  microBatchesPerStep(): number {
    const a = this.o.config.train.accumulateSteps;
    return this.workerCount > 1 ? this.workerCount * Math.ceil(a / this.workerCount) : a;
  }

  /** Token budget of one micro-batch: the step's budget split over its micro-batches. */
  microBatchTokens(): number {
    const t = this.o.config.train;
    return Math.max(1, Math.floor(t.maxTokensPerBatch / this.microBatchesPerStep()));
  }

  /** What the heap estimate needs to know about the model being trained. */
  private heapModel(): HeapModel {
    let parameters = this.o.model.params.count();
    for (const v of this.o.gates?.variables.values() ?? []) parameters += v.size;
    return { model: this.o.model.config, vocabSize: this.o.model.vocabSize, parameters, fusedLoss: lossImplementation() === 'fused' };
  }

  /** Rows per chunk for a micro-batch (its size unless it would exceed the heap budget). */
  chunkRows(b: Batch): number {
    return chunkRowsFor(this.heapModel(), b, heapBudgetBytes(tf.getBackend(), this.o.runtime?.heapBudgetMB));
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

  /** One optimizer step over `microBatchesPerStep()` micro-batches (step.ts, in-process or on the workers). */
  async trainStep(): Promise<StepResult> {
    const t0 = performance.now();
    const step = this.step + 1;
    const batches = this.nextBatches(this.microBatchesPerStep());
    const lrScale = this.earlyStopping?.lrScale ?? 1;
    const r = await optimizerStep(this.runner, step, batches, this.o.gates, this.o.config.train, lrScale);
    await this.pruneIfScheduled(step);
    this.o.gates?.afterStep?.(step);
    this.step = step;
    const tgtTokens = batches.reduce((a, b) => a + b.tgtTokens, 0);
    const srcTokens = batches.reduce((a, b) => a + b.srcTokens, 0);
    const lr = learningRate(step, this.o.config.train, lrScale);
    const res: StepResult = {
      step,
      loss: r.loss,
      penalty: r.penalty,
      gradNorm: r.gradNorm,
      lr,
      tgtTokens,
      srcTokens,
      elapsedMs: performance.now() - t0,
      ...moeFields(r.moeAux, r.routing),
    };
    this.history.push(res);
    return res;
  }

  /** The masks' current sparsity (0 before the first pruning step or without train.magnitudePruning). */
  currentSparsity(): number {
    return this.sparsity;
  }

  /** A copy of the current pruning masks (null: none yet). */
  pruningMasks(): WeightMasks | null {
    return this.masks ? Object.fromEntries(Object.entries(this.masks).map(([k, m]) => [k, m.slice()])) : null;
  }

  private setMasks(masks: WeightMasks | null): void {
    this.maskTensors?.dispose();
    this.masks = masks;
    this.maskTensors = masks ? new MaskTensors(masks, (name) => (this.o.model.params.has(name) ? this.o.model.params.get(name).shape : undefined)) : null;
    this.sparsity = maskSparsity(masks);
    this.runner.masksChanged();
  }

  /**
   * After the update of a scheduled step: new masks from the current weights at the schedule's sparsity,
   * applied at once to the weights and Adam moments (the main thread's and, with workers, the shared ones).
   */
  private async pruneIfScheduled(step: number): Promise<void> {
    const c = this.o.config.train.magnitudePruning;
    if (!c || !isPruningStep(step, c)) return;
    this.setMasks(pruningMasksAt(step, await this.o.model.params.toArrays(), c));
    for (const vars of [this.o.model.params.vars, this.adam.m, this.adam.v]) this.maskTensors!.apply(vars);
    this.runner.weightsPruned();
  }

  /** Brings the main thread's model up to date with the workers' parameters (no-op in-process). */
  async syncModel(): Promise<void> {
    this.runner.syncMain();
  }

  /** Dev loss (NLL per token, eval mode, deterministic gates) and optionally dev BLEU. */
  async evaluate(withBleu = true): Promise<EvalResult> {
    this.runner.syncMain();
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

  /**
   * Write a checkpoint of the current state into the run folder. A write the disk refuses throws a
   * FileSystemError naming the file and the last checkpoint that stays valid.
   */
  async saveCheckpoint(): Promise<string | null> {
    if (!this.o.run) return null;
    this.runner.syncMain();
    const params: NamedArrays = await this.o.model.params.toArrays();
    if (this.o.gates) for (const [name, v] of this.o.gates.variables) params[name] = { shape: v.shape.slice(), data: (await v.data()) as Float32Array };
    const adam = await this.runner.adamState();
    try {
      const dir = this.writeCheckpointOf(this.o.run.path, params, adam);
      this.lastCheckpointStep = this.step;
      return dir;
    } catch (e) {
      if (e instanceof FileSystemError) e.message += `; the last checkpoint (step ${this.lastCheckpointStep ?? 'none'}) is intact`;
      throw e;
    }
  }

  private writeCheckpointOf(runPath: string, params: NamedArrays, adam: { step: number; tensors: NamedArrays }): string {
    return writeCheckpoint(
      runPath,
      {
        step: this.step,
        dataPosition: this.position,
        adamStep: adam.step,
        config: this.o.config,
        extra: { ...(this.o.gates?.extraState() ?? {}), 'trainer.skippedNonFinite': this.skippedNonFinite, ...this.stopRuleState() },
      },
      params,
      adam.tensors,
      this.o.config.train.keepCheckpoints,
      undefined,
      this.masks ? Object.fromEntries(Object.entries(this.masks).map(([k, m]) => [k, { shape: params[k]!.shape, data: m }])) : undefined,
      this.earlyStopping?.bestEval?.step ?? null,
      (m) => this.progress.log(`warning: ${m}`),
    );
  }

  /** Early stopping's and gates.settle's state, as checkpoint numbers. */
  private stopRuleState(): Record<string, number> {
    return { ...(this.earlyStopping?.toExtra() ?? {}), ...(this.settledAtStep !== null ? { 'settle.settledAtStep': this.settledAtStep } : {}) };
  }

  /** The rule that ended (or, after a resume, had already ended) the run, if any. */
  stoppedBy(): StopRule | null {
    if (this.earlyStopping?.shouldStop) return 'early-stopping';
    return this.settledAtStep !== null ? 'settled' : null;
  }

  /**
   * gates.settle at a check step: true (and settledAtStep set) when no gate's deterministic value is
   * strictly between 0 and 1.
   */
  private checkSettled(): boolean {
    const rule = this.o.config.gates.settle ?? null;
    const g = this.o.gates;
    if (!rule || !g?.fractionalGates || this.step % rule.checkEvery !== 0 || this.step < Math.max(rule.minSteps, g.settleFromStep ?? 0)) return false;
    const fractional = g.fractionalGates();
    this.o.run?.appendMetrics({ step: this.step, fractionalGates: fractional.length });
    if (fractional.length) {
      this.progress.log(
        `step ${this.step} | gates: ${fractional.length} still fractional (${fractional.slice(0, 6).join(', ')}${fractional.length > 6 ? ', ...' : ''}); next settle check at step ${this.step + rule.checkEvery}`,
      );
      return false;
    }
    this.settledAtStep = this.step;
    this.progress.log(`step ${this.step} | gates settled: every deterministic gate is 0 or 1`);
    return true;
  }

  /**
   * Early stopping: put the best evaluation's weights (from its checkpoint) into the model, so that what
   * follows (test translation, results) uses them. Returns the best step (null: no rule or no evaluation).
   */
  restoreBestWeights(): number | null {
    const best = this.earlyStopping?.bestEval ?? null;
    if (!best) return null;
    if (best.step !== this.step) {
      if (!this.o.run) throw new HeadsError(`early stopping: the best step ${best.step} is not the current one and there is no run folder to load it from`);
      this.restore(readCheckpoint(join(this.o.run.path, 'checkpoints', checkpointDirName(best.step))), { weightsOnly: true });
    }
    return best.step;
  }

  /** Restore weights, gates, optimizer state, step and data position from a checkpoint. */
  restore(c: LoadedCheckpoint, opts: { weightsOnly?: boolean } = {}): void {
    this.runner.syncMain();
    this.runner.mainChanged({ params: true });
    const gateVars = this.o.gates?.variables;
    for (const [name, { shape, data }] of Object.entries(c.params)) {
      if (this.o.model.params.has(name)) this.o.model.params.assign(name, shape, data);
      else if (gateVars?.has(name)) tf.tidy(() => gateVars.get(name)!.assign(tf.tensor(data, shape, 'float32')));
    }
    if (opts.weightsOnly) return;
    this.runner.mainChanged({ adam: true });
    // tidy frees the tensors Adam.load creates its variables from (the variables keep the data)
    tf.tidy(() => this.adam.load(c.state.adamStep, c.optimizer));
    this.step = c.state.step;
    this.position = c.state.dataPosition;
    this.plan = null;
    this.o.gates?.restoreExtraState(c.state.extra);
    this.skippedNonFinite = c.state.extra['trainer.skippedNonFinite'] ?? 0;
    this.earlyStopping?.restore(c.state.extra);
    this.settledAtStep = c.state.extra['settle.settledAtStep'] ?? null;
    // gradual magnitude pruning continues from the checkpoint's masks (none: before the first pruning step)
    if (this.o.config.train.magnitudePruning && c.masks) {
      for (const [name, m] of Object.entries(c.masks))
        if (!this.o.model.params.has(name) || this.o.model.params.get(name).size !== m.length)
          throw new CheckpointError(`${c.path}: masks.safetensors: mask ${name} does not match a parameter of the model`);
      this.setMasks(c.masks);
    } else this.setMasks(null);
    this.lastCheckpointStep = c.state.step;
  }

  /** The step at which early stopping would end the run if no evaluation from now on gained (undefined without it). */
  private earliestStop(): number | undefined {
    const every = this.o.config.train.evalEverySteps;
    if (!this.earlyStopping || every <= 0) return undefined;
    return earliestStopStep(this.step, every, this.earlyStopping.evaluationsToStop);
  }

  /** Train to config.train.maxSteps with logging, evaluation and checkpoints. */
  async run(): Promise<{ steps: number; lastEval: EvalResult | null; stoppedEarly: boolean; stoppedBy: StopRule | null; elapsedMs: number }> {
    const cfg = this.o.config.train;
    const t0 = performance.now();
    const startStep = this.step;
    let windowTokens = 0;
    let windowMs = 0;
    let windowLoss = 0;
    let windowN = 0;
    let windowAux = 0;
    let windowRouting: RoutingCounts | null = null;
    let lastEval: EvalResult | null = null;
    let stoppedEarly = false;
    // train.maxSteps is the cap; early stopping or settled gates (gates.settle) end the run before it
    while (this.step < cfg.maxSteps && this.stoppedBy() === null) {
      // a step awaits only promises that resolve as microtasks on wasm/cpu, so without this the event
      // loop never polls and SIGINT/SIGTERM handlers (and worker messages) would wait for the whole run
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.o.isStopRequested?.()) {
        stoppedEarly = true;
        break;
      }
      let r: StepResult;
      try {
        r = await this.trainStep();
      } catch (e) {
        // train.skipNonFinite: drop this step's batches (no update; the data moves on) up to the limit
        if (!(e instanceof NonFiniteError) || this.skippedNonFinite >= cfg.skipNonFinite) {
          if (e instanceof NonFiniteError && cfg.skipNonFinite > 0) e.message += ` (train.skipNonFinite = ${cfg.skipNonFinite} already used up)`;
          if (e instanceof NonFiniteError) e.message += `; the last checkpoint (step ${this.lastCheckpointStep ?? 'none'}) is untouched`;
          throw e;
        }
        this.skippedNonFinite++;
        this.o.run?.appendMetrics({ step: e.step, skipped: 'non-finite', detail: e.message, skippedNonFinite: this.skippedNonFinite });
        this.progress.log(`${e.message}: batch skipped (${this.skippedNonFinite} of train.skipNonFinite = ${cfg.skipNonFinite})`);
        continue;
      }
      windowTokens += r.tgtTokens;
      windowMs += r.elapsedMs;
      windowLoss += r.loss;
      windowN++;
      windowAux += r.moeAux ?? 0;
      if (r.routing) windowRouting = addRoutingCounts(windowRouting ?? {}, r.routing);
      let isLast = this.step === cfg.maxSteps || this.checkSettled();
      if (this.step % cfg.logEverySteps === 0 || isLast) {
        const tokPerSec = (windowTokens / windowMs) * 1000;
        const elapsed = performance.now() - t0;
        const summary = this.o.gates?.summary() ?? {};
        // MoE: the mean load-balancing term and each layer's expert shares / dropped claims over the window
        const moe = windowRouting ? { 'moe.aux': windowAux / windowN, ...routingSummary(windowRouting) } : {};
        // gradual magnitude pruning: the share of the prunable weights the current masks zero
        const pruning = this.o.config.train.magnitudePruning ? { sparsity: this.sparsity } : {};
        const record = {
          step: this.step,
          loss: windowLoss / windowN,
          penalty: r.penalty,
          lr: r.lr,
          gradNorm: r.gradNorm,
          tgtTokensPerSec: tokPerSec,
          epoch: this.position.epoch,
          elapsedMs: Math.round(elapsed),
          ...summary,
          ...moe,
          ...pruning,
        };
        this.o.run?.appendMetrics(record);
        this.o.gates?.logStep?.(this.step);
        const gateText =
          ('expectedOpenHeads' in summary ? ` | E[open] ${summary['expectedOpenHeads']!.toFixed(1)}` : '') +
          ('sparsity' in pruning ? ` | sparsity ${this.sparsity.toFixed(3)}` : '') +
          (this.earlyStopping ? ` | ${this.earlyStopping.describe()}` : '');
        this.progress.update(
          `step ${this.step}/${cfg.maxSteps} | loss ${record.loss.toFixed(3)}${gateText} | ${formatRate(tokPerSec)} tok/s | lr ${r.lr.toExponential(1)} | ETA ${trainingEta({ step: this.step, startStep, maxSteps: cfg.maxSteps, elapsedMs: elapsed, earliestStop: this.earliestStop() })}`,
        );
        windowTokens = windowMs = windowLoss = windowN = windowAux = 0;
        windowRouting = null;
      }
      let isBest = false;
      if ((cfg.evalEverySteps > 0 && this.step % cfg.evalEverySteps === 0) || isLast) {
        lastEval = await this.evaluate();
        const es = this.earlyStopping;
        let cut = false;
        if (es) {
          ({ improved: isBest, cut } = es.observe(this.step, lastEval));
          if (es.shouldStop) isLast = true;
        }
        this.o.run?.appendMetrics({
          step: this.step,
          ...lastEval,
          ...(es ? { bestStep: es.bestEval?.step ?? null, patienceLeft: es.patienceLeft } : {}),
          ...(es?.rule.lrDecay ? { lrCuts: es.lrCuts } : {}),
        });
        if (cut)
          this.progress.log(
            `step ${this.step} | ${es!.stallText()}: learning rate x${es!.lrScale.toPrecision(3)} from step ${this.step + 1} (cut ${es!.lrCuts} of ${es!.rule.lrDecay!.times}); best step ${es!.bestEval?.step ?? '-'}`,
          );
        this.progress.log(
          `step ${this.step} | dev loss ${lastEval.devLoss.toFixed(3)} | dev ppl ${lastEval.devPerplexity.toFixed(2)}${lastEval.devBleu !== undefined ? ` | dev BLEU ${lastEval.devBleu.toFixed(2)}` : ''}` +
            (es
              ? ` | ${isBest ? 'new best' : es.describe()}${es.shouldStop ? ` | early stopping: ${es.stallText()}, best step ${es.bestEval?.step ?? '-'}` : ''}`
              : ''),
        );
      }
      // the best evaluation's weights are kept as a checkpoint (protected from pruning while it is the best)
      if (this.step % cfg.checkpointEverySteps === 0 || isLast || isBest) await this.saveCheckpoint();
    }
    this.runner.syncMain();
    if (stoppedEarly) {
      const dir = await this.saveCheckpoint();
      this.progress.log(`stopped at step ${this.step}; checkpoint ${dir ?? '(no run folder)'}`);
    }
    this.progress.done();
    return { steps: this.step - startStep, lastEval, stoppedEarly, stoppedBy: stoppedEarly ? null : this.stoppedBy(), elapsedMs: performance.now() - t0 };
  }

  /** Frees the optimizer state and stops the workers (sync the model first if it is still needed). */
  dispose(): void {
    this.runner.syncMain();
    this.runner.dispose();
    this.adam.dispose();
    this.maskTensors?.dispose();
    this.maskTensors = null;
  }
}

/** The optional MoE fields of a StepResult (absent without MoE layers). */
function moeFields(moeAux: number | undefined, routing: RoutingCounts | undefined): Pick<StepResult, 'moeAux' | 'routing'> {
  const out: Pick<StepResult, 'moeAux' | 'routing'> = {};
  if (moeAux !== undefined) out.moeAux = moeAux;
  if (routing !== undefined) out.routing = routing;
  return out;
}

/** What a worker needs to rebuild the gates (a HeadGates: its config and the model shape), else null. */
function gateSpec(g: GateProvider): GateSpec | null {
  const o = g as GateProvider & { config?: unknown; shape?: unknown };
  if (typeof o.config !== 'object' || o.config === null || typeof o.shape !== 'object' || o.shape === null) return null;
  return { config: o.config as GateSpec['config'], shape: o.shape as GateSpec['shape'] };
}
