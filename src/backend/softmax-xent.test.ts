/**
 * The fused label-smoothed cross-entropy kernel against the plain tfjs-ops loss (value and gradient), on
 * wasm and cpu, with padding rows, large logits and eps 0; and its exp against Math.exp. The C rows of the
 * addon (`native-c`) against the JS rows and the ops loss, skipped with a message when the addon (or its
 * smoothedXent) is not built.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installBackendFixes, restoreStockKernels } from './ops.js';
import {
  SMOOTHED_XENT_KERNEL,
  XENT_LOSS_KERNEL,
  expNonPositive,
  hasSmoothedXentKernel,
  hasXentLossKernel,
  nativeXentLossRows,
  nativeXentRows,
  smoothedXent,
  smoothedXentRows,
  xentLoss,
} from './softmax-xent.js';
import { loadNativeBlas } from './native-blas.js';
import { installedFix } from './kernel-registry.js';
import { maxRelDiff } from './kernel-testing.js';
import { labelSmoothedCrossEntropySumFused, labelSmoothedCrossEntropySumOps, nllSum } from '../train/objective.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  installBackendFixes('wasm', { nativeBlas: false });
  installBackendFixes('cpu', { nativeBlas: false });
});
afterAll(() => {
  restoreStockKernels();
});

/** Logits [N, V] (normal, sd 4, seeded), targets (i * 37) mod V, weights with every fifth row 0 (padding). */
function tensorCase(N: number, V: number, seed: number): { l: tf.Tensor2D; y: tf.Tensor1D; w: tf.Tensor1D } {
  return {
    l: tf.randomNormal([N, V], 0, 4, 'float32', seed) as tf.Tensor2D,
    y: tf.tensor1d(
      Array.from({ length: N }, (_, i) => (i * 37) % V),
      'int32',
    ),
    w: tf.tensor1d(
      Array.from({ length: N }, (_, i) => (i % 5 === 4 ? 0 : 1)),
      'float32',
    ),
  };
}

function valueAndGrad(
  f: typeof labelSmoothedCrossEntropySumOps,
  l: tf.Tensor2D,
  y: tf.Tensor1D,
  w: tf.Tensor1D,
  eps: number,
): { value: number; grad: Float32Array } {
  return tf.tidy(() => {
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => f(x as tf.Tensor2D, y, w, eps).div(7) as tf.Scalar)(l);
    return { value: value.dataSync()[0]!, grad: Float32Array.from(grad.dataSync()) };
  });
}

