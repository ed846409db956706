/**
 * wasm Identity / same-dtype Cast sharing data: values, independence from the input's lifetime, memory
 * accounting, real conversions still converting, and a model gradient identical to the copying kernels.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { activeKernelFixes, installBackendFixes, restoreStockKernels } from './ops.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  installBackendFixes('wasm', { nativeBlas: false });
});
afterAll(() => {
  restoreStockKernels();
});

/** A small two-layer network's loss gradients (uses clone/keep through the tape, and Cast in clone's gradient). */
function grads(): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.randomNormal([16, 8], 0, 1, 'float32', 1);
    const w1 = tf.variable(tf.randomNormal([8, 12], 0, 0.3, 'float32', 2));
    const w2 = tf.variable(tf.randomNormal([12, 3], 0, 0.3, 'float32', 3));
    const { grads: g } = tf.variableGrads(() => tf.relu(x.matMul(w1)).clone().matMul(w2).softmax().log().mean() as tf.Scalar, [w1, w2]);
    const out = [w1, w2].map((v) => Float32Array.from(g[v.name]!.dataSync()));
    tf.dispose([w1, w2]);
    return out;
  });
}

describe('shared-data Identity and Cast (wasm)', () => {
  it('is installed by default', () => {
    expect(activeKernelFixes('wasm')).toContainEqual({ backend: 'wasm', kernel: 'Identity', fix: 'shared-data' });
    expect(activeKernelFixes('wasm')).toContainEqual({ backend: 'wasm', kernel: 'Cast', fix: 'shared-data' });
  });

  it('clones share data, outlive their input, and free it with the last reference', () => {
    const buffers0 = tf.memory().numDataBuffers;
    const a = tf.tensor1d([1, 2, 3]);
    const b = tf.clone(a);
    const c = a.cast('float32');
    expect(tf.memory().numDataBuffers - buffers0).toBe(1); // one buffer for three tensors
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3]);
    b.dispose();
    expect(Array.from(c.dataSync())).toEqual([1, 2, 3]);
    c.dispose();
    expect(tf.memory().numDataBuffers).toBe(buffers0);
  });

  it('real casts still convert', () => {
    const a = tf.tensor1d([1.7, -2.2, 0]);
    const i = a.cast('int32');
    const f = i.cast('float32');
    expect(i.dtype).toBe('int32');
    expect(Array.from(i.dataSync())).toEqual([1, -2, 0]);
    expect(f.dtype).toBe('float32');
    expect(Array.from(f.dataSync())).toEqual([1, -2, 0]);
    tf.dispose([a, i, f]);
  });

  it('gives the same gradients as the copying stock kernels', () => {
    const shared = grads();
    installBackendFixes('wasm', { nativeBlas: false, sharedIdentity: false });
    expect(activeKernelFixes('wasm').some((f) => f.kernel === 'Identity')).toBe(false);
    const stock = grads();
    installBackendFixes('wasm', { nativeBlas: false });
    shared.forEach((g, k) => expect(Array.from(g)).toEqual(Array.from(stock[k]!)));
  });
});
