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
import { pairedBootstrapFromStats, pairedDifferenceInterval, segmentStatistics, type SegmentStats } from '../eval/significance.js';
import type { TestOutput } from './hyps.js';
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

function concatStats(parts: readonly SegmentStats[]): SegmentStats {
  const k = parts[0]!.k;
  const data = new Float64Array(parts.reduce((a, p) => a + p.data.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p.data, off);
    off += p.data.length;
  }
  return { n: parts.reduce((a, p) => a + p.n, 0), k, data };
}

/**
 * The one place the report's p-values come from: test BLEU of `system` against `reference`, one pair of
 * translations per seed (each pair on the same test sentences), by paired bootstrap per seed and pooled
 * over the seeds (see the module header). Statistics are computed once per sentence (src/eval/significance.ts).
 */
export function pairedTestSetPValues(pairs: ReadonlyArray<{ system: TestOutput; reference: TestOutput }>): PairedComparison {
  const sys: SegmentStats[] = [];
  const ref: SegmentStats[] = [];
  const diffs: number[] = [];
  const pValues: number[] = [];
  for (const { system, reference } of pairs) {
    const s = segmentStatistics('bleu', system.hyps, [system.refs]);
    const r = segmentStatistics('bleu', reference.hyps, [reference.refs]);
    const res = pairedBootstrapFromStats('bleu', r, [s], REPORT_BOOTSTRAP.n, REPORT_BOOTSTRAP.seed);
    sys.push(s);
    ref.push(r);
    diffs.push(res.systems[0]!.score - res.baseline.score);
    pValues.push(res.systems[0]!.pValue!);
  }
  const [allRef, allSys] = pairs.length > 1 ? [concatStats(ref), concatStats(sys)] : [ref[0]!, sys[0]!];
  const pooledP = pairs.length > 1 ? pairedBootstrapFromStats('bleu', allRef, [allSys], REPORT_BOOTSTRAP.n, REPORT_BOOTSTRAP.seed).systems[0]!.pValue! : null;
  const consistent = !(diffs.some((d) => d > 0) && diffs.some((d) => d < 0));
  const { ci: interval } = pairedDifferenceInterval('bleu', allRef, allSys, REPORT_BOOTSTRAP.n, REPORT_BOOTSTRAP.seed);
  return { diffs, pValues, pooledP, consistent, interval };
}

/** A p-value with enough digits for the bootstrap's smallest, 1/(n+1) = 0.0010. */
export function formatP(p: number | null): string {
  return p === null ? '-' : p < 0.01 ? p.toFixed(4) : p.toFixed(3);
}
