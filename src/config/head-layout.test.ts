/**
 * The one head layout: position <-> original id round trips, the shape is the layout's, keys name original
 * ids, and a pruned layout is the kept sets of the mask that produced it (independent reference: the mask).
 */
import { describe, expect, it } from '@jest/globals';
import { DEFAULT_CONFIG } from './defaults.js';
import { ATTENTION_TYPES, parseHeadKey } from './head-id.js';
import { headLayout, headsPerLayer, listHeads, originalKey, originalMaskShape, positionOf, shapeKeys } from './head-layout.js';
import type { ModelConfig } from './schema.js';
import { maskFromKeptSets, maskToKeptSets } from '../io/head-mask.js';
import { CheckpointError } from '../util/errors.js';

const base: ModelConfig = { ...DEFAULT_CONFIG.model, encoderLayers: 2, decoderLayers: 1, heads: 4, dModel: 16, keptHeads: null };
const pruned: ModelConfig = { ...base, keptHeads: { 'enc-self': [[0, 2, 3], []], 'dec-self': [[1]], 'dec-enc': [[0, 1, 2, 3]] } };

describe('headLayout', () => {
  it('maps every position to its original id and back, and names it by the original id', () => {
    for (const c of [base, pruned]) {
      const layout = headLayout(c);
      const heads = listHeads(layout);
      expect(heads.length).toBe(ATTENTION_TYPES.reduce((a, s) => a + headsPerLayer(c)[s].reduce((x, y) => x + y, 0), 0));
      for (const h of heads) {
        expect(positionOf(layout, h.stack, h.layer, h.head)).toBe(h.position);
        expect(originalKey(layout, h.stack, h.layer, h.position)).toBe(h.key);
        expect(parseHeadKey(h.key)).toEqual({ stack: h.stack, layer: h.layer, head: h.head });
      }
    }
    expect(positionOf(headLayout(pruned), 'enc-self', 0, 1)).toBe(-1);
  });
  it('has the config heads per layer, and an unpruned layout keys exactly the original shape', () => {
    expect(headsPerLayer(pruned)).toEqual({ 'enc-self': [3, 0], 'dec-self': [1], 'dec-enc': [4] });
    expect(headsPerLayer(base)).toEqual(originalMaskShape(base));
    const shape = originalMaskShape(base);
    expect(listHeads(headLayout(base)).map((h) => h.key)).toEqual(ATTENTION_TYPES.flatMap((s) => shapeKeys(shape, s).flat()));
  });
  it('is the kept sets of the mask it was pruned with', () => {
    const layout = headLayout(pruned);
    const mask = maskFromKeptSets(layout.originalIds, layout.originalShape, 'test');
    expect(maskToKeptSets(mask, layout.originalShape)).toEqual(layout.originalIds);
  });
  it('refuses keptHeads that do not fit the layer counts', () => {
    expect(() => headLayout({ ...pruned, keptHeads: { ...pruned.keptHeads!, 'dec-self': [] } })).toThrow(CheckpointError);
  });
});
