/**
 * Statistical properties of the paired tests and bootstrap CIs (significance.ts) on synthetic systems: a system
 * against itself, a clearly better system, CI coverage and narrowing, determinism per seed, resample sums equal to
 * re-scoring the resampled sentences, the interval of a paired difference against its recomputation from
 * resampled sentences, and bad input.
 */
import { ConfigError, DataError } from '../util/errors.js';
import { Rng } from '../util/random.js';
import { corpusBleu } from './bleu.js';
import { makeMetric, type MetricName } from './metric.js';
import {
  bootstrapConfidence,
  bootstrapIndices,
  pairedApproximateRandomization,
  pairedBootstrap,
  pairedDifferenceInterval,
  percentileInterval,
  scoreCorpus,
  segmentStatistics,
} from './significance.js';

const VOCAB = 'the a cat dog sat ran on under mat house big small red green quickly slowly and but it was'.split(' ');

/** n reference sentences and noisy copies with each word replaced by a random one with probability `noise`. */
function corpus(n: number, seed: number): { refs: string[]; noisy: (noise: number, s: number) => string[] } {
  const rng = new Rng(seed);
  const refs = Array.from({ length: n }, () => Array.from({ length: 6 + rng.int(10) }, () => VOCAB[rng.int(VOCAB.length)]!).join(' '));
  const noisy = (noise: number, s: number): string[] => {
    const r = new Rng(s);
    return refs.map((line) =>
      line
        .split(' ')
        .map((w) => (r.next() < noise ? VOCAB[r.int(VOCAB.length)]! : w))
        .join(' '),
    );
  };
  return { refs, noisy };
}

const METRICS: MetricName[] = ['bleu', 'chrf', 'ter'];

describe('corpus scores from per-sentence statistics', () => {
  const { refs, noisy } = corpus(40, 1);
  const hyps = noisy(0.3, 2);
  it('BLEU from summed statistics equals corpusBleu', () => {
    expect(scoreCorpus('bleu', hyps, [refs])).toBeCloseTo(corpusBleu(hyps, [refs]).score, 10);
  });
  it.each(METRICS)('%s: a bootstrap resample scored from summed rows equals scoring the resampled sentences', (id) => {
    const m = makeMetric(id);
    const [idx] = bootstrapIndices(hyps.length, 1, 7);
    const one = bootstrapConfidence({ metric: m, hyps, refs: [refs], n: 1, seed: 7 });
    const direct = scoreCorpus(
      m,
      [...idx!].map((i) => hyps[i]!),
      [[...idx!].map((i) => refs[i]!)],
    );
    expect(one.mean).toBeCloseTo(direct, 9);
  });
});

describe('percentileInterval (sacreBLEU estimate_ci)', () => {
  it('takes the order statistics floor(n/40) and n - floor(n/40) - 1', () => {
    // scores 1..1000 shuffled: the 26th and 975th smallest
    const s = new Rng(3).shuffle(Array.from({ length: 1000 }, (_, i) => i + 1));
    const r = percentileInterval(s);
    expect(r.ci).toEqual([26, 975]);
    expect(r.halfWidth).toBe(474.5);
    expect(r.mean).toBe(500.5);
  });
});

