/**
 * A fused label-smoothed softmax cross-entropy kernel, `HeadsSmoothedXent`, for the wasm and cpu backends:
 * one pass per row of the logits gives both the per-token loss and its gradient, with no one-hot.
 *
 * After native matMul, the vocabulary-sized work of the loss was the largest non-matmul cost of a step
 * (probe-native-blas.md: Exp/Sub/Mul/OneHot on [2000, 8000], ~1.2 s of 3.3 s): logSumExp in the forward
 * (Max, Sub, Exp, Sum), then exp again, a one-hot, and four element-wise kernels in the backward. Here,
 * per row of l [V] with weight w, target y and smoothing eps (q = (1 - eps) onehot(y) + eps / V):
 *
 *   lse      = max + log sum_j exp(l_j - max)
 *   loss     = w * (lse - (1 - eps) l_y - eps mean(l))           (= w * -sum_j q_j log softmax(l)_j)
 *   grad_j   = w * (softmax(l)_j - q_j)                           (d loss / d l_j)
 *
 * Inputs: logits [N, V] float32, targets [N] int32, weights [N] float32; attr `eps`.
 * Outputs: [grad [N, V], loss [N]]. Rows with weight 0 (padding) are all zeros without touching exp.
 * Arithmetic is float64 within a row; exp is a range-reduced polynomial (|rel. error| < 2e-9 before
 * rounding to float32), about twice as fast as Math.exp in V8.
 *
 * With the OpenBLAS addon loaded (and built with `smoothedXent`), the same rows run in C instead
 * (`wasmNativeSmoothedXent` / `cpuNativeSmoothedXent`): vectorised float exp (rel. error < 2e-7), row sums
 * in double; equal to the JS rows within float32 rounding (softmax-xent.test.ts). Measured in
 * scripts/bench-profile.ts on the bench model's [2000, 8000] logits: see src/backend/README.md.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import type { NativeBlas } from './native-blas.js';
import {
  type AnyKernelFunc,
  type KernelArgs,
  asCpuBackend,
  asWasmBackend,
  cpuValues,
  isFloat32Array,
  isInt32Array,
  wasmHeapF32,
  wasmHeapI32,
  wasmOffset4,
} from './tfjs-internals.js';

export const SMOOTHED_XENT_KERNEL = 'HeadsSmoothedXent';
/** The same rows' loss alone (no gradient written): dev losses and ablations, forward only. */
export const XENT_LOSS_KERNEL = 'HeadsXentLoss';

const LN2_HI = 0.6931471803691238; // ln 2 split in two parts so k * ln2 is exact enough
const LN2_LO = 1.9082149292705877e-10;
const C3 = 1 / 6;
const C4 = 1 / 24;
const C5 = 1 / 120;
const C6 = 1 / 720;
const C7 = 1 / 5040;
/** 2^-k for k = 0..1100 (inputs are <= 0 after subtracting the row max). */
const POW2_NEG = (() => {
  const t = new Float64Array(1101);
  for (let k = 0; k < t.length; k++) t[k] = Math.pow(2, -k);
  return t;
})();

/** exp(x) for x <= 0: x = k ln2 + r with |r| <= ln2 / 2, degree-7 Taylor polynomial for e^r. */
export function expNonPositive(x: number): number {
  if (x < -745) return 0;
  // n = -round(x / ln2) >= 0, kept a small integer so the table index stays on V8's fast path
  const n = (0.5 - x * Math.LOG2E) | 0;
  const r = x + n * LN2_HI + n * LN2_LO;
  const p = 1 + r * (1 + r * (0.5 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))));
  return p * POW2_NEG[n]!;
}

/** The row loop, on any Float32Array/Int32Array pair with element offsets; `grad` null: the loss only. */
export function smoothedXentRows(
  l: Float32Array,
  lOff: number,
  y: Int32Array,
  yOff: number,
  w: Float32Array,
  wOff: number,
  n: number,
  v: number,
  eps: number,
  grad: Float32Array | null,
  gOff: number,
  loss: Float32Array,
  lossOff: number,
): void {
  const uniform = eps / v;
  for (let i = 0; i < n; i++) {
    const row = lOff + i * v;
    const g = gOff + i * v;
    const wi = w[wOff + i]!;
    if (wi === 0) {
      grad?.fill(0, g, g + v);
      loss[lossOff + i] = 0;
      continue;
    }
    let max = -Infinity;
    let sum = 0;
    for (let j = 0; j < v; j++) {
      const x = l[row + j]!;
      if (x > max) max = x;
      sum += x;
    }
    const mean = sum / v;
    let z = 0;
    if (!Number.isFinite(max) || !Number.isFinite(sum)) {
      // non-finite logits: let NaN/Inf propagate as the plain formula would
      grad?.fill(NaN, g, g + v);
      loss[lossOff + i] = NaN;
      continue;
    }
    for (let j = 0; j < v; j++) {
      const e = expNonPositive(l[row + j]! - max);
      if (grad) grad[g + j] = e;
      z += e;
    }
    const lse = max + Math.log(z);
    const t = y[yOff + i]!;
    const ly = t >= 0 && t < v ? l[row + t]! : 0;
    loss[lossOff + i] = wi * (lse - (1 - eps) * ly - eps * mean);
    if (!grad) continue;
    const scale = wi / z;
    const off = wi * uniform;
    for (let j = 0; j < v; j++) grad[g + j] = grad[g + j]! * scale - off;
    if (t >= 0 && t < v) grad[g + t] = grad[g + t]! - wi * (1 - eps);
  }
}

