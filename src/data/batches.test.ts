/**
 * Batching: the tensor layout on a hand-built example, and plan invariants (coverage, budget, padding,
 * determinism) on a synthetic length distribution shaped like the DDTP corpus.
 */
import { describe, expect, test } from '@jest/globals';
import { Rng } from '../util/random.js';
import { describePlan, filterByLength, makeBatch, planBatches, planEvalBatches, restoreOrder, type BatchPlan, type EncodedPair } from './batches.js';

describe('makeBatch', () => {
  test('layout worked by hand', () => {
    const pairs: EncodedPair[] = [
      { src: [5, 6], tgt: [7], index: 10 },
      { src: [8], tgt: [9, 10, 11], index: 11 },
    ];
    const b = makeBatch(pairs, [0, 1]);
    expect(b.batchSize).toBe(2);
    expect(b.srcLen).toBe(3);
    expect(b.tgtLen).toBe(4);
    // src = x + </s>(2), pad 0
    expect(Array.from(b.src)).toEqual([5, 6, 2, 8, 2, 0]);
    // tgtIn = <s>(1) + y; tgtOut = y + </s>(2)
    expect(Array.from(b.tgtIn)).toEqual([1, 7, 0, 0, 1, 9, 10, 11]);
    expect(Array.from(b.tgtOut)).toEqual([7, 2, 0, 0, 9, 10, 11, 2]);
    expect(b.indices).toEqual([10, 11]);
    expect(b.srcTokens).toBe(5);
    expect(b.tgtTokens).toBe(6);
  });

  test('tgtIn is tgtOut shifted right by one; pad beyond every length', () => {
    const pairs = realisticPairs(200, 1);
    const positions = Array.from({ length: 40 }, (_, i) => i * 5);
    const b = makeBatch(pairs, positions);
    positions.forEach((pos, r) => {
      const p = pairs[pos]!;
      const srcRow = Array.from(b.src.subarray(r * b.srcLen, (r + 1) * b.srcLen));
      const inRow = Array.from(b.tgtIn.subarray(r * b.tgtLen, (r + 1) * b.tgtLen));
      const outRow = Array.from(b.tgtOut.subarray(r * b.tgtLen, (r + 1) * b.tgtLen));
      expect(srcRow).toEqual([...p.src, 2, ...new Array(b.srcLen - p.src.length - 1).fill(0)]);
      for (let t = 1; t < b.tgtLen; t++) expect(inRow[t]).toBe(t <= p.tgt.length ? outRow[t - 1] : 0);
      expect(inRow[0]).toBe(1);
      expect(outRow[p.tgt.length]).toBe(2);
      expect(outRow.slice(p.tgt.length + 1).every((x) => x === 0)).toBe(true);
    });
    const nonPad = (a: Int32Array) => a.reduce((s, x) => s + (x !== 0 ? 1 : 0), 0);
    expect(b.srcTokens).toBe(nonPad(b.src));
    expect(b.tgtTokens).toBe(nonPad(b.tgtOut));
  });
});

/**
 * Token lengths shaped like DDTP after 8000 BPE merges, whose measured figures are: log target length
 * sd 0.66, log(src/tgt) mean -0.145 (en-de) sd 0.18. Here the median is 10 with a tail clipped at 100;
 * `logRatio` picks the direction (negative: source shorter, as in en-de). Token ids are >= 4.
 */
function realisticPairs(n: number, seed: number, logRatio = -0.145): EncodedPair[] {
  const rng = new Rng(seed);
  const pairs: EncodedPair[] = [];
  const clip = (x: number) => Math.min(100, Math.max(1, Math.round(x)));
  for (let i = 0; i < n; i++) {
    const tgtLen = clip(Math.exp(Math.log(10) + 0.66 * rng.normal()));
    const srcLen = clip(tgtLen * Math.exp(logRatio + 0.18 * rng.normal()));
    const tok = () => 4 + rng.int(1000);
    pairs.push({ src: Array.from({ length: srcLen }, tok), tgt: Array.from({ length: tgtLen }, tok), index: i });
  }
  return pairs;
}

function expectEachPositionOnce(plan: BatchPlan, n: number): void {
  const seen = new Uint8Array(n);
  for (const b of plan) for (const p of b) seen[p]!++;
  expect(seen.every((x) => x === 1)).toBe(true);
}

