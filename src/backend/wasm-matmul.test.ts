/**
 * The wasm BatchMatMul transpose wrapper (no native BLAS) against the stock cpu backend: all four
 * transpose combinations, 2-D, batched, rank-4 and broadcast batches, the gradient through matMul, and
 * a timing-free check that transposed products are routed through the wrapper.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installBackendFixes, matMulRouteCounts, resetMatMulRouteCounts, restoreStockKernels, activeKernelFixes } from './ops.js';
import { stockKernel } from './kernel-registry.js';
import { matMulShapes, maxRelDiff, seeded, valuesOn } from './kernel-testing.js';

const TOL = 1e-5;

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  restoreStockKernels();
  installBackendFixes('wasm', { nativeBlas: false });
});

afterAll(() => {
  restoreStockKernels();
});

interface Case {
  name: string;
  a: number[];
  b: number[];
  tA: boolean;
  tB: boolean;
}

function cases(): Case[] {
  const out: Case[] = [];
  const combos: Array<[boolean, boolean]> = [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ];
  for (const [tA, tB] of combos) {
    const tag = `tA=${tA} tB=${tB}`;
    const add = (name: string, m: number, n: number, k: number, bA: number[] = [], bB: number[] = []) => {
      const [a, b] = matMulShapes(m, n, k, tA, tB, bA, bB);
      out.push({ name: `${name} ${tag}`, a, b, tA, tB });
    };
    add('2-D 37x19x23', 37, 19, 23);
    add('2-D 1x64x1', 1, 64, 1);
    add('2-D 64x1x9', 64, 1, 9);
    add('rank-3 batch 1', 20, 12, 16, [1], [1]);
    // batched products at or above LOOP_MIN_FLOPS per matrix take the per-matrix XNNPACK loop
    add('batched [7]', 25, 25, 64, [7], [7]);
    add('rank-4 [2,4]', 20, 24, 40, [2, 4], [2, 4]);
    add('broadcast [5] x [1]', 20, 24, 40, [5], [1]);
    add('broadcast [1] x [5]', 20, 24, 40, [1], [5]);
    add('broadcast [3] x 2-D', 20, 24, 40, [3], []);
    // smaller ones stay on the stock kernel
    add('small batched (stock loop)', 16, 16, 32, [4], [4]);
    add('small broadcast (stock loop)', 12, 10, 8, [5], [1]);
  }
  return out;
}

async function compare(c: Case, seed: number): Promise<void> {
  const f = () => tf.matMul(seeded(c.a, seed), seeded(c.b, seed + 1), c.tA, c.tB);
  const want = await valuesOn('cpu', f);
  const got = await valuesOn('wasm', f);
  expect(got.shape).toEqual(want.shape);
  expect(maxRelDiff(got.values, want.values)).toBeLessThanOrEqual(TOL);
}

describe('wasm BatchMatMul wrapper equals cpu', () => {
  test.each(cases().map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    await compare(c, 100 + 2 * i);
  });

  test('general batch broadcast [2,1] x [1,3] equals the explicitly tiled product (stock kernels truncate it)', async () => {
    const [as, bs] = matMulShapes(4, 6, 5, false, true, [2, 1], [1, 3]);
    const want = await valuesOn('cpu', () => tf.matMul(tf.tile(seeded(as, 7), [1, 3, 1, 1]), tf.tile(seeded(bs, 8), [2, 1, 1, 1]), false, true));
    const got = await valuesOn('wasm', () => tf.matMul(seeded(as, 7), seeded(bs, 8), false, true));
    expect(got.shape).toEqual([2, 3, 4, 6]);
    expect(maxRelDiff(got.values, want.values)).toBeLessThanOrEqual(TOL);
  });

  test('K = 0 gives zeros', async () => {
    const got = await valuesOn('wasm', () => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4])));
    expect(got.shape).toEqual([3, 4]);
    expect(Array.from(got.values)).toEqual(new Array(12).fill(0));
  });

  // (batch-broadcast operands are left out: tfjs-core's BatchMatMul gradient does not reduce broadcast
  // batch dims and fails on every backend)
  test('gradients through transposed and batched matMul equal cpu', async () => {
    for (const [tA, tB, bA, bB] of [
      [false, true, [], []],
      [true, false, [], []],
      [false, true, [4], [4]],
      [true, true, [3], [3]],
    ] as Array<[boolean, boolean, number[], number[]]>) {
      const [as, bs] = matMulShapes(10, 7, 6, tA, tB, bA, bB);
      const f = () => {
        const a = seeded(as, 31);
        const b = seeded(bs, 32);
        const w = seeded([...(bA.length > 0 ? [Math.max(bA[0]!, bB[0] ?? 1)] : []), 10, 7], 33);
        const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, tA, tB), w)))([a, b]);
        return tf.concat([ga!.flatten(), gb!.flatten()]);
      };
      const want = await valuesOn('cpu', f);
      const got = await valuesOn('wasm', f);
      expect(maxRelDiff(got.values, want.values)).toBeLessThanOrEqual(TOL);
    }
  });
});

describe('routing (timing-free)', () => {
  test('the registered wasm BatchMatMul is the wrapper, not the stock kernel', () => {
    const registered = tf.getKernel('BatchMatMul', 'wasm');
    const stock = stockKernel('wasm', 'BatchMatMul');
    expect(stock).not.toBeNull();
    expect(registered.kernelFunc).not.toBe(stock!.kernelFunc);
    expect(activeKernelFixes('wasm')).toContainEqual({ backend: 'wasm', kernel: 'BatchMatMul', fix: 'transpose-wrapper' });
  });

  test('a transposed 2-D matMul goes through the transpose path, a batched one through the loop (small: stock)', () => {
    resetMatMulRouteCounts();
    tf.tidy(() => tf.matMul(seeded([16, 8], 1), seeded([12, 8], 2), false, true).dataSync());
    expect(matMulRouteCounts().wrapperTransposed).toBe(1);
    tf.tidy(() => tf.matMul(seeded([4, 32, 32], 1), seeded([4, 32, 32], 2), false, true).dataSync());
    expect(matMulRouteCounts().wrapperLoop).toBe(1);
    tf.tidy(() => tf.matMul(seeded([4, 8, 8], 1), seeded([4, 8, 8], 2), false, true).dataSync());
    expect(matMulRouteCounts().wrapperStock).toBe(1);
    tf.tidy(() => tf.matMul(seeded([16, 8], 1), seeded([8, 12], 2)).dataSync());
    expect(matMulRouteCounts().wrapperPlain).toBe(1);
  });

  test('no wasm memory leak per call', () => {
    const a = seeded([30, 20], 1);
    const b = seeded([40, 20], 2);
    const c = seeded([5, 32, 40], 3);
    tf.tidy(() => tf.matMul(a, b, false, true)); // warm-up
    const before = tf.memory().numTensors;
    const beforeBytes = tf.memory().numBytes;
    for (let i = 0; i < 5; i++) {
      tf.tidy(() => {
        tf.matMul(a, b, false, true);
        tf.matMul(c, c, true, false);
        tf.matMul(b, a, false, true);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(beforeBytes);
    tf.dispose([a, b, c]);
  });
});
