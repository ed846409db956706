/**
 * Analysis on an imported Marian model (swish FFNs, post-norm, split positions, logit bias): LRP's one
 * linear pass per layer (lrp-tangent.ts, linearised with swish' instead of ReLU's mask) gives what a
 * backward pass per step through the real model gives, and a gated head's relevance is informative.
 * Needs no python: the fixture is read by the TypeScript importer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { fillPerHead, headLayout } from '../config/head-layout.js';
import { estimateHeadRelevance } from '../analysis/lrp.js';
import { MarianTokenizer } from '../data/tokenizer.js';
import { loadModel } from '../io/load-model.js';
import { maxAbsDiff, useTestBackend } from '../test-utils/backend.js';
import { importFixture } from './marian.test-helpers.js';

const ALL_ATTENTION = ['enc-self', 'dec-self', 'dec-enc'] as const;

describe('LRP on an imported Marian model', () => {
  let dir: string;
  beforeAll(async () => {
    await useTestBackend();
    dir = mkdtempSync(join(tmpdir(), 'heads-marian-lrp-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the linear pass (swish derivative) equals a backward pass per step', async () => {
    const { model, tokenizer } = loadModel(importFixture(dir, 'safetensors'));
    expect(model.config.activation).toBe('swish');
    const tok = tokenizer as MarianTokenizer;
    const pairs = [
      ['the cat sees a dog.', 'die katze sieht einen hund.'],
      ['a small tree', 'ein kleiner baum'],
      ['the woman drinks water and eats bread', 'die frau trinkt wasser und isst brot'],
    ].map(([s, t], index) => ({ src: tok.encode(s!), tgt: tok.encodeTarget(t!), index }));
    const layout = headLayout(model.config);
    const base = fillPerHead(layout, (s, l, j) => (s === 'enc-self' && l === 0 && j === 1 ? 0.4 : 1));
    const o = { stacks: [...ALL_ATTENTION], rule: 'lrp' as const, maxTokensPerBatch: 200 };
    const now = await estimateHeadRelevance(model, layout, pairs, base, { ...o, tangent: true });
    const before = await estimateHeadRelevance(model, layout, pairs, base, { ...o, legacy: true });
    for (const stack of ALL_ATTENTION) expect(maxAbsDiff(now.relevance[stack].flat(), before.relevance[stack].flat())).toBeLessThan(1e-5);
    expect(Math.max(...now.relevance['enc-self'].flat()) - Math.min(...now.relevance['enc-self'].flat())).toBeGreaterThan(0.01);
    model.dispose();
  }, 60_000);
});
