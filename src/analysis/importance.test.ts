import * as tf from '@tensorflow/tfjs';
import type { AttentionType } from '../config/head-id.js';
import { makeBatch, planEvalBatches, type Batch } from '../data/batches.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { labelSmoothedCrossEntropySum, targetWeights } from '../train/objective.js';
import { useTestBackend } from '../test-utils/backend.js';
import { fillPerHead, headLayout, withHeadsRemoved } from './head-layout.js';
import { estimateMichelImportance, headGateGradients, normalizeByLayer } from './importance.js';
import { TINY_MODEL, randomPairs, tinyModel } from './test-fixtures.js';

const V = 13;
const EPS_LS = 0.1;
const layout = headLayout(TINY_MODEL);
const ones = fillPerHead(layout, () => 1);
const pairs = randomPairs(V, [[4, 3], [2, 5], [5, 2], [3, 3]]);
let model: Transformer;

beforeAll(async () => {
  await useTestBackend();
  model = tinyModel(V);
  // ReLU kinks make the loss non-smooth in the gates (a 0.01 step already crosses some): with the
  // feed-forward output weights at 0 every remaining op (softmax, layer norm, linear maps) is smooth,
  // so fourth-order finite differences are accurate to float32 noise
  for (const name of model.params.names()) if (name.endsWith('.ffn.w2')) tf.tidy(() => model.params.get(name).assign(tf.zerosLike(model.params.get(name))));
});
afterAll(() => model.dispose());

/** The summed label-smoothed loss of a batch with the given gates, computed directly on the model. */
function lossWith(b: Batch, gates: GateTensors): number {
  return tf.tidy(() => {
    const src = tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32');
    const tgtIn = tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32');
    const tgtOut = tf.tensor2d(b.tgtOut, [b.batchSize, b.tgtLen], 'int32');
    const logits = model.forward(src, tgtIn, { isTraining: false, gates });
    return labelSmoothedCrossEntropySum(logits, tgtOut.reshape([-1]) as tf.Tensor1D, targetWeights(tgtOut), EPS_LS).dataSync()[0]!;
  });
}

/** Fourth-order central difference of f at 0. */
function derivative(f: (d: number) => number, h: number): number {
  return (f(-2 * h) - 8 * f(-h) + 8 * f(h) - f(2 * h)) / (12 * h);
}

/** A gates object with one layer's gate tensor. */
function oneGate(stack: AttentionType, layer: number, t: tf.Tensor): GateTensors {
  const list: Array<tf.Tensor | null> = [null, null];
  list[layer] = t;
  return { [stack]: list };
}

const probes: Array<[AttentionType, number, number]> = [
  ['enc-self', 0, 1],
  ['enc-self', 1, 0],
  ['dec-self', 0, 0],
  ['dec-self', 1, 1],
  ['dec-enc', 0, 1],
  ['dec-enc', 1, 0],
];

