/**
 * Row-copy GatherV2 (wasm) against the stock kernel, and the fused dropout kernel: mask statistics,
 * determinism per seed, y = x * mask, gradient dy * mask, on wasm and cpu.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { activeKernelFixes, installBackendFixes, restoreStockKernels } from './ops.js';
import { dropoutInto, fastDropout, hashUniform, nativeDropoutLoop } from './dropout.js';
import { loadNativeBlas } from './native-blas.js';
import { installedFix } from './kernel-registry.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  installBackendFixes('wasm', { nativeBlas: false });
  installBackendFixes('cpu', { nativeBlas: false });
});
afterAll(() => {
  restoreStockKernels();
});

function gatherBoth(x: tf.Tensor, idx: tf.Tensor, axis = 0): { fixed: number[]; stock: number[]; shape: number[] } {
  installBackendFixes('wasm', { nativeBlas: false });
  const a = tf.gather(x, idx, axis);
  installBackendFixes('wasm', { nativeBlas: false, rowGather: false });
  const b = tf.gather(x, idx, axis);
  installBackendFixes('wasm', { nativeBlas: false });
  expect(a.shape).toEqual(b.shape);
  const out = { fixed: Array.from(a.dataSync()), stock: Array.from(b.dataSync()), shape: a.shape };
  tf.dispose([a, b]);
  return out;
}

describe('row-copy GatherV2 (wasm)', () => {
  it('is installed', () => {
    expect(activeKernelFixes('wasm')).toContainEqual({ backend: 'wasm', kernel: 'GatherV2', fix: 'js-row-copy' });
  });

  it.each([
    ['embedding rows', [50, 8], [7], 'float32'],
    ['cache rows of a rank-4 tensor', [6, 2, 3, 4], [6], 'float32'],
    ['int32 table, rank-2 indices', [9, 3], [2, 5], 'int32'],
    ['vector', [11], [4], 'float32'],
  ] as Array<[string, number[], number[], 'float32' | 'int32']>)('%s equals the stock kernel', (_, shape, idxShape, dtype) => {
    const x = dtype === 'int32' ? tf.randomUniform(shape, -100, 100, 'int32', 3) : tf.randomNormal(shape, 0, 1, 'float32', 3);
    const idx = tf.randomUniform(idxShape, 0, shape[0]!, 'int32', 4);
    const r = gatherBoth(x, idx);
    expect(r.fixed).toEqual(r.stock);
    tf.dispose([x, idx]);
  });

  it('other axes go to the stock kernel; bad indices throw', () => {
    const x = tf.randomNormal([4, 5], 0, 1, 'float32', 1);
    const r = gatherBoth(x, tf.tensor1d([4, 0, 2], 'int32'), 1);
    expect(r.fixed).toEqual(r.stock);
    expect(() => tf.gather(x, tf.tensor1d([4], 'int32'))).toThrow(/not in \[0, 3\]/);
    x.dispose();
  });
});

describe('fused dropout', () => {
  it('hash uniforms are uniform', () => {
    const bins = new Array(10).fill(0);
    for (let i = 0; i < 100000; i++) bins[Math.floor(hashUniform(42, i) * 10)]++;
    for (const b of bins) expect(Math.abs(b - 10000)).toBeLessThan(500);
  });

  it.each(['wasm', 'cpu'])('%s: keeps 1 - rate, scales by 1/keep, same seed same mask, gradient dy * mask', async (backend) => {
    await tf.setBackend(backend);
    const x = tf.randomNormal([400, 250], 0, 1, 'float32', 2);
    const rate = 0.3;
    const { y, kept, grad, y2, y3 } = tf.tidy(() => {
      const yy = fastDropout(x, rate, 11);
      const mask = yy.div(x); // 0 or 1/keep (x is never exactly 0 here)
      const keptFrac = yy.notEqual(0).cast('float32').mean().dataSync()[0]!;
      const g = tf.grad((a: tf.Tensor) => fastDropout(a, rate, 11).mul(3).sum())(x);
      return {
        y: yy.dataSync(),
        kept: keptFrac,
        grad: g.sub(mask.mul(3)).abs().max().dataSync()[0]!,
        y2: fastDropout(x, rate, 11).dataSync(),
        y3: fastDropout(x, rate, 12).dataSync(),
      };
    });
    expect(Math.abs(kept - 0.7)).toBeLessThan(0.01);
    const xs = x.dataSync();
    for (let i = 0; i < 1000; i++) expect(y[i] === 0 || Math.abs(y[i]! - xs[i]! / 0.7) < 1e-5 * (1 + Math.abs(xs[i]!))).toBe(true);
    expect(grad).toBeLessThan(1e-5);
    expect(Array.from(y2)).toEqual(Array.from(y));
    expect(Array.from(y3)).not.toEqual(Array.from(y));
    x.dispose();
    await tf.setBackend('wasm');
  });

  it('rate 0 is the identity; without the kernel it is tf.dropout', () => {
    const x = tf.ones([100]);
    expect(fastDropout(x, 0, 1)).toBe(x);
    installBackendFixes('wasm', { nativeBlas: false, fusedDropout: false });
    const y = fastDropout(x, 0.5, 1);
    const vals = Array.from(y.dataSync());
    expect(vals.every((v) => v === 0 || v === 2)).toBe(true);
    installBackendFixes('wasm', { nativeBlas: false });
    tf.dispose([x, y]);
  });
});

describe('native Sum (wasm, with the OpenBLAS addon)', () => {
  it.each([
    [[80, 5, 16], [0, 1], false],
    [[80, 5, 16], [2], true],
    [[40, 33], [0], false],
    [[40, 33], [-1], true],
    [[6, 7, 8], [1], false],
    [[6, 7, 8], undefined, false],
  ] as Array<[number[], number[] | undefined, boolean]>)('shape %p axes %p keepDims %p equals the stock kernel', (shape, axes, keepDims) => {
    const x = tf.randomNormal(shape, 0, 1, 'float32', 7);
    installBackendFixes('wasm');
    const a = x.sum(axes, keepDims);
    installBackendFixes('wasm', { nativeSum: false });
    const b = x.sum(axes, keepDims);
    installBackendFixes('wasm', { nativeBlas: false });
    expect(a.shape).toEqual(b.shape);
    const av = a.dataSync(),
      bv = b.dataSync();
    for (let i = 0; i < av.length; i++) expect(Math.abs(av[i]! - bv[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(bv[i]!)));
    tf.dispose([x, a, b]);
  });
});

const dropLoop = nativeDropoutLoop(loadNativeBlas().blas);
if (dropLoop === null) console.warn('native dropout test skipped: the addon (or its dropout) is not built; run scripts/setup-native.sh');
(dropLoop !== null ? describe : describe.skip)('HeadsDropout in C (native-c)', () => {
  it("gives dropoutInto's masks and values bit for bit (odd length, negative values, seeds beyond 2^31)", () => {
    const n = 10001;
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3);
    for (const [rate, seed] of [
      [0.1, 7],
      [0.5, 3_000_000_123],
      [0.3, -5],
    ] as const) {
      const F = new Float32Array(3 * n);
      F.set(x, 0);
      dropLoop!(F, n, Float64Array.from([0, n, 2 * n, 0]), rate, seed);
      const y = new Float32Array(n),
        m = new Float32Array(n);
      dropoutInto(x, 0, n, rate, seed, y, 0, m, 0);
      expect(Array.from(F.subarray(2 * n))).toEqual(Array.from(m));
      expect(Array.from(F.subarray(n, 2 * n))).toEqual(Array.from(y));
    }
  });

  it("its loop 8 at a time (AVX2) gives the scalar loop's bits, with -0, -inf and NaN among the inputs, at any length", () => {
    const blas = loadNativeBlas().blas!;
    if (typeof blas.scalarLoops !== 'function') throw new Error('the addon lacks scalarLoops: rebuild it (scripts/setup-native.sh)');
    for (const n of [1, 7, 8, 9, 17, 4099]) {
      const x = Float32Array.from({ length: n }, (_, i) => (i % 11 === 3 ? -0 : i % 13 === 5 ? -Infinity : i % 17 === 7 ? NaN : Math.cos(i) * 40));
      for (const [rate, seed] of [
        [0.1, 11],
        [0.5, 4_000_000_001],
      ] as const) {
        const run = (scalar: boolean) => {
          const before = blas.scalarLoops!(scalar);
          const F = new Float32Array(3 * n);
          F.set(x, 0);
          dropLoop!(F, n, Float64Array.from([0, n, 2 * n, 0]), rate, seed);
          blas.scalarLoops!(before);
          return new Uint32Array(F.buffer);
        };
        expect(Array.from(run(false))).toEqual(Array.from(run(true)));
      }
    }
  });

  it('is the registered wasm kernel with the addon, the JS one without', () => {
    installBackendFixes('wasm');
    expect(installedFix('wasm', 'HeadsDropout')).toBe('native-c');
    installBackendFixes('wasm', { nativeBlas: false });
    expect(installedFix('wasm', 'HeadsDropout')).toBe('fused-js');
    installBackendFixes('wasm');
  });
});