describe('paired tests', () => {
  const { refs, noisy } = corpus(150, 11);
  const base = noisy(0.4, 12);
  const better = noisy(0.1, 13);
  const similar = noisy(0.4, 14);
  // the baseline with three of its 150 sentences replaced by the better system's: a real but tiny difference
  const nearlyBase = base.map((l, i) => (i % 50 === 0 ? better[i]! : l));

  it.each(METRICS)('%s: a system against itself has p = 1 under both tests', (id) => {
    const bs = pairedBootstrap({ metric: id, baseline: base, systems: [base], refs: [refs], n: 200 });
    const ar = pairedApproximateRandomization({ metric: id, baseline: base, systems: [base], refs: [refs], n: 500, confidenceN: 0 });
    expect(bs.systems[0]!.pValue).toBe(1);
    expect(ar.systems[0]!.pValue).toBe(1);
    expect(bs.systems[0]!.score).toBe(bs.baseline.score);
  });

  it.each(METRICS)('%s: a clearly better system has p < 0.05 under both tests; one differing in 3 of 150 sentences does not', (id) => {
    const bs = pairedBootstrap({ metric: id, baseline: base, systems: [better, nearlyBase], refs: [refs], n: 300 });
    const ar = pairedApproximateRandomization({ metric: id, baseline: base, systems: [better, nearlyBase], refs: [refs], n: 1000, confidenceN: 0 });
    const m = makeMetric(id);
    // "better" really is better on this metric
    expect(m.higherIsBetter ? bs.systems[0]!.score > bs.baseline.score : bs.systems[0]!.score < bs.baseline.score).toBe(true);
    expect(bs.systems[0]!.pValue!).toBeLessThan(0.05);
    expect(ar.systems[0]!.pValue!).toBeLessThan(0.05);
    // the smallest p-value the +1 smoothing allows
    expect(bs.systems[0]!.pValue!).toBeGreaterThanOrEqual(1 / 301);
    expect(ar.systems[0]!.pValue!).toBeGreaterThanOrEqual(1 / 1001);
    expect(bs.systems[1]!.pValue!).toBeGreaterThan(0.05);
    expect(ar.systems[1]!.pValue!).toBeGreaterThan(0.05);
  });

  it('the same seed gives the same numbers; another seed other resamples', () => {
    const a = pairedBootstrap({ metric: 'chrf', baseline: base, systems: [similar], refs: [refs], n: 100, seed: 5 });
    const b = pairedBootstrap({ metric: 'chrf', baseline: base, systems: [similar], refs: [refs], n: 100, seed: 5 });
    const c = pairedBootstrap({ metric: 'chrf', baseline: base, systems: [similar], refs: [refs], n: 100, seed: 6 });
    expect(b).toEqual(a);
    expect(c.systems[0]!.mean).not.toBe(a.systems[0]!.mean);
    expect(c.systems[0]!.score).toBe(a.systems[0]!.score);
    const ar1 = pairedApproximateRandomization({ metric: 'bleu', baseline: base, systems: [similar], refs: [refs], n: 200, seed: 5 });
    const ar2 = pairedApproximateRandomization({ metric: 'bleu', baseline: base, systems: [similar], refs: [refs], n: 200, seed: 5 });
    expect(ar2).toEqual(ar1);
  });

  it('the baseline gets the same CI in every comparison, from the same resamples as the systems', () => {
    const one = pairedBootstrap({ metric: 'bleu', baseline: base, systems: [better], refs: [refs], n: 100 });
    const two = pairedBootstrap({ metric: 'bleu', baseline: base, systems: [similar, better], refs: [refs], n: 100 });
    expect(two.baseline).toEqual(one.baseline);
    expect(two.systems[1]).toEqual(one.systems[0]);
    expect(bootstrapConfidence({ metric: 'bleu', hyps: better, refs: [refs], n: 100 })).toEqual({ ...one.systems[0]!, pValue: null });
  });
});

describe('bootstrap confidence intervals', () => {
  it.each(METRICS)('%s: the 95%% CI covers the point score and narrows as sentences are added', (id) => {
    const { refs, noisy } = corpus(1200, 21);
    const hyps = noisy(0.3, 22);
    const small = bootstrapConfidence({ metric: id, hyps: hyps.slice(0, 75), refs: [refs.slice(0, 75)], n: 300 });
    const large = bootstrapConfidence({ metric: id, hyps, refs: [refs], n: 300 });
    for (const r of [small, large]) {
      expect(r.ci[0]).toBeLessThanOrEqual(r.score);
      expect(r.ci[1]).toBeGreaterThanOrEqual(r.score);
      expect(r.ci[0]).toBeLessThan(r.ci[1]);
      expect(r.halfWidth).toBeCloseTo((r.ci[1] - r.ci[0]) / 2, 12);
    }
    // 16 times the sentences: the width should shrink by about 4; demand at least 2
    expect(large.halfWidth).toBeLessThan(small.halfWidth / 2);
  });
});

