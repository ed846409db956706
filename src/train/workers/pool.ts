/**
 * The main thread's side of data-parallel training: starts N worker threads (worker.ts), owns the shared
 * memory (shared-state.ts), hands each step's micro-batches out round-robin (micro-batch i to worker
 * i mod N, so the seeds of micro-batch i are the same as in-process) and collects the losses.
 *
 * Workers run compiled JS next to this file (dist/), or TypeScript through tsx when this file is itself
 * TypeScript (tests, `tsx`), loaded with `--import <tsx loader>`.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { reviveWorkerError as revive, siblingModule, workerEntry as startEntry } from '../../util/worker-threads.js';
import type { StepRequest, WorkerInit, WorkerReply, SerializedError } from './protocol.js';
import { type RoutingCounts, addRoutingCounts } from '../../model/moe.js';
import { type ParamLayout, type SharedBuffers, type SharedViews, abortPeers, allocateShared, resetControl, viewsOf } from './shared-state.js';

/**
 * `train.workers` resolved: 'auto' = the cores this process may use (HEADS_CORES when set, e.g. by the
 * experiment runner sharing the machine among stages, else all) on wasm and cpu, 1 on other backends.
 */
export function resolveWorkerCount(setting: 'auto' | number, backend: string, cores: number = availableParallelism()): number {
  const parallel = backend === 'wasm' || backend === 'cpu';
  if (setting === 'auto') return parallel ? Math.max(1, cores) : 1;
  return parallel ? Math.max(1, Math.floor(setting)) : 1;
}

/** HEADS_CORES when it is a positive integer, else the number of cores (the CLI passes its environment). */
export function coresForThisProcess(env: NodeJS.ProcessEnv): number {
  const v = Number(env['HEADS_CORES']);
  return Number.isInteger(v) && v > 0 ? v : availableParallelism();
}

/** The training worker's entry (worker.ts, or worker.js in dist/). */
export function workerEntry(): { entry: URL | string; eval: boolean } {
  return startEntry(siblingModule(import.meta.url, 'worker'));
}

export interface PoolOptions extends Omit<WorkerInit, 'index' | 'workers' | 'buffers'> {
  workers: number;
}

export interface PoolStepResult {
  /** cross-entropy / stepTgtTokens of each micro-batch, by index */
  ce: Map<number, number>;
  gradNorm: number;
  applied: boolean;
  /** per-phase milliseconds of the slowest worker */
  ms: { compute: number; reduce: number; update: number; load: number };
  /** MoE models: the load-balancing term summed over the workers, and the expert usage */
  moeAux?: number;
  routing?: RoutingCounts;
}

/** A training worker's serialized error as an Error on the main thread (util/worker-threads.ts). */
export function reviveWorkerError(e: SerializedError): Error {
  return revive(e, 'training worker');
}

export class WorkerPool {
  readonly views: SharedViews;
  private broken: Error | null = null;

  private constructor(
    readonly layout: ParamLayout,
    readonly buffers: SharedBuffers,
    private readonly workers: Worker[],
  ) {
    this.views = viewsOf(buffers);
  }

  get size(): number {
    return this.workers.length;
  }

  /**
   * Allocates the shared memory, lets `fill` write the initial parameters (and Adam state) into it, then
   * starts the workers, which load the parameters; resolves when every worker is ready.
   */
  static async start(o: PoolOptions, fill: (views: SharedViews) => void): Promise<WorkerPool> {
    const buffers = allocateShared(o.layout, o.workers);
    const pool = new WorkerPool(o.layout, buffers, []);
    fill(pool.views);
    const entry = workerEntry();
    const { workers: n, ...rest } = o;
    const ready: Array<Promise<void>> = [];
    for (let index = 0; index < n; index++) {
      const init: WorkerInit = { ...rest, index, workers: n, buffers };
      const w = new Worker(entry.entry, { workerData: init, eval: entry.eval });
      pool.workers.push(w);
      ready.push(
        new Promise<void>((resolve, reject) => {
          const onMessage = (m: WorkerReply) => {
            if (m.type === 'ready') resolve();
            else if (m.type === 'init-error') reject(reviveWorkerError(m.error));
            else return;
            w.off('message', onMessage);
            w.off('error', reject);
          };
          w.on('message', onMessage);
          w.once('error', reject);
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      pool.terminate();
      throw e;
    }
    for (const w of pool.workers) w.unref();
    return pool;
  }

  /** One step: `req(w)` is worker w's request (its jobs); resolves when all workers replied. */
  async step(req: (w: number) => StepRequest): Promise<PoolStepResult> {
    if (this.broken) throw this.broken;
    resetControl(this.views.control);
    const replies = await Promise.all(
      this.workers.map(
        (w, i) =>
          new Promise<WorkerReply>((resolve) => {
            const done = (m: WorkerReply) => {
              // a worker that died cannot reach the barrier: release the others
              if (m.type === 'step-error') abortPeers(this.views.control);
              w.off('message', done);
              w.off('error', onError);
              w.off('exit', onExit);
              w.unref();
              resolve(m);
            };
            const onError = (e: Error) =>
              done({ type: 'step-error', error: { name: e.name, message: e.message, ...(e.stack !== undefined ? { stack: e.stack } : {}) }, peer: false });
            const onExit = (code: number) =>
              done({ type: 'step-error', error: { name: 'Error', message: `worker ${i} exited with code ${code} during a step` }, peer: false });
            w.on('message', done);
            w.once('error', onError);
            w.once('exit', onExit);
            w.ref();
            w.postMessage(req(i));
          }),
      ),
    );
    const errors = replies.filter((r): r is Extract<WorkerReply, { type: 'step-error' }> => r.type === 'step-error');
    if (errors.length > 0) {
      const first = errors.find((e) => !e.peer) ?? errors[0]!;
      const err = reviveWorkerError(first.error);
      // a worker that failed mid-kernel (wasm abort) may be unusable: no further steps on this pool
      this.broken = err;
      throw err;
    }
    const ce = new Map<number, number>();
    let gradNorm = 0;
    let applied = true;
    const ms = { compute: 0, reduce: 0, update: 0, load: 0 };
    let moeAux: number | undefined;
    let routing: RoutingCounts | undefined;
    for (const r of replies) {
      if (r.type !== 'step-done') throw new Error(`training worker: unexpected reply ${r.type}`);
      for (const [i, v] of r.ces) ce.set(i, v);
      gradNorm = r.gradNorm;
      applied &&= r.applied;
      for (const k of Object.keys(ms) as Array<keyof typeof ms>) ms[k] = Math.max(ms[k], r.ms[k]);
      if (r.moe) {
        moeAux = (moeAux ?? 0) + r.moe.aux;
        routing = addRoutingCounts(routing ?? {}, r.moe.routing);
      }
    }
    const out: PoolStepResult = { ce, gradNorm, applied, ms };
    if (moeAux !== undefined) out.moeAux = moeAux;
    if (routing !== undefined) out.routing = routing;
    return out;
  }

  terminate(): void {
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
    this.broken = new Error('the training workers were stopped');
  }
}
