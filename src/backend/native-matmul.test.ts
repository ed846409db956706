/**
 * Native OpenBLAS kernels (wasm and cpu) against the stock cpu kernels: BatchMatMul with all transpose
 * combinations, 2-D, batched, rank-4, broadcast and general-broadcast batches, K = 0; _FusedMatMul with
 * bias and activations; a product whose output allocation grows the wasm heap; non-float32 fallback.
 * Skipped, with a message, when the addon is not built.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { activeKernelFixes, installBackendFixes, matMulRouteCounts, nativeBlasStatus, resetMatMulRouteCounts, restoreStockKernels } from './ops.js';
import { loadNativeBlas } from './native-blas.js';
import { matMulShapes, maxRelDiff, seeded, valuesOn } from './kernel-testing.js';
import { asWasmBackend } from './tfjs-internals.js';

const available = loadNativeBlas().blas !== null;
if (!available) console.warn(`native matMul tests skipped: ${nativeBlasStatus().reason ?? 'addon unavailable'}`);
const describeNative = available ? describe : describe.skip;
const TOL = 2e-5;

/** Result of `fn` on the STOCK cpu kernels (fixes removed for the duration). */
async function stockCpu(fn: () => tf.Tensor): Promise<{ values: Float32Array; shape: number[] }> {
  restoreStockKernels('cpu');
  try {
    return await valuesOn('cpu', fn);
  } finally {
    installBackendFixes('cpu');
  }
}

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  restoreStockKernels();
  if (available) {
    installBackendFixes('wasm');
    installBackendFixes('cpu');
  }
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
  tile?: [number[], number[]];
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const [tA, tB] of [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ] as Array<[boolean, boolean]>) {
    const add = (name: string, m: number, n: number, k: number, bA: number[] = [], bB: number[] = [], tile?: [number[], number[]]) => {
      const [a, b] = matMulShapes(m, n, k, tA, tB, bA, bB);
      out.push({ name: `${name} tA=${tA} tB=${tB}`, a, b, tA, tB, tile });
    };
    add('2-D 37x19x23', 37, 19, 23);
    add('2-D 1x64x1', 1, 64, 1);
    add('2-D 200x256x300', 200, 300, 256);
    add('batched [7]', 25, 25, 64, [7], [7]);
    add('rank-4 [2,4]', 9, 11, 13, [2, 4], [2, 4]);
    add('broadcast [5] x [1]', 12, 10, 8, [5], [1]);
    add('broadcast [1] x [5]', 12, 10, 8, [1], [5]);
    add(
      'general broadcast [2,1] x [1,3]',
      4,
      6,
      5,
      [2, 1],
      [1, 3],
      [
        [1, 3, 1, 1],
        [2, 1, 1, 1],
      ],
    );
  }
  return out;
}

describeNative('native BatchMatMul equals the stock cpu kernel', () => {
  test('native kernels are registered on wasm and cpu', () => {
    expect(activeKernelFixes('wasm')).toContainEqual({ backend: 'wasm', kernel: 'BatchMatMul', fix: 'native-blas' });
    expect(activeKernelFixes('cpu')).toContainEqual({ backend: 'cpu', kernel: 'BatchMatMul', fix: 'native-blas' });
  });

  test.each(cases().map((c, i) => [c.name, c, i] as const))('%s', async (_n, c, i) => {
    const seedA = 200 + 2 * i;
    const f = () => tf.matMul(seeded(c.a, seedA), seeded(c.b, seedA + 1), c.tA, c.tB);
    // the stock kernels truncate general broadcasts: the reference tiles explicitly
    const ref = c.tile === undefined ? f : () => tf.matMul(tf.tile(seeded(c.a, seedA), c.tile![0]), tf.tile(seeded(c.b, seedA + 1), c.tile![1]), c.tA, c.tB);
    const want = await stockCpu(ref);
    resetMatMulRouteCounts();
    const wasm = await valuesOn('wasm', f);
    const cpu = await valuesOn('cpu', f);
    expect(matMulRouteCounts().native).toBe(2);
    expect(wasm.shape).toEqual(want.shape);
    expect(cpu.shape).toEqual(want.shape);
    expect(maxRelDiff(wasm.values, want.values)).toBeLessThanOrEqual(TOL);
    expect(maxRelDiff(cpu.values, want.values)).toBeLessThanOrEqual(TOL);
  });

  test('K = 0 gives zeros', async () => {
    for (const backend of ['wasm', 'cpu']) {
      const got = await valuesOn(backend, () => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4])));
      expect(Array.from(got.values)).toEqual(new Array(12).fill(0));
    }
  });

  test('a product whose output allocation grows the wasm heap is still correct', async () => {
    await tf.setBackend('wasm');
    const heap = () => asWasmBackend(tf.backend()).wasm.HEAPU8.buffer.byteLength;
    const m = 1000,
      n = 2000,
      k = 8;
    const a = seeded([m, k], 61);
    const b = seeded([n, k], 62);
    // fill the current heap so that the next allocation has to grow it
    const filler: tf.Tensor[] = [];
    const start = heap();
    const output = m * n * 4;
    while (heap() === start && filler.length < 64) filler.push(tf.zeros([Math.max(1, Math.floor(output / 4 / 8))]));
    tf.dispose(filler.pop()!);
    const before = heap();
    const c = tf.matMul(a, b, false, true);
    const grown = heap() > before;
    const got = Float32Array.from(c.dataSync() as Float32Array);
    tf.dispose([a, b, c, ...filler]);
    const want = await stockCpu(() => tf.matMul(seeded([m, k], 61), seeded([n, k], 62), false, true));
    expect(grown).toBe(true);
    expect(maxRelDiff(got, want.values)).toBeLessThanOrEqual(TOL);
  });

  test('int32 inputs fall back to the stock kernel (cpu)', async () => {
    resetMatMulRouteCounts();
    const got = await valuesOn('cpu', () => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32'), tf.tensor2d([5, 6, 7, 8], [2, 2], 'int32')).cast('float32'));
    expect(Array.from(got.values)).toEqual([19, 22, 43, 50]);
    expect(matMulRouteCounts().nativeFallback).toBe(1);
  });
});

