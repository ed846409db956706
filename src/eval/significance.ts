/**
 * Paired significance tests and bootstrap confidence intervals for MT metrics, following sacreBLEU 2.x
 * (significance.py), for any metric of metric.ts (BLEU, chrF/chrF++, TER).
 *
 * API (stable; src/experiments/report.ts uses it):
 *
 *   scoreCorpus(metric, hyps, refs): number
 *       The corpus score (0-100), identical to `heads bleu -m <metric>`.
 *   segmentStatistics(metric, hyps, refs): SegmentStats
 *       One row of sufficient statistics per sentence, computed once; every resample only sums rows.
 *   pairedBootstrap({ metric, baseline, systems, refs, n = 1000, seed = 12345 }): PairedResult
 *   pairedApproximateRandomization({ metric, baseline, systems, refs, n = 10000, seed = 12345, confidenceN = 1000 }): PairedResult
 *       Each system against the baseline (the first system). For every system (baseline included):
 *       score, bootstrap mean, 95% CI [lo, hi] and its half-width; p-value for every system but the baseline.
 *   pairedDifferenceInterval(metric, baselineStats, systemStats, n = 1000, seed = 12345)
 *       The 95% percentile interval of system - baseline over the paired bootstrap's resamples, and the p-value.
 *   resampledScores(metric, stats, n, seed) / pairedFromResamples(baseline, system)
 *       The same in two steps, for one system's resample scores reused against many (the report).
 *   bootstrapConfidence({ metric, hyps, refs, n = 1000, seed = 12345 }): SystemResult
 *       One system's bootstrap mean and 95% CI (`heads bleu --confidence`).
 *   scoreFromSegmentStats(metric, stats): number
 *       The corpus score from statistics already computed.
 *   pairedBootstrapFromStats / pairedApproximateRandomizationFromStats / bootstrapConfidenceFromStats
 *       The same on SegmentStats already computed (e.g. one baseline compared with many systems, or several tests).
 *
 * `metric` is a Metric (makeMetric('chrf', { chrf: { wordOrder: 2 } })) or a MetricName with sacreBLEU's corpus
 * defaults. `refs[k][i]` is the k-th reference of sentence i (as corpusBleu takes them); every system has one
 * line per sentence (DataError otherwise).
 *
 * The procedure is sacreBLEU's; only the random numbers differ (sacreBLEU draws them from numpy's PCG64, we from
 * the project's seeded mulberry32, so resample indices and hence means/CIs differ within sampling error):
 *  - Bootstrap: n resamples of the sentence indices with replacement, the same indices for every system and metric
 *    (sacreBLEU re-seeds each comparison with the same seed, so it too reuses one index matrix). The CI is
 *    sacreBLEU's percentile interval: sorted resample scores at index floor(n/40) and n - floor(n/40) - 1 (2.5%
 *    and 97.5%); sacreBLEU prints the mean and half the interval's width (`μ = mean ± halfWidth`).
 *  - Paired bootstrap p-value (Koehn 2004 as in Moses' bootstrap-hypothesis-difference-significance.pl): with
 *    d_r = |sys_r - base_r| on resample r, the centred statistics d_r - mean(d) are compared with the observed
 *    |sys - base|; p = (c + 1) / (n + 1) where c counts statistics at least as large as the observed difference.
 *  - Approximate randomization (Riezler & Maxwell 2005, multeval's test): each trial swaps the two systems'
 *    outputs sentence by sentence with probability 1/2, scores both pseudo-systems, and compares |a - b| with the
 *    observed difference; p = (c + 1) / (n + 1) likewise.
 *  - One deliberate difference: sacreBLEU counts strictly larger statistics, so a system compared with itself (all
 *    differences exactly 0) gets the smallest possible p = 1/(n+1), i.e. "significant"; we count ties, which gives
 *    p = 1 there and changes nothing else in practice: a tie with a non-zero observed difference needs an exact
 *    floating-point coincidence, or for AR a trial that swaps no sentence or every one (probability 2^(1-N) per
 *    trial for N sentences; counting those is the exact permutation test's convention).
 */
