/**
 * One Adam step of one parameter as a single native kernel, `HeadsAdam` (wasm + the OpenBLAS addon):
 * inputs p, m, v, g; outputs p', m', v' with the arithmetic of train/adam.ts's tfjs ops, operation by
 * operation in float32 (the C loop is compiled without FMA contraction), so the result is the same bits.
 * It replaces 12 element-wise kernels per parameter (about 1,700 kernel calls per step for the bench
 * model's 140 tensors). Absent on other backends; train/adam.ts then uses the ops.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from './native-blas.js';
import { type AnyKernelFunc, type KernelArgs, asWasmBackend, sizeOf, wasmHeapF32, wasmOffset4 } from './tfjs-internals.js';

export const ADAM_KERNEL = 'HeadsAdam';

type AdamFn = NonNullable<NativeBlas['adamUpdate']>;

/** The addon's Adam loop, or null when this build lacks it. */
export function nativeAdam(blas: NativeBlas | null): AdamFn | null {
  return blas !== null && typeof blas.adamUpdate === 'function' ? blas.adamUpdate.bind(blas) : null;
}

/** The float32 constants of one update, in the order the kernel takes them. */
export interface AdamConstants {
  beta1: number;
  beta2: number;
  c1: number;
  c2: number;
  lr: number;
  eps: number;
}

function input(args: KernelArgs, name: string) {
  const t = args.inputs[name];
  if (t === undefined || t.dtype !== 'float32') throw new Error(`${ADAM_KERNEL}: float32 input ${name} is required`);
  return t;
}

export function wasmAdam(fn: AdamFn): AnyKernelFunc {
  return (args) => {
    const p = input(args, 'p'),
      m = input(args, 'm'),
      v = input(args, 'v'),
      g = input(args, 'g');
    const n = sizeOf(p.shape);
    if (sizeOf(m.shape) !== n || sizeOf(v.shape) !== n || sizeOf(g.shape) !== n) throw new Error(`${ADAM_KERNEL}: p, m, v, g must have the same size`);
    const a = args.attrs ?? {};
    const backend = asWasmBackend(args.backend);
    const po = backend.makeOutput(p.shape, 'float32');
    const mo = backend.makeOutput(p.shape, 'float32');
    const vo = backend.makeOutput(p.shape, 'float32');
    const heap = wasmHeapF32(backend);
    const off = (t: Parameters<typeof wasmOffset4>[1]) => wasmOffset4(backend, t);
    const b1 = Number(a['beta1']),
      b2 = Number(a['beta2']);
    // the tfjs ops see each JS number as a float32 scalar: 1 - beta1 etc. are computed in double first
    const k = Float64Array.from([b1, 1 - b1, b2, 1 - b2, Number(a['c1']), Number(a['lr']), Number(a['c2']), Number(a['eps'])].map(Math.fround));
    fn(heap, n, Float64Array.from([off(p), off(m), off(v), off(g), off(po), off(mo), off(vo), 0]), k);
    return [po, mo, vo];
  };
}

/** True when the Adam kernel is registered for the active backend. */
export function hasAdamKernel(): boolean {
  return tf.getKernel(ADAM_KERNEL, tf.getBackend()) !== undefined;
}

/** [p', m', v'] of one Adam step (needs hasAdamKernel()). */
export function adamStep(p: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, k: AdamConstants): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const out = tf.engine().runKernel(ADAM_KERNEL, { p, m, v, g } as unknown as tf.NamedTensorMap, { ...k } as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return [out[0]!, out[1]!, out[2]!];
}