describeNative('native _FusedMatMul equals matMul + bias + activation on stock cpu', () => {
  const activations = ['linear', 'relu', 'relu6', 'leakyrelu', 'sigmoid', 'elu'] as const;
  const shapes: Array<{
    name: string;
    m: number;
    n: number;
    k: number;
    batch: number[];
    tA: boolean;
    tB: boolean;
    bias: 'row' | 'scalar' | 'none' | 'matrix';
  }> = [
    { name: '2-D row bias', m: 30, n: 20, k: 16, batch: [], tA: false, tB: false, bias: 'row' },
    { name: '2-D transposed B, scalar bias', m: 30, n: 20, k: 16, batch: [], tA: false, tB: true, bias: 'scalar' },
    { name: 'batched transposed A, row bias', m: 12, n: 9, k: 7, batch: [3], tA: true, tB: false, bias: 'row' },
    { name: '2-D no bias', m: 10, n: 11, k: 12, batch: [], tA: true, tB: true, bias: 'none' },
    { name: 'full [m, n] bias (stock fallback)', m: 10, n: 11, k: 12, batch: [], tA: false, tB: false, bias: 'matrix' },
  ];
  test.each(shapes.map((s) => [s.name, s] as const))('%s', async (_n, s) => {
    for (const activation of activations) {
      const [as, bs] = matMulShapes(s.m, s.n, s.k, s.tA, s.tB, s.batch, s.batch);
      const biasShape = s.bias === 'row' ? [s.n] : s.bias === 'scalar' ? [1] : s.bias === 'matrix' ? [s.m, s.n] : null;
      const act = (x: tf.Tensor): tf.Tensor => {
        switch (activation) {
          case 'linear':
            return x;
          case 'relu':
            return tf.relu(x);
          case 'relu6':
            return tf.relu6(x);
          case 'leakyrelu':
            return tf.leakyRelu(x, 0.1);
          case 'sigmoid':
            return tf.sigmoid(x);
          case 'elu':
            return tf.elu(x);
        }
      };
      const unfused = () => {
        const y = tf.matMul(seeded(as, 71), seeded(bs, 72), s.tA, s.tB);
        return act(biasShape === null ? y : tf.add(y, seeded(biasShape, 73)));
      };
      const fused = () =>
        tf.fused.matMul({
          a: seeded(as, 71),
          b: seeded(bs, 72),
          transposeA: s.tA,
          transposeB: s.tB,
          bias: biasShape === null ? undefined : seeded(biasShape, 73),
          activation,
          leakyreluAlpha: 0.1,
        });
      const want = await stockCpu(unfused);
      for (const backend of ['cpu', 'wasm']) {
        if (backend === 'wasm' && s.bias === 'matrix') continue; // the stock wasm fused kernel takes rank-1 bias only
        resetMatMulRouteCounts();
        const got = await valuesOn(backend, fused);
        const routes = matMulRouteCounts();
        expect(s.bias === 'matrix' ? routes.nativeFallback : routes.nativeFused).toBe(1);
        expect(got.shape).toEqual(want.shape);
        expect(maxRelDiff(got.values, want.values)).toBeLessThanOrEqual(TOL);
      }
    }
  });
});