describe('Michel importance against finite differences', () => {
  it('per-batch form: the signed sum is dL/dgate_h of a per-head gate, for every attention type', async () => {
    const b = makeBatch(pairs, [0, 1, 2, 3]);
    const g = await headGateGradients(model, layout, b, ones, ['enc-self', 'dec-self', 'dec-enc'], EPS_LS);
    for (const [stack, layer, head] of probes) {
      const fd = derivative((d) => {
        const vals = [1, 1];
        vals[head] = 1 + d;
        const t = tf.tensor1d(vals);
        const l = lossWith(b, oneGate(stack, layer, t));
        t.dispose();
        return l;
      }, 0.05);
      expect(Math.abs(g.signed[stack][layer]![head]! - fd)).toBeLessThan(5e-4);
    }
  });

  it('per-token form: mean over real query tokens of |dL/dgate[b,h,t]|, each token checked by finite differences', async () => {
    const b = makeBatch(pairs, [0, 1]);
    const g = await headGateGradients(model, layout, b, ones, ['dec-enc', 'enc-self'], EPS_LS);
    for (const [stack, layer, head] of [['dec-enc', 1, 1], ['enc-self', 0, 0]] as Array<[AttentionType, number, number]>) {
      const Tq = stack === 'enc-self' ? b.srcLen : b.tgtLen;
      const queries = stack === 'enc-self' ? b.src : b.tgtIn;
      let sumAbs = 0;
      let n = 0;
      for (let r = 0; r < b.batchSize; r++)
        for (let t = 0; t < Tq; t++) {
          if (queries[r * Tq + t] === 0) continue; // padding queries do not count
          n++;
          const fd = derivative((d) => {
            const vals = new Float32Array(b.batchSize * 2 * Tq).fill(1);
            vals[(r * 2 + head) * Tq + t] = 1 + d;
            const gate = tf.tensor3d(vals, [b.batchSize, 2, Tq]);
            const l = lossWith(b, oneGate(stack, layer, gate));
            gate.dispose();
            return l;
          }, 0.05);
          sumAbs += Math.abs(fd);
        }
      expect(n).toBe(g.queryTokens[stack]);
      expect(Math.abs(g.perTokenAbs[stack][layer]![head]! - sumAbs)).toBeLessThan(1e-3);
    }
  });

  it('over several batches: per-batch sums |batch gradient|, per-token sums |token gradients|, both / tokens', async () => {
    const plan = planEvalBatches(pairs, 12);
    expect(plan.length).toBeGreaterThan(1);
    const imp = await estimateMichelImportance(model, layout, pairs, ones, { stacks: ['dec-self'], maxTokensPerBatch: 12, labelSmoothing: EPS_LS });
    let expected = 0;
    let tokens = 0;
    for (const idx of plan) {
      const b = makeBatch(pairs, idx);
      tokens += b.tgtTokens;
      expected += Math.abs(
        derivative((d) => {
          const t = tf.tensor1d([1 + d, 1]);
          const l = lossWith(b, oneGate('dec-self', 1, t));
          t.dispose();
          return l;
        }, 0.05),
      );
    }
    expect(imp.queryTokens['dec-self']).toBe(tokens);
    expect(Math.abs(imp.perBatch['dec-self'][1]![0]! - expected / tokens)).toBeLessThan(1e-4);
    // |sum| <= sum |.|: the per-batch form never exceeds the per-token form
    for (const l of [0, 1]) for (const h of [0, 1]) expect(imp.perBatch['dec-self'][l]![h]!).toBeLessThanOrEqual(imp.perToken['dec-self'][l]![h]! + 1e-7);
    // stacks not asked for stay 0
    expect(imp.perToken['enc-self'].flat().every((v) => v === 0)).toBe(true);
  });

  it('a head whose gate is closed has importance exactly 0; the others do not', async () => {
    const closed = withHeadsRemoved(ones, [{ stack: 'dec-enc', layer: 0, position: 1 }]);
    const imp = await estimateMichelImportance(model, layout, pairs, closed, { stacks: ['dec-enc'], maxTokensPerBatch: 64, labelSmoothing: 0 });
    expect(imp.perToken['dec-enc'][0]![1]).toBe(0);
    expect(imp.perBatch['dec-enc'][0]![1]).toBe(0);
    expect(imp.perToken['dec-enc'][0]![0]).toBeGreaterThan(0);
  });

  it('per-layer l2 normalisation gives unit-norm layers', () => {
    const n = normalizeByLayer({ 'enc-self': [[3, 4], [0, 0]], 'dec-self': [], 'dec-enc': [[1]] });
    expect(n['enc-self'][0]).toEqual([0.6, 0.8]);
    expect(n['enc-self'][1]).toEqual([0, 0]);
    expect(n['dec-enc'][0]![0]).toBeCloseTo(1, 12);
  });

  it('does not leak tensors', async () => {
    const opts = { stacks: ['enc-self', 'dec-self', 'dec-enc'] as AttentionType[], maxTokensPerBatch: 12, labelSmoothing: EPS_LS };
    await estimateMichelImportance(model, layout, pairs, ones, opts);
    const before = tf.memory().numTensors;
    await estimateMichelImportance(model, layout, pairs, withHeadsRemoved(ones, [{ stack: 'enc-self', layer: 1, position: 0 }]), opts);
    expect(tf.memory().numTensors).toBe(before);
  });
});
