/**
 * Seeds in reports: the replicates of one setting (the same stage instance id apart from its seed) as mean,
 * sample standard deviation and count, and the paired bootstrap of a pruned stage against its references
 * (the baseline and the lambda-0 control of the same seed) on the test set.
 *
 * How seeds and resampling are combined (results.md says the same):
 *  - per seed: sacreBLEU's paired bootstrap (1000 resamples of the test sentences, seed 12345) of the stage's
 *    translations against its reference's translations of that seed; it asks whether this pair of trained
 *    models differs by more than the choice of test sentences explains;
 *  - pooled: the same test on the seeds' test sets concatenated (seed s's sentence i of the stage paired with
 *    seed s's sentence i of the reference), i.e. corpus BLEU over all seeds' translations. It uses every
 *    seed's translations at once, but still treats the trained models as fixed: the spread between seeds
 *    (training randomness) is what the ± sd of each score and of the difference shows, and a difference is
 *    only called consistent when it has the same sign in every seed.
 */
import { pairedFromResamples, resampledScores, segmentStatistics, type Resampled, type SegmentStats } from '../eval/significance.js';
import type { TestOutput } from './hyps.js';
import { DataError } from '../util/errors.js';
import type { MeanSd } from '../util/stats.js';

export { meanSd, type MeanSd } from '../util/stats.js';

/** `19.05 ± 0.12 (n=3)`; one value as itself; `-` for none. */
export function formatMeanSd(m: MeanSd | null, digits = 2, withN = true): string {
  if (!m) return '-';
  if (m.n === 1) return m.mean.toFixed(digits);
  return `${m.mean.toFixed(digits)} ± ${m.sd.toFixed(digits)}${withN ? ` (n=${m.n})` : ''}`;
}

/** The paired bootstrap as the report runs it (sacreBLEU's defaults). */
export const REPORT_BOOTSTRAP = { n: 1000, seed: 12345 } as const;

export interface PairedComparison {
  /** the stage's test BLEU minus the reference's, per seed (in the order given) */
  diffs: number[];
  /** paired bootstrap p-value per seed */
  pValues: number[];
  /** the same test on all seeds' test sentences at once (null with one seed: it is the per-seed test) */
  pooledP: number | null;
  /** no two seeds' differences have opposite signs (a difference of exactly 0 opposes neither) */
  consistent: boolean;
  /**
   * the paired bootstrap's 95% interval of the difference (stage - reference) on the sentences the pooled
   * test uses (all seeds' at once; with one seed, that seed's): the resampling spread, not the seeds'
   */
  interval: [number, number];
}

// A report runs hundreds of paired tests in which the same translations recur (a baseline against every
// stage pruned from it, the pooled sentences of a reference against each of its systems): each output's
// statistics, each pooled concatenation and each one's resample scores are computed once. The outputs are
// the report's own objects and are not changed after they are read.
const statsCache = new WeakMap<TestOutput, SegmentStats>();
const resampleCache = new WeakMap<SegmentStats, Resampled>();
const pooledCache = new Map<string, SegmentStats>();
const outputIds = new WeakMap<TestOutput, number>();
let nextOutputId = 0;

function statsOf(o: TestOutput): SegmentStats {
  let st = statsCache.get(o);
  if (!st) statsCache.set(o, (st = segmentStatistics('bleu', o.hyps, [o.refs])));
  return st;
}

function resampledOf(st: SegmentStats): Resampled {
  let r = resampleCache.get(st);
  if (!r) resampleCache.set(st, (r = resampledScores('bleu', st, REPORT_BOOTSTRAP.n, REPORT_BOOTSTRAP.seed)));
  return r;
}

/** The seeds' outputs as one test set (seed by seed, in the order given), one object per distinct list. */
function pooledStats(outputs: readonly TestOutput[]): SegmentStats {
  if (outputs.length === 1) return statsOf(outputs[0]!);
  const key = outputs
    .map((o) => {
      if (!outputIds.has(o)) outputIds.set(o, nextOutputId++);
      return outputIds.get(o)!;
    })
    .join(',');
  let st = pooledCache.get(key);
  if (!st) {
    const parts = outputs.map(statsOf);
    const data = new Float64Array(parts.reduce((a, p) => a + p.data.length, 0));
    let off = 0;
    for (const p of parts) {
      data.set(p.data, off);
      off += p.data.length;
    }
    pooledCache.set(key, (st = { n: parts.reduce((a, p) => a + p.n, 0), k: parts[0]!.k, data }));
    // a bounded memory: a report holds a few hundred pooled sets at most
    if (pooledCache.size > 512) pooledCache.delete(pooledCache.keys().next().value!);
  }
  return st;
}

/**
 * The one place the report's p-values come from: test BLEU of `system` against `reference`, one pair of
 * translations per seed (each pair on the same test sentences), by paired bootstrap per seed and pooled
 * over the seeds (see the module header). Statistics are computed once per sentence (src/eval/significance.ts).
 */
export function pairedTestSetPValues(pairs: ReadonlyArray<{ system: TestOutput; reference: TestOutput }>): PairedComparison {
  if (!pairs.length) throw new DataError('paired test: no pair of translations to compare');
  const perSeed = pairs.map(({ system, reference }) => {
    const s = statsOf(system);
    const r = statsOf(reference);
    if (s.n !== r.n) throw new DataError(`paired test: the system has ${s.n} test sentences but its reference has ${r.n}`);
    return pairedFromResamples(resampledOf(r), resampledOf(s));
  });
  const diffs = perSeed.map((x) => x.difference);
  const pooled =
    pairs.length > 1
      ? pairedFromResamples(resampledOf(pooledStats(pairs.map((p) => p.reference))), resampledOf(pooledStats(pairs.map((p) => p.system))))
      : null;
  const consistent = !(diffs.some((d) => d > 0) && diffs.some((d) => d < 0));
  // with one seed, the pooled test is that seed's
  return { diffs, pValues: perSeed.map((x) => x.pValue), pooledP: pooled ? pooled.pValue : null, consistent, interval: (pooled ?? perSeed[0]!).ci };
}

/** A p-value with enough digits for the bootstrap's smallest, 1/(n+1) = 0.0010. */
export function formatP(p: number | null): string {
  return p === null ? '-' : p < 0.01 ? p.toFixed(4) : p.toFixed(3);
}
