import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../data/batches.js';
import type { ModelConfig } from '../config/schema.js';
import type { Transformer } from '../model/transformer.js';
import { maxAbsDiff, useTestBackend } from '../test-utils/backend.js';
import { fillPerHead, headLayout } from '../config/head-layout.js';
import { withHeadsRemoved } from './multipliers.js';
import { batchTensors } from './importance.js';
import { estimateHeadRelevance, relevanceForward } from './lrp.js';
import { TINY_MODEL, randomPairs, tinyModel } from './test-fixtures.js';

const V = 13;
const pairs = randomPairs(V, [
  [4, 3],
  [2, 5],
  [5, 2],
  [3, 3],
]);
const layout = headLayout(TINY_MODEL);
const ones = fillPerHead(layout, () => 1);
const ALL = ['enc-self', 'dec-self', 'dec-enc'] as const;

beforeAll(async () => {
  await useTestBackend();
});

describe('relevanceForward', () => {
  it.each(['pre', 'post'] as const)("gives the model's logits under both rules (%s-norm, with gates)", (norm) => {
    const model = tinyModel(V, { norm } as Partial<ModelConfig>);
    const b = makeBatch(pairs, [0, 1, 2, 3]);
    const { src, tgtIn, tgtOut } = batchTensors(b);
    const gate = tf.tensor1d([0.3, 1]);
    const gates = { 'enc-self': [null, gate], 'dec-enc': [gate, null] };
    const ref = tf.tidy(() => model.forward(src, tgtIn, { isTraining: false, gates }).dataSync());
    for (const rule of ['lrp', 'gradient-x-input'] as const) {
      const out = tf.tidy(() => relevanceForward(model, src, tgtIn, gates, rule).dataSync());
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-5);
    }
    tf.dispose([src, tgtIn, tgtOut, gate]);
    model.dispose();
  });

  it("rule gradient-x-input has the model's gradients; rule lrp stops them at the attention weights", () => {
    const model = tinyModel(V);
    const b = makeBatch(pairs, [0, 1]);
    const { src, tgtIn, tgtOut } = batchTensors(b);
    const sel = (logits: tf.Tensor) => logits.max(1).sum();
    // d(sum of row maxima) / d(per-token gate of dec-self layer 1): the rebuilt forward vs the model's own
    const viaModel = tf.tidy(() =>
      tf
        .grad((g: tf.Tensor) => sel(model.forward(src, tgtIn, { isTraining: false, gates: { 'dec-self': [null, g] } })))(tf.ones([2, 2, b.tgtLen]))
        .dataSync(),
    );
    const viaCopy = tf.tidy(() =>
      tf
        .grad((g: tf.Tensor) => sel(relevanceForward(model, src, tgtIn, { 'dec-self': [null, g] }, 'gradient-x-input')))(tf.ones([2, 2, b.tgtLen]))
        .dataSync(),
    );
    expect(maxAbsDiff(viaCopy, viaModel)).toBeLessThan(1e-5);
    // the query projection only acts through the softmax weights: frozen under 'lrp', live otherwise
    const wq = model.params.get('dec.1.cross.wq');
    const gradWq = (rule: 'lrp' | 'gradient-x-input') =>
      tf.tidy(
        () =>
          tf
            .variableGrads(() => sel(relevanceForward(model, src, tgtIn, undefined, rule)) as tf.Scalar, [wq])
            .grads[wq.name]!.abs()
            .max()
            .dataSync()[0]!,
      );
    expect(gradWq('lrp')).toBe(0);
    expect(gradWq('gradient-x-input')).toBeGreaterThan(1e-6);
    tf.dispose([src, tgtIn, tgtOut]);
    model.dispose();
  });
});

