/**
 * `UnsortedSegmentSum` (the gradient of tf.gather, so of every embedding lookup) as a plain JS
 * scatter-add, for two backends:
 * - wasm has no such kernel at all (training fails with "Kernel 'UnsortedSegmentSum' not registered");
 * - cpu has one that loops over numSegments with equal/mul/sum kernels: 50 s for one 8000-row
 *   embedding gradient; the scatter-add takes 2-15 ms (probe-performance.md section 1).
 * Semantics follow TensorFlow: out[s, ...] = sum of x[i, ...] over i with segmentIds[i] = s; ids outside
 * [0, numSegments) are dropped. segmentIds may have any rank r; x's first r dims must match it.
 */
import type { DataType, TensorInfo } from '@tensorflow/tfjs';
import {
  type AnyKernelFunc,
  type KernelArgs,
  asCpuBackend,
  asWasmBackend,
  cpuValues,
  isFloat32Array,
  isInt32Array,
  sizeOf,
  wasmHeapF32,
  wasmHeapI32,
  wasmOffset4,
} from './tfjs-internals.js';

/** out[ids[i] * inner + j] += x[i * inner + j]; out must be zeroed by the caller. */
export function scatterAdd(
  x: Float32Array | Int32Array,
  xOff: number,
  ids: Int32Array,
  idsOff: number,
  n: number,
  inner: number,
  numSegments: number,
  out: Float32Array | Int32Array,
  outOff: number,
): void {
  for (let i = 0; i < n; i++) {
    const s = ids[idsOff + i]!;
    if (s < 0 || s >= numSegments) continue;
    const src = xOff + i * inner;
    const dst = outOff + s * inner;
    for (let j = 0; j < inner; j++) out[dst + j] += x[src + j]!;
  }
}

/** The float32 case of scatterAdd, kept monomorphic so V8 optimises its inner loop. */
export function scatterAddF32(
  x: Float32Array,
  xOff: number,
  ids: Int32Array,
  idsOff: number,
  n: number,
  inner: number,
  numSegments: number,
  out: Float32Array,
  outOff: number,
): void {
  for (let i = 0; i < n; i++) {
    const s = ids[idsOff + i]!;
    if (s < 0 || s >= numSegments) continue;
    const src = xOff + i * inner;
    const dst = outOff + s * inner;
    for (let j = 0; j < inner; j++) out[dst + j] = out[dst + j]! + x[src + j]!;
  }
}

interface SegmentSumShape {
  x: TensorInfo;
  segmentIds: TensorInfo;
  numSegments: number;
  n: number;
  inner: number;
  outShape: number[];
}

function segmentSumShape(args: KernelArgs): SegmentSumShape {
  const x = args.inputs['x'];
  const segmentIds = args.inputs['segmentIds'];
  const numSegments = Number(args.attrs?.['numSegments']);
  if (x === undefined || segmentIds === undefined) throw new Error('UnsortedSegmentSum: inputs x and segmentIds are required');
  if (!Number.isInteger(numSegments) || numSegments < 0) throw new Error(`UnsortedSegmentSum: bad numSegments ${numSegments}`);
  if (segmentIds.dtype !== 'int32') throw new Error(`UnsortedSegmentSum: segmentIds must be int32, got ${segmentIds.dtype}`);
  const r = segmentIds.shape.length;
  for (let d = 0; d < r; d++) {
    if (x.shape[d] !== segmentIds.shape[d]) {
      throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] is not a prefix of x shape [${x.shape}]`);
    }
  }
  const tail = x.shape.slice(r);
  return { x, segmentIds, numSegments, n: sizeOf(segmentIds.shape), inner: sizeOf(tail), outShape: [numSegments, ...tail] };
}

function checkDtype(dtype: DataType): 'float32' | 'int32' {
  if (dtype !== 'float32' && dtype !== 'int32') throw new Error(`UnsortedSegmentSum: unsupported dtype ${dtype}`);
  return dtype;
}

/**
 * wasm (tfjs-backend-wasm 4.22.0 has no UnsortedSegmentSum): scatter-add straight on the wasm heap.
 * Measured 9-15 ms for a [4000, 256] gradient into 8000 rows, bit-identical to the cpu backend.
 */
export function wasmUnsortedSegmentSum(): AnyKernelFunc {
  return (args) => {
    const s = segmentSumShape(args);
    const dtype = checkDtype(s.x.dtype);
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput(s.outShape, dtype);
    // views only after makeOutput: the allocation may grow (and detach) the heap
    const xOff = wasmOffset4(backend, s.x);
    const idsOff = wasmOffset4(backend, s.segmentIds);
    const outOff = wasmOffset4(backend, out);
    const ids = wasmHeapI32(backend);
    if (dtype === 'float32') {
      const heap = wasmHeapF32(backend);
      heap.fill(0, outOff, outOff + sizeOf(s.outShape));
      scatterAddF32(heap, xOff, ids, idsOff, s.n, s.inner, s.numSegments, heap, outOff);
    } else {
      ids.fill(0, outOff, outOff + sizeOf(s.outShape));
      scatterAdd(ids, xOff, ids, idsOff, s.n, s.inner, s.numSegments, ids, outOff);
    }
    return out;
  };
}

/**
 * cpu (tfjs-backend-cpu 4.22.0's kernel takes ~50 s for an 8000-row embedding gradient): the same
 * scatter-add into a fresh typed array (1.6-14 ms).
 */
export function cpuUnsortedSegmentSum(): AnyKernelFunc {
  return (args) => {
    const s = segmentSumShape(args);
    const dtype = checkDtype(s.x.dtype);
    const backend = asCpuBackend(args.backend);
    const xv = cpuValues(backend, s.x);
    const idv = cpuValues(backend, s.segmentIds);
    if (!(isFloat32Array(xv) || isInt32Array(xv)) || !isInt32Array(idv)) {
      throw new Error('UnsortedSegmentSum: unexpected cpu tensor storage');
    }
    const size = sizeOf(s.outShape);
    const out = dtype === 'float32' ? new Float32Array(size) : new Int32Array(size);
    scatterAdd(xv, 0, idv, 0, s.n, s.inner, s.numSegments, out, 0);
    return backend.makeTensorInfo(s.outShape, dtype, out);
  };
}
