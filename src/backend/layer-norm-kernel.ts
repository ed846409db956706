/**
 * Post-norm residual sub-layer end as one native kernel per direction (wasm + the OpenBLAS addon):
 * `HeadsLayerNorm` computes out = LN(x + drop(r)) g + b over the last axis (r absent: LN(x)), saving the
 * normalised rows, 1 / std per row and the dropout mask; `HeadsLayerNormGrad` returns dx, dr = dx * mask,
 * dg and db. The tfjs computation it replaces (model/layers.ts): dropout (tf.dropout: a JS random tensor,
 * add, floor, div, mul), add, moments (mean, sub, square, mean), sub, add, rsqrt, mul, mul, add, and about
 * 25 kernels with broadcast reductions on the tape.
 *
 * The dropout mask comes from the hash of src/backend/dropout.ts (`dropoutInto`, seed and element index),
 * so it is that kernel's mask, not tf.dropout's stream: with the addon, training draws other (equally
 * distributed) dropout masks than without it. Float32 only; backends without the kernels keep the ops.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import type { NativeBlas } from './native-blas.js';
import { type AnyKernelFunc, type KernelArgs, asWasmBackend, sizeOf, wasmHeapF32, wasmOffset4 } from './tfjs-internals.js';

export const LAYER_NORM_KERNEL = 'HeadsLayerNorm';
export const LAYER_NORM_GRAD_KERNEL = 'HeadsLayerNormGrad';

type LayerNormFns = Required<Pick<NativeBlas, 'layerNormForward' | 'layerNormBackward'>>;

/** The addon's layer-norm entry points, or null when this build lacks them. */
export function nativeLayerNorm(blas: NativeBlas | null): LayerNormFns | null {
  if (blas === null || typeof blas.layerNormForward !== 'function' || typeof blas.layerNormBackward !== 'function') return null;
  return { layerNormForward: blas.layerNormForward.bind(blas), layerNormBackward: blas.layerNormBackward.bind(blas) };
}

function f32(args: KernelArgs, name: string): TensorInfo {
  const t = args.inputs[name];
  if (t === undefined || t.dtype !== 'float32') throw new Error(`${LAYER_NORM_KERNEL}: float32 input ${name} is required`);
  return t;
}

/** wasm forward: inputs x[, r], g, b; attrs eps, rate, seed; outputs [out, xhat, rstd] (+ mask when rate > 0 and r given). */
export function wasmLayerNorm(fns: LayerNormFns): AnyKernelFunc {
  return (args) => {
    const x = f32(args, 'x'),
      g = f32(args, 'g'),
      b = f32(args, 'b');
    const r = args.inputs['r'] ?? null;
    const eps = Number(args.attrs?.['eps'] ?? 1e-5),
      rate = Number(args.attrs?.['rate'] ?? 0),
      seed = Number(args.attrs?.['seed'] ?? 0);
    const d = x.shape[x.shape.length - 1] ?? 1;
    const rows = sizeOf(x.shape) / Math.max(1, d);
    if (sizeOf(g.shape) !== d || sizeOf(b.shape) !== d || (r !== null && r.shape.join() !== x.shape.join()))
      throw new Error(`${LAYER_NORM_KERNEL}: shapes x [${x.shape}] r [${r?.shape ?? ''}] g [${g.shape}] b [${b.shape}]`);
    const drop = r !== null && rate > 0;
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput(x.shape, 'float32');
    const xhat = backend.makeOutput(x.shape, 'float32');
    const rstd = backend.makeOutput([rows], 'float32');
    const mask = drop ? backend.makeOutput(x.shape, 'float32') : null;
    const heap = wasmHeapF32(backend);
    const off = (t: TensorInfo | null) => (t ? wasmOffset4(backend, t) : 0);
    fns.layerNormForward(
      heap,
      Int32Array.from([rows, d, r ? 1 : 0, drop ? 1 : 0]),
      Float64Array.from([off(x), off(r), off(g), off(b), off(out), off(xhat), off(rstd), off(mask), 0]),
      eps,
      drop ? rate : 0,
      seed,
    );
    return mask ? [out, xhat, rstd, mask] : [out, xhat, rstd];
  };
}

