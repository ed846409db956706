/**
 * Copies between tfjs tensors and plain (often shared) Float32Arrays with as few copies as the backend
 * allows: on wasm a gradient is read straight from the wasm heap (one copy instead of dataSync's two),
 * on other backends through dataSync. Parameters are written by assigning a new tensor (never in place:
 * the wasm XNNPACK path caches packed weights by tensor id, so data under an id must not change).
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend, wasmHeapF32, wasmOffset4 } from '../../backend/tfjs-internals.js';

/** dst[off + i] = t[i] (mode 'set') or dst[off + i] += t[i] (mode 'add'); t must be float32. */
export function readInto(t: tf.Tensor, dst: Float32Array, off: number, mode: 'set' | 'add'): void {
  const n = t.size;
  let src: Float32Array;
  let so = 0;
  if (tf.getBackend() === 'wasm') {
    const backend = asWasmBackend(tf.backend());
    src = wasmHeapF32(backend);
    so = wasmOffset4(backend, t);
  } else {
    src = t.dataSync() as Float32Array;
  }
  if (mode === 'set') dst.set(src.subarray(so, so + n), off);
  else for (let i = 0; i < n; i++) dst[off + i] = dst[off + i]! + src[so + i]!;
}

/** A tensor holding a copy of src[off, off + size) (never aliasing src, which may be shared memory). */
export function tensorFrom(src: Float32Array, off: number, shape: number[]): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  // wasm copies into its heap on creation; other backends (cpu) keep the array, so give them a copy
  const values = tf.getBackend() === 'wasm' ? src.subarray(off, off + size) : src.slice(off, off + size);
  return tf.tensor(values, shape, 'float32');
}

/** variable := src[off, off + size) */
export function assignFrom(v: tf.Variable, src: Float32Array, off: number): void {
  tf.tidy(() => v.assign(tensorFrom(src, off, v.shape)));
}

/** dst[off, off + size) := the variable's values */
export function writeFrom(v: tf.Tensor, dst: Float32Array, off: number): void {
  readInto(v, dst, off, 'set');
}