describe('planBatches', () => {
  const pairs = realisticPairs(20000, 42);
  const maxTokensPerBatch = 4096;

  test('the synthetic distribution looks like DDTP (median 10, tail to 100)', () => {
    const lens = pairs.map((p) => p.tgt.length).sort((a, b) => a - b);
    expect(lens[lens.length >> 1]).toBe(10);
    expect(lens[lens.length - 1]).toBeGreaterThanOrEqual(80);
  });

  test.each([
    ['source shorter (en-de)', -0.145],
    ['same length', 0],
    ['source longer (de-en)', 0.145],
  ])('%s: covers every pair once, respects the budget, pads < 10%% of the target', (_name, logRatio) => {
    const data = realisticPairs(20000, 42, logRatio);
    const plan = planBatches(data, { maxTokensPerBatch, rng: new Rng(1) });
    expectEachPositionOnce(plan, data.length);
    for (const b of plan) {
      const batch = makeBatch(data, b);
      expect(batch.batchSize * Math.max(batch.srcLen, batch.tgtLen)).toBeLessThanOrEqual(maxTokensPerBatch);
    }
    const stats = describePlan(data, plan);
    expect(stats.maxPaddedTokens).toBeLessThanOrEqual(maxTokensPerBatch);
    expect(stats.tgtPadFraction).toBeLessThan(0.1);
    expect(stats.srcPadFraction).toBeLessThan(0.35);
    // batches are full: the plan needs at most 30% more batches than a perfect packing of max lengths
    const lowerBound = data.reduce((s, p) => s + Math.max(p.src.length, p.tgt.length) + 1, 0) / maxTokensPerBatch;
    expect(plan.length).toBeLessThan(1.3 * lowerBound);
  });

  test('maxSentencesPerBatch caps batch size', () => {
    const plan = planBatches(pairs, { maxTokensPerBatch, maxSentencesPerBatch: 32, rng: new Rng(1) });
    expectEachPositionOnce(plan, pairs.length);
    expect(Math.max(...plan.map((b) => b.length))).toBe(32);
  });

  test('deterministic given the rng state; another seed reorders', () => {
    const rng = new Rng(9);
    const state = rng.getState();
    const a = planBatches(pairs, { maxTokensPerBatch, rng });
    rng.setState(state);
    const b = planBatches(pairs, { maxTokensPerBatch, rng });
    expect(b).toEqual(a);
    const c = planBatches(pairs, { maxTokensPerBatch, rng: new Rng(10) });
    expect(c).not.toEqual(a);
    expect(c[0]).not.toEqual(a[0]);
    // the next epoch from the same advancing rng differs too
    expect(planBatches(pairs, { maxTokensPerBatch, rng })).not.toEqual(a);
  });

  test('a pair longer than the budget gets a batch of its own', () => {
    const small = realisticPairs(50, 3);
    small.push({ src: new Array(300).fill(5), tgt: [6, 7], index: 50 });
    const plan = planBatches(small, { maxTokensPerBatch: 200, rng: new Rng(2) });
    expectEachPositionOnce(plan, small.length);
    const own = plan.find((b) => b.includes(50))!;
    expect(own).toEqual([50]);
    for (const b of plan) if (b !== own) expect(describePlan(small, [b]).maxPaddedTokens).toBeLessThanOrEqual(200);
  });

  test('small shuffle windows still cover everything', () => {
    const plan = planBatches(pairs.slice(0, 1000), { maxTokensPerBatch: 512, rng: new Rng(4), shuffleWindow: 64 });
    expectEachPositionOnce(plan, 1000);
  });

  test('rejects a non-positive budget', () => {
    expect(() => planBatches(pairs, { maxTokensPerBatch: 0, rng: new Rng(1) })).toThrow(RangeError);
  });
});

describe('planEvalBatches and restoreOrder', () => {
  const pairs = realisticPairs(3000, 5);

  test('sorted by source length, not shuffled, budget kept, order restorable', () => {
    const plan = planEvalBatches(pairs, 2048);
    expectEachPositionOnce(plan, pairs.length);
    const flat = plan.flat();
    for (let i = 1; i < flat.length; i++) expect(pairs[flat[i]!]!.src.length).toBeGreaterThanOrEqual(pairs[flat[i - 1]!]!.src.length);
    expect(planEvalBatches(pairs, 2048)).toEqual(plan);
    expect(describePlan(pairs, plan).maxPaddedTokens).toBeLessThanOrEqual(2048);
    // "decode" each batch to the source's first token and put the outputs back in corpus order
    const outputs = plan.map((b) => makeBatch(pairs, b)).map((batch) => batch.indices.map((i) => `out-${i}`));
    expect(restoreOrder(plan, outputs)).toEqual(pairs.map((p) => `out-${p.index}`));
  });

  test('restoreOrder checks the output counts', () => {
    expect(() => restoreOrder([[0, 1]], [['a']])).toThrow(RangeError);
  });
});

describe('filterByLength', () => {
  test('drops pairs longer than maxLen on either side', () => {
    const pairs: EncodedPair[] = [
      { src: [4, 4], tgt: [4], index: 0 },
      { src: [4, 4, 4], tgt: [4], index: 1 },
      { src: [4], tgt: [4, 4, 4], index: 2 },
      { src: [4, 4], tgt: [4, 4], index: 3 },
    ];
    const { kept, dropped } = filterByLength(pairs, 2);
    expect(dropped).toBe(2);
    expect(kept.map((p) => p.index)).toEqual([0, 3]);
  });
});