interface Operands {
  logits: TensorInfo;
  targets: TensorInfo;
  weights: TensorInfo;
  n: number;
  v: number;
  eps: number;
}

function operands(args: KernelArgs): Operands {
  const logits = args.inputs['logits'];
  const targets = args.inputs['targets'];
  const weights = args.inputs['weights'];
  if (logits === undefined || targets === undefined || weights === undefined)
    throw new Error(`${SMOOTHED_XENT_KERNEL}: inputs logits, targets, weights are required`);
  if (logits.shape.length !== 2 || logits.dtype !== 'float32')
    throw new Error(`${SMOOTHED_XENT_KERNEL}: logits must be float32 [N, V], got ${logits.dtype} [${logits.shape}]`);
  const [n, v] = logits.shape as [number, number];
  if (targets.dtype !== 'int32' || targets.shape.length !== 1 || targets.shape[0] !== n)
    throw new Error(`${SMOOTHED_XENT_KERNEL}: targets must be int32 [${n}]`);
  if (weights.dtype !== 'float32' || weights.shape.length !== 1 || weights.shape[0] !== n)
    throw new Error(`${SMOOTHED_XENT_KERNEL}: weights must be float32 [${n}]`);
  const eps = Number(args.attrs?.['eps'] ?? 0);
  return { logits, targets, weights, n, v, eps };
}

/**
 * The cpu backend's stored arrays of the operands, as the rows take them. It may store a float32 tensor in
 * another typed array (a bool -> float32 cast keeps its Uint8Array): what is not already the expected type
 * is converted.
 */
function cpuInputs(backend: ReturnType<typeof asCpuBackend>, o: Operands): { l: Float32Array; y: Int32Array; w: Float32Array } {
  const f32 = (v: ReturnType<typeof cpuValues>) => (isFloat32Array(v) ? v : Float32Array.from(v as ArrayLike<number>));
  const yv = cpuValues(backend, o.targets);
  return { l: f32(cpuValues(backend, o.logits)), y: isInt32Array(yv) ? yv : Int32Array.from(yv as ArrayLike<number>), w: f32(cpuValues(backend, o.weights)) };
}

/** wasm: computed in place on the heap (outputs allocated first: growth detaches older views). */
export function wasmSmoothedXent(): AnyKernelFunc {
  return (args) => {
    const o = operands(args);
    const backend = asWasmBackend(args.backend);
    const grad = backend.makeOutput([o.n, o.v], 'float32');
    const loss = backend.makeOutput([o.n], 'float32');
    const f = wasmHeapF32(backend);
    const i32 = wasmHeapI32(backend);
    smoothedXentRows(
      f,
      wasmOffset4(backend, o.logits),
      i32,
      wasmOffset4(backend, o.targets),
      f,
      wasmOffset4(backend, o.weights),
      o.n,
      o.v,
      o.eps,
      f,
      wasmOffset4(backend, grad),
      f,
      wasmOffset4(backend, loss),
    );
    return [grad, loss];
  };
}

/** cpu: the same loop on the stored typed arrays. */
export function cpuSmoothedXent(): AnyKernelFunc {
  return (args) => {
    const o = operands(args);
    const backend = asCpuBackend(args.backend);
    const { l, y, w } = cpuInputs(backend, o);
    const grad = new Float32Array(o.n * o.v);
    const loss = new Float32Array(o.n);
    smoothedXentRows(l, 0, y, 0, w, 0, o.n, o.v, o.eps, grad, 0, loss, 0);
    return [backend.makeTensorInfo([o.n, o.v], 'float32', grad), backend.makeTensorInfo([o.n], 'float32', loss)];
  };
}

/** The addon's C rows, or null when this build of the addon lacks them. */
export function nativeXentRows(blas: NativeBlas | null): NonNullable<NativeBlas['smoothedXent']> | null {
  return blas !== null && typeof blas.smoothedXent === 'function' ? blas.smoothedXent.bind(blas) : null;
}

