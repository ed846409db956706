/**
 * Decoder self-attention over preallocated key/value caches (wasm + the OpenBLAS addon), for the fast
 * decoders: per decoder layer K and V [rowsCap, Tcap, h*dHead] hold the keys and values of positions
 * 0..t-1 of every row, written in place as decoding goes (no Concat of the cache each step, no SplitV or
 * Transpose of the step's q, k and v, no Gather of the whole cache to reorder the beams).
 *
 * - `HeadsCacheScores`: the fused q|k|v projection [R, 3 h dHead] in, its k and v written at position t,
 *   out the scores [R, h, 1, t+1] of (q * 1/sqrt(dHead)) against keys 0..t;
 * - `HeadsCacheContext`: softmax weights [R, h, 1, T] in (tf.softmax between the two, as before), out the
 *   per-head context [R, h, 1, dHead] (= the merged heads [R, 1, h dHead]: one query position);
 * - `cacheRows`: row i of every cache becomes row src[i] (beam back-pointers, sentences leaving), in place,
 *   over the positions written so far.
 *
 * The products are the cblas_sgemm calls, one per row and head with the same M, N, K and transposes, that
 * the batched matMuls of model/attention.ts attendQuery make on the concatenated caches, reading the
 * cache rows with a leading dimension of h*dHead instead of dHead; so the decoders' outputs stay the
 * legacy decoder's (eval/fast-decode.test.ts). Registered (ops.ts) only on wasm with the addon's
 * functions; elsewhere the decoders keep concatenated caches.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import type { NativeBlas } from './native-blas.js';
import { listInstalledFixes } from './kernel-registry.js';
import { type AnyKernelFunc, type KernelArgs, asWasmBackend, wasmHeapF32, wasmOffset4 } from './tfjs-internals.js';

export const CACHE_SCORES_KERNEL = 'HeadsCacheScores';
export const CACHE_CONTEXT_KERNEL = 'HeadsCacheContext';

export type KvCacheFns = Required<Pick<NativeBlas, 'cacheScores' | 'cacheContext' | 'cacheRows'>>;

/** The addon's cache functions, or null when this build lacks them. */
export function nativeKvCache(blas: NativeBlas | null): KvCacheFns | null {
  if (blas === null || typeof blas.cacheScores !== 'function' || typeof blas.cacheContext !== 'function' || typeof blas.cacheRows !== 'function') return null;
  return { cacheScores: blas.cacheScores.bind(blas), cacheContext: blas.cacheContext.bind(blas), cacheRows: blas.cacheRows.bind(blas) };
}

function input(args: KernelArgs, name: string, kernel: string): TensorInfo {
  const t = args.inputs[name];
  if (t === undefined || t.dtype !== 'float32') throw new Error(`${kernel}: float32 input ${name} is required`);
  return t;
}

/** [rowsCap, Tcap, h*dHead] of a cache, checked against h and dHead. */
function cacheShape(c: TensorInfo, hd: number, kernel: string): [number, number] {
  const [rowsCap, Tcap, w] = c.shape as [number, number, number];
  if (c.shape.length !== 3 || w !== hd) throw new Error(`${kernel}: a cache [rows, T, ${hd}] is required, found [${c.shape}]`);
  return [rowsCap, Tcap];
}

/** inputs qkv [R, 1, 3 h dHead], k, v [rowsCap, Tcap, h dHead]; attrs heads, t, scale; output scores [R, h, 1, t+1]. */
export function wasmCacheScores(fns: KvCacheFns): AnyKernelFunc {
  return (args) => {
    const qkv = input(args, 'qkv', CACHE_SCORES_KERNEL),
      k = input(args, 'k', CACHE_SCORES_KERNEL),
      v = input(args, 'v', CACHE_SCORES_KERNEL);
    const h = Number(args.attrs?.['heads']);
    const t = Number(args.attrs?.['t']);
    const scale = Number(args.attrs?.['scale']);
    const R = qkv.shape[0]!;
    const width = qkv.shape[qkv.shape.length - 1]!;
    const hd = width / 3;
    const dh = hd / h;
    if (!Number.isInteger(dh) || !(dh > 0) || qkv.shape.length !== 3 || qkv.shape[1] !== 1)
      throw new Error(`${CACHE_SCORES_KERNEL}: unsupported qkv [${qkv.shape}] for ${h} heads`);
    const [rowsCap, Tcap] = cacheShape(k, hd, CACHE_SCORES_KERNEL);
    cacheShape(v, hd, CACHE_SCORES_KERNEL);
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput([R, h, 1, t + 1], 'float32');
    const heap = wasmHeapF32(backend); // after the allocation (heap growth detaches older views)
    const off = (x: TensorInfo) => wasmOffset4(backend, x);
    fns.cacheScores(heap, Int32Array.from([R, h, dh, width, t, rowsCap, Tcap]), Float64Array.from([off(qkv), off(k), off(v), off(out), scale]));
    return out;
  };
}

