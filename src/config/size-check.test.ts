/**
 * The size check's estimate is a lower bound on the parameters of the model actually built (so it never
 * refuses a model that fits), and it refuses the configs that cannot work, naming the key.
 */
import { loadConfig } from './load.js';
import { estimateParameters } from './size-check.js';
import { createTransformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { useTestBackend } from '../test-utils/backend.js';
import type { HeadsConfig } from './schema.js';

beforeAll(() => useTestBackend());

describe('size check', () => {
  it.each([
    ['the default', []],
    ['untied embeddings, post-norm, 3+1 layers', ['model.tieEmbeddings=false', 'model.norm=post', 'model.encoderLayers=3', 'model.decoderLayers=1']],
    ['mixture of experts in the decoder', ['model.moe={experts: 3, topK: 1, capacityFactor: 1, auxLossWeight: 0.01, layers: decoder}']],
    ['pruned FFN widths', ['model.ffnWidths={encoder: [100, 7], decoder: [256, 1]}']],
  ])('estimate <= the parameters of the built model: %s', (_name, overrides) => {
    const c = loadConfig(null, overrides) as HeadsConfig;
    for (const vocab of [4, 500]) {
      const model = createTransformer(c.model, vocab, new Rng(1));
      try {
        const est = estimateParameters(c).parameters;
        expect(est).toBeLessThanOrEqual(model.params.count());
        expect(est).toBeGreaterThan(0.5 * (model.params.count() - vocab * c.model.dModel * (c.model.tieEmbeddings ? 1 : 2))); // not vacuous
      } finally {
        model.dispose();
      }
    }
  });

  it.each([
    ['model.dModel=65536', /model\.dModel: the model has at least 1\.03e\+11 parameters/],
    ['model.maxPositions=40000000', /model\.maxPositions: the position table .* more than one tensor can hold/],
    ['model.dFF=40000000', /model\.dFF: an FFN matrix .* more than one tensor can hold/],
    ['train.maxTokensPerBatch=100', /train\.maxTokensPerBatch: 100 cannot hold one pair of data\.maxLen = 100 tokens/],
  ])('refuses %s', (override, message) => {
    expect(() => loadConfig(null, [override])).toThrow(message);
  });

  it('counts the micro-batches a step is split into', () => {
    expect(() => loadConfig(null, ['train.maxTokensPerBatch=200', 'train.accumulateSteps=2'])).toThrow(/expected at least 202/);
    expect(() => loadConfig(null, ['train.maxTokensPerBatch=202', 'train.accumulateSteps=2'])).not.toThrow();
  });
});
