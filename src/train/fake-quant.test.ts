/**
 * Fake quantization: the forward pass equals quantize-then-dequantize of compress/quantize.ts; the gradient
 * is the upstream gradient inside the clipping range (straight-through) and zero outside; no leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { dequantizeInt8, quantizeInt8 } from '../compress/quantize.js';
import { useTestBackend, maxAbsDiff } from '../test-utils/backend.js';
import { Rng } from '../util/random.js';
import { fakeQuantInt8 } from './fake-quant.js';

beforeAll(async () => {
  await useTestBackend();
});

const rng = new Rng(11);
const W = Float32Array.from({ length: 6 * 5 }, () => rng.normal());

describe('fakeQuantInt8', () => {
  it.each([0, 1] as const)('axis %p: forward equals int8 quantize-dequantize per channel', (axis) => {
    const got = tf.tidy(() => fakeQuantInt8(tf.tensor2d(W, [6, 5]), axis).dataSync() as Float32Array);
    const q = quantizeInt8(W, [6, 5], axis);
    // scales are computed in float32 on both sides; allow one float32 ulp of the values
    expect(maxAbsDiff(got, dequantizeInt8(q.q, [6, 5], q.scale, q.scaleShape))).toBeLessThan(1e-6);
  });

  it('straight-through: the gradient equals the upstream gradient (max-abs scales: everything is inside)', () => {
    const up = Float32Array.from({ length: 30 }, () => rng.normal());
    const g = tf.tidy(() => {
      const w = tf.tensor2d(W, [6, 5]);
      const dy = tf.tensor2d(up, [6, 5]);
      return tf
        .grad((x: tf.Tensor) => fakeQuantInt8(x, 1).mul(dy).sum())(w)
        .dataSync() as Float32Array;
    });
    expect(Array.from(g)).toEqual(Array.from(up));
  });

  it('outside the clipping range |w| > 127·scale the gradient is zero', () => {
    const scale = tf.tensor2d([0.005, 0.01, 0.02, 0.5, 1], [1, 5]); // range ±127·scale per column
    const g = tf.tidy(
      () =>
        tf
          .grad((x: tf.Tensor) => fakeQuantInt8(x, 1, scale).sum())(tf.tensor2d(W, [6, 5]))
          .dataSync() as Float32Array,
    );
    const s = [0.005, 0.01, 0.02, 0.5, 1];
    for (let i = 0; i < 30; i++) expect(g[i]).toBe(Math.abs(W[i]!) <= 127 * Math.fround(s[i % 5]!) ? 1 : 0);
    expect(Array.from(g).some((v) => v === 0)).toBe(true);
    expect(Array.from(g).some((v) => v === 1)).toBe(true);
    scale.dispose();
  });

  it('leaves no tensors behind (gradients, and a forward in tidy)', () => {
    const w = tf.variable(tf.tensor2d(W, [6, 5]));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const { value, grads } = tf.variableGrads(() => fakeQuantInt8(w, 1).square().sum() as tf.Scalar, [w]);
      value.dispose();
      tf.dispose(grads);
      tf.tidy(() => {
        fakeQuantInt8(w, 1);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    w.dispose();
  });
});
