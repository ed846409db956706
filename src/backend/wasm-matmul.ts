/**
 * wasm `BatchMatMul` wrapper that keeps matMul on XNNPACK's fast path.
 *
 * tfjs-backend-wasm 4.22.0 runs BatchMatMul through XNNPACK only when both batch sizes are 1 and neither
 * transpose flag is set; every other call (any transpose flag, any real batch) goes to a scalar loop at
 * 0.5-1.7 GFLOP/s against 17-26 GFLOP/s for XNNPACK (probe-performance.md section 2). Every backward
 * matMul has a transpose flag, so a training step ran 9x slower (37.7 s -> 4.2 s with this wrapper).
 *
 * - batch 1: materialise op(A) / op(B) with the wasm Transpose kernel, then call the stock kernel with
 *   both flags false. (Computing C^T = op(B)^T op(A)^T instead, to transpose only small operands, was
 *   measured with scripts/bench-kernels.ts and gained nothing: XNNPACK repacks the large operand anyway.)
 * - batched ("loop", the faster of the probe's two variants: 20-25 ms against 30-49 ms for "tb" on the
 *   attention shapes): transpose flagged operands once for the whole batch, then run each matrix through
 *   the stock kernel's XNNPACK path and copy it into the output. Batch broadcasting (stride 0, or general
 *   broadcast such as [2,1] x [1,3]) is resolved per output matrix, which the stock kernel gets wrong.
 *   Matrices below LOOP_MIN_FLOPS stay on the stock loop, where per-matrix call overhead would dominate.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { type MatMulPlan, planMatMul, sideIndex } from './matmul-plan.js';
import {
  type AnyKernelFunc,
  type WasmBackendInternals,
  asWasmBackend,
  boolAttr,
  callKernel,
  sizeOf,
  viewAs,
  wasmHeapF32,
  wasmOffset4,
} from './tfjs-internals.js';

/**
 * Per-matrix work (2*m*n*k) below which a batched product stays on the stock kernel. Measured on wasm
 * (10 M flop per call, after JIT warm-up): 16384 flop/matrix (16x16x32): stock 3.7 ms, loop 6.1 ms;
 * 18432 (12x12x64): stock 3.9 ms, loop 3.3 ms; 80000 (attention 25x25x64): stock 10 ms, loop 4.1 ms.
 */
export const LOOP_MIN_FLOPS = 18_000;
let loopMinFlops = LOOP_MIN_FLOPS;
/** Overrides LOOP_MIN_FLOPS; for benchmarks only. */
export function setLoopMinFlops(flops: number = LOOP_MIN_FLOPS): void {
  loopMinFlops = flops;
}

/** How often each route of the matMul fixes ran (timing-free evidence for tests and diagnostics). */
export interface MatMulRouteCounts {
  /** wrapper, batch 1, no transpose flag: stock kernel as is (already XNNPACK) */
  wrapperPlain: number;
  /** wrapper, batch 1, flagged operands transposed, then XNNPACK */
  wrapperTransposed: number;
  /** wrapper, batched, one XNNPACK call per matrix */
  wrapperLoop: number;
  /** wrapper, handed to the stock kernel unchanged (non-float32, empty, or tiny batched matrices) */
  wrapperStock: number;
  /** native OpenBLAS BatchMatMul / _FusedMatMul calls */
  native: number;
  nativeFused: number;
  /** native kernels that fell back to the stock kernel (non-float32, prelu, unsupported bias) */
  nativeFallback: number;
}

const counts: MatMulRouteCounts = {
  wrapperPlain: 0,
  wrapperTransposed: 0,
  wrapperLoop: 0,
  wrapperStock: 0,
  native: 0,
  nativeFused: 0,
  nativeFallback: 0,
};

export function matMulRouteCounts(): MatMulRouteCounts {
  return { ...counts };
}

export function resetMatMulRouteCounts(): void {
  for (const k of Object.keys(counts) as Array<keyof MatMulRouteCounts>) counts[k] = 0;
}

/** Increments a route counter (shared with the native kernels). */
export function countRoute(route: keyof MatMulRouteCounts): void {
  counts[route] += 1;
}

interface Temps {
  list: TensorInfo[];
}

/** [batch, rows, cols] -> [batch, cols, rows] with the wasm Transpose kernel (no copy when a side is 1). */
function swapLastTwo(
  backend: WasmBackendInternals,
  transpose: KernelConfig,
  t: TensorInfo,
  batch: number,
  rows: number,
  cols: number,
  temps: Temps,
): TensorInfo {
  if (rows === 1 || cols === 1) return viewAs(t, batch === 1 ? [cols, rows] : [batch, cols, rows]);
  const x = batch === 1 ? viewAs(t, [rows, cols]) : viewAs(t, [batch, rows, cols]);
  const perm = batch === 1 ? [1, 0] : [0, 2, 1];
  const out = callKernel(transpose, { inputs: { x }, backend, attrs: { perm } });
  temps.list.push(out);
  return out;
}

function disposeAll(backend: WasmBackendInternals, temps: Temps): void {
  for (const t of temps.list) backend.disposeData(t.dataId);
  temps.list.length = 0;
}

