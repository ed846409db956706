/**
 * Data-parallel decoding: N worker threads (decode-worker.ts), each with its own tfjs backend (the main
 * thread's backend and kernel fixes, one OpenBLAS thread) and a replica of the model's weights, decode
 * whole batches side by side. A batch decodes the same in any thread (the same code, kernels and
 * weights), so the translations are those of decoding in the main thread (tested); what changes is how
 * many batches run at once. The weights are a snapshot taken at start: a model that trains on does not
 * reach the pool. Gates come with each batch (a few numbers), so one pool serves gated and ungated runs.
 *
 * OpenBLAS's thread count belongs to the process: while a pool lives it is 1 (for the main thread too),
 * and close() restores it. Used where the process may use more than one core (HEADS_CORES) on wasm or
 * cpu: `heads translate` (`--workers`), the final translations of train, prune and experiment stages
 * (train/run-training.ts withDecodePool) and bench:decode. The decoding of a single batch is not made
 * parallel: its products are too small for a second OpenBLAS thread to pay (the fast beam-4 decoder on
 * the DDTP test set: 133.7 sentences/s on 1 thread, 135.5 on 2).
 */
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { GateTensors, Transformer } from '../model/transformer.js';
import type { ModelConfig } from '../config/schema.js';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import { type BackendFixOptions, installedFixOptions, nativeBlasStatus, setBlasThreads } from '../backend/ops.js';
import { HeadsError } from '../util/errors.js';
import { type SerializedError, reviveWorkerError, siblingModule, workerEntry } from '../util/worker-threads.js';
import type { DecodeOptions } from './decode.js';

/** Gate values as plain arrays: per attention type, one [shape, values] or null per layer. */
export type GateValues = Partial<Record<AttentionType, Array<{ shape: number[]; data: Float32Array } | null>>>;

export interface DecodeWorkerInit {
  backend: string;
  fixes: BackendFixOptions;
  modelConfig: ModelConfig;
  vocabSize: number;
  params: Record<string, { shape: number[]; data: Float32Array }>;
}

export interface DecodeRequest {
  type: 'decode';
  id: number;
  src: Int32Array;
  B: number;
  S: number;
  options: Omit<DecodeOptions, 'gates'>;
  gates: GateValues | null;
}

export type DecodeReply =
  | { type: 'ready' }
  | { type: 'init-error'; error: SerializedError }
  | { type: 'done'; id: number; hyps: number[][] }
  | { type: 'error'; id: number; error: SerializedError };

/** GateTensors' values, to send to a worker (read synchronously: a few numbers per layer). */
export function gateValues(g: GateTensors | undefined): GateValues | null {
  if (!g) return null;
  const out: GateValues = {};
  for (const t of ATTENTION_TYPES) {
    const list = g[t];
    if (list) out[t] = list.map((x) => (x ? { shape: x.shape.slice(), data: Float32Array.from(x.dataSync()) } : null));
  }
  return out;
}

/** GateValues as tensors again (the caller disposes them). */
export function gateTensorsOf(v: GateValues | null): GateTensors | undefined {
  if (!v) return undefined;
  const out: GateTensors = {};
  for (const t of ATTENTION_TYPES) {
    const list = v[t];
    if (list) out[t] = list.map((x) => (x ? tf.tensor(x.data, x.shape, 'float32') : null));
  }
  return out;
}

const revive = (e: SerializedError) => reviveWorkerError(e, 'decoding worker');

interface Pending {
  resolve: (hyps: number[][]) => void;
  reject: (e: Error) => void;
}

export class DecodePool {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  /** requests waiting for a free worker */
  private readonly queue: Array<{ req: DecodeRequest } & Pending> = [];
  private readonly idle: Worker[] = [];
  private broken: Error | null = null;
  private closed = false;
  /** OpenBLAS's thread count is process-wide: the workers set it to 1, close() puts this back */
  private blasThreadsBefore: number | null = null;

  private constructor(private readonly workers: Worker[]) {}

  get size(): number {
    return this.workers.length;
  }

  /** Starts `workers` threads with the model's current weights on the current backend; resolves when all are ready. */
  static async start(model: Transformer, workers: number): Promise<DecodePool> {
    const backend = tf.getBackend();
    if (backend !== 'wasm' && backend !== 'cpu') throw new HeadsError(`decoding workers run on the wasm or cpu backend, not ${backend}`);
    const init: DecodeWorkerInit = {
      backend,
      fixes: { ...(installedFixOptions(backend) ?? {}), blasThreads: 1 },
      modelConfig: model.config,
      vocabSize: model.vocabSize,
      params: await model.params.toArrays(),
    };
    const entry = workerEntry(siblingModule(import.meta.url, 'decode-worker'));
    const pool = new DecodePool([]);
    const blas = nativeBlasStatus();
    if (blas.available) {
      pool.blasThreadsBefore = blas.threads ?? null;
      setBlasThreads(1);
    }
    const ready: Array<Promise<void>> = [];
    for (let i = 0; i < workers; i++) {
      const w = new Worker(entry.entry, { workerData: init, eval: entry.eval });
      pool.workers.push(w);
      ready.push(
        new Promise<void>((resolve, reject) => {
          const first = (m: DecodeReply) => {
            w.off('message', first);
            if (m.type === 'ready') {
              w.on('message', (r: DecodeReply) => pool.onReply(w, r));
              pool.idle.push(w);
              resolve();
            } else reject(m.type === 'init-error' ? revive(m.error) : new Error(`decoding worker: unexpected ${m.type} before ready`));
          };
          w.on('message', first);
          w.once('error', (e) => reject(e));
        }),
      );
      w.on('error', (e) => pool.fail(e));
      w.on('exit', (code) => {
        if (!pool.closed) pool.fail(new Error(`decoding worker exited with code ${code}`));
      });
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /** beamSearch (decode.ts) of one padded batch in the next free worker. */
  beamSearch(src: Int32Array, B: number, S: number, o: DecodeOptions): Promise<number[][]> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error('decoding pool: closed'));
    const { gates, ...options } = o;
    const req: DecodeRequest = { type: 'decode', id: this.nextId++, src, B, S, options, gates: gateValues(gates) };
    return new Promise<number[][]>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length && this.queue.length) {
      const w = this.idle.shift()!;
      const { req, resolve, reject } = this.queue.shift()!;
      this.pending.set(req.id, { resolve, reject });
      w.postMessage(req);
    }
  }

  private onReply(w: Worker, r: DecodeReply): void {
    if (r.type !== 'done' && r.type !== 'error') return;
    const p = this.pending.get(r.id);
    this.pending.delete(r.id);
    this.idle.push(w);
    if (r.type === 'done') p?.resolve(r.hyps);
    else p?.reject(revive(r.error));
    this.dispatch();
  }

  private fail(e: unknown): void {
    if (this.closed) return;
    const err = e instanceof Error ? e : new Error(String(e));
    this.broken ??= err;
    for (const p of this.pending.values()) p.reject(err);
    for (const q of this.queue) q.reject(err);
    this.pending.clear();
    this.queue.length = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    if (this.blasThreadsBefore !== null) setBlasThreads(this.blasThreadsBefore);
  }
}

/**
 * DecodePool.start, or null with a warning when the pool cannot start (threads or memory refused): the
 * caller then decodes in the main thread, as with one worker.
 */
export async function startDecodePool(model: Transformer, workers: number, warn: (m: string) => void): Promise<DecodePool | null> {
  try {
    return await DecodePool.start(model, workers);
  } catch (e) {
    warn(`warning: decoding workers did not start (${e instanceof Error ? e.message : String(e)}); translating in the main thread`);
    return null;
  }
}