import { DataError, ConfigError } from '../util/errors.js';
import { deriveSeed, Rng } from '../util/random.js';
import { makeMetric, type Metric, type MetricName } from './metric.js';

export const DEFAULT_BOOTSTRAP_N = 1000;
export const DEFAULT_AR_N = 10000;
export const DEFAULT_SEED = 12345;

/** Per-sentence sufficient statistics: row i (length k) at data[i*k, (i+1)*k). */
export interface SegmentStats {
  readonly n: number;
  readonly k: number;
  readonly data: Float64Array;
}

export interface SystemResult {
  /** The metric on the full test set. */
  readonly score: number;
  /** Mean of the bootstrap resample scores (NaN when no bootstrap was run). */
  readonly mean: number;
  /** 95% percentile interval of the resample scores, [2.5%, 97.5%]. */
  readonly ci: readonly [number, number];
  /** Half the interval's width, sacreBLEU's `±`. */
  readonly halfWidth: number;
  /** p-value against the baseline; null for the baseline itself. */
  readonly pValue: number | null;
}

export interface PairedResult {
  /** sacreBLEU's metric name: BLEU, chrF2, chrF2++, TER. */
  readonly metric: string;
  readonly test: 'bs' | 'ar';
  /** Resamples (bs) or trials (ar). */
  readonly n: number;
  /** Bootstrap resamples behind mean/CI (n for bs, confidenceN for ar; 0 = none). */
  readonly bootstrapN: number;
  readonly seed: number;
  readonly baseline: SystemResult;
  /** In the order given, each compared with the baseline. */
  readonly systems: readonly SystemResult[];
}

type MetricArg = Metric | MetricName;
const resolve = (m: MetricArg): Metric => (typeof m === 'string' ? makeMetric(m) : m);

function checkRefs(nHyps: number, refs: readonly (readonly string[])[], what: string): void {
  if (refs.length === 0) throw new DataError(`${what}: expected at least one reference stream, got none`);
  refs.forEach((stream, k) => {
    if (stream.length !== nHyps) {
      throw new DataError(`${what}: reference stream ${k + 1} has ${stream.length} lines but the hypotheses have ${nHyps}`);
    }
  });
}

/** One row of the metric's sufficient statistics per sentence. */
export function segmentStatistics(metric: MetricArg, hyps: readonly string[], refs: readonly (readonly string[])[]): SegmentStats {
  const m = resolve(metric);
  checkRefs(hyps.length, refs, 'segmentStatistics');
  const k = m.statsSize;
  const data = new Float64Array(hyps.length * k);
  for (let i = 0; i < hyps.length; i++) {
    const row = m.segmentStats(
      hyps[i]!,
      refs.map((s) => s[i]!),
    );
    data.set(row, i * k);
  }
  return { n: hyps.length, k, data };
}

/** Column sums of the rows picked by `idx` (all rows when undefined) into `out`. */
function sumRows(stats: SegmentStats, idx: Int32Array | undefined, out: Float64Array): Float64Array {
  const { k, data } = stats;
  out.fill(0);
  const rows = idx === undefined ? stats.n : idx.length;
  for (let r = 0; r < rows; r++) {
    const base = (idx === undefined ? r : idx[r]!) * k;
    for (let j = 0; j < k; j++) out[j]! += data[base + j]!;
  }
  return out;
}

export function scoreFromSegmentStats(metric: MetricArg, stats: SegmentStats): number {
  const m = resolve(metric);
  return m.scoreFromStats(sumRows(stats, undefined, new Float64Array(stats.k)));
}

/** The corpus score of `hyps` (0-100), as `heads bleu -m <metric>` prints it before rounding. */
export function scoreCorpus(metric: MetricArg, hyps: readonly string[], refs: readonly (readonly string[])[]): number {
  const m = resolve(metric);
  return scoreFromSegmentStats(m, segmentStatistics(m, hyps, refs));
}

function checkN(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1) throw new ConfigError([`${what}: expected an integer >= 1, got ${String(n)}`]);
}