/** wasm, rows in C on the heap (outputs allocated first, then one heap view for all operands). */
export function wasmNativeSmoothedXent(rows: NonNullable<NativeBlas['smoothedXent']>): AnyKernelFunc {
  return (args) => {
    const o = operands(args);
    const backend = asWasmBackend(args.backend);
    const grad = backend.makeOutput([o.n, o.v], 'float32');
    const loss = backend.makeOutput([o.n], 'float32');
    const f = wasmHeapF32(backend);
    const i32 = wasmHeapI32(backend);
    rows(
      f,
      wasmOffset4(backend, o.logits),
      i32,
      wasmOffset4(backend, o.targets),
      f,
      wasmOffset4(backend, o.weights),
      o.n,
      o.v,
      o.eps,
      f,
      wasmOffset4(backend, grad),
      f,
      wasmOffset4(backend, loss),
    );
    return [grad, loss];
  };
}

/** cpu, rows in C on the stored typed arrays. */
export function cpuNativeSmoothedXent(rows: NonNullable<NativeBlas['smoothedXent']>): AnyKernelFunc {
  return (args) => {
    const o = operands(args);
    const backend = asCpuBackend(args.backend);
    const { l, y, w } = cpuInputs(backend, o);
    const grad = new Float32Array(o.n * o.v);
    const loss = new Float32Array(o.n);
    rows(l, 0, y, 0, w, 0, o.n, o.v, o.eps, grad, 0, loss, 0);
    return [backend.makeTensorInfo([o.n, o.v], 'float32', grad), backend.makeTensorInfo([o.n], 'float32', loss)];
  };
}

/** True when the fused kernel is registered for the active backend. */
export function hasSmoothedXentKernel(): boolean {
  return tf.getKernel(SMOOTHED_XENT_KERNEL, tf.getBackend()) !== undefined;
}

/** Runs the kernel (no gradient of its own): [grad [N, V], loss [N]]. */
export function smoothedXent(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D, eps: number): [tf.Tensor2D, tf.Tensor1D] {
  const out = tf.engine().runKernel(SMOOTHED_XENT_KERNEL, { logits, targets, weights } as unknown as tf.NamedTensorMap, { eps }) as tf.Tensor[];
  return [out[0] as tf.Tensor2D, out[1] as tf.Tensor1D];
}

type XentRows = NonNullable<NativeBlas['smoothedXent']>;

/**
 * The addon's rows when this build takes G = null (the loss only; checked on one row), else null. The
 * values are the ones the rows give with G (the same operations; tested bit for bit).
 */
export function nativeXentLossRows(blas: NativeBlas | null): XentRows | null {
  const rows = nativeXentRows(blas);
  if (rows === null) return null;
  try {
    const loss = new Float32Array(1);
    rows(Float32Array.of(0, 1), 0, Int32Array.of(1), 0, Float32Array.of(1), 0, 1, 2, 0, null, 0, loss, 0);
    return Number.isFinite(loss[0]) ? rows : null;
  } catch {
    return null;
  }
}

/**
 * `HeadsXentLoss`: inputs logits [N, V], targets [N], weights [N], attr eps; output the per-row loss [N] of
 * `HeadsSmoothedXent`, without its [N, V] gradient: the rows in C where `rows` is given, else the JS rows.
 */
export function xentLossKernel(backendName: 'wasm' | 'cpu', rows: XentRows | null): AnyKernelFunc {
  const run = rows ?? smoothedXentRows;
  return (args) => {
    const o = operands(args);
    if (backendName === 'wasm') {
      const backend = asWasmBackend(args.backend);
      const loss = backend.makeOutput([o.n], 'float32');
      const f = wasmHeapF32(backend);
      run(
        f,
        wasmOffset4(backend, o.logits),
        wasmHeapI32(backend),
        wasmOffset4(backend, o.targets),
        f,
        wasmOffset4(backend, o.weights),
        o.n,
        o.v,
        o.eps,
        null,
        0,
        f,
        wasmOffset4(backend, loss),
      );
      return loss;
    }
    const backend = asCpuBackend(args.backend);
    const { l, y, w } = cpuInputs(backend, o);
    const loss = new Float32Array(o.n);
    run(l, 0, y, 0, w, 0, o.n, o.v, o.eps, null, 0, loss, 0);
    return backend.makeTensorInfo([o.n], 'float32', loss);
  };
}

/** True when the loss-only kernel is registered for the active backend. */
export function hasXentLossKernel(): boolean {
  return tf.getKernel(XENT_LOSS_KERNEL, tf.getBackend()) !== undefined;
}

/** The per-row loss of `smoothedXent` without the gradient (needs hasXentLossKernel()). */
export function xentLoss(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D, eps: number): tf.Tensor1D {
  return tf.engine().runKernel(XENT_LOSS_KERNEL, { logits, targets, weights } as unknown as tf.NamedTensorMap, { eps }) as tf.Tensor1D;
}
