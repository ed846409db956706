/**
 * The metrics of `heads bleu` behind one interface, as sacreBLEU 2.x structures them: each metric turns one segment
 * (a hypothesis and its references) into a fixed-length vector of sufficient statistics, and computes the corpus
 * score from the element-wise sum of those vectors. Corpus scores, sentence scores, bootstrap resamples and
 * approximate-randomization trials are then all "sum some rows, call scoreFromStats" (significance.ts).
 *
 *   const m = makeMetric('chrf', { wordOrder: 2 });     // chrF++
 *   m.segmentStats(hyp, [ref1, ref2])                    // number[] of length m.statsSize
 *   m.scoreFromStats(summed)                              // 0-100
 *   m.signature(nrefs)                                    // 'nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|version:...'
 */
import { ConfigError } from '../util/errors.js';
import { BLEU_SIGNATURE_VERSION, bleuFromStats, bleuSegmentStats, pyFixed, pyFloatRepr, resolveBleuConfig, SMOOTH_DEFAULTS, type BleuOptions } from './bleu.js';
import { chrfFromStats, chrfSegmentStats, resolveChrfConfig, type ChrfOptions } from './chrf.js';
import { resolveTerConfig, terFromStats, terSegmentStats, type TerOptions } from './ter.js';

/** The metric names `-m` accepts, as sacreBLEU spells them on its command line. */
export type MetricName = 'bleu' | 'chrf' | 'ter';
export const METRIC_NAMES: readonly MetricName[] = ['bleu', 'chrf', 'ter'];

/** Options of every metric, by metric; each metric reads only its own. */
export interface MetricOptions {
  readonly bleu?: BleuOptions;
  readonly chrf?: ChrfOptions;
  readonly ter?: TerOptions;
}

/** Extra signature fields of a statistical test, placed after `nrefs` as sacreBLEU does. */
export interface TestSignatureFields {
  /** Bootstrap resamples (paired bootstrap, or the CI of --confidence). */
  readonly bs?: number;
  /** Approximate-randomization trials. */
  readonly ar?: number;
  readonly seed?: number;
}

export interface Metric {
  /** `-m` name. */
  readonly id: MetricName;
  /** sacreBLEU's display name: 'BLEU', 'chrF2', 'chrF2++', 'TER'. */
  readonly name: string;
  /** Length of one segment's statistics vector. */
  readonly statsSize: number;
  /** BLEU and chrF: higher is better; TER: lower is better. */
  readonly higherIsBetter: boolean;
  /** Sufficient statistics of one segment; `refs[k]` is its k-th reference. */
  segmentStats(hyp: string, refs: readonly string[]): number[];
  /** Score on the 0-100 scale from statistics summed over segments. */
  scoreFromStats(stats: ArrayLike<number>): number;
  /** sacreBLEU's verbose part after the score ('' for chrF and TER), from summed statistics. */
  verboseFromStats(stats: ArrayLike<number>): string;
  /** sacreBLEU's signature: long (`nrefs:1|...`) or short (`#:1|...`). */
  signature(nrefs: number, test?: TestSignatureFields, short?: boolean): string;
}

type Field = readonly [long: string, short: string, value: string];

