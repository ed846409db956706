/**
 * The step on worker threads (train.workers > 1, wasm or cpu): micro-batch i goes to worker i mod N with
 * the same seeds as in-process, the gradients are summed in shared memory together with the gradient of
 * lambda * penalty (computed here, on the main thread, where the gates' controller lives), and one Adam
 * update sharded over the workers is loaded by every replica (worker.ts). The result equals in-process
 * training with the same micro-batches up to float rounding.
 *
 * Between steps the parameters and Adam's state live in shared memory. The main thread's model and
 * gates are refreshed from there after every step (syncMain), so they always hold the trained weights;
 * when the trainer changes them itself (restore, magnitude pruning) it says so (mainChanged,
 * masksChanged, weightsPruned) and shared memory is refreshed before the next step.
 */
import * as tf from '@tensorflow/tfjs';
import type { GateConfig, ResolvedConfig } from '../../config/schema.js';
import type { Batch } from '../../data/batches.js';
import type { HeadShape } from '../../config/head-layout.js';
import type { Transformer } from '../../model/transformer.js';
import type { WeightMasks } from '../../compress/magnitude-pruning.js';
import { activeKernelFixes, nativeBlasStatus, setBlasThreads } from '../../backend/ops.js';
import { DROPOUT_KERNEL } from '../../backend/dropout.js';
import type { Adam } from '../adam.js';
import { lossImplementation } from '../objective.js';
import { zeroMaskedRange } from '../gradual-pruning.js';
import type { StepInput, StepOutcome, StepRunner } from '../step.js';
import { WorkerPool } from './pool.js';
import { type ParamLayout, type SharedViews, makeLayout } from './shared-state.js';
import { assignFrom, readInto, writeFrom } from './tensor-io.js';

/** What a worker needs to rebuild the gates (a HeadGates: its config and the model shape). */
export interface GateSpec {
  config: GateConfig;
  shape: HeadShape;
}

export interface WorkerSetup {
  workers: number;
  config: ResolvedConfig;
  model: Transformer;
  /** the gates' variables by parameter name (empty without gates) */
  gateVariables: ReadonlyMap<string, tf.Variable>;
  gateSpec: GateSpec | null;
  trainable: Map<string, tf.Variable>;
  /** the main thread's Adam: its step counts the updates; its tensors are empty while shared memory holds the state */
  adam: Adam;
  chunkRows: (b: Batch) => number;
  /** the current pruning masks (null: none) */
  masks: () => WeightMasks | null;
  faultNonFinite?: string | undefined;
}

export class WorkerStepRunner implements StepRunner {
  private pool: WorkerPool | null = null;
  /** the main thread's model is older than the shared parameters */
  private mainStale = false;
  /** shared memory must be refreshed from the main thread before the next step */
  private pushParams = true;
  private pushAdam = true;
  /** the shared `keep` mask must be rewritten from the masks before the next step */
  private pushMasks = false;
  private reload: 'all' | 'trainable' | null = null;
  private blasThreadsBefore: number | null = null;
  /** per-phase milliseconds of the last step (slowest worker), for benchmarks and diagnostics */
  lastPhases: { compute: number; reduce: number; update: number; load: number } | null = null;

  constructor(private readonly o: WorkerSetup) {}