/** n resamples of sentence indices with replacement, one Int32Array of `size` per resample. */
export function bootstrapIndices(size: number, n: number, seed: number): Int32Array[] {
  const rng = new Rng(seed);
  const out: Int32Array[] = [];
  for (let r = 0; r < n; r++) {
    const idx = new Int32Array(size);
    for (let i = 0; i < size; i++) idx[i] = rng.int(size);
    out.push(idx);
  }
  return out;
}

// the last few index matrices drawn (a report runs hundreds of tests on two or three sentence counts);
// callers only read them
const recentIndices: Array<{ key: string; idxs: Int32Array[] }> = [];
function sharedIndices(size: number, n: number, seed: number): readonly Int32Array[] {
  const key = `${size}:${n}:${seed}`;
  const hit = recentIndices.find((e) => e.key === key);
  if (hit) return hit.idxs;
  const idxs = bootstrapIndices(size, n, seed);
  recentIndices.unshift({ key, idxs });
  recentIndices.length = Math.min(recentIndices.length, 3);
  return idxs;
}

function resampleScores(m: Metric, stats: SegmentStats, idxs: readonly Int32Array[]): Float64Array {
  const buf = new Float64Array(stats.k);
  const scores = new Float64Array(idxs.length);
  idxs.forEach((idx, r) => {
    scores[r] = m.scoreFromStats(sumRows(stats, idx, buf));
  });
  return scores;
}

/** sacreBLEU's estimate_ci: the mean and the [n//40, n - n//40 - 1] order statistics of the resample scores. */
export function percentileInterval(scores: ArrayLike<number>): { mean: number; ci: [number, number]; halfWidth: number } {
  const sorted = Float64Array.from(scores).sort();
  const n = sorted.length;
  const lo = Math.floor(n / 40);
  const ci: [number, number] = [sorted[lo]!, sorted[n - lo - 1]!];
  let sum = 0;
  for (const s of sorted) sum += s;
  return { mean: sum / n, ci, halfWidth: 0.5 * (ci[1] - ci[0]) };
}

/** (c + 1) / (N + 1), c = statistics at least as large as the observed one (see the header for the tie rule). */
function pValue(stats: ArrayLike<number>, observed: number): number {
  let c = 0;
  for (let i = 0; i < stats.length; i++) if (stats[i]! >= observed) c++;
  return (c + 1) / (stats.length + 1);
}

function checkSameLength(stats: readonly SegmentStats[], what: string): void {
  for (const [s, st] of stats.entries()) {
    if (st.n !== stats[0]!.n) throw new DataError(`${what}: system ${s + 1} has ${st.n} sentences but the baseline has ${stats[0]!.n}`);
  }
}

/** One system's score with its bootstrap mean and 95% CI. */
export function bootstrapConfidenceFromStats(metric: MetricArg, stats: SegmentStats, n = DEFAULT_BOOTSTRAP_N, seed = DEFAULT_SEED): SystemResult {
  const m = resolve(metric);
  checkN(n, 'bootstrap resamples');
  const scores = resampleScores(m, stats, sharedIndices(stats.n, n, seed));
  return { score: scoreFromSegmentStats(m, stats), ...percentileInterval(scores), pValue: null };
}

export function bootstrapConfidence(o: {
  metric: MetricArg;
  hyps: readonly string[];
  refs: readonly (readonly string[])[];
  n?: number;
  seed?: number;
}): SystemResult {
  checkN(o.n ?? DEFAULT_BOOTSTRAP_N, 'bootstrap resamples');
  const m = resolve(o.metric);
  return bootstrapConfidenceFromStats(m, segmentStatistics(m, o.hyps, o.refs), o.n, o.seed);
}