describe('estimateHeadRelevance', () => {
  let model: Transformer;
  beforeAll(() => {
    model = tinyModel(V);
  });
  afterAll(() => model.dispose());

  it.each(['lrp', 'gradient-x-input'] as const)('a closed head has relevance exactly 0 and every layer sums to 1 (%s)', async (rule) => {
    const base = withHeadsRemoved(ones, [
      { stack: 'enc-self', layer: 1, position: 0 },
      { stack: 'dec-enc', layer: 0, position: 1 },
    ]);
    const r = await estimateHeadRelevance(model, layout, pairs, base, { stacks: ALL, rule, maxTokensPerBatch: 12 });
    expect(r.steps).toBe(pairs.reduce((a, p) => a + p.tgt.length + 1, 0));
    expect(r.relevance['enc-self'][1]![0]).toBe(0);
    expect(r.relevance['dec-enc'][0]![1]).toBe(0);
    expect(r.relevance['enc-self'][1]![1]).toBeCloseTo(1, 6); // the other head of the layer takes it all
    for (const stack of ALL)
      for (const layer of r.relevance[stack]) {
        expect(layer.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 6);
        for (const v of layer) expect(v).toBeGreaterThanOrEqual(0);
      }
  });

  it('a layer with every head closed has relevance 0 everywhere', async () => {
    const base = withHeadsRemoved(ones, [
      { stack: 'dec-self', layer: 0, position: 0 },
      { stack: 'dec-self', layer: 0, position: 1 },
    ]);
    const r = await estimateHeadRelevance(model, layout, pairs.slice(0, 2), base, { stacks: ['dec-self'], rule: 'lrp', maxTokensPerBatch: 64 });
    expect(r.relevance['dec-self'][0]).toEqual([0, 0]);
    expect(r.relevance['dec-self'][1]!.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 6);
    // stacks not asked for are 0
    expect(r.relevance['enc-self'].flat().every((v) => v === 0)).toBe(true);
  });

  it.each([
    ['lrp', 'one linear pass per layer', 'pre', { tangent: true }],
    ['lrp', 'one linear pass per layer', 'post', { tangent: true }],
    ['lrp', 'a backward pass per step on its prefix (the default)', 'pre', {}],
    ['lrp', 'a backward pass per step on its prefix (the default)', 'post', {}],
    ['gradient-x-input', 'a backward pass per step on its prefix', 'post', {}],
  ] as const)('rule %s, %s, gives what a backward pass per step on the whole batch gave (%s-norm)', async (rule, _how, norm, extra) => {
    const m = norm === 'pre' ? model : tinyModel(V, { norm: 'post' }, 8);
    // sentences of different lengths in one batch (padding, rows that end early), a half-open and a closed gate
    const mixed = randomPairs(
      V,
      [
        [6, 2],
        [2, 7],
        [4, 4],
        [7, 5],
        [3, 1],
      ],
      21,
    );
    const base = fillPerHead(layout, (s, l, j) => (s === 'enc-self' && l === 0 && j === 1 ? 0.4 : s === 'dec-enc' && l === 1 && j === 0 ? 0 : 1));
    const o = { stacks: ALL, rule, maxTokensPerBatch: 64 };
    const now = await estimateHeadRelevance(m, layout, mixed, base, { ...o, ...extra });
    const before = await estimateHeadRelevance(m, layout, mixed, base, { ...o, legacy: true });
    if (m !== model) m.dispose();
    expect(now.steps).toBe(before.steps);
    for (const stack of ALL) expect(maxAbsDiff(now.relevance[stack].flat(), before.relevance[stack].flat())).toBeLessThan(1e-5);
    // not all alike: the comparison is between informative numbers
    expect(Math.max(...now.relevance['enc-self'].flat()) - Math.min(...now.relevance['enc-self'].flat())).toBeGreaterThan(0.01);
  });

  it('does not leak tensors', async () => {
    const o = { stacks: ALL, rule: 'lrp' as const, maxTokensPerBatch: 12 };
    await estimateHeadRelevance(model, layout, pairs.slice(0, 2), ones, o);
    const before = tf.memory().numTensors;
    await estimateHeadRelevance(model, layout, pairs.slice(0, 2), ones, o);
    expect(tf.memory().numTensors).toBe(before);
  });
});
