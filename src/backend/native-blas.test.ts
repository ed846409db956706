/**
 * The OpenBLAS addon on its own: sgemm/sgemmBatched/biasActivation against a float64 JS reference, and
 * the bounds checks (RangeError, never an out-of-bounds access). Skipped, with a message, when the
 * addon is not built on this machine.
 */
import { describe, expect, test } from '@jest/globals';
import { type NativeBlas, loadNativeBlas, nativeBlasEnabledByEnv, defaultBlasThreads, referenceMatMul } from './native-blas.js';

const { blas, status } = loadNativeBlas();
if (blas === null) {
  console.warn(`native-blas tests skipped: ${status.reason ?? 'addon unavailable'}`);
}
const describeNative = blas !== null ? describe : describe.skip;
const B = blas as NativeBlas;

function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = (s >>> 8) / 8388608 - 1;
  }
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!) / (1 + Math.abs(expected[i]!));
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  expect(worst).toBeLessThanOrEqual(tol);
}

/** The addon's errors come from the main realm, jest's RangeError from the test's vm context: compare names. */
function expectThrowsNamed(fn: () => unknown, name: string): void {
  let caught: unknown = undefined;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeDefined();
  expect((caught as { name?: string }).name).toBe(name);
}

describe('environment switches', () => {
  test('HEADS_NATIVE_BLAS=0 disables, anything else enables', () => {
    expect(nativeBlasEnabledByEnv({})).toBe(true);
    expect(nativeBlasEnabledByEnv({ HEADS_NATIVE_BLAS: '0' })).toBe(false);
    expect(nativeBlasEnabledByEnv({ HEADS_NATIVE_BLAS: 'off' })).toBe(false);
    expect(nativeBlasEnabledByEnv({ HEADS_NATIVE_BLAS: '1' })).toBe(true);
  });
  test('HEADS_BLAS_THREADS sets threads, default is the core count', () => {
    expect(defaultBlasThreads({ HEADS_BLAS_THREADS: '3' })).toBe(3);
    expect(defaultBlasThreads({ HEADS_BLAS_THREADS: 'x' })).toBeGreaterThanOrEqual(1);
    expect(defaultBlasThreads({})).toBeGreaterThanOrEqual(1);
  });
});