/** Paired bootstrap of each system's statistics against the baseline's (all with the same sentences). */
export function pairedBootstrapFromStats(
  metric: MetricArg,
  baseline: SegmentStats,
  systems: readonly SegmentStats[],
  n = DEFAULT_BOOTSTRAP_N,
  seed = DEFAULT_SEED,
): PairedResult {
  const m = resolve(metric);
  checkN(n, 'paired bootstrap resamples');
  checkSameLength([baseline, ...systems], 'pairedBootstrap');
  const idxs = sharedIndices(baseline.n, n, seed);
  const base = { score: scoreFromSegmentStats(m, baseline), scores: resampleScores(m, baseline, idxs) };
  const results = systems.map((st): SystemResult => {
    const sys = { score: scoreFromSegmentStats(m, st), scores: resampleScores(m, st, idxs) };
    return { score: sys.score, ...percentileInterval(sys.scores), pValue: pairedFromResamples(base, sys).pValue };
  });
  return {
    metric: m.name,
    test: 'bs',
    n,
    bootstrapN: n,
    seed,
    baseline: { score: base.score, ...percentileInterval(base.scores), pValue: null },
    systems: results,
  };
}

/** A system's score on the whole test set and on each bootstrap resample (resampledScores). */
export interface Resampled {
  readonly score: number;
  readonly scores: Float64Array;
}

/**
 * The scores of `stats` on the n resamples of bootstrapIndices(stats.n, n, seed): what every paired
 * bootstrap on these sentences recomputes, for a caller that compares one system with many.
 */
export function resampledScores(metric: MetricArg, stats: SegmentStats, n = DEFAULT_BOOTSTRAP_N, seed = DEFAULT_SEED): Resampled {
  const m = resolve(metric);
  checkN(n, 'bootstrap resamples');
  return { score: scoreFromSegmentStats(m, stats), scores: resampleScores(m, stats, sharedIndices(stats.n, n, seed)) };
}

/**
 * The paired bootstrap of a system against the baseline from their scores on the same resamples: the p-value
 * of pairedBootstrapFromStats (see the header), and the 95% percentile interval of the difference system -
 * baseline over the resamples (sacreBLEU's percentile rule applied to the differences; `mean` their average).
 * The interval is what a margin test needs ("worse by less than m"), which a p-value against 0 cannot say.
 */
export function pairedFromResamples(baseline: Resampled, system: Resampled): { difference: number; pValue: number; mean: number; ci: [number, number] } {
  const n = baseline.scores.length;
  if (system.scores.length !== n) throw new DataError(`pairedFromResamples: ${system.scores.length} resamples of the system but ${n} of the baseline`);
  const diffs = new Float64Array(n);
  const abs = new Float64Array(n);
  let meanAbs = 0;
  for (let r = 0; r < n; r++) {
    diffs[r] = system.scores[r]! - baseline.scores[r]!;
    abs[r] = Math.abs(diffs[r]!);
    meanAbs += abs[r]!;
  }
  meanAbs /= n;
  for (let r = 0; r < n; r++) abs[r]! -= meanAbs;
  const { mean, ci } = percentileInterval(diffs);
  const difference = system.score - baseline.score;
  return { difference, pValue: pValue(abs, Math.abs(difference)), mean, ci };
}

/** pairedFromResamples on statistics: the interval of system - baseline (and the p-value) on the paired bootstrap's resamples. */
export function pairedDifferenceInterval(
  metric: MetricArg,
  baseline: SegmentStats,
  system: SegmentStats,
  n = DEFAULT_BOOTSTRAP_N,
  seed = DEFAULT_SEED,
): { difference: number; pValue: number; mean: number; ci: [number, number] } {
  checkSameLength([baseline, system], 'pairedDifferenceInterval');
  return pairedFromResamples(resampledScores(metric, baseline, n, seed), resampledScores(metric, system, n, seed));
}

export interface PairedInput {
  readonly metric: MetricArg;
  readonly baseline: readonly string[];
  readonly systems: readonly (readonly string[])[];
  readonly refs: readonly (readonly string[])[];
  /** Resamples (bootstrap) or trials (approximate randomization). */
  readonly n?: number;
  readonly seed?: number;
}

/** Every system must have one line per reference line: checked before any statistic is computed. */
function checkSystems(o: PairedInput, what: string): void {
  checkRefs(o.baseline.length, o.refs, what);
  o.systems.forEach((s, k) => {
    if (s.length !== o.baseline.length) {
      throw new DataError(`${what}: system ${k + 1} has ${s.length} lines but the references have ${o.baseline.length}`);
    }
  });
}

