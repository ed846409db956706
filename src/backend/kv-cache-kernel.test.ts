/**
 * The in-place cache kernels (HeadsCacheScores, HeadsCacheContext, wasm + addon) against the ops the
 * concatenated caches run (model/attention.ts attendQuery: the scaled query, tf.matMul with the keys
 * transposed, tf.matMul of the weights with the values, all on [R, h, T, dHead] tensors), bit for bit, at
 * head widths 8, 16 (the study's), 32 and 64 and cache lengths on both sides of the native FMA chains'
 * limit (512 positions; beyond it cblas_sgemm), and that the step's keys and values land at their
 * position, rows and positions past the written ones untouched. Skipped, with a message, when the addon
 * (or its cache functions) is not built.
 */
import { describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { installBackendFixes } from './ops.js';
import { loadNativeBlas } from './native-blas.js';
import { nativeKernelSuite } from '../test-utils/native-kernels.js';
import { cacheContext, cacheScores, hasKvCache, nativeKvCache } from './kv-cache-kernel.js';
import { Rng } from '../util/random.js';

const fns = nativeKvCache(loadNativeBlas().blas);
const describeNative = nativeKernelSuite(
  fns !== null,
  'cache kernel tests skipped: the addon (or its cache functions) is not built; run scripts/setup-native.sh',
);

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

describeNative('HeadsCacheScores / HeadsCacheContext (in-place decoder caches)', () => {
  it.each([
    // rows, heads, dHead, step t (the cache holds t + 1 positions after it), capacity
    [3, 2, 8, 0, 4],
    [5, 2, 8, 6, 7],
    [4, 8, 16, 0, 1],
    [7, 8, 16, 29, 40],
    [2, 8, 16, 511, 520],
    [2, 8, 16, 600, 601],
    [3, 4, 32, 40, 50],
    [2, 2, 64, 70, 80],
  ])('%p rows, %p heads of %p, step %p of %p: the ops path bit for bit', (R, h, dh, t, cap) => {
    installBackendFixes('wasm');
    expect(hasKvCache()).toBe(true);
    const r = new Rng(R * 1000 + t);
    const hd = h * dh;
    const rowsCap = R + 2;
    const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => r.normal() * s);
    const kInit = rand(rowsCap * cap * hd);
    const vInit = rand(rowsCap * cap * hd);
    const qkvData = rand(R * 3 * hd, 2);
    const before = tf.memory().numTensors;
    const k = tf.tensor3d(kInit, [rowsCap, cap, hd]);
    const v = tf.tensor3d(vInit, [rowsCap, cap, hd]);
    const qkv = tf.tensor3d(qkvData, [R, 1, 3 * hd]);
    const scale = 1 / Math.sqrt(dh);
    const scores = cacheScores(qkv, k, v, h, t, scale);
    const weights = tf.softmax(scores) as tf.Tensor4D;
    const context = cacheContext(weights, v);
    // the reference: positions 0..t of each row (the step's own k and v at t), as [R, h, t + 1, dHead]
    const kAfter = k.dataSync() as Float32Array;
    const vAfter = v.dataSync() as Float32Array;
    const want = tf.tidy(() => {
      const heads = (x: tf.Tensor) => x.reshape([R, -1, h, dh]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
      const kc = heads(tf.tensor3d(kAfter, [rowsCap, cap, hd]).slice([0, 0, 0], [R, t + 1, hd]));
      const vc = heads(tf.tensor3d(vAfter, [rowsCap, cap, hd]).slice([0, 0, 0], [R, t + 1, hd]));
      const q = heads(qkv.slice([0, 0, 0], [R, 1, hd])).mul(scale);
      const s = tf.matMul(q, kc, false, true);
      return { s, c: tf.matMul(tf.softmax(s), vc) };
    });
    expect(bits(scores.dataSync() as Float32Array)).toEqual(bits(want.s.dataSync() as Float32Array));
    expect(bits(context.dataSync() as Float32Array)).toEqual(bits(want.c.dataSync() as Float32Array));
    // the caches: row i's position t is the step's k / v, everything else as it was
    const kWant = Float32Array.from(kInit);
    const vWant = Float32Array.from(vInit);
    for (let i = 0; i < R; i++) {
      kWant.set(qkvData.subarray(i * 3 * hd + hd, i * 3 * hd + 2 * hd), (i * cap + t) * hd);
      vWant.set(qkvData.subarray(i * 3 * hd + 2 * hd, i * 3 * hd + 3 * hd), (i * cap + t) * hd);
    }
    expect(bits(kAfter)).toEqual(bits(kWant));
    expect(bits(vAfter)).toEqual(bits(vWant));
    tf.dispose([k, v, qkv, scores, weights, context, want.s, want.c]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('registers only with the addon functions', () => {
    expect(nativeKvCache(null)).toBeNull();
    const { cacheScores: _omit, ...older } = loadNativeBlas().blas!;
    expect(nativeKvCache(older as never)).toBeNull();
    installBackendFixes('wasm', { nativeKvCache: false });
    expect(hasKvCache()).toBe(false);
    installBackendFixes('wasm');
    expect(hasKvCache()).toBe(true);
  });
});
