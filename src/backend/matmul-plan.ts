/**
 * Shape analysis shared by the matMul kernels: inner/outer sizes, the broadcast batch shape, and for
 * every output matrix the index of the A and B matrix it reads. Unlike tfjs's own cpu and wasm
 * BatchMatMul kernels (which assume one side's batch is 1 or both are equal and silently return a
 * truncated buffer otherwise, see probe-native-blas.md), this handles general batch broadcasting such as
 * [2,1,M,K] x [1,3,K,N].
 */
import * as tf from '@tensorflow/tfjs';
import { sizeOf } from './tfjs-internals.js';

export interface MatMulPlan {
  /** rows of op(A) and of the output */
  m: number;
  /** columns of op(B) and of the output */
  n: number;
  /** inner dimension */
  k: number;
  transposeA: boolean;
  transposeB: boolean;
  /** batch dims of A, B and the output (broadcast of the two) */
  batchShapeA: number[];
  batchShapeB: number[];
  outBatchShape: number[];
  outShape: number[];
  /** matrices in A, B and the output */
  batchA: number;
  batchB: number;
  batch: number;
  /** elements between consecutive matrices of A / B, 0 when that side has a single matrix (broadcast) */
  strideA: number;
  strideB: number;
  /** per output matrix, the A/B matrix index; null when it is the output index i (or 0 with stride 0) */
  idxA: Int32Array | null;
  idxB: Int32Array | null;
}

/** Plans `op(A) @ op(B)` for tensors of rank >= 2; throws like tf.matMul on mismatched inner sizes. */
export function planMatMul(aShape: readonly number[], bShape: readonly number[], transposeA: boolean, transposeB: boolean): MatMulPlan {
  const ra = aShape.length;
  const rb = bShape.length;
  if (ra < 2 || rb < 2) throw new Error(`matMul needs rank >= 2 operands, got shapes [${aShape.join(',')}] and [${bShape.join(',')}]`);
  const m = transposeA ? aShape[ra - 1]! : aShape[ra - 2]!;
  const kA = transposeA ? aShape[ra - 2]! : aShape[ra - 1]!;
  const kB = transposeB ? bShape[rb - 1]! : bShape[rb - 2]!;
  const n = transposeB ? bShape[rb - 2]! : bShape[rb - 1]!;
  if (kA !== kB) {
    throw new Error(
      `Error in matMul: inner shapes (${kA}) and (${kB}) of Tensors with shapes ${aShape} and ${bShape} ` +
        `and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const batchShapeA = aShape.slice(0, -2);
  const batchShapeB = bShape.slice(0, -2);
  const outBatchShape = tf.broadcast_util.assertAndGetBroadcastShape(batchShapeA, batchShapeB);
  const batchA = sizeOf(batchShapeA);
  const batchB = sizeOf(batchShapeB);
  const batch = sizeOf(outBatchShape);
  const k = kA;
  return {
    m,
    n,
    k,
    transposeA,
    transposeB,
    batchShapeA,
    batchShapeB,
    outBatchShape,
    outShape: [...outBatchShape, m, n],
    batchA,
    batchB,
    batch,
    strideA: batchA === 1 ? 0 : m * k,
    strideB: batchB === 1 ? 0 : k * n,
    idxA: batchA === 1 || batchA === batch ? null : broadcastIndex(batchShapeA, outBatchShape),
    idxB: batchB === 1 || batchB === batch ? null : broadcastIndex(batchShapeB, outBatchShape),
  };
}

/** For each (row-major) index into `outShape`, the index into `shape` broadcast to it. */
export function broadcastIndex(shape: readonly number[], outShape: readonly number[]): Int32Array {
  const r = outShape.length;
  const padded = new Array<number>(r - shape.length).fill(1).concat(shape);
  const strides = new Array<number>(r).fill(0);
  let s = 1;
  for (let d = r - 1; d >= 0; d--) {
    strides[d] = padded[d] === 1 ? 0 : s;
    s *= padded[d]!;
  }
  const total = sizeOf(outShape);
  const idx = new Int32Array(total);
  const coord = new Array<number>(r).fill(0);
  for (let i = 0; i < total; i++) {
    let v = 0;
    for (let d = 0; d < r; d++) v += coord[d]! * strides[d]!;
    idx[i] = v;
    for (let d = r - 1; d >= 0; d--) {
      coord[d] += 1;
      if (coord[d]! < outShape[d]!) break;
      coord[d] = 0;
    }
  }
  return idx;
}

/** Index of the A (or B) matrix used by output matrix i. */
export function sideIndex(idx: Int32Array | null, stride: number, i: number): number {
  if (idx !== null) return idx[i]!;
  return stride === 0 ? 0 : i;
}

/** 2 * m * n * k * batch. */
export function matMulFlops(p: MatMulPlan): number {
  return 2 * p.m * p.n * p.k * p.batch;
}