  async run(input: StepInput): Promise<StepOutcome> {
    const { step, batches, stepTgtTokens, lr } = input;
    const cfg = this.o.config;
    const pool = await this.ensurePool();
    const layout = pool.layout;
    const s = pool.views;
    const n = pool.size;
    s.got.fill(0);
    // lambda * penalty and its gradient (log-alphas only) on the main thread, added into the sum
    let penalty = 0;
    let withExtra = false;
    if (input.penalty) {
      const gateEntries = layout.entries.map((e, k) => ({ e, k })).filter(({ e }) => e.isGate && e.trainable);
      const vars = gateEntries.map(({ e }) => this.o.trainable.get(e.name)!);
      if (vars.length > 0) {
        const { value, grads } = tf.variableGrads(input.penalty, vars);
        penalty = value.dataSync()[0]!;
        gateEntries.forEach(({ e, k }, j) => {
          const g = grads[vars[j]!.name];
          if (g) {
            readInto(g, s.extra, e.offset, 'set');
            s.got[k] = 1;
          } else s.extra.fill(0, e.offset, e.offset + e.size);
        });
        tf.dispose([value, ...Object.values(grads)]);
        withExtra = true;
      } else {
        const f = input.penalty;
        penalty = tf.tidy(() => f().dataSync()[0]!);
      }
    }
    const jobs = batches.map((batch, index) => ({ index, batch, chunkRows: this.o.chunkRows(batch) }));
    const reload = this.reload;
    const r = await pool.step((w) => ({
      type: 'step',
      step,
      stepTgtTokens,
      jobs: jobs.filter((j) => j.index % n === w),
      reload,
      withExtra,
      lr,
      gateScale: cfg.gates.lrScale,
      clipNorm: cfg.train.clipNorm,
      adamStep: this.o.adam.step + 1,
      isMasked: this.o.masks() !== null,
    }));
    this.reload = null;
    this.lastPhases = r.ms;
    let loss = 0;
    for (let i = 0; i < batches.length; i++) loss += r.ce.get(i) ?? NaN;
    const gradNorm = r.gradNorm;
    const applied = r.applied && Number.isFinite(gradNorm) && Number.isFinite(loss);
    if (!applied) return { loss, penalty, gradNorm, applied };
    this.o.adam.step++;
    layout.entries.forEach((e, k) => {
      if (s.got[k]) s.seen[k] = 1;
    });
    // the main thread's model (and gates: the penalty, controller and logs read them) follows every
    // step, so callers see the trained weights as in-process (~10 ms for the bench model's 7.6 M floats)
    this.mainStale = true;
    this.syncMain();
    return { loss, penalty, gradNorm, applied, moeAux: r.moeAux, routing: r.routing };
  }

  syncMain(): void {
    if (this.pool === null || !this.mainStale) return;
    const vars = this.paramVariables();
    this.pool.layout.entries.forEach((e, k) => {
      if (e.trainable) assignFrom(vars[k]!.v, this.pool!.views.params, e.offset);
    });
    this.mainStale = false;
  }

  async adamState(): ReturnType<StepRunner['adamState']> {
    if (this.pool === null || this.pushAdam) return this.o.adam.state();
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    const s = this.pool.views;
    const seen = this.pool.layout.entries.filter((e, k) => e.trainable && s.seen[k]);
    for (const [prefix, arr] of [
      ['m', s.m],
      ['v', s.v],
    ] as const)
      for (const e of seen) tensors[`${prefix}.${e.name}`] = { shape: e.shape.slice(), data: arr.slice(e.offset, e.offset + e.size) };
    return { step: this.o.adam.step, tensors };
  }

  mainChanged(what: { params?: boolean; adam?: boolean }): void {
    if (this.pool === null) return;
    if (what.params) this.pushParams = true;
    if (what.adam) this.pushAdam = true;
  }

  masksChanged(): void {
    this.pushMasks = true;
  }

  /** The main thread zeroed masked weights (and moments): the same in shared memory, reloaded by every worker. */
  weightsPruned(): void {
    const masks = this.o.masks();
    if (this.pool === null || this.pushParams || masks === null) return;
    const s = this.pool.views;
    for (const e of this.pool.layout.entries) {
      const m = masks[e.name];
      if (m) zeroMaskedRange(this.pushAdam ? [s.params] : [s.params, s.m, s.v], e.offset, m);
    }
    this.reload = 'all';
  }

  dispose(): void {
    this.pool?.terminate();
    this.pool = null;
    if (this.blasThreadsBefore !== null) setBlasThreads(this.blasThreadsBefore);
    this.blasThreadsBefore = null;
  }

  /** Shared `keep` <- the masks (1 where no mask applies). */
  private writeKeep(s: SharedViews, layout: ParamLayout): void {
    const masks = this.o.masks();
    s.keep.fill(1);
    for (const e of layout.entries) {
      const m = masks?.[e.name];
      if (m) s.keep.set(m, e.offset);
    }
    this.pushMasks = false;
  }