describe('HeadsSmoothedXent', () => {
  it('exp of non-positive numbers to float32 accuracy', () => {
    let worst = 0;
    for (let i = 0; i <= 20000; i++) {
      const x = -i / 200;
      worst = Math.max(worst, Math.abs(expNonPositive(x) - Math.exp(x)) / Math.exp(x));
    }
    expect(worst).toBeLessThan(1e-8);
    expect(expNonPositive(-800)).toBe(0);
    expect(expNonPositive(0)).toBe(1);
  });

  it.each([
    ['wasm', 0.1],
    ['wasm', 0],
    ['cpu', 0.1],
    ['cpu', 0.3],
  ])('%s, eps %p: value and gradient equal the plain loss', async (backend, eps) => {
    await tf.setBackend(backend);
    expect(hasSmoothedXentKernel()).toBe(true);
    const N = 23,
      V = 301;
    const { l, y, w } = tensorCase(N, V, 3);
    const fused = valueAndGrad(labelSmoothedCrossEntropySumFused, l, y, w, eps);
    const plain = valueAndGrad(labelSmoothedCrossEntropySumOps, l, y, w, eps);
    expect(Math.abs(fused.value - plain.value)).toBeLessThan(1e-5 * Math.abs(plain.value));
    expect(maxRelDiff(fused.grad, plain.grad)).toBeLessThan(1e-6);
    // padding rows: zero gradient
    for (let j = 0; j < V; j++) expect(fused.grad[4 * V + j]).toBe(0);
    tf.dispose([l, y, w]);
    await tf.setBackend('wasm');
  });

  it('cpu: accepts weights stored as a bool cast (Uint8Array under a float32 tensor)', async () => {
    await tf.setBackend('cpu');
    const l = tf.randomNormal([4, 9], 0, 1, 'float32', 1) as tf.Tensor2D;
    const y = tf.tensor1d([1, 0, 3, 8], 'int32');
    const w = tf.tensor1d([1, 0, 1, 1], 'int32').notEqual(0).cast('float32') as tf.Tensor1D;
    const fused = valueAndGrad(labelSmoothedCrossEntropySumFused, l, y, w, 0.1);
    const plain = valueAndGrad(labelSmoothedCrossEntropySumOps, l, y, w, 0.1);
    expect(Math.abs(fused.value - plain.value)).toBeLessThan(1e-5 * Math.abs(plain.value));
    tf.dispose([l, y, w]);
    await tf.setBackend('wasm');
  });

  it('is stable for large logits and leaks no tensors', () => {
    const before = tf.memory().numTensors;
    const l = tf.tensor2d([
      [1000, 999, -1000],
      [0, 0, 0],
    ]);
    const y = tf.tensor1d([1, 2], 'int32');
    const w = tf.tensor1d([1, 1]);
    const fused = valueAndGrad(labelSmoothedCrossEntropySumFused, l, y, w, 0);
    // row 0: -log softmax(l)_1 = log(1 + e^-1 ...) ; row 1: log 3
    const row0 = Math.log(Math.E + 1);
    expect(fused.value * 7).toBeCloseTo(row0 + Math.log(3), 4);
    expect(Number.isFinite(fused.grad[0]!)).toBe(true);
    tf.dispose([l, y, w]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('without the kernel, the objective falls back to the plain loss', () => {
    installBackendFixes('wasm', { nativeBlas: false, fusedLoss: false });
    expect(tf.getKernel(SMOOTHED_XENT_KERNEL, 'wasm')).toBeUndefined();
    expect(hasSmoothedXentKernel()).toBe(false);
    installBackendFixes('wasm', { nativeBlas: false });
    expect(hasSmoothedXentKernel()).toBe(true);
  });
});

/** Logits with padding rows (weight 0), a row with a dominant logit, one non-finite row; eps 0 and 0.1. */
function lossCase(n: number, v: number, seed: number): { l: Float32Array; y: Int32Array; w: Float32Array } {
  const l = new Float32Array(n * v);
  let s = seed;
  for (let i = 0; i < l.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    l[i] = (s / 2147483648 - 1) * 12;
  }
  l[2 * v + 3] = 95;
  l[3 * v + 1] = Infinity;
  const y = Int32Array.from({ length: n }, (_, i) => (i * 977) % v);
  const w = Float32Array.from({ length: n }, (_, i) => (i % 6 === 5 ? 0 : 1 + (i % 3) * 0.5));
  return { l, y, w };
}
const bitsEqual = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('HeadsXentLoss (the loss without the gradient)', () => {
  it.each([0, 0.1])('JS rows, eps %p: the loss of the rows with a gradient, bit for bit', (eps) => {
    const { l, y, w } = lossCase(13, 1031, 11);
    const withGrad = new Float32Array(13),
      lossOnly = new Float32Array(13).fill(-1);
    smoothedXentRows(l, 0, y, 0, w, 0, 13, 1031, eps, new Float32Array(13 * 1031), 0, withGrad, 0);
    smoothedXentRows(l, 0, y, 0, w, 0, 13, 1031, eps, null, 0, lossOnly, 0);
    expect(bitsEqual(lossOnly, withGrad)).toBe(true);
    expect(Number.isNaN(lossOnly[3]!)).toBe(true);
    expect(lossOnly[5]).toBe(0);
  });

  it.each(['wasm', 'cpu'])("%s kernel: equals HeadsSmoothedXent's loss and, at eps 0, the plain NLL; leaks nothing", async (backend) => {
    await tf.setBackend(backend);
    expect(hasXentLossKernel()).toBe(true);
    const N = 29,
      V = 517;
    const { l, y, w } = tensorCase(N, V, 5);
    const before = tf.memory().numTensors;
    const [g, withGrad] = smoothedXent(l, y, w, 0);
    const lossOnly = xentLoss(l, y, w, 0);
    expect(bitsEqual(lossOnly.dataSync() as Float32Array, withGrad.dataSync() as Float32Array)).toBe(true);
    const plain = tf.tidy(() => nllSum(l, y, w).dataSync()[0]!);
    const total = tf.tidy(() => lossOnly.sum().dataSync()[0]!);
    expect(Math.abs(total - plain)).toBeLessThan(1e-5 * plain);
    tf.dispose([g, withGrad, lossOnly]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([l, y, w]);
    await tf.setBackend('wasm');
  });

  it('is removed with the fused loss (callers then use the plain ops)', () => {
    installBackendFixes('wasm', { nativeBlas: false, fusedLoss: false });
    expect(tf.getKernel(XENT_LOSS_KERNEL, 'wasm')).toBeUndefined();
    expect(hasXentLossKernel()).toBe(false);
    installBackendFixes('wasm', { nativeBlas: false });
    expect(hasXentLossKernel()).toBe(true);
  });
});

const rows = nativeXentRows(loadNativeBlas().blas);
if (rows === null) console.warn('native smoothedXent tests skipped: the addon (or its smoothedXent) is not built; run scripts/setup-native.sh');
const describeNative = rows !== null ? describe : describe.skip;

describeNative('HeadsSmoothedXent in C (native-c)', () => {
  it('rows equal the JS rows within float32 rounding (padding, eps, a vocabulary not a multiple of 8, extreme logits)', () => {
    const n = 37,
      v = 8003,
      eps = 0.1;
    const l = new Float32Array(n * v);
    let s = 7;
    for (let i = 0; i < l.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      l[i] = (s / 2147483648 - 1) * 12;
    }
    l[5 * v + 17] = 95; // one dominant logit: exp underflow for the rest of the row
    const y = Int32Array.from({ length: n }, (_, i) => (i * 977) % v);
    const w = Float32Array.from({ length: n }, (_, i) => (i % 6 === 5 ? 0 : 1 + (i % 3) * 0.5));
    const gJs = new Float32Array(n * v),
      lossJs = new Float32Array(n);
    smoothedXentRows(l, 0, y, 0, w, 0, n, v, eps, gJs, 0, lossJs, 0);
    const gC = new Float32Array(n * v).fill(NaN),
      lossC = new Float32Array(n).fill(NaN);
    rows!(l, 0, y, 0, w, 0, n, v, eps, gC, 0, lossC, 0);
    expect(maxRelDiff(lossC, lossJs)).toBeLessThan(1e-6);
    // gradients are softmax - q, |g| <= 1: compare absolutely
    let worst = 0;
    for (let i = 0; i < gJs.length; i++) worst = Math.max(worst, Math.abs(gC[i]! - gJs[i]!));
    expect(worst).toBeLessThan(2e-7);
    for (let j = 0; j < v; j++) expect(gC[5 * v + j]).toBe(0);
  });

  it('the exponentials 8 at a time (AVX2) give the bits of the scalar loop: gradients and losses, clamped logits, any length', () => {
    const blas = loadNativeBlas().blas!;
    if (typeof blas.scalarLoops !== 'function') throw new Error('the addon lacks scalarLoops: rebuild it (scripts/setup-native.sh)');
    for (const [n, v] of [
      [3, 7],
      [9, 1023],
      [5, 1025],
      [31, 8146],
    ] as const) {
      const { l, y, w } = lossCase(n, v, n * 1000 + v);
      // a third of the logits far below the row max: exp_nonpos clamps them at -87
      for (let i = 0; i < l.length; i += 3) l[i] = l[i]! * 30;
      for (const eps of [0, 0.1]) {
        const run = (scalar: boolean, withGrad: boolean) => {
          const before = blas.scalarLoops!(scalar);
          const g = withGrad ? new Float32Array(n * v) : null,
            loss = new Float32Array(n);
          rows!(l, 0, y, 0, w, 0, n, v, eps, g, 0, loss, 0);
          blas.scalarLoops!(before);
          return { g, loss };
        };
        const scalar = run(true, true);
        const wide = run(false, true);
        expect(bitsEqual(wide.g!, scalar.g!)).toBe(true);
        expect(bitsEqual(wide.loss, scalar.loss)).toBe(true);
        expect(bitsEqual(run(false, false).loss, scalar.loss)).toBe(true);
      }
    }
    expect(blas.scalarLoops!(false)).toBe(false);
  });

  it('non-finite logits give NaN rows; out-of-range and aliased arguments throw before writing', () => {
    const l = Float32Array.from([0, 1, Infinity, 0, 1, 2]);
    const y = Int32Array.from([1, 2]);
    const w = Float32Array.from([1, 1]);
    const g = new Float32Array(6),
      loss = new Float32Array(2);
    rows!(l, 0, y, 0, w, 0, 2, 3, 0.1, g, 0, loss, 0);
    expect(Number.isNaN(loss[0]!)).toBe(true);
    expect(Number.isFinite(loss[1]!)).toBe(true);
    expect(() => rows!(l, 0, y, 0, w, 0, 3, 3, 0.1, new Float32Array(9), 0, new Float32Array(3), 0)).toThrow(/array too small/);
    expect(() => rows!(l, 0, y, 0, w, 0, 2, 3, 0.1, l, 0, loss, 0)).toThrow(/overlaps/);
  });

  it('the loss without G equals the loss with G bit for bit, and the gradient array is not needed', () => {
    const lossRows = nativeXentLossRows(loadNativeBlas().blas);
    expect(lossRows).not.toBeNull();
    for (const eps of [0, 0.1]) {
      const { l, y, w } = lossCase(37, 8003, 7);
      const withGrad = new Float32Array(37),
        lossOnly = new Float32Array(37).fill(-1);
      rows!(l, 0, y, 0, w, 0, 37, 8003, eps, new Float32Array(37 * 8003), 0, withGrad, 0);
      lossRows!(l, 0, y, 0, w, 0, 37, 8003, eps, null, 0, lossOnly, 0);
      expect(bitsEqual(lossOnly, withGrad)).toBe(true);
    }
    // bounds are still checked without G
    expect(() => rows!(new Float32Array(4), 0, Int32Array.of(0, 0, 0), 0, Float32Array.of(1, 1, 1), 0, 3, 2, 0, null, 0, new Float32Array(3), 0)).toThrow(
      /array too small/,
    );
  });

  it.each(['wasm', 'cpu'])('%s: the registered kernel is native-c and value and gradient equal the plain loss', async (backend) => {
    await tf.setBackend(backend);
    installBackendFixes(backend);
    expect(installedFix(backend, SMOOTHED_XENT_KERNEL)).toBe('native-c');
    expect(installedFix(backend, XENT_LOSS_KERNEL)).toBe('native-c');
    const N = 23,
      V = 301;
    const { l, y, w } = tensorCase(N, V, 3);
    const fused = valueAndGrad(labelSmoothedCrossEntropySumFused, l, y, w, 0.1);
    const plain = valueAndGrad(labelSmoothedCrossEntropySumOps, l, y, w, 0.1);
    expect(Math.abs(fused.value - plain.value)).toBeLessThan(1e-5 * Math.abs(plain.value));
    expect(maxRelDiff(fused.grad, plain.grad)).toBeLessThan(1e-6);
    tf.dispose([l, y, w]);
    installBackendFixes(backend, { nativeBlas: false });
    expect(installedFix(backend, SMOOTHED_XENT_KERNEL)).toBe('fused-js');
    expect(installedFix(backend, XENT_LOSS_KERNEL)).toBe('fused-js');
    await tf.setBackend('wasm');
  });
});