export function pairedBootstrap(o: PairedInput): PairedResult {
  checkSystems(o, 'pairedBootstrap');
  checkN(o.n ?? DEFAULT_BOOTSTRAP_N, 'paired bootstrap resamples');
  const m = resolve(o.metric);
  return pairedBootstrapFromStats(
    m,
    segmentStatistics(m, o.baseline, o.refs),
    o.systems.map((s) => segmentStatistics(m, s, o.refs)),
    o.n,
    o.seed,
  );
}

const NO_CI = { mean: NaN, ci: [NaN, NaN] as const, halfWidth: NaN };

/**
 * Paired approximate randomization of each system against the baseline; mean/CI from `confidenceN` bootstrap
 * resamples (0 for none; sacreBLEU's CLI runs none for AR, its API default is 1000 when asked).
 */
export function pairedApproximateRandomizationFromStats(
  metric: MetricArg,
  baseline: SegmentStats,
  systems: readonly SegmentStats[],
  n = DEFAULT_AR_N,
  seed = DEFAULT_SEED,
  confidenceN = DEFAULT_BOOTSTRAP_N,
): PairedResult {
  const m = resolve(metric);
  checkN(n, 'approximate randomization trials');
  if (!Number.isInteger(confidenceN) || confidenceN < 0) throw new ConfigError([`confidence resamples: expected an integer >= 0, got ${String(confidenceN)}`]);
  checkSameLength([baseline, ...systems], 'pairedApproximateRandomization');
  const { n: size, k } = baseline;
  // the swap pattern: one bit per (trial, sentence), the same for every system, as sacreBLEU re-seeds per system;
  // its own stream of the seed, so that it is independent of the bootstrap indices behind the CI
  const rng = new Rng(deriveSeed(seed, 'approximate-randomization'));
  const swap = new Uint8Array(n * size);
  for (let i = 0; i < swap.length; i++) swap[i] = rng.next() < 0.5 ? 1 : 0;
  const idxs = confidenceN > 0 ? sharedIndices(size, confidenceN, seed) : [];
  const ciOf = (st: SegmentStats): typeof NO_CI | ReturnType<typeof percentileInterval> =>
    confidenceN > 0 ? percentileInterval(resampleScores(m, st, idxs)) : NO_CI;

  const baseSum = sumRows(baseline, undefined, new Float64Array(k));
  const baseScore = m.scoreFromStats(baseSum);
  const results = systems.map((st): SystemResult => {
    const sysSum = sumRows(st, undefined, new Float64Array(k));
    const score = m.scoreFromStats(sysSum);
    const a = new Float64Array(k);
    const b = new Float64Array(k);
    const stats = new Float64Array(n);
    for (let t = 0; t < n; t++) {
      a.fill(0);
      const off = t * size;
      for (let i = 0; i < size; i++) {
        const src = swap[off + i] ? baseline.data : st.data;
        const base = i * k;
        for (let j = 0; j < k; j++) a[j]! += src[base + j]!;
      }
      // the other pseudo-system holds every sentence a did not take
      for (let j = 0; j < k; j++) b[j] = baseSum[j]! + sysSum[j]! - a[j]!;
      stats[t] = Math.abs(m.scoreFromStats(a) - m.scoreFromStats(b));
    }
    return { score, ...ciOf(st), pValue: pValue(stats, Math.abs(baseScore - score)) };
  });
  return { metric: m.name, test: 'ar', n, bootstrapN: confidenceN, seed, baseline: { score: baseScore, ...ciOf(baseline), pValue: null }, systems: results };
}

export function pairedApproximateRandomization(o: PairedInput & { readonly confidenceN?: number }): PairedResult {
  checkSystems(o, 'pairedApproximateRandomization');
  checkN(o.n ?? DEFAULT_AR_N, 'approximate randomization trials');
  const m = resolve(o.metric);
  return pairedApproximateRandomizationFromStats(
    m,
    segmentStatistics(m, o.baseline, o.refs),
    o.systems.map((s) => segmentStatistics(m, s, o.refs)),
    o.n,
    o.seed,
    o.confidenceN,
  );
}