describe('bad input', () => {
  const { refs, noisy } = corpus(10, 31);
  const h = noisy(0.2, 32);
  it('rejects mismatched line counts, naming both counts', () => {
    expect(() => pairedBootstrap({ metric: 'bleu', baseline: h, systems: [h.slice(1)], refs: [refs] })).toThrow(DataError);
    expect(() => pairedBootstrap({ metric: 'bleu', baseline: h, systems: [h.slice(1)], refs: [refs] })).toThrow(
      /system 1 has 9 lines but the references have 10/,
    );
    expect(() => segmentStatistics('ter', h, [refs.slice(2)])).toThrow(/reference stream 1 has 8 lines but the hypotheses have 10/);
  });
  it('rejects zero or fractional resample counts', () => {
    expect(() => pairedBootstrap({ metric: 'bleu', baseline: h, systems: [h], refs: [refs], n: 0 })).toThrow(ConfigError);
    expect(() => pairedApproximateRandomization({ metric: 'bleu', baseline: h, systems: [h], refs: [refs], n: 2.5 })).toThrow(
      /expected an integer >= 1, got 2.5/,
    );
    expect(() => bootstrapConfidence({ metric: 'bleu', hyps: h, refs: [refs], n: -1 })).toThrow(ConfigError);
  });
  it('rejects an unknown metric', () => {
    expect(() => scoreCorpus('meteor' as MetricName, h, [refs])).toThrow(/metric: expected one of bleu, chrf, ter, got "meteor"/);
  });
});

describe('pairedDifferenceInterval', () => {
  const { refs, noisy } = corpus(60, 3);
  const base = noisy(0.35, 4);
  const better = noisy(0.2, 5);
  it("equals the 2.5/97.5% order statistics of system - baseline re-scored on each resample's sentences (corpusBleu)", () => {
    const n = 200;
    const got = pairedDifferenceInterval('bleu', segmentStatistics('bleu', base, [refs]), segmentStatistics('bleu', better, [refs]), n, 11);
    const pick = (xs: string[], idx: Int32Array) => [...idx].map((i) => xs[i]!);
    const diffs = bootstrapIndices(refs.length, n, 11)
      .map((idx) => corpusBleu(pick(better, idx), [pick(refs, idx)]).score - corpusBleu(pick(base, idx), [pick(refs, idx)]).score)
      .sort((a, b) => a - b);
    expect(got.ci[0]).toBeCloseTo(diffs[Math.floor(n / 40)]!, 9);
    expect(got.ci[1]).toBeCloseTo(diffs[n - Math.floor(n / 40) - 1]!, 9);
    expect(got.mean).toBeCloseTo(diffs.reduce((a, b) => a + b, 0) / n, 9);
    expect(got.difference).toBeCloseTo(corpusBleu(better, [refs]).score - corpusBleu(base, [refs]).score, 9);
    // the p-value by Koehn's rule from the same re-scored resamples: centred |differences| at least the observed one
    const absd = diffs.map(Math.abs);
    const centre = absd.reduce((a, b) => a + b, 0) / n;
    const c = absd.filter((d) => d - centre >= Math.abs(got.difference) - 1e-9).length;
    expect(got.pValue).toBeCloseTo((c + 1) / (n + 1), 12);
    expect(pairedBootstrap({ metric: 'bleu', baseline: base, systems: [better], refs: [refs], n, seed: 11 }).systems[0]!.pValue).toBe(got.pValue);
    // a clearly better system: the interval is above 0 and holds the observed difference
    expect(got.ci[0]).toBeGreaterThan(0);
    expect(got.ci[0]).toBeLessThan(got.difference);
    expect(got.ci[1]).toBeGreaterThan(got.difference);
  });
  it('a system against itself: every resample differs by exactly 0', () => {
    const st = segmentStatistics('bleu', base, [refs]);
    expect(pairedDifferenceInterval('bleu', st, st, 100, 1)).toEqual({ difference: 0, pValue: 1, mean: 0, ci: [0, 0] });
  });
  it('refuses systems of different lengths', () => {
    expect(() => pairedDifferenceInterval('bleu', segmentStatistics('bleu', base, [refs]), segmentStatistics('bleu', base.slice(1), [refs.slice(1)]))).toThrow(
      DataError,
    );
  });
});
