import * as tf from '@tensorflow/tfjs';
import { labelSmoothedCrossEntropySum, nllSum, targetWeights } from './objective.js';
import { inverseSqrtLr } from './schedule.js';
import { Adam, clipByGlobalNorm } from './adam.js';
import { useTestBackend, maxAbsDiff } from '../test-utils/backend.js';

beforeAll(() => useTestBackend());

/** Reference: -sum_tokens w * sum_v q_v log softmax(l)_v with q = (1-eps) onehot + eps/V. */
function naive(logits: tf.Tensor2D, y: tf.Tensor1D, w: tf.Tensor1D, eps: number): tf.Scalar {
  const V = logits.shape[1];
  const q = tf
    .oneHot(y, V)
    .mul(1 - eps)
    .add(eps / V);
  return tf.logSoftmax(logits).mul(q).sum(1).neg().mul(w).sum() as tf.Scalar;
}

describe('label-smoothed cross-entropy', () => {
  const N = 7,
    V = 11;
  const logits = tf.randomNormal([N, V], 0, 3, 'float32', 5) as tf.Tensor2D;
  const y = tf.tensor1d([1, 4, 10, 0, 3, 3, 7], 'int32');
  const w = tf.tensor1d([1, 1, 1, 0, 1, 1, 0]);

  it.each([0, 0.1, 0.3])('value and gradient equal the naive formula (eps %p)', (eps) => {
    const fused = tf.tidy(() => labelSmoothedCrossEntropySum(logits, y, w, eps).dataSync()[0]!);
    const ref = tf.tidy(() => naive(logits, y, w, eps).dataSync()[0]!);
    expect(fused).toBeCloseTo(ref, 4);
    const g1 = tf.tidy(() =>
      tf
        .grad((l: tf.Tensor) => labelSmoothedCrossEntropySum(l as tf.Tensor2D, y, w, eps))(logits)
        .dataSync(),
    );
    const g2 = tf.tidy(() =>
      tf
        .grad((l: tf.Tensor) => naive(l as tf.Tensor2D, y, w, eps))(logits)
        .dataSync(),
    );
    expect(maxAbsDiff(g1, g2)).toBeLessThan(1e-5);
  });

  it('NLL by hand for one token', () => {
    // logits [0, ln 3] -> p = [1/4, 3/4]; -log p[1] = log(4/3)
    const v = tf.tidy(() => nllSum(tf.tensor2d([[0, Math.log(3)]]), tf.tensor1d([1], 'int32'), tf.tensor1d([1])).dataSync()[0]!);
    expect(v).toBeCloseTo(Math.log(4 / 3), 6);
  });

  it('pad weights come from target ids', () => {
    expect(
      Array.from(
        targetWeights(
          tf.tensor2d(
            [
              [5, 2, 0],
              [3, 0, 0],
            ],
            [2, 3],
            'int32',
          ),
        ).dataSync(),
      ),
    ).toEqual([1, 1, 0, 1, 0, 0]);
  });
});

describe('schedule and optimizer', () => {
  it('inverse square root schedule peaks at warm-up', () => {
    expect(inverseSqrtLr(50, 1e-3, 100)).toBeCloseTo(5e-4);
    expect(inverseSqrtLr(100, 1e-3, 100)).toBeCloseTo(1e-3);
    expect(inverseSqrtLr(400, 1e-3, 100)).toBeCloseTo(5e-4);
    expect(inverseSqrtLr(7, 1e-3, 0)).toBe(1e-3);
  });

  it('Adam matches the update written out by hand for two steps', () => {
    const p = tf.variable(tf.tensor1d([1, -2]));
    const params = new Map([['p', p]]);
    const opt = new Adam({ beta1: 0.9, beta2: 0.98, eps: 1e-9 });
    const g1 = [0.5, -1],
      g2 = [0.1, 0.3];
    opt.apply(params, new Map([['p', tf.tensor1d(g1)]]), 0.1);
    opt.apply(params, new Map([['p', tf.tensor1d(g2)]]), 0.1);
    const expected = [1, -2].map((x0, i) => {
      let x = x0,
        m = 0,
        v = 0;
      [g1[i]!, g2[i]!].forEach((g, t) => {
        m = 0.9 * m + 0.1 * g;
        v = 0.98 * v + 0.02 * g * g;
        x -= (0.1 * (m / (1 - 0.9 ** (t + 1)))) / (Math.sqrt(v / (1 - 0.98 ** (t + 1))) + 1e-9);
      });
      return x;
    });
    expect(maxAbsDiff(p.dataSync(), expected)).toBeLessThan(1e-6);
    opt.dispose();
    p.dispose();
  });

  it('clips by global norm', () => {
    const grads = new Map([
      ['a', tf.tensor1d([3, 0])],
      ['b', tf.tensor1d([0, 4])],
    ]);
    const { grads: c, norm } = clipByGlobalNorm(grads, 1);
    expect(norm).toBeCloseTo(5);
    expect(maxAbsDiff([...c.get('a')!.dataSync(), ...c.get('b')!.dataSync()], [0.6, 0, 0, 0.8])).toBeLessThan(1e-5);
  });
});