/** wasm backward: inputs dy, xhat, rstd, g[, mask]; attr hasR; outputs [dx, dg, db] or [dx, dr, dg, db]. */
export function wasmLayerNormGrad(fns: LayerNormFns): AnyKernelFunc {
  return (args) => {
    const dy = f32(args, 'dy'),
      xhat = f32(args, 'xhat'),
      rstd = f32(args, 'rstd'),
      g = f32(args, 'g');
    const mask = args.inputs['mask'] ?? null;
    const hasR = Boolean(args.attrs?.['hasR']);
    const d = dy.shape[dy.shape.length - 1] ?? 1;
    const rows = sizeOf(dy.shape) / Math.max(1, d);
    const backend = asWasmBackend(args.backend);
    const dx = backend.makeOutput(dy.shape, 'float32');
    const dr = hasR ? backend.makeOutput(dy.shape, 'float32') : null;
    const dg = backend.makeOutput(g.shape, 'float32');
    const db = backend.makeOutput(g.shape, 'float32');
    const heap = wasmHeapF32(backend);
    const off = (t: TensorInfo | null) => (t ? wasmOffset4(backend, t) : 0);
    fns.layerNormBackward(
      heap,
      Int32Array.from([rows, d, hasR ? 1 : 0, mask ? 1 : 0]),
      Float64Array.from([off(dy), off(xhat), off(rstd), off(g), off(mask), off(dx), off(dr), off(dg), off(db), 0]),
    );
    return dr ? [dx, dr, dg, db] : [dx, dg, db];
  };
}

/** True when both layer-norm kernels are registered for the active backend. */
export function hasFusedLayerNorm(): boolean {
  const b = tf.getBackend();
  return tf.getKernel(LAYER_NORM_KERNEL, b) !== undefined && tf.getKernel(LAYER_NORM_GRAD_KERNEL, b) !== undefined;
}

/**
 * fusedLayerNorm's value without its gradient (no tf.customGrad wrapper, ~4x the kernel's own cost in a
 * decoding step): the same kernel, its saved outputs freed at once. Inference only; needs hasFusedLayerNorm().
 */
export function layerNormValue(x: tf.Tensor, r: tf.Tensor | null, g: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const inputs = r === null ? { x, g, b } : { x, r, g, b };
  const outs = tf.engine().runKernel(LAYER_NORM_KERNEL, inputs as unknown as tf.NamedTensorMap, { eps, rate: 0, seed: 0 }) as tf.Tensor[];
  tf.dispose(outs.slice(1));
  return outs[0]!;
}

/**
 * LN(x + drop(r)) g + b over the last axis (r null: LN(x) g + b), dropout with rate and seed (the
 * dropout.ts hash), with gradients for x, r, g and b. Needs hasFusedLayerNorm() and float32 operands.
 */
export function fusedLayerNorm(x: tf.Tensor, r: tf.Tensor | null, g: tf.Tensor, b: tf.Tensor, eps: number, rate: number, seed: number): tf.Tensor {
  const attrs = { eps, rate, seed };
  const fwd = (inputs: Record<string, tf.Tensor>) => tf.engine().runKernel(LAYER_NORM_KERNEL, inputs as unknown as tf.NamedTensorMap, attrs) as tf.Tensor[];
  const bwd = (inputs: Record<string, tf.Tensor>, hasR: boolean) =>
    tf.engine().runKernel(LAYER_NORM_GRAD_KERNEL, inputs as unknown as tf.NamedTensorMap, { hasR }) as tf.Tensor[];
  if (r === null) {
    const f = tf.customGrad(((xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor, save: tf.GradSaveFunc) => {
      const [out, xhat, rstd] = fwd({ x: xi, g: gi, b: bi });
      save([xhat!, rstd!, gi]);
      return { value: out!, gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => bwd({ dy, xhat: s[0]!, rstd: s[1]!, g: s[2]! }, false) };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(x, g, b) as tf.Tensor;
  }
  const f = tf.customGrad(((xi: tf.Tensor, ri: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor, save: tf.GradSaveFunc) => {
    const outs = fwd({ x: xi, r: ri, g: gi, b: bi });
    save(outs.slice(1).concat([gi]));
    return {
      value: outs[0]!,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => {
        const mask = s.length === 4 ? s[2]! : null;
        const gs = s[s.length - 1]!;
        return bwd({ dy, xhat: s[0]!, rstd: s[1]!, g: gs, ...(mask ? { mask } : {}) }, true);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, r, g, b) as tf.Tensor;
}
