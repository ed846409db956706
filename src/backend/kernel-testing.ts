/**
 * Helpers shared by the backend tests and scripts/bench-kernels.ts: seeded inputs that are identical on every
 * backend (tf.randomUniform with a seed draws in JS), switching backends, shape builders and a
 * scale-aware comparison.
 */
import * as tf from '@tensorflow/tfjs';

/** Uniform [-1, 1) values from a seed; the same numbers on every backend. */
export function seeded(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed);
}

/** Runs `fn` with `backend` active (tidied), reads its result with dataSync, and switches back. */
export async function valuesOn(backend: string, fn: () => tf.Tensor): Promise<{ values: Float32Array; shape: number[] }> {
  const previous = tf.getBackend();
  if (previous !== backend) await tf.setBackend(backend);
  try {
    const t = tf.tidy(fn);
    const values = Float32Array.from(t.dataSync() as ArrayLike<number>);
    const shape = t.shape.slice();
    t.dispose();
    return { values, shape };
  } finally {
    if (previous !== backend) await tf.setBackend(previous);
  }
}

/** Operand shapes for op(A) [.., m, k] @ op(B) [.., k, n] with the given batch dims. */
export function matMulShapes(m: number, n: number, k: number, tA: boolean, tB: boolean, batchA: number[] = [], batchB: number[] = []): [number[], number[]] {
  return [
    [...batchA, ...(tA ? [k, m] : [m, k])],
    [...batchB, ...(tB ? [n, k] : [k, n])],
  ];
}

/** max |x - y| / (1 + |y|), Infinity on NaN or a length mismatch. */
export function maxRelDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!) / (1 + Math.abs(y[i]!));
    if (Number.isNaN(d)) return Infinity;
    if (d > worst) worst = d;
  }
  return worst;
}
