import * as tf from '@tensorflow/tfjs';
import type { AttentionType } from '../config/head-id.js';
import { makeBatch, planEvalBatches, type Batch } from '../data/batches.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { labelSmoothedCrossEntropySum, targetWeights } from '../train/objective.js';
import { useTestBackend } from '../test-utils/backend.js';
import { fillPerHead, headLayout } from '../config/head-layout.js';
import { withHeadsRemoved } from './multipliers.js';
import { IMPORTANCE_FORMS, estimateMichelImportance, headGateGradients, importanceScores, importanceSettingProblems, normalizeByLayer } from './importance.js';
import { TINY_MODEL, randomPairs, tinyModel } from './test-fixtures.js';

const V = 13;
const EPS_LS = 0.1;
const layout = headLayout(TINY_MODEL);
const ones = fillPerHead(layout, () => 1);
const pairs = randomPairs(V, [
  [4, 3],
  [2, 5],
  [5, 2],
  [3, 3],
]);
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

const ALL: AttentionType[] = ['enc-self', 'dec-self', 'dec-enc'];

/** dL(x)/dxi_h of one sentence alone (a batch of one, no padding), by finite differences of a per-head gate. */
function sentenceDerivative(i: number, stack: AttentionType, layer: number, head: number): number {
  const b = makeBatch(pairs, [i]);
  return derivative((d) => {
    const vals = [1, 1];
    vals[head] = 1 + d;
    const t = tf.tensor1d(vals);
    const l = lossWith(b, oneGate(stack, layer, t));
    t.dispose();
    return l;
  }, 0.05);
}

