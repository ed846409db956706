/**
 * One beam-search step after the output layer as ONE native kernel (wasm + the OpenBLAS addon):
 * `HeadsBeamTopk` takes the live rows' logits [R, V], computes per row the log-sum-exp of logits - max as
 * fast-decode.ts's device ops give it (Max, Sub, Exp, Sum, Log; glibc expf / logf are tfjs-wasm's Exp /
 * Log bit for bit, and the sum is the native Sum's own sgemm, E [R, V] @ ones [V, 1], over the same R
 * rows), and per sentence (a group of `width` beams with their scores) the n best continuations exactly as
 * fast-decode.ts `topCandidates` picks them: value fround(fround(logits - max - lse) + score), flat index
 * beam * V + token, higher value first, lower index on a tie, beams with score -Infinity skipped.
 *
 * It replaces five kernels over R x V values (the exp matrix alone is 632 ms of a 3.3 s beam-4 run of 200
 * sentences) and the JS loop over V per live row. Registered (ops.ts) only on wasm with the addon's
 * `beamTopk` and the native Sum (its sums are that Sum's bits); elsewhere fastBeam keeps the ops path.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import type { NativeBlas } from './native-blas.js';
import { type AnyKernelFunc, type KernelArgs, asWasmBackend, wasmHeapF32, wasmOffset4 } from './tfjs-internals.js';

export const BEAM_TOPK_KERNEL = 'HeadsBeamTopk';

type BeamFn = Required<Pick<NativeBlas, 'beamTopk'>>['beamTopk'];

/** The addon's beam-step entry point, or null when this build lacks it. */
export function nativeBeamTopk(blas: NativeBlas | null): BeamFn | null {
  if (blas === null || typeof blas.beamTopk !== 'function') return null;
  return blas.beamTopk.bind(blas);
}

function input(args: KernelArgs, name: string, dtype: 'float32' | 'int32'): TensorInfo {
  const t = args.inputs[name];
  if (t === undefined || t.dtype !== dtype) throw new Error(`${BEAM_TOPK_KERNEL}: ${dtype} input ${name} is required`);
  return t;
}

/**
 * wasm kernel: inputs logits [R, V] (float32), scores [G * width] (float32), rows [G * width] (int32: the
 * beam's row of logits, -1 for none); attrs width, n; outputs lse [R], values [G, n], indices [G, n] (int32).
 */
export function wasmBeamTopk(fn: BeamFn): AnyKernelFunc {
  return (args) => {
    const logits = input(args, 'logits', 'float32'),
      scores = input(args, 'scores', 'float32'),
      rows = input(args, 'rows', 'int32');
    const width = Number(args.attrs?.['width'] ?? 0);
    const n = Number(args.attrs?.['n'] ?? 0);
    const [R, V] = logits.shape as [number, number];
    const slots = scores.shape[0]!;
    if (logits.shape.length !== 2 || rows.shape[0] !== slots || !(width > 0) || !(n > 0) || slots % width !== 0)
      throw new Error(`${BEAM_TOPK_KERNEL}: unsupported shapes logits [${logits.shape}] scores [${scores.shape}] rows [${rows.shape}] width ${width} n ${n}`);
    const G = slots / width;
    const backend = asWasmBackend(args.backend);
    const lse = backend.makeOutput([R], 'float32');
    const vals = backend.makeOutput([G, n], 'float32');
    const idx = backend.makeOutput([G, n], 'int32');
    const heap = wasmHeapF32(backend); // after the allocations (heap growth detaches older views)
    const off = (t: TensorInfo) => wasmOffset4(backend, t);
    fn(heap, Int32Array.from([R, V, G, width, n]), Float64Array.from([off(logits), off(scores), off(rows), off(lse), off(vals), off(idx), 0]));
    return [lse, vals, idx];
  };
}

/** True when HeadsBeamTopk is registered for the active backend. */
export function hasBeamTopk(): boolean {
  return tf.getKernel(BEAM_TOPK_KERNEL, tf.getBackend()) !== undefined;
}

export interface BeamTopk {
  /** per row of logits: log(sum(exp(logits - max))) */
  lse: Float32Array;
  /** [G * n]: each group's n best values, then -Infinity */
  values: Float32Array;
  /** [G * n]: beam * V + token of each value, -1 for padding */
  indices: Int32Array;
}

/**
 * HeadsBeamTopk on logits [R, V]: group g has beams g*width .. g*width+width-1 with scores[beam] and
 * logits row rows[beam] (-1: none). Needs hasBeamTopk().
 */
export function beamTopk(logits: tf.Tensor2D, scores: Float32Array, rows: Int32Array, width: number, n: number): BeamTopk {
  const s = tf.tensor1d(scores, 'float32');
  const r = tf.tensor1d(rows, 'int32');
  const out = tf.engine().runKernel(BEAM_TOPK_KERNEL, { logits, scores: s, rows: r } as unknown as tf.NamedTensorMap, { width, n }) as tf.Tensor[];
  try {
    return {
      lse: out[0]!.dataSync() as Float32Array,
      values: out[1]!.dataSync() as Float32Array,
      indices: out[2]!.dataSync() as Int32Array,
    };
  } finally {
    tf.dispose([s, r, ...out]);
  }
}
