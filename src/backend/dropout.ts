/**
 * Fused inverted dropout, `fastDropout(x, rate, seed)`: the `HeadsDropout` kernel (wasm and cpu) draws the
 * keep mask from a counter-based hash of (seed, element index) and writes y = x * mask, mask in {0, 1/keep},
 * in one pass; the gradient is dy * mask. tf.dropout instead fills a tensor with seedrandom's alea
 * generator in JS (~16 ns per element) and runs add, floor, div and mul kernels, keeping about five floats
 * per element for the backward pass; this keeps two (output and mask). Same distribution (each element
 * kept independently with probability 1 - rate), different random stream, so it is not bit-compatible
 * with tf.dropout masks. Backends without the kernel fall back to tf.dropout. With the OpenBLAS addon
 * (built with `dropout`), the wasm kernel's loop runs in C (`wasmNativeDropout`): the same masks and
 * values bit for bit (dropout.test in gather-dropout.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from './native-blas.js';
import {
  type AnyKernelFunc,
  type KernelArgs,
  asCpuBackend,
  asWasmBackend,
  cpuValues,
  isFloat32Array,
  sizeOf,
  wasmHeapF32,
  wasmOffset4,
} from './tfjs-internals.js';

export const DROPOUT_KERNEL = 'HeadsDropout';

/** Uniform [0, 1) of element i under `seed` (murmur3 finaliser of a Weyl sequence). */
export function hashUniform(seed: number, i: number): number {
  let h = (Math.imul(i, 0x9e3779b9) + Math.imul(seed, 0x85ebca77) + 0x165667b1) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

/**
 * y[i] = x[i] * mask[i], mask[i] = 1/keep with probability keep, else 0. One 32-bit hash serves two
 * elements (16 bits each: the keep probability is rounded to a multiple of 2^-16, an error below 1.6e-5).
 */
export function dropoutInto(
  x: Float32Array,
  xo: number,
  n: number,
  rate: number,
  seed: number,
  y: Float32Array,
  yo: number,
  mask: Float32Array,
  mo: number,
): void {
  const keep = 1 - rate;
  const scale = 1 / keep;
  const threshold = Math.round(keep * 65536);
  const s = (Math.imul(seed | 0, 0x85ebca77) + 0x165667b1) | 0;
  for (let i = 0; i < n; i += 2) {
    let h = (Math.imul(i >>> 1, 0x9e3779b9) + s) | 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    const m0 = (h & 0xffff) < threshold ? scale : 0;
    mask[mo + i] = m0;
    y[yo + i] = x[xo + i]! * m0;
    if (i + 1 < n) {
      const m1 = h >>> 16 < threshold ? scale : 0;
      mask[mo + i + 1] = m1;
      y[yo + i + 1] = x[xo + i + 1]! * m1;
    }
  }
}

function attrsOf(args: KernelArgs): { rate: number; seed: number } {
  return { rate: Number(args.attrs?.['rate'] ?? 0), seed: Number(args.attrs?.['seed'] ?? 0) };
}

export function wasmDropout(): AnyKernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    if (x === undefined || x.dtype !== 'float32') throw new Error(`${DROPOUT_KERNEL}: a float32 input x is required`);
    const { rate, seed } = attrsOf(args);
    const backend = asWasmBackend(args.backend);
    const y = backend.makeOutput(x.shape, 'float32');
    const mask = backend.makeOutput(x.shape, 'float32');
    const heap = wasmHeapF32(backend);
    dropoutInto(heap, wasmOffset4(backend, x), sizeOf(x.shape), rate, seed, heap, wasmOffset4(backend, y), heap, wasmOffset4(backend, mask));
    return [y, mask];
  };
}

/** The addon's dropout loop, or null when this build lacks it. */
export function nativeDropoutLoop(blas: NativeBlas | null): NonNullable<NativeBlas['dropout']> | null {
  return blas !== null && typeof blas.dropout === 'function' ? blas.dropout.bind(blas) : null;
}

/** wasm, the loop in C on the heap. */
export function wasmNativeDropout(loop: NonNullable<NativeBlas['dropout']>): AnyKernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    if (x === undefined || x.dtype !== 'float32') throw new Error(`${DROPOUT_KERNEL}: a float32 input x is required`);
    const { rate, seed } = attrsOf(args);
    const backend = asWasmBackend(args.backend);
    const y = backend.makeOutput(x.shape, 'float32');
    const mask = backend.makeOutput(x.shape, 'float32');
    const heap = wasmHeapF32(backend);
    loop(heap, sizeOf(x.shape), Float64Array.from([wasmOffset4(backend, x), wasmOffset4(backend, y), wasmOffset4(backend, mask), 0]), rate, seed);
    return [y, mask];
  };
}

export function cpuDropout(): AnyKernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    if (x === undefined || x.dtype !== 'float32') throw new Error(`${DROPOUT_KERNEL}: a float32 input x is required`);
    const { rate, seed } = attrsOf(args);
    const backend = asCpuBackend(args.backend);
    const raw = cpuValues(backend, x);
    // a float32 tensor may be stored in another typed array on cpu (e.g. after a bool -> float32 cast)
    const xv = isFloat32Array(raw) ? raw : Float32Array.from(raw as ArrayLike<number>);
    const n = sizeOf(x.shape);
    const y = new Float32Array(n);
    const mask = new Float32Array(n);
    dropoutInto(xv, 0, n, rate, seed, y, 0, mask, 0);
    return [backend.makeTensorInfo(x.shape, 'float32', y), backend.makeTensorInfo(x.shape, 'float32', mask)];
  };
}

/** Inverted dropout with the fused kernel where registered (else tf.dropout with the same seed). */
export function fastDropout(x: tf.Tensor, rate: number, seed: number): tf.Tensor {
  if (rate <= 0) return x;
  if (tf.getKernel(DROPOUT_KERNEL, tf.getBackend()) === undefined || x.dtype !== 'float32') return tf.dropout(x, rate, undefined, seed);
  // tfjs types the customGrad callback as variadic (inputs..., save); the first argument is x.
  const f = tf.customGrad(((input: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, mask] = tf.engine().runKernel(DROPOUT_KERNEL, { x: input } as unknown as tf.NamedTensorMap, { rate, seed }) as tf.Tensor[];
    save([mask!]);
    return { value: y!, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => dy.mul(saved[0]!) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor;
}
