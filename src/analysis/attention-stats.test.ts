import { type AttentionMatrix, accumulateAttention, argmaxKey, createHeadStats, frequencyRanks, summarizeHeadStats } from './attention-stats.js';

// ids: 0 pad, 1 <s>, 2 </s>
const PAD = 0,
  BOS = 1,
  EOS = 2;

// Encoder self-attention over "5 6 7 </s>" (+1 pad), 4 real queries; the pad row must be ignored.
const encWeights = [
  [0.1, 0.2, 0.1, 0.6, 0], // max without </s>: 0.2 at key 1 (offset +1)
  [0.5, 0.1, 0.1, 0.3, 0], // 0.5 at key 0 (offset -1)
  [0.2, 0.7, 0.05, 0.05, 0], // 0.7 at key 1 (offset -1)
  [0.25, 0.25, 0.25, 0.25, 0], // the </s> query: a tie, the first key wins (offset -3)
  [1, 0, 0, 0, 0], // padding row
].flat();
const enc: AttentionMatrix = { weights: encWeights, base: 0, stride: 5, queries: 4, keyIds: [5, 6, 7, EOS, PAD], isCausal: false };

// Decoder self-attention over "<s> 8 9" (+1 pad), causal.
const dec: AttentionMatrix = {
  weights: [
    [1, 0, 0, 0],
    [0.3, 0.7, 0, 0],
    [0.6, 0.3, 0.1, 0],
    [0, 0, 0, 0],
  ].flat(),
  base: 0,
  stride: 4,
  queries: 3,
  keyIds: [BOS, 8, 9, PAD],
  isCausal: true,
};

const freq = new Float64Array(10);
freq[5] = 100;
freq[6] = 3;
freq[7] = 50;
freq[8] = 10;
freq[9] = 1;

describe('attention statistics against hand-computed attention', () => {
  it('confidence: the largest weight over keys other than </s> and padding, averaged over real queries', () => {
    const acc = createHeadStats();
    accumulateAttention(acc, enc);
    const s = summarizeHeadStats(acc, false);
    expect(s.queries).toBe(4);
    expect(s.confidence).toBeCloseTo((0.2 + 0.5 + 0.7 + 0.25) / 4, 12);
  });

  it('entropy: -sum p ln p over every key (</s> included), averaged over real queries', () => {
    const acc = createHeadStats();
    accumulateAttention(acc, enc);
    // rows: 1.0889000, 1.1682825, 0.8711333, ln 4 = 1.3862944 (worked out separately)
    expect(summarizeHeadStats(acc, false).entropy).toBeCloseTo((1.0888999753 + 1.1682824502 + 0.8711332706 + Math.log(4)) / 4, 8);
  });

  it('argmax offsets and their histogram', () => {
    expect([0, 1, 2, 3].map((q) => argmaxKey(enc, q))).toEqual([1, 0, 1, 0]);
    const acc = createHeadStats();
    accumulateAttention(acc, enc);
    const s = summarizeHeadStats(acc, false);
    const share = (o: number) => s.offsetHistogram.shares[o - s.offsetHistogram.from]!;
    expect(share(-1)).toBe(0.5);
    expect(share(1)).toBe(0.25);
    expect(share(-3)).toBe(0.25);
    expect(share(0)).toBe(0);
    expect(s.offsetHistogram.other).toBe(0);
    expect(s.modeOffset).toBe(-1);
    expect(s.modeFraction).toBe(0.5);
  });

  it('causal attention: future keys are never chosen; <s> may be', () => {
    expect([0, 1, 2].map((q) => argmaxKey(dec, q))).toEqual([0, 1, 0]);
    const acc = createHeadStats();
    accumulateAttention(acc, dec);
    const s = summarizeHeadStats(acc, false);
    expect(s.confidence).toBeCloseTo((1 + 0.7 + 0.6) / 3, 12);
    expect(s.entropy).toBeCloseTo((0 + 0.6108643021 + 0.8979457249) / 3, 8);
  });

  it('offsets beyond ±5 go to "other"', () => {
    const n = 9;
    const w = new Array<number>(n * n).fill(0);
    for (let q = 0; q < n; q++) w[q * n + (q < 7 ? 8 : 0)] = 1; // queries 0..6 -> key 8, queries 7 and 8 -> key 0
    const keyIds = Array.from({ length: n }, (_, i) => 10 + i);
    const acc = createHeadStats();
    accumulateAttention(acc, { weights: w, base: 0, stride: n, queries: n, keyIds, isCausal: false });
    const s = summarizeHeadStats(acc, false);
    // offsets: 8, 7, 6 (other), 5, 4, 3, 2, -7 (other), -8 (other)
    expect(s.offsetHistogram.other).toBeCloseTo(5 / 9, 12);
    expect(s.offsetHistogram.shares.reduce((a, b) => a + b, 0) + s.offsetHistogram.other).toBeCloseTo(1, 12);
  });
});

describe('rare-token rate', () => {
  const rare = { frequencies: freq, ranks: frequencyRanks(freq), minRank: 0 };

  it('ranks by decreasing frequency', () => {
    const r = frequencyRanks(freq);
    expect([r[5], r[7], r[8], r[6], r[9]]).toEqual([1, 2, 3, 4, 5]);
  });

  it('counts the argmax at the rarest candidate key, the top-2 rate and the chance rate', () => {
    const acc = createHeadStats();
    accumulateAttention(acc, enc, rare);
    const s = summarizeHeadStats(acc, true).rare!;
    // the rarest source token is id 6 (key 1): queries 0 and 2 point there; 1 and 3 point at id 5 (freq 100 > 50)
    expect(s.queries).toBe(4);
    expect(s.rate).toBe(0.5);
    expect(s.top2Rate).toBe(0.5);
    expect(s.chanceRate).toBeCloseTo(1 / 3, 12);
  });

  it('in causal attention only visible keys compete, and <s> is no candidate', () => {
    const acc = createHeadStats();
    accumulateAttention(acc, dec, rare);
    const s = summarizeHeadStats(acc, true).rare!;
    // q0 sees only <s>: not counted; q1 -> id 8 (the only candidate): hit; q2 -> <s>: miss
    expect(s.queries).toBe(2);
    expect(s.rate).toBe(0.5);
    expect(s.top2Rate).toBe(0.5);
    expect(s.chanceRate).toBeCloseTo((1 / 2 + 1 / 3) / 2, 12);
  });

  it('skips queries whose rarest token is among the most frequent (minRank)', () => {
    // id 6 has rank 4 among ids with frequencies: counted with minRank 3, not with minRank 4
    const counted = createHeadStats();
    accumulateAttention(counted, enc, { ...rare, minRank: 3 });
    expect(counted.rareQueries).toBe(4);
    const skipped = createHeadStats();
    accumulateAttention(skipped, enc, { ...rare, minRank: 4 });
    expect(skipped.rareQueries).toBe(0);
  });
});
