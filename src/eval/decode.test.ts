import * as tf from '@tensorflow/tfjs';
import type { Transformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { beamSearch, lengthPenalty, maxOutputLength, EOS_ID, BOS_ID } from './decode.js';
import { useTestBackend } from '../test-utils/backend.js';
import { trainedTinyModel } from '../test-utils/tiny-model.js';

const V = 11;

/**
 * Reference beam search for one sentence: no caches, no batching; every step re-runs the whole
 * teacher-forced forward for every live prefix. Same rules: the best 2k continuations, a continuation
 * ending in </s> (or reaching the length limit, so no output is longer than the limit) is finished with score / ((5+len)/6)^alpha, k live
 * beams kept, stop when k hypotheses are finished or none is live.
 */
function referenceBeam(model: Transformer, src: number[], k: number, alpha: number, limit: number): number[] {
  let live: Array<{ toks: number[]; score: number }> = [{ toks: [], score: 0 }];
  const finished: Array<{ toks: number[]; score: number }> = [];
  const s = tf.tensor2d([src], [1, src.length], 'int32');
  for (let t = 0; t < 1000 && live.length && finished.length < k; t++) {
    const cands: Array<{ toks: number[]; score: number; token: number }> = [];
    for (const h of live) {
      const tin = tf.tensor2d([[BOS_ID, ...h.toks]], [1, h.toks.length + 1], 'int32');
      const lp = tf.tidy(() => tf.logSoftmax(model.forward(s, tin, { isTraining: false })).arraySync()) as number[][];
      tin.dispose();
      const last = lp[lp.length - 1]!;
      last.forEach((v, token) => cands.push({ toks: h.toks, score: h.score + v, token }));
    }
    cands.sort((a, b) => b.score - a.score);
    const next: typeof live = [];
    for (const c of cands.slice(0, 2 * k)) {
      if (next.length >= k) break;
      if (c.token === EOS_ID || c.toks.length + 1 >= limit) {
        const toks = c.token === EOS_ID ? c.toks : [...c.toks, c.token];
        finished.push({ toks, score: c.score / lengthPenalty(toks.length + 1, alpha) });
        continue;
      }
      next.push({ toks: [...c.toks, c.token], score: c.score });
    }
    live = finished.length >= k ? [] : next;
  }
  s.dispose();
  for (const h of live) finished.push({ toks: h.toks, score: h.score / lengthPenalty(h.toks.length + 1, alpha) });
  return finished.reduce((a, h) => (h.score > a.score ? h : a)).toks;
}

describe('batched beam search', () => {
  let model: Transformer;
  beforeAll(async () => {
    await useTestBackend();
    // briefly trained on the reverse task: outputs depend on the input and vary (random models repeat one token)
    const r = new Rng(1);
    const pairs = Array.from({ length: 400 }, (_, index) => {
      const src = Array.from({ length: 3 + r.int(5) }, () => 3 + r.int(V - 3));
      return { src, tgt: [...src].reverse(), index };
    });
    model = await trainedTinyModel(V, pairs, ['model.encoderLayers=1', 'model.decoderLayers=2', 'train.maxSteps=80']);
  });
  afterAll(() => model.dispose());

  it.each([
    [2, 0.6],
    [3, 1.0],
    [4, 0],
  ])('equals an unbatched reference without caches (beam %p, alpha %p)', async (k, alpha) => {
    const rng = new Rng(10 + k);
    const lens = [5, 3, 7];
    const S = Math.max(...lens) + 1;
    const rows = lens.map((n) => [...Array.from({ length: n }, () => 3 + rng.int(V - 3)), EOS_ID]);
    const src = new Int32Array(lens.length * S);
    rows.forEach((r, b) => src.set(r, b * S));
    const o = { beamSize: k, lengthPenalty: alpha, maxLenA: 1, maxLenB: 2 };
    const got = await beamSearch(model, src, rows.length, S, o);
    rows.forEach((r, b) => expect([b, got[b]]).toEqual([b, referenceBeam(model, r, k, alpha, maxOutputLength(r.length, o, model.config.maxPositions))]));
    expect(got.some((g) => g.length > 0)).toBe(true);
    expect(new Set(got.flat()).size).toBeGreaterThan(1); // varied outputs, not one repeated token
    rows.forEach((r, b) => expect(got[b]!.length).toBeLessThanOrEqual(maxOutputLength(r.length, o, model.config.maxPositions)));
  });
});