  /** Every parameter (model, then gates) in the shared layout's order, with its variable. */
  private paramVariables(): Array<{ name: string; v: tf.Variable; isGate: boolean }> {
    const out: Array<{ name: string; v: tf.Variable; isGate: boolean }> = [];
    for (const [name, v] of this.o.model.params.vars) out.push({ name, v, isGate: false });
    for (const [name, v] of this.o.gateVariables) out.push({ name, v, isGate: true });
    return out;
  }

  /** Main thread -> shared memory: parameters (when pushParams) and Adam's state (when pushAdam). */
  private pushToShared(s: SharedViews, layout: ParamLayout): void {
    const vars = this.paramVariables();
    const adam = this.o.adam;
    layout.entries.forEach((e, k) => {
      if (this.pushParams) writeFrom(vars[k]!.v, s.params, e.offset);
      if (!this.pushAdam) return;
      const m = adam.m.get(e.name);
      const v = adam.v.get(e.name);
      if (e.trainable && m && v) {
        writeFrom(m, s.m, e.offset);
        writeFrom(v, s.v, e.offset);
        s.seen[k] = 1;
      } else {
        s.m.fill(0, e.offset, e.offset + e.size);
        s.v.fill(0, e.offset, e.offset + e.size);
        s.seen[k] = 0;
      }
    });
  }

  /** The worker pool, started on first use; shared memory refreshed when the main thread changed state. */
  private async ensurePool(): Promise<WorkerPool> {
    if (this.pool !== null) {
      if (this.pushMasks) this.writeKeep(this.pool.views, this.pool.layout);
      if (this.pushParams || this.pushAdam) {
        this.pushToShared(this.pool.views, this.pool.layout);
        this.reload = this.pushParams ? 'all' : this.reload;
        if (this.pushAdam) this.o.adam.dispose(); // the shared copy is the live one now
        this.pushParams = this.pushAdam = false;
      }
      return this.pool;
    }
    const vars = this.paramVariables();
    const layout = makeLayout(vars.map(({ name, v, isGate }) => ({ name, shape: v.shape, trainable: this.o.trainable.has(name), isGate })));
    const backend = tf.getBackend();
    const fixes = activeKernelFixes(backend);
    const has = (kernel: string, fix: string) => fixes.some((f) => f.kernel === kernel && f.fix === fix);
    const cfg = this.o.config;
    // one OpenBLAS thread per worker: the thread count is process-wide, so the main thread's too
    const blas = nativeBlasStatus();
    if (blas.available) {
      this.blasThreadsBefore = blas.threads ?? null;
      setBlasThreads(1);
    }
    this.pushParams = this.pushAdam = true;
    this.pool = await WorkerPool.start(
      {
        workers: this.o.workers,
        backend,
        nativeBlas: has('BatchMatMul', 'native-blas'),
        kernels: {
          sharedIdentity: has('Identity', 'shared-data'),
          fusedLoss: lossImplementation() === 'fused',
          rowGather: has('GatherV2', 'js-row-copy'),
          nativeSum: has('Sum', 'native-blas'),
          fusedDropout: fixes.some((f) => f.kernel === DROPOUT_KERNEL),
        },
        modelConfig: this.o.model.config,
        vocabSize: this.o.model.vocabSize,
        gates: this.o.gateSpec,
        layout,
        seed: cfg.seed,
        labelSmoothing: cfg.train.labelSmoothing,
        adam: { beta1: cfg.train.adamBeta1, beta2: cfg.train.adamBeta2, eps: cfg.train.adamEps },
        quantAware: cfg.train.quantAware,
        faultNonFinite: this.o.faultNonFinite,
      },
      (views) => {
        this.pushToShared(views, layout);
        this.writeKeep(views, layout);
      },
    );
    this.o.adam.dispose();
    this.pushParams = this.pushAdam = false;
    this.reload = null;
    return this.pool;
  }
}