describe('Michel importance against finite differences', () => {
  it("per-example form: every sentence's dL(x)/dxi_h, for every head, matches the sentence alone by finite differences", async () => {
    // one padded batch of all four sentences: each row's gradient must be its own sentence's derivative
    const b = makeBatch(pairs, [0, 1, 2, 3]);
    const g = await headGateGradients(model, layout, b, ones, ALL, EPS_LS);
    const imp = await estimateMichelImportance(model, layout, pairs, ones, { stacks: ALL, maxTokensPerBatch: 64, labelSmoothing: EPS_LS });
    expect(imp.sentences).toBe(4);
    let checked = 0;
    for (const stack of ALL)
      for (const layer of [0, 1])
        for (const head of [0, 1]) {
          let sumAbs = 0;
          for (let r = 0; r < 4; r++) {
            const fd = sentenceDerivative(b.indices[r]!, stack, layer, head);
            // float32 losses of a few units: each evaluation carries ~1e-6 rounding, which the fourth-order
            // stencil multiplies by 18 / (12 h) = 30; its truncation error (~h^4 f''''' / 30) is smaller on
            // this smooth model. Measured: largest difference 4.8e-5 over the 48 values, which lie in
            // 0.010..0.98, so 2e-4 is four times the noise and fifty times below the smallest value
            expect(Math.abs(g.perSentence[stack][layer]![head]![r]! - fd)).toBeLessThan(2e-4);
            sumAbs += Math.abs(fd);
            checked++;
          }
          expect(Math.abs(imp.perExample[stack][layer]![head]! - sumAbs / 4)).toBeLessThan(1e-4);
          // the per-sentence values are not all tiny: the comparison has something to compare
          expect(sumAbs).toBeGreaterThan(1e-3);
        }
    expect(checked).toBe(12 * 4);
  });

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
    for (const [stack, layer, head] of [
      ['dec-enc', 1, 1],
      ['enc-self', 0, 0],
    ] as Array<[AttentionType, number, number]>) {
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

  it('the three forms differ as documented: batch <= example <= token (as sums), and only the batch form depends on the batching', async () => {
    const opts = { stacks: ALL, labelSmoothing: EPS_LS };
    const small = await estimateMichelImportance(model, layout, pairs, ones, { ...opts, maxTokensPerBatch: 12 });
    const large = await estimateMichelImportance(model, layout, pairs, ones, { ...opts, maxTokensPerBatch: 64 });
    expect(small.batches).toBeGreaterThan(large.batches);
    let strictlyBelowExample = 0;
    let strictlyBelowToken = 0;
    for (const stack of ALL)
      for (const layer of [0, 1])
        for (const head of [0, 1]) {
          const n = large.queryTokens[stack];
          // undo the divisions: the sums of |.| over batches, sentences and tokens
          const batchSum = large.perBatch[stack][layer]![head]! * n;
          const exampleSum = large.perExample[stack][layer]![head]! * large.sentences;
          const tokenSum = large.perToken[stack][layer]![head]! * n;
          expect(batchSum).toBeLessThanOrEqual(exampleSum + 1e-6);
          expect(exampleSum).toBeLessThanOrEqual(tokenSum + 1e-6);
          if (batchSum < exampleSum - 1e-3) strictlyBelowExample++;
          if (exampleSum < tokenSum - 1e-3) strictlyBelowToken++;
          // per example and per token are sums over sentences / tokens: the batching does not change them
          expect(small.perExample[stack][layer]![head]!).toBeCloseTo(large.perExample[stack][layer]![head]!, 5);
          expect(small.perToken[stack][layer]![head]!).toBeCloseTo(large.perToken[stack][layer]![head]!, 5);
        }
    // the inequalities are strict for some heads: the forms are different scores, not rescalings
    expect(strictlyBelowExample).toBeGreaterThan(0);
    expect(strictlyBelowToken).toBeGreaterThan(0);
    // ... and the batch form does depend on the batching
    const moved = ALL.flatMap((s) => [0, 1].flatMap((l) => [0, 1].map((h) => Math.abs(small.perBatch[s][l]![h]! - large.perBatch[s][l]![h]!))));
    expect(Math.max(...moved)).toBeGreaterThan(1e-3);
  });

  it('with one sentence per batch the batch form is the example form over the token count', async () => {
    const imp = await estimateMichelImportance(model, layout, pairs, ones, { stacks: ['dec-enc'], maxTokensPerBatch: 64, labelSmoothing: EPS_LS });
    // batches of one sentence, run one by one: the batch form's sum of |batch gradient|
    const batchOfOneSum = fillPerHead(layout, () => 0);
    for (let i = 0; i < pairs.length; i++) {
      const g = await headGateGradients(model, layout, makeBatch(pairs, [i]), ones, ['dec-enc'], EPS_LS);
      for (const l of [0, 1]) for (const h of [0, 1]) batchOfOneSum['dec-enc'][l]![h]! += Math.abs(g.signed['dec-enc'][l]![h]!);
    }
    // ... equals the example form's sum computed in one padded batch
    for (const l of [0, 1]) for (const h of [0, 1]) expect(batchOfOneSum['dec-enc'][l]![h]!).toBeCloseTo(imp.perExample['dec-enc'][l]![h]! * imp.sentences, 4);
  });

  it('layer normalisation gives every layer of every form unit l2 norm and keeps the order within a layer; none keeps the raw values', async () => {
    const imp = await estimateMichelImportance(model, layout, pairs, ones, { stacks: ALL, maxTokensPerBatch: 64, labelSmoothing: EPS_LS });
    for (const form of IMPORTANCE_FORMS) {
      const n = importanceScores(imp, form, 'layer');
      const raw = importanceScores(imp, form, 'none');
      for (const stack of ALL)
        for (const l of [0, 1]) {
          expect(Math.hypot(...n[stack][l]!)).toBeCloseTo(1, 6);
          expect(Math.sign(n[stack][l]![0]! - n[stack][l]![1]!)).toBe(Math.sign(raw[stack][l]![0]! - raw[stack][l]![1]!));
        }
    }
    expect(importanceScores(imp, 'example', 'none')).toBe(imp.perExample);
    expect(importanceScores(imp, 'token', 'none')).toBe(imp.perToken);
    expect(importanceScores(imp, 'batch', 'none')).toBe(imp.perBatch);
  });

  it('bad settings: one line each, naming the setting, the choices and what was found', () => {
    expect(importanceSettingProblems(undefined, undefined, { form: '--f', normalize: '--n' })).toEqual([]);
    expect(importanceSettingProblems('sentence', 'l2', { form: '--importance-form', normalize: '--importance-normalize' })).toEqual([
      '--importance-form: expected example, batch, token, got "sentence"',
      '--importance-normalize: expected layer, none, got "l2"',
    ]);
  });

  it('per-layer l2 normalisation gives unit-norm layers', () => {
    const n = normalizeByLayer({
      'enc-self': [
        [3, 4],
        [0, 0],
      ],
      'dec-self': [],
      'dec-enc': [[1]],
    });
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
