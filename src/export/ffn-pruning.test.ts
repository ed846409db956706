/**
 * FFN-neuron pruning on a tiny model: exactly round(fraction · n) units go (per layer, or globally), the
 * lowest-scoring by the L2 norm of their in + out weights; the physically shrunk model (per-layer
 * `ffnWidths`) gives the masked model's logits; the config key validates and defaults to off.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import { crossFieldProblems } from '../config/load.js';
import { HeadsConfigSchema, type ModelConfig } from '../config/schema.js';
import { FEATURE_KEYS_OFF_BY_DEFAULT } from '../experiments/stage.js';
import { createTransformer } from '../model/transformer.js';
import type { NamedArrays } from '../io/checkpoint.js';
import { useTestBackend, maxAbsDiff } from '../test-utils/backend.js';
import { ConfigError } from '../util/errors.js';
import { Rng } from '../util/random.js';
import { ffnUnitScores, maskFfnUnits, planFfnPruning, pruneFfnUnits } from './ffn-pruning.js';
import { createTransformerFromArrays } from './prune-model.js';

beforeAll(async () => {
  await useTestBackend();
});

const CONFIG: ModelConfig = { ...DEFAULT_CONFIG.model, encoderLayers: 2, decoderLayers: 2, heads: 2, dModel: 16, dFF: 24, dropout: 0, maxPositions: 32 };
const V = 20;

let params: NamedArrays;
beforeAll(async () => {
  const m = createTransformer(CONFIG, V, new Rng(1));
  const rng = new Rng(5);
  // random weights (and biases) with a spread of unit norms, so the order is not an accident of init
  for (const [n, v] of m.params.vars)
    m.params.assign(
      n,
      v.shape,
      Float32Array.from({ length: v.size }, (_, i) => (n.endsWith('.g') ? 1 : 0) + rng.normal() * 0.5 * (n.includes('ffn.w') ? 0.2 + (i % 7) / 3 : 1)),
    );
  params = await m.params.toArrays();
  m.dispose();
});

function logitsOf(config: ModelConfig, p: NamedArrays): Float32Array {
  const model = createTransformerFromArrays(config, V, p);
  const rng = new Rng(9);
  const ids = (n: number) => Int32Array.from({ length: n }, () => 3 + rng.int(V - 3));
  const out = tf.tidy(
    () => model.forward(tf.tensor2d(ids(3 * 7), [3, 7], 'int32'), tf.tensor2d(ids(3 * 5), [3, 5], 'int32'), { isTraining: false }).dataSync() as Float32Array,
  );
  model.dispose();
  return Float32Array.from(out);
}

describe('FFN neuron pruning', () => {
  it('scores a unit by the L2 norm of its W1 column and W2 row', () => {
    const p: NamedArrays = {
      'x.w1': { shape: [2, 3], data: Float32Array.from([1, 0, 2, 2, 0, 0]) },
      'x.w2': { shape: [3, 2], data: Float32Array.from([0, 2, 0, 0, 1, 1]) },
    };
    expect(Array.from(ffnUnitScores(p, 'x', 2, 3))).toEqual([3, 0, Math.sqrt(6)]);
  });

  it('per layer: exactly round(f·dFF) units per layer, the lowest scores', () => {
    const plans = planFfnPruning(params, CONFIG, { fraction: 0.3 });
    expect(plans.map((p) => p.prefix)).toEqual(['enc.0.ffn', 'enc.1.ffn', 'dec.0.ffn', 'dec.1.ffn']);
    for (const p of plans) {
      expect(p.removed.length).toBe(Math.round(0.3 * 24));
      const s = ffnUnitScores(params, p.prefix, 16, 24);
      const worstRemoved = Math.max(...p.removed.map((j) => s[j]!));
      const bestKeptBelow = Math.min(...Array.from(s).filter((_, j) => !p.removed.includes(j)));
      expect(worstRemoved).toBeLessThan(bestKeptBelow);
    }
  });

  it('global: exactly round(f·total) units overall, the lowest scores across layers', () => {
    const plans = planFfnPruning(params, CONFIG, { fraction: 0.4, scope: 'global' });
    expect(plans.reduce((a, p) => a + p.removed.length, 0)).toBe(Math.round(0.4 * 4 * 24));
    const all = plans.flatMap((p) => Array.from(ffnUnitScores(params, p.prefix, 16, 24), (s, j) => ({ s, removed: p.removed.includes(j) })));
    expect(Math.max(...all.filter((u) => u.removed).map((u) => u.s))).toBeLessThan(Math.min(...all.filter((u) => !u.removed).map((u) => u.s)));
  });

  it.each(['per-layer', 'global'] as const)("%s: the shrunk model gives the masked model's logits (max |diff| < 1e-5)", (scope) => {
    const plans = planFfnPruning(params, CONFIG, { fraction: 0.5, scope });
    const shrunk = pruneFfnUnits(params, CONFIG, plans);
    expect(shrunk.config.ffnWidths).not.toBeNull();
    expect(shrunk.report.after).toBe(shrunk.report.before - plans.reduce((a, p) => a + p.removed.length, 0));
    expect(shrunk.params['enc.0.ffn.w1']!.shape).toEqual([16, shrunk.config.ffnWidths!.encoder[0]]);
    const masked = logitsOf(CONFIG, maskFfnUnits(params, CONFIG, plans));
    const pruned = logitsOf(shrunk.config, shrunk.params);
    expect(maxAbsDiff(masked, pruned)).toBeLessThan(1e-5);
    // and masking changed something: the check is not vacuous
    expect(maxAbsDiff(masked, logitsOf(CONFIG, params))).toBeGreaterThan(1e-3);
    // pruning a shrunk model again works on its per-layer widths
    const again = planFfnPruning(shrunk.params, shrunk.config, { fraction: 0.25 });
    expect(again.map((p) => p.width)).toEqual([...shrunk.config.ffnWidths!.encoder, ...shrunk.config.ffnWidths!.decoder]);
  });

  it('global pruning never empties a layer, and refuses a fraction that would', () => {
    expect(() => planFfnPruning(params, CONFIG, { fraction: 0.99, scope: 'global' })).toThrow(/--ffn-prune: .*would empty a layer/);
    const plans = planFfnPruning(params, CONFIG, { fraction: 0.9, scope: 'global' });
    for (const p of plans) expect(p.removed.length).toBeLessThan(p.width);
  });

  it.each([[1], [-0.25], [NaN]])('refuses fraction %p naming --ffn-prune', (f) => {
    expect(() => planFfnPruning(params, CONFIG, { fraction: f })).toThrow(ConfigError);
    expect(() => planFfnPruning(params, CONFIG, { fraction: f })).toThrow(/--ffn-prune: expected a fraction in \[0, 1\)/);
  });

  it('model.ffnWidths: off (null) by default, registered as off for stage hashes, validated against layer counts', () => {
    expect(DEFAULT_CONFIG.model.ffnWidths).toBeNull();
    expect(FEATURE_KEYS_OFF_BY_DEFAULT['model.ffnWidths']).toBeNull();
    const ok = HeadsConfigSchema.parse({ ...DEFAULT_CONFIG, model: { ...DEFAULT_CONFIG.model, ffnWidths: { encoder: [10, 12], decoder: [3, 4] } } });
    expect(crossFieldProblems(ok, 'x.yaml')).toEqual([]);
    const bad = HeadsConfigSchema.parse({ ...DEFAULT_CONFIG, model: { ...DEFAULT_CONFIG.model, ffnWidths: { encoder: [10], decoder: [3, 4] } } });
    expect(crossFieldProblems(bad, 'x.yaml')).toEqual(['x.yaml: model.ffnWidths.encoder: expected 2 layers (model.encoderLayers), got 1']);
    expect(
      HeadsConfigSchema.safeParse({ ...DEFAULT_CONFIG, model: { ...DEFAULT_CONFIG.model, ffnWidths: { encoder: [0, 1], decoder: [3, 4] } } }).success,
    ).toBe(false);
  });

  it('a model config without the key (saved before it existed) builds dFF-wide FFNs', () => {
    const { ffnWidths: _omit, ...old } = CONFIG;
    const m = createTransformer(old as ModelConfig, V, new Rng(1));
    expect(m.params.get('dec.1.ffn.w1').shape).toEqual([16, 24]);
    m.dispose();
  });
});
