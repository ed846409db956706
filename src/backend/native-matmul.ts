/**
 * Native OpenBLAS matMul kernels for the tfjs wasm and cpu backends, computed in place on tensor memory
 * through the `@heads/native-blas` addon (probe-native-blas.md: matMul 25 -> 87 GFLOP/s on 1 thread and
 * ~170 on 2 on the model shapes; a 2000-token training step 305 -> 775 / 908 tokens/s).
 *
 * - transposeA / transposeB go straight to cblas_sgemm (no Transpose kernels);
 * - batched products run as one `sgemmBatched` call whose loop is in C; batch broadcasting uses a stride
 *   of 0, or a per-matrix index array for general broadcasts such as [2,1] x [1,3] (where the stock
 *   kernels return a truncated result);
 * - non-float32 inputs, prelu activations and bias shapes the C epilogue does not cover go to the stock
 *   kernel, which is kept so it can be restored.
 *
 * wasm pitfall: an allocation (`makeOutput`) may grow the wasm heap, which detaches every earlier view
 * of it. So the output is allocated first and the whole-heap Float32Array is taken afterwards, per call;
 * all tensors are then addressed by element offset (`memoryOffset / 4`) into that one view.
 */
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { NativeBlas } from './native-blas.js';
import { type MatMulPlan, planMatMul } from './matmul-plan.js';
import {
  type AnyKernelFunc,
  type KernelArgs,
  asCpuBackend,
  asWasmBackend,
  boolAttr,
  callKernel,
  cpuValues,
  isFloat32Array,
  sizeOf,
  wasmHeapF32,
  wasmOffset4,
} from './tfjs-internals.js';
import { countRoute } from './wasm-matmul.js';

/** Activation codes of the addon's biasActivation epilogue. */
const ACTIVATIONS: Readonly<Record<string, number>> = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3, sigmoid: 4, elu: 5 };

/** Where a kernel's float32 operands live: one array plus element offsets. */
interface Operands {
  heapA: Float32Array;
  offA: number;
  heapB: Float32Array;
  offB: number;
  heapC: Float32Array;
  offC: number;
}

/** Runs op(A) @ op(B) for a plan into C (which must hold plan.batch * m * n elements at offC). */
export function runPlan(blas: NativeBlas, p: MatMulPlan, o: Operands): void {
  if (p.batch === 0 || p.m === 0 || p.n === 0) return;
  const lda = p.transposeA ? Math.max(1, p.m) : Math.max(1, p.k);
  const ldb = p.transposeB ? Math.max(1, p.k) : Math.max(1, p.n);
  if (p.batch === 1) {
    blas.sgemm(p.transposeA, p.transposeB, p.m, p.n, p.k, 1, o.heapA, lda, o.heapB, ldb, 0, o.heapC, Math.max(1, p.n), o.offA, o.offB, o.offC);
    return;
  }
  blas.sgemmBatched(
    p.transposeA,
    p.transposeB,
    p.m,
    p.n,
    p.k,
    1,
    o.heapA,
    o.offA,
    p.strideA,
    o.heapB,
    o.offB,
    p.strideB,
    0,
    o.heapC,
    o.offC,
    p.m * p.n,
    p.batch,
    p.idxA,
    p.idxB,
  );
}

interface Epilogue {
  /** 0 none, 1 scalar, n row vector */
  biasLen: number;
  bias: TensorInfo | undefined;
  activation: number;
  alpha: number;
}

/** The C epilogue for a _FusedMatMul call, or null when only the stock kernel can do it. */
function fusedEpilogue(args: KernelArgs, p: MatMulPlan): Epilogue | null {
  const activation = ACTIVATIONS[String(args.attrs?.['activation'] ?? 'linear')];
  if (activation === undefined) return null; // prelu (needs its weights tensor) or unknown
  if (args.inputs['preluActivationWeights'] !== undefined) return null;
  const bias = args.inputs['bias'];
  let biasLen = 0;
  if (bias !== undefined) {
    if (bias.dtype !== 'float32') return null;
    const size = sizeOf(bias.shape);
    const rowVector = size === p.n && bias.shape.length >= 1 && bias.shape[bias.shape.length - 1] === p.n;
    if (size === 1) biasLen = 1;
    else if (rowVector) biasLen = p.n;
    else return null;
  }
  const alpha = Number(args.attrs?.['leakyreluAlpha'] ?? 0.2);
  return { biasLen, bias, activation, alpha };
}

function float32Inputs(args: KernelArgs): { a: TensorInfo; b: TensorInfo } | null {
  const a = args.inputs['a'];
  const b = args.inputs['b'];
  if (a === undefined || b === undefined) throw new Error('matMul: inputs a and b are required');
  return a.dtype === 'float32' && b.dtype === 'float32' ? { a, b } : null;
}

function fallback(stock: KernelConfig | null, args: KernelArgs, kernel: string): TensorInfo {
  if (stock === null) throw new Error(`${kernel}: no stock kernel to fall back to`);
  countRoute('nativeFallback');
  return callKernel(stock, args);
}

/** The fused kernel's output: [max(batchA, batchB), m, n] for its 3-D inputs, as the stock kernels give. */
function fusedPlan(a: TensorInfo, b: TensorInfo, args: KernelArgs): MatMulPlan {
  return planMatMul(a.shape, b.shape, boolAttr(args.attrs, 'transposeA'), boolAttr(args.attrs, 'transposeB'));
}

