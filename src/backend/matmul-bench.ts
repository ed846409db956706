/**
 * Small timing helpers for matMul throughput on the current tfjs backend, used by the training
 * benchmark and scripts/bench-kernels.ts. The wasm and cpu backends compute synchronously inside tf.matMul, so
 * timing the call itself measures the kernel (the result is not read back). Keep runs short: the
 * project machine has 2 shared cores and its timings vary by +-20 %.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';

export interface TimingOptions {
  /** timed repetitions (default 5) */
  reps?: number;
  /** untimed warm-up calls (default 1) */
  warmup?: number;
  /** stop repeating once this much time has been spent in timed calls (default: no budget) */
  budgetMs?: number;
}

/**
 * Median wall time in ms of `fn` over `reps` calls after `warmup` calls. With `budgetMs`, fewer reps are
 * run once the budget is used up (at least one); a warm-up call that alone exceeds the budget is used as
 * the single measurement, so very slow configurations are not run twice.
 */
export function medianMs(fn: () => void, opts: TimingOptions = {}): number {
  const reps = Math.max(1, opts.reps ?? 5);
  const warmup = Math.max(0, opts.warmup ?? 1);
  const budget = opts.budgetMs ?? Infinity;
  const times: number[] = [];
  for (let i = 0; i < warmup; i++) {
    const t0 = performance.now();
    fn();
    const dt = performance.now() - t0;
    if (dt > budget) return dt;
  }
  let spent = 0;
  for (let i = 0; i < reps && (i === 0 || spent < budget); i++) {
    const t0 = performance.now();
    fn();
    const dt = performance.now() - t0;
    times.push(dt);
    spent += dt;
  }
  times.sort((x, y) => x - y);
  const mid = times.length >> 1;
  return times.length % 2 === 1 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
}

export interface MatMulBenchOptions extends TimingOptions {
  /** rows of op(A) (default 1024) */
  m?: number;
  /** columns of op(B) (default 1024) */
  n?: number;
  /** inner size (default 1024) */
  k?: number;
  /** batch dims shared by both operands (default none: a plain 2-D product) */
  batch?: number[];
  transposeA?: boolean;
  transposeB?: boolean;
  /** seed of the random operands */
  seed?: number;
}

export interface MatMulBenchResult {
  backend: string;
  /** e.g. `2000x256 @ (1024x256)^T` or `320x[25x64 @ (25x64)^T]` */
  shape: string;
  flops: number;
  medianMs: number;
  gflops: number;
}

function describeShape(o: Required<Pick<MatMulBenchOptions, 'm' | 'n' | 'k' | 'batch' | 'transposeA' | 'transposeB'>>): string {
  const a = o.transposeA ? `(${o.k}x${o.m})^T` : `${o.m}x${o.k}`;
  const b = o.transposeB ? `(${o.n}x${o.k})^T` : `${o.k}x${o.n}`;
  const core = `${a} @ ${b}`;
  return o.batch.length > 0 ? `${o.batch.join('x')}x[${core}]` : core;
}

/** Times `tf.matMul` of random operands on the current backend. */
export function measureMatMul(opts: MatMulBenchOptions = {}): MatMulBenchResult {
  const o = {
    m: opts.m ?? 1024,
    n: opts.n ?? 1024,
    k: opts.k ?? 1024,
    batch: opts.batch ?? [],
    transposeA: opts.transposeA ?? false,
    transposeB: opts.transposeB ?? false,
  };
  const seed = opts.seed ?? 1;
  const a = tf.randomUniform([...o.batch, ...(o.transposeA ? [o.k, o.m] : [o.m, o.k])], -1, 1, 'float32', seed);
  const b = tf.randomUniform([...o.batch, ...(o.transposeB ? [o.n, o.k] : [o.k, o.n])], -1, 1, 'float32', seed + 1);
  try {
    const ms = medianMs(() => tf.matMul(a, b, o.transposeA, o.transposeB).dispose(), opts);
    const flops = 2 * o.m * o.n * o.k * o.batch.reduce((x, y) => x * y, 1);
    return { backend: tf.getBackend(), shape: describeShape(o), flops, medianMs: ms, gflops: flops / (ms * 1e6) };
  } finally {
    tf.dispose([a, b]);
  }
}

/** GFLOP/s of `tf.matMul` on the current backend (default: a plain 1024^3 product). */
export function measureMatMulGflops(opts: MatMulBenchOptions = {}): number {
  return measureMatMul(opts).gflops;
}
