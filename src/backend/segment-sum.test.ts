/**
 * UnsortedSegmentSum fixes: the gradient of tf.gather on wasm (where the kernel is missing) and on cpu
 * (where the stock kernel is pathologically slow) equals the stock cpu result.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { activeKernelFixes, installBackendFixes, restoreStockKernels } from './ops.js';
import { maxRelDiff, seeded, valuesOn } from './kernel-testing.js';

const VOCAB = 50;
const DIM = 8;
const IDS = [3, 7, 3, 0, 49, 12, 7, 7, 3, 25, 0, 48, 1, 2, 3, 4, 5, 6, 7, 8];

/** d/dE sum(gather(E, ids, axis) * w) */
function gatherGrad(axis: number): () => tf.Tensor {
  return () => {
    const shape = axis === 0 ? [VOCAB, DIM] : [DIM, VOCAB];
    const e = seeded(shape, 11);
    const ids = tf.tensor1d(IDS, 'int32');
    const wShape = axis === 0 ? [IDS.length, DIM] : [DIM, IDS.length];
    const w = seeded(wShape, 12);
    return tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.gather(x, ids, axis), w)))(e);
  };
}

let stockRef: Record<string, Float32Array> = {};

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  restoreStockKernels();
  // references from the stock cpu kernel
  stockRef = {
    axis0: (await valuesOn('cpu', gatherGrad(0))).values,
    axis1: (await valuesOn('cpu', gatherGrad(1))).values,
    direct: (await valuesOn('cpu', () => tf.unsortedSegmentSum(seeded([6, 3], 5), tf.tensor1d([2, 0, 2, 1, 3, 0], 'int32'), 4))).values,
  };
  installBackendFixes('wasm', { nativeBlas: false });
  installBackendFixes('cpu', { nativeBlas: false });
});

afterAll(() => {
  restoreStockKernels();
});

describe('UnsortedSegmentSum scatter-add', () => {
  test('is registered on wasm and cpu', () => {
    expect(activeKernelFixes('wasm')).toContainEqual({ backend: 'wasm', kernel: 'UnsortedSegmentSum', fix: 'js-scatter-add' });
    expect(activeKernelFixes('cpu')).toContainEqual({ backend: 'cpu', kernel: 'UnsortedSegmentSum', fix: 'js-scatter-add' });
  });

  test.each(['wasm', 'cpu'])('gradient of tf.gather (axis 0 and 1) on %s equals the stock cpu kernel', async (backend) => {
    const g0 = await valuesOn(backend, gatherGrad(0));
    const g1 = await valuesOn(backend, gatherGrad(1));
    expect(g0.shape).toEqual([VOCAB, DIM]);
    expect(g1.shape).toEqual([DIM, VOCAB]);
    expect(maxRelDiff(g0.values, stockRef['axis0']!)).toBeLessThanOrEqual(1e-6);
    expect(maxRelDiff(g1.values, stockRef['axis1']!)).toBeLessThanOrEqual(1e-6);
  });

  test.each(['wasm', 'cpu'])('tf.unsortedSegmentSum on %s: float32, int32, out-of-range ids dropped', async (backend) => {
    const f = await valuesOn(backend, () => tf.unsortedSegmentSum(seeded([6, 3], 5), tf.tensor1d([2, 0, 2, 1, 3, 0], 'int32'), 4));
    expect(maxRelDiff(f.values, stockRef['direct']!)).toBeLessThanOrEqual(1e-6);
    const i = await valuesOn(backend, () =>
      tf.unsortedSegmentSum(tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8], [4, 2], 'int32'), tf.tensor1d([1, 1, 0, 9], 'int32'), 2).cast('float32'),
    );
    expect(Array.from(i.values)).toEqual([5, 6, 4, 6]);
  });

  test('the scatter-add on wasm does not leak tensors', async () => {
    await tf.setBackend('wasm');
    gatherGrad(0)().dispose();
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      gatherGrad(0)();
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});