/**
 * wasm `BatchMatMul` on OpenBLAS (replaces the stock kernel, whose XNNPACK path covers only
 * untransposed batch-1 products; measured 1024^3 at 25.7 -> 89 GFLOP/s on 1 thread).
 */
export function wasmNativeBatchMatMul(blas: NativeBlas, stock: KernelConfig | null): AnyKernelFunc {
  return (args) => {
    const ab = float32Inputs(args);
    if (ab === null) return fallback(stock, args, 'BatchMatMul');
    const p = planMatMul(ab.a.shape, ab.b.shape, boolAttr(args.attrs, 'transposeA'), boolAttr(args.attrs, 'transposeB'));
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput(p.outShape, 'float32');
    const heap = wasmHeapF32(backend); // after makeOutput (heap growth detaches older views)
    runPlan(blas, p, {
      heapA: heap,
      offA: wasmOffset4(backend, ab.a),
      heapB: heap,
      offB: wasmOffset4(backend, ab.b),
      heapC: heap,
      offC: wasmOffset4(backend, out),
    });
    countRoute('native');
    return out;
  };
}

/**
 * wasm `_FusedMatMul` on OpenBLAS with the bias + activation epilogue in C (a JS epilogue made the
 * training step slower in the probe: 2529 ms against 2203 ms unfused). Also avoids the stock wasm fused
 * kernel's wrong results with a bias on transposed or batched inputs.
 */
export function wasmNativeFusedMatMul(blas: NativeBlas, stock: KernelConfig | null): AnyKernelFunc {
  return (args) => {
    const ab = float32Inputs(args);
    if (ab === null) return fallback(stock, args, '_FusedMatMul');
    const p = fusedPlan(ab.a, ab.b, args);
    const epi = fusedEpilogue(args, p);
    if (epi === null) return fallback(stock, args, '_FusedMatMul');
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput(p.outShape, 'float32');
    const heap = wasmHeapF32(backend);
    const offC = wasmOffset4(backend, out);
    runPlan(blas, p, { heapA: heap, offA: wasmOffset4(backend, ab.a), heapB: heap, offB: wasmOffset4(backend, ab.b), heapC: heap, offC });
    if (epi.biasLen > 0 || epi.activation !== 0) {
      const offBias = epi.bias !== undefined ? wasmOffset4(backend, epi.bias) : 0;
      blas.biasActivation(heap, offC, p.batch * p.m, p.n, epi.biasLen > 0 ? heap : null, offBias, epi.biasLen, epi.activation, epi.alpha);
    }
    countRoute('nativeFused');
    return out;
  };
}

function cpuF32(values: unknown): Float32Array | null {
  return isFloat32Array(values) ? values : null;
}

/**
 * cpu `BatchMatMul` on OpenBLAS (the stock JS kernel runs at 0.24-0.6 GFLOP/s; native 60-85 on 1 thread).
 * The cpu backend as a whole stays slow (its element-wise kernels), but unit tests and tiny models gain.
 */
export function cpuNativeBatchMatMul(blas: NativeBlas, stock: KernelConfig | null): AnyKernelFunc {
  return (args) => {
    const ab = float32Inputs(args);
    if (ab === null) return fallback(stock, args, 'BatchMatMul');
    const backend = asCpuBackend(args.backend);
    const av = cpuF32(cpuValues(backend, ab.a));
    const bv = cpuF32(cpuValues(backend, ab.b));
    if (av === null || bv === null) return fallback(stock, args, 'BatchMatMul');
    const p = planMatMul(ab.a.shape, ab.b.shape, boolAttr(args.attrs, 'transposeA'), boolAttr(args.attrs, 'transposeB'));
    const c = new Float32Array(sizeOf(p.outShape));
    runPlan(blas, p, { heapA: av, offA: 0, heapB: bv, offB: 0, heapC: c, offC: 0 });
    countRoute('native');
    return backend.makeTensorInfo(p.outShape, 'float32', c);
  };
}

/** cpu `_FusedMatMul` on OpenBLAS with the C epilogue (same coverage as the wasm one). */
export function cpuNativeFusedMatMul(blas: NativeBlas, stock: KernelConfig | null): AnyKernelFunc {
  return (args) => {
    const ab = float32Inputs(args);
    if (ab === null) return fallback(stock, args, '_FusedMatMul');
    const p = fusedPlan(ab.a, ab.b, args);
    const epi = fusedEpilogue(args, p);
    if (epi === null) return fallback(stock, args, '_FusedMatMul');
    const backend = asCpuBackend(args.backend);
    const av = cpuF32(cpuValues(backend, ab.a));
    const bv = cpuF32(cpuValues(backend, ab.b));
    const biasV = epi.bias !== undefined ? cpuF32(cpuValues(backend, epi.bias)) : null;
    if (av === null || bv === null || (epi.bias !== undefined && biasV === null)) return fallback(stock, args, '_FusedMatMul');
    const c = new Float32Array(sizeOf(p.outShape));
    runPlan(blas, p, { heapA: av, offA: 0, heapB: bv, offB: 0, heapC: c, offC: 0 });
    if (epi.biasLen > 0 || epi.activation !== 0) {
      blas.biasActivation(c, 0, p.batch * p.m, p.n, biasV, 0, epi.biasLen, epi.activation, epi.alpha);
    }
    countRoute('nativeFused');
    return backend.makeTensorInfo(p.outShape, 'float32', c);
  };
}