function twoD(backend: WasmBackendInternals, stock: KernelConfig, transpose: KernelConfig, a: TensorInfo, b: TensorInfo, p: MatMulPlan): TensorInfo {
  const temps: Temps = { list: [] };
  try {
    const a2 = p.transposeA ? swapLastTwo(backend, transpose, a, 1, p.k, p.m, temps) : viewAs(a, [p.m, p.k]);
    const b2 = p.transposeB ? swapLastTwo(backend, transpose, b, 1, p.n, p.k, temps) : viewAs(b, [p.k, p.n]);
    const out = callKernel(stock, { inputs: { a: a2, b: b2 }, backend, attrs: { transposeA: false, transposeB: false } });
    countRoute('wrapperTransposed');
    return { ...out, shape: p.outShape };
  } finally {
    disposeAll(backend, temps);
  }
}

function loop(backend: WasmBackendInternals, stock: KernelConfig, transpose: KernelConfig, a: TensorInfo, b: TensorInfo, p: MatMulPlan): TensorInfo {
  const temps: Temps = { list: [] };
  const attrs = { transposeA: false, transposeB: false };
  const sliceA = p.m * p.k;
  const sliceB = p.k * p.n;
  const sliceC = p.m * p.n;
  try {
    // contiguous [batch, m, k] and [batch, k, n] operands
    const aN = p.transposeA ? swapLastTwo(backend, transpose, a, p.batchA, p.k, p.m, temps) : a;
    const bN = p.transposeB ? swapLastTwo(backend, transpose, b, p.batchB, p.n, p.k, temps) : b;
    const out = backend.makeOutput(p.outShape, 'float32');
    // one reused tensor for the A matrices (XNNPACK does not cache the left operand)
    const aTensor = backend.makeOutput([p.m, p.k], 'float32');
    let bTensor: TensorInfo | null = null;
    let bIndex = -1;
    let ok = false;
    try {
      for (let i = 0; i < p.batch; i++) {
        const ai = sideIndex(p.idxA, p.strideA, i);
        const bi = sideIndex(p.idxB, p.strideB, i);
        if (bi !== bIndex) {
          // a fresh tensor per distinct B matrix: XNNPACK caches its packed weights by tensor id
          if (bTensor !== null) backend.disposeData(bTensor.dataId);
          bTensor = null;
          bTensor = backend.makeOutput([p.k, p.n], 'float32');
          const heap = wasmHeapF32(backend);
          const src = wasmOffset4(backend, bN) + bi * sliceB;
          heap.copyWithin(wasmOffset4(backend, bTensor), src, src + sliceB);
          bIndex = bi;
        }
        let heap = wasmHeapF32(backend);
        const srcA = wasmOffset4(backend, aN) + ai * sliceA;
        heap.copyWithin(wasmOffset4(backend, aTensor), srcA, srcA + sliceA);
        const c = callKernel(stock, { inputs: { a: aTensor, b: bTensor! }, backend, attrs });
        heap = wasmHeapF32(backend);
        const srcC = wasmOffset4(backend, c);
        heap.copyWithin(wasmOffset4(backend, out) + i * sliceC, srcC, srcC + sliceC);
        backend.disposeData(c.dataId);
      }
      ok = true;
    } finally {
      backend.disposeData(aTensor.dataId);
      if (bTensor !== null) backend.disposeData(bTensor.dataId);
      if (!ok) backend.disposeData(out.dataId);
    }
    countRoute('wrapperLoop');
    return out;
  } finally {
    disposeAll(backend, temps);
  }
}

/**
 * The wrapper kernel for wasm `BatchMatMul` (see the module comment; measured 9x on a 1000-token
 * training step, 12-36x on the transposed model-shaped products).
 */
export function wasmBatchMatMulWrapper(stock: KernelConfig): AnyKernelFunc {
  const transpose = tf.getKernel('Transpose', 'wasm');
  if (transpose === undefined) throw new Error('wasm Transpose kernel not registered');
  return (args) => {
    const a = args.inputs['a'];
    const b = args.inputs['b'];
    if (a === undefined || b === undefined) throw new Error('BatchMatMul: inputs a and b are required');
    const tA = boolAttr(args.attrs, 'transposeA');
    const tB = boolAttr(args.attrs, 'transposeB');
    if (a.dtype !== 'float32' || b.dtype !== 'float32') {
      countRoute('wrapperStock');
      return callKernel(stock, args);
    }
    const backend = asWasmBackend(args.backend);
    const p = planMatMul(a.shape, b.shape, tA, tB);
    if (sizeOf(p.outShape) === 0 || p.k === 0) {
      // nothing for XNNPACK to do: zeros (or an empty tensor) of the right shape
      const out = backend.makeOutput(p.outShape, 'float32');
      const heap = wasmHeapF32(backend);
      const off = wasmOffset4(backend, out);
      heap.fill(0, off, off + sizeOf(p.outShape));
      countRoute('wrapperStock');
      return out;
    }
    if (p.batch === 1) {
      if (!tA && !tB) {
        countRoute('wrapperPlain');
        return { ...callKernel(stock, args), shape: p.outShape };
      }
      return twoD(backend, stock, transpose, a, b, p);
    }
    if (2 * p.m * p.n * p.k < loopMinFlops && (p.batchA === p.batchB || p.batchA === 1 || p.batchB === 1)) {
      countRoute('wrapperStock');
      return callKernel(stock, args);
    }
    return loop(backend, stock, transpose, a, b, p);
  };
}