describeNative('native-blas addon', () => {
  test('sgemm matches the reference for all transpose combinations, padded ld, offsets, alpha and beta', () => {
    for (const [m, n, k] of [
      [1, 1, 1],
      [7, 5, 3],
      [33, 17, 40],
      [64, 1, 9],
    ] as const) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          const pad = 3;
          const aRows = tA ? k : m,
            aCols = tA ? m : k;
          const bRows = tB ? n : k,
            bCols = tB ? k : n;
          const lda = aCols + pad,
            ldb = bCols + pad,
            ldc = n + pad;
          const offA = 5,
            offB = 2,
            offC = 7;
          const A = rand(offA + aRows * lda, 1 + m),
            Bm = rand(offB + bRows * ldb, 2 + n);
          const C = rand(offC + m * ldc, 3 + k);
          const C0 = C.slice();
          // dense copies for the reference
          const a = new Float32Array(aRows * aCols),
            b = new Float32Array(bRows * bCols);
          for (let r = 0; r < aRows; r++) for (let c = 0; c < aCols; c++) a[r * aCols + c] = A[offA + r * lda + c]!;
          for (let r = 0; r < bRows; r++) for (let c = 0; c < bCols; c++) b[r * bCols + c] = Bm[offB + r * ldb + c]!;
          const alpha = 0.7,
            beta = 0.5;
          B.sgemm(tA, tB, m, n, k, alpha, A, lda, Bm, ldb, beta, C, ldc, offA, offB, offC);
          const ref = referenceMatMul(tA, tB, m, n, k, a, b);
          const got: number[] = [],
            want: number[] = [];
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) {
              got.push(C[offC + i * ldc + j]!);
              want.push(alpha * ref[i * n + j]! + beta * C0[offC + i * ldc + j]!);
            }
          }
          expectClose(got, want);
          // padding and the prefix are untouched
          for (let i = 0; i < offC; i++) expect(C[i]).toBe(C0[i]);
          for (let i = 0; i < m; i++) for (let j = n; j < ldc; j++) expect(C[offC + i * ldc + j]).toBe(C0[offC + i * ldc + j]);
        }
      }
    }
  });

  test('beta = 0 overwrites NaN garbage; K = 0 gives zeros', () => {
    const m = 4,
      n = 3,
      k = 5;
    const C = new Float32Array(m * n).fill(Number.NaN);
    B.sgemm(false, false, m, n, k, 1, rand(m * k, 1), k, rand(k * n, 2), n, 0, C, n);
    expect(C.every(Number.isFinite)).toBe(true);
    const Z = new Float32Array(m * n).fill(Number.NaN);
    B.sgemm(false, false, m, n, 0, 1, new Float32Array(0), 1, new Float32Array(0), n, 0, Z, n);
    expect(Array.from(Z)).toEqual(new Array(m * n).fill(0));
  });

  test('sgemmBatched: strided, broadcast (stride 0) and index arrays', () => {
    const m = 5,
      n = 4,
      k = 6,
      batch = 6;
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        const A = rand(3 * m * k, 11),
          Bm = rand(2 * k * n, 12);
        const idxA = Int32Array.from([0, 1, 2, 0, 1, 2]);
        const idxB = Int32Array.from([0, 0, 0, 1, 1, 1]);
        const C = new Float32Array(2 + batch * m * n);
        B.sgemmBatched(tA, tB, m, n, k, 1, A, 0, m * k, Bm, 0, k * n, 0, C, 2, m * n, batch, idxA, idxB);
        for (let i = 0; i < batch; i++) {
          const a = A.subarray(idxA[i]! * m * k, (idxA[i]! + 1) * m * k);
          const b = Bm.subarray(idxB[i]! * k * n, (idxB[i]! + 1) * k * n);
          expectClose(C.subarray(2 + i * m * n, 2 + (i + 1) * m * n), referenceMatMul(tA, tB, m, n, k, a, b));
        }
        // stride 0 broadcasts B
        const C2 = new Float32Array(3 * m * n);
        B.sgemmBatched(tA, tB, m, n, k, 1, A, 0, m * k, Bm, 0, 0, 0, C2, 0, m * n, 3);
        for (let i = 0; i < 3; i++) {
          expectClose(C2.subarray(i * m * n, (i + 1) * m * n), referenceMatMul(tA, tB, m, n, k, A.subarray(i * m * k, (i + 1) * m * k), Bm.subarray(0, k * n)));
        }
      }
    }
  });

  test('biasActivation: row and scalar bias with each activation', () => {
    const rows = 3,
      cols = 4;
    const base = rand(rows * cols, 21);
    const bias = rand(cols, 22);
    const acts: Array<[number, (v: number) => number]> = [
      [0, (v) => v],
      [1, (v) => Math.max(0, v)],
      [2, (v) => Math.min(6, Math.max(0, v))],
      [3, (v) => (v < 0 ? 0.1 * v : v)],
      [4, (v) => 1 / (1 + Math.exp(-v))],
      [5, (v) => (v < 0 ? Math.expm1(v) : v)],
    ];
    for (const [code, f] of acts) {
      const C = base.slice();
      B.biasActivation(C, 0, rows, cols, bias, 0, cols, code, 0.1);
      expectClose(
        C,
        Array.from(base, (v, i) => f(v + bias[i % cols]!)),
        1e-6,
      );
      const S = base.slice();
      B.biasActivation(S, 0, rows, cols, bias, 1, 1, code, 0.1);
      expectClose(
        S,
        Array.from(base, (v) => f(v + bias[1]!)),
        1e-6,
      );
    }
  });

  test('bounds: too-short arrays, small ld, offsets, strides and bad indices throw RangeError', () => {
    const m = 4,
      n = 3,
      k = 5;
    const a = rand(m * k, 1),
      b = rand(k * n, 2),
      c = new Float32Array(m * n);
    const short = (len: number) => new Float32Array(len);
    expectThrowsNamed(() => B.sgemm(false, false, m, n, k, 1, short(m * k - 1), k, b, n, 0, c, n), 'RangeError');
    expectThrowsNamed(() => B.sgemm(false, false, m, n, k, 1, a, k, short(k * n - 1), n, 0, c, n), 'RangeError');
    expectThrowsNamed(() => B.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, short(m * n - 1), n), 'RangeError');
    expectThrowsNamed(() => B.sgemm(true, false, m, n, k, 1, a, m - 1, b, n, 0, c, n), 'RangeError');
    expectThrowsNamed(() => B.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n, 1), 'RangeError');
    expectThrowsNamed(() => B.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n, 0, 0, 1), 'RangeError');
    expectThrowsNamed(() => B.sgemm(false, false, -1, n, k, 1, a, k, b, n, 0, c, n), 'RangeError');
    expectThrowsNamed(() => B.sgemm(false, false, 1.5, n, k, 1, a, k, b, n, 0, c, n), 'RangeError');
    expectThrowsNamed(() => B.sgemmBatched(false, false, m, n, k, 1, a, 0, m * k, b, 0, 0, 0, short(2 * m * n), 0, m * n, 2), 'RangeError');
    expectThrowsNamed(() => B.sgemmBatched(false, false, m, n, k, 1, a, 0, 0, b, 0, 0, 0, short(2 * m * n), 0, m * n - 1, 2), 'RangeError');
    expectThrowsNamed(
      () => B.sgemmBatched(false, false, m, n, k, 1, a, 0, m * k, b, 0, 0, 0, short(2 * m * n), 0, m * n, 2, Int32Array.from([0, 1])),
      'RangeError',
    );
    expectThrowsNamed(
      () => B.sgemmBatched(false, false, m, n, k, 1, a, 0, m * k, b, 0, 0, 0, short(2 * m * n), 0, m * n, 2, Int32Array.from([0, -1])),
      'RangeError',
    );
    expectThrowsNamed(
      () => B.sgemmBatched(false, false, m, n, k, 1, a, 0, m * k, b, 0, 0, 0, short(2 * m * n), 0, m * n, 2, Int32Array.from([0])),
      'RangeError',
    );
    expectThrowsNamed(() => B.biasActivation(c, 0, m, n + 1, null, 0, 0, 1), 'RangeError');
    expectThrowsNamed(() => B.biasActivation(c, 0, m, n, short(n - 1), 0, n, 1), 'RangeError');
    expectThrowsNamed(() => B.biasActivation(c, 0, m, n, b, 0, 2, 1), 'RangeError');
  });

  test('wrong types throw TypeError; an output overlapping an input throws RangeError', () => {
    const m = 2,
      n = 2,
      k = 2;
    const c = new Float32Array(4);
    expectThrowsNamed(() => B.sgemm(false, false, m, n, k, 1, new Float64Array(4) as unknown as Float32Array, k, new Float32Array(4), n, 0, c, n), 'TypeError');
    expectThrowsNamed(() => B.sgemm(false, false, m, n, k, 1, [1, 2, 3, 4] as unknown as Float32Array, k, new Float32Array(4), n, 0, c, n), 'TypeError');
    const heap = new Float32Array(16);
    expectThrowsNamed(() => B.sgemm(false, false, m, n, k, 1, heap, k, heap, n, 0, heap, n, 0, 4, 2), 'RangeError');
    expect(() => B.sgemm(false, false, m, n, k, 1, heap, k, heap, n, 0, heap, n, 0, 4, 8)).not.toThrow();
    // views of one buffer are compared by address, not by view
    expectThrowsNamed(() => B.sgemm(false, false, m, n, k, 1, heap.subarray(0, 4), k, heap.subarray(4, 8), n, 0, heap.subarray(2, 6), n), 'RangeError');
  });

  test('threads can be set and read back', () => {
    const before = B.getThreads();
    expect(B.setThreads(1)).toBe(1);
    expect(B.getThreads()).toBe(1);
    B.setThreads(before);
    expect(B.config().config).toMatch(/OpenBLAS/);
    expectThrowsNamed(() => B.setThreads(0), 'RangeError');
  });
});