/** sacreBLEU's Signature.format: `nrefs`, the test fields, the metric's own fields, `version` last. */
function formatSignature(nrefs: number, own: readonly Field[], test: TestSignatureFields = {}, short = false): string {
  const fields: Field[] = [['nrefs', '#', String(nrefs)]];
  if (test.bs !== undefined) fields.push(['bs', 'bs', String(test.bs)]);
  if (test.ar !== undefined) fields.push(['ar', 'ar', String(test.ar)]);
  if (test.seed !== undefined) fields.push(['seed', 'rs', String(test.seed)]);
  fields.push(...own, ['version', 'v', BLEU_SIGNATURE_VERSION]);
  return fields.map(([l, s, v]) => `${short ? s : l}:${v}`).join('|');
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

/**
 * The metric `id` with its options, validated (ConfigError on a bad value). `sentence` selects BLEU's sentence-level
 * defaults (effective order on unless `bleu.effectiveOrder` is false); chrF and TER are the same at both levels.
 */
export function makeMetric(id: MetricName, options: MetricOptions = {}, sentence = false): Metric {
  switch (id) {
    case 'bleu': {
      const cfg = resolveBleuConfig(options.bleu ?? {}, sentence);
      const N = cfg.maxNgramOrder;
      let smooth: string = cfg.smoothMethod;
      const def = SMOOTH_DEFAULTS[cfg.smoothMethod];
      if (def !== undefined) smooth += `[${pyFixed(cfg.smoothValue ?? def, 2)}]`;
      const own: Field[] = [
        ['case', 'c', cfg.lowercase ? 'lc' : 'mixed'],
        ['eff', 'e', yesNo(cfg.effectiveOrder)],
        ['tok', 'tok', cfg.tokenize],
        ['smooth', 's', smooth],
      ];
      return {
        id,
        name: 'BLEU',
        statsSize: 2 + 2 * N,
        higherIsBetter: true,
        segmentStats: (hyp, refs) => bleuSegmentStats(hyp, refs, cfg),
        scoreFromStats: (s) => bleuFromStats(s, cfg, 1).score,
        verboseFromStats: (s) => bleuFromStats(s, cfg, 1).verbose,
        signature: (nrefs, test, short) => formatSignature(nrefs, own, test, short),
      };
    }
    case 'chrf': {
      const cfg = resolveChrfConfig(options.chrf ?? {});
      const own: Field[] = [
        ['case', 'c', cfg.lowercase ? 'lc' : 'mixed'],
        ['eff', 'e', yesNo(!cfg.epsSmoothing)],
        ['nc', 'nc', String(cfg.charOrder)],
        ['nw', 'nw', String(cfg.wordOrder)],
        ['space', 's', yesNo(cfg.whitespace)],
      ];
      return {
        id,
        name: `chrF${cfg.beta}${'+'.repeat(cfg.wordOrder)}`,
        statsSize: 3 * (cfg.charOrder + cfg.wordOrder),
        higherIsBetter: true,
        segmentStats: (hyp, refs) => chrfSegmentStats(hyp, refs, cfg),
        scoreFromStats: (s) => chrfFromStats(s, cfg),
        verboseFromStats: () => '',
        signature: (nrefs, test, short) => formatSignature(nrefs, own, test, short),
      };
    }
    case 'ter': {
      const cfg = resolveTerConfig(options.ter ?? {});
      const own: Field[] = [
        ['case', 'c', cfg.caseSensitive ? 'mixed' : 'lc'],
        ['tok', 't', 'tercom'],
        ['norm', 'nr', yesNo(cfg.normalized)],
        ['punct', 'pn', yesNo(!cfg.noPunct)],
        ['asian', 'as', yesNo(cfg.asianSupport)],
      ];
      return {
        id,
        name: 'TER',
        statsSize: 2,
        higherIsBetter: false,
        segmentStats: (hyp, refs) => terSegmentStats(hyp, refs, cfg),
        scoreFromStats: (s) => terFromStats(s),
        verboseFromStats: () => '',
        signature: (nrefs, test, short) => formatSignature(nrefs, own, test, short),
      };
    }
    default:
      throw new ConfigError([`metric: expected one of ${METRIC_NAMES.join(', ')}, got ${JSON.stringify(id)}`]);
  }
}

/** Parses a `-m` value (case-insensitive as sacreBLEU's choices are lowercase; 'chrf++' is not a name there either). */
export function parseMetricName(s: string): MetricName {
  const id = s.toLowerCase();
  if (!(METRIC_NAMES as readonly string[]).includes(id)) {
    throw new ConfigError([`bleu --metrics: expected one of ${METRIC_NAMES.join(', ')}, got ${JSON.stringify(s)}`]);
  }
  return id as MetricName;
}

export interface ScoreLineOptions {
  readonly width: number;
  readonly scoreOnly?: boolean;
  readonly json?: boolean;
  /** Signature to print ('' for none). */
  readonly signature: string;
  /** Bootstrap mean, CI half-width (sacreBLEU's `μ = mean ± ci`) and the interval itself (JSON only: ci_low, ci_high). */
  readonly confidence?: { readonly mean: number; readonly halfWidth: number; readonly ci?: readonly [number, number] };
}

/**
 * sacreBLEU's Score.format for any metric: `chrF2|sig = 58.9`, `BLEU|sig = 34.1 (μ = 34.0 ± 0.9) 64.5/...`, the bare
 * score, or its `json.dumps(indent=1)` object (name, score, signature, confidence fields, verbose_score, then one
 * key per signature field).
 */
export function formatScoreLine(name: string, score: number, verbose: string, o: ScoreLineOptions): string {
  let sc = pyFixed(score, o.width);
  const entries: [string, string][] = [
    ['name', JSON.stringify(name)],
    ['score', pyFloatRepr(Number(sc))],
    ['signature', JSON.stringify(o.signature)],
  ];
  if (o.confidence !== undefined) {
    const mean = pyFixed(o.confidence.mean, o.width);
    const hw = pyFixed(o.confidence.halfWidth, o.width);
    const text = `μ = ${mean} ± ${hw}`;
    sc += ` (${text})`;
    entries.push(['confidence_mean', pyFloatRepr(Number(mean))], ['confidence_var', pyFloatRepr(Number(hw))], ['confidence', JSON.stringify(text)]);
    // not in sacreBLEU's JSON, which only has the half-width: the percentile interval it comes from
    if (o.confidence.ci !== undefined) {
      entries.push(
        ['ci_low', pyFloatRepr(Number(pyFixed(o.confidence.ci[0], o.width)))],
        ['ci_high', pyFloatRepr(Number(pyFixed(o.confidence.ci[1], o.width)))],
      );
    }
  }
  if (o.scoreOnly) return sc;
  if (verbose !== '') entries.push(['verbose_score', JSON.stringify(verbose)]);
  if (o.json) {
    if (o.signature !== '') {
      for (const param of o.signature.split('|')) {
        const i = param.indexOf(':');
        entries.push([param.slice(0, i), JSON.stringify(param.slice(i + 1))]);
      }
    }
    return `{\n${entries.map(([k, v]) => ` ${JSON.stringify(k)}: ${v}`).join(',\n')}\n}`;
  }
  const head = o.signature !== '' ? `${name}|${o.signature}` : name;
  return `${head} = ${sc}${verbose !== '' ? ` ${verbose}` : ''}`;
}