/** inputs weights [R, h, 1, T], v [rowsCap, Tcap, h dHead]; output context [R, h, 1, dHead]. */
export function wasmCacheContext(fns: KvCacheFns): AnyKernelFunc {
  return (args) => {
    const w = input(args, 'weights', CACHE_CONTEXT_KERNEL),
      v = input(args, 'v', CACHE_CONTEXT_KERNEL);
    const [R, h, one, T] = w.shape as [number, number, number, number];
    const hd = v.shape[2]!;
    const dh = hd / h;
    if (w.shape.length !== 4 || one !== 1 || !Number.isInteger(dh) || !(T > 0))
      throw new Error(`${CACHE_CONTEXT_KERNEL}: unsupported weights [${w.shape}] over a cache [${v.shape}]`);
    const [rowsCap, Tcap] = cacheShape(v, hd, CACHE_CONTEXT_KERNEL);
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput([R, h, 1, dh], 'float32');
    const heap = wasmHeapF32(backend);
    const off = (x: TensorInfo) => wasmOffset4(backend, x);
    fns.cacheContext(heap, Int32Array.from([R, h, dh, 0, T - 1, rowsCap, Tcap]), Float64Array.from([off(w), off(v), off(out), 0]));
    return out;
  };
}

/**
 * True when the active backend's _FusedMatMul is the native one (native-matmul.ts: the BatchMatMul's
 * sgemm call, then the bias added in C, the same float additions as an Add): the fast decoders with the
 * caches then fuse their linear layers' biases (DecoderState.fusedBias).
 */
export function hasNativeFusedMatMul(): boolean {
  return listInstalledFixes(tf.getBackend()).some((f) => f.kernel === '_FusedMatMul' && f.fix === 'native-blas');
}

/** True when the cache kernels are registered for the active backend. */
export function hasKvCache(): boolean {
  return tf.getKernel(CACHE_SCORES_KERNEL, tf.getBackend()) !== undefined && tf.getKernel(CACHE_CONTEXT_KERNEL, tf.getBackend()) !== undefined;
}

let rowsFn: KvCacheFns['cacheRows'] | null = null;

/** The addon's cacheRows, set by ops.ts with the kernels (null: not registered). */
export function setCacheRows(fn: KvCacheFns['cacheRows'] | null): void {
  rowsFn = fn;
}

/** Scores (step t) of queries against a layer's caches, writing the step's keys and values at t (in place). */
export function cacheScores(qkv: tf.Tensor, k: tf.Tensor3D, v: tf.Tensor3D, heads: number, t: number, scale: number): tf.Tensor4D {
  return tf.engine().runKernel(CACHE_SCORES_KERNEL, { qkv, k, v } as unknown as tf.NamedTensorMap, { heads, t, scale }) as tf.Tensor4D;
}

/** The per-head context [R, h, 1, dHead] of softmax weights [R, h, 1, T] over a layer's value cache. */
export function cacheContext(weights: tf.Tensor4D, v: tf.Tensor3D): tf.Tensor4D {
  return tf.engine().runKernel(CACHE_CONTEXT_KERNEL, { weights, v } as unknown as tf.NamedTensorMap, {}) as tf.Tensor4D;
}

/**
 * In every cache [rowsCap, Tcap, w], row i becomes row src[i] for i < src.length, over the first
 * `positions` positions; in place (one native call per cache shape). Needs hasKvCache().
 */
export function cacheRows(caches: readonly tf.Tensor3D[], src: Int32Array, positions: number): void {
  if (rowsFn === null) throw new Error('cacheRows: the native cache kernels are not registered');
  const backend = asWasmBackend(tf.backend());
  const byShape = new Map<string, tf.Tensor3D[]>();
  for (const c of caches) byShape.set(String(c.shape), [...(byShape.get(String(c.shape)) ?? []), c]);
  for (const group of byShape.values()) {
    const [rowsCap, Tcap, w] = group[0]!.shape;
    const offs = Float64Array.from(group, (c) => wasmOffset4(backend, { dataId: c.dataId, shape: c.shape, dtype: c.dtype } as unknown as TensorInfo));
    rowsFn(wasmHeapF32(backend), Int32Array.from([src.length, rowsCap, Tcap * w, positions * w]), offs, src);
  }
}
