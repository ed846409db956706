/**
 * chrF (Popović 2015) and chrF++ (Popović 2017) identical to sacreBLEU 2.x's `CHRF` (metrics/chrf.py, unchanged
 * 2.0-2.6): character n-grams of orders 1..charOrder over the line with whitespace removed (kept with
 * `whitespace`), plus, for chrF++, word n-grams of orders 1..wordOrder over words with one leading or trailing
 * punctuation mark split off. Per order a segment contributes [hyp n-grams, ref n-grams, matches]; with several
 * references the one with the best sentence chrF is kept. The corpus score is the F-beta of the precision and
 * recall averaged over the orders that have both hypothesis and reference n-grams (sacreBLEU 2's default,
 * `eff:yes`), or with `epsSmoothing` the mean of per-order F-scores with 1e-16 for empty ones (chrF++.py/Moses).
 */
import { ConfigError } from '../util/errors.js';
import { pySplit } from './tokenizer-13a.js';

export interface ChrfConfig {
  /** Character n-gram order (sacreBLEU `--chrf-char-order`, 6). */
  readonly charOrder: number;
  /** Word n-gram order (`--chrf-word-order`, 0; 2 is chrF++). */
  readonly wordOrder: number;
  /** Recall weight (`--chrf-beta`, 2). */
  readonly beta: number;
  /** Case-insensitive (`--chrf-lowercase`). */
  readonly lowercase: boolean;
  /** Keep whitespace in character n-grams (`--chrf-whitespace`). */
  readonly whitespace: boolean;
  /** chrF++.py-style epsilon smoothing instead of effective-order averaging (`--chrf-eps-smoothing`). */
  readonly epsSmoothing: boolean;
}

export type ChrfOptions = Partial<ChrfConfig>;

export const CHRF_DEFAULTS: ChrfConfig = { charOrder: 6, wordOrder: 0, beta: 2, lowercase: false, whitespace: false, epsSmoothing: false };

export function resolveChrfConfig(opts: ChrfOptions = {}): ChrfConfig {
  const cfg: ChrfConfig = { ...CHRF_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const problems: string[] = [];
  const int = (k: 'charOrder' | 'wordOrder' | 'beta', flag: string): void => {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 0) problems.push(`chrf ${flag}: expected an integer >= 0, got ${String(cfg[k])}`);
  };
  int('charOrder', '--chrf-char-order');
  int('wordOrder', '--chrf-word-order');
  int('beta', '--chrf-beta');
  if (problems.length === 0 && cfg.charOrder + cfg.wordOrder === 0) {
    problems.push('chrf --chrf-char-order/--chrf-word-order: expected at least one n-gram order, got 0 and 0');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return cfg;
}

/** string.punctuation, the marks chrF++ splits off a word's end or start. */
const PUNCTS = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/**
 * sacreBLEU's `_remove_punctuation`: words of one character stay; otherwise a trailing mark is split off, or else
 * a leading one (only one of the two, so `(hi)` gives `(hi` and `)`, sacreBLEU issue #124).
 */
export function chrfWords(sent: string): string[] {
  const out: string[] = [];
  for (const w of pySplit(sent)) {
    if ([...w].length === 1) out.push(w);
    else if (PUNCTS.has(w[w.length - 1]!)) out.push(w.slice(0, -1), w[w.length - 1]!);
    else if (PUNCTS.has(w[0]!)) out.push(w[0]!, w.slice(1));
    else out.push(w);
  }
  return out;
}

function count(keys: Iterable<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

/** Counters of character n-grams of orders 1..charOrder (code points, as Python indexes strings), then word n-grams. */
function allNgrams(sent: string, cfg: ChrfConfig): Map<string, number>[] {
  const chars = [...(cfg.whitespace ? sent : pySplit(sent).join(''))];
  const out: Map<string, number>[] = [];
  for (let n = 1; n <= cfg.charOrder; n++) {
    const grams: string[] = [];
    for (let i = 0; i + n <= chars.length; i++) grams.push(chars.slice(i, i + n).join(''));
    out.push(count(grams));
  }
  if (cfg.wordOrder > 0) {
    const words = chrfWords(sent);
    for (let n = 1; n <= cfg.wordOrder; n++) {
      const grams: string[] = [];
      for (let i = 0; i + n <= words.length; i++) grams.push(words.slice(i, i + n).join(' '));
      out.push(count(grams));
    }
  }
  return out;
}

/**
 * sacreBLEU's `_compute_f_score`, operation for operation. Note the quirk kept from it: an order whose hypothesis
 * has n-grams but the reference none contributes 0 hypothesis n-grams (segment statistics), so it drops out.
 */
export function chrfFromStats(stats: ArrayLike<number>, cfg: ChrfConfig): number {
  const eps = 1e-16;
  const order = cfg.charOrder + cfg.wordOrder;
  const factor = cfg.beta ** 2;
  let score = 0;
  let effectiveOrder = 0;
  let avgPrec = 0;
  let avgRec = 0;
  for (let i = 0; i < order; i++) {
    const nHyp = stats[3 * i]!;
    const nRef = stats[3 * i + 1]!;
    const nMatch = stats[3 * i + 2]!;
    const prec = nHyp > 0 ? nMatch / nHyp : eps;
    const rec = nRef > 0 ? nMatch / nRef : eps;
    const denom = factor * prec + rec;
    score += denom > 0 ? ((1 + factor) * prec * rec) / denom : eps;
    if (nHyp > 0 && nRef > 0) {
      avgPrec += prec;
      avgRec += rec;
      effectiveOrder += 1;
    }
  }
  if (cfg.epsSmoothing) return (100 * score) / order;
  if (effectiveOrder === 0) {
    avgPrec = 0;
    avgRec = 0;
  } else {
    avgPrec /= effectiveOrder;
    avgRec /= effectiveOrder;
  }
  if (avgPrec + avgRec === 0) return 0;
  return 100 * (((1 + factor) * avgPrec * avgRec) / (factor * avgPrec + avgRec));
}

/** One segment's statistics, [hyp, ref, match] per order, against the reference giving the best sentence chrF. */
export function chrfSegmentStats(hyp: string, refs: readonly string[], cfg: ChrfConfig): number[] {
  const prep = (s: string): string => (cfg.lowercase ? s.toLowerCase() : s);
  const hypNgrams = allNgrams(prep(hyp), cfg);
  let best: number[] = [];
  let bestF = -1;
  for (const ref of refs) {
    const refNgrams = allNgrams(prep(ref), cfg);
    const stats: number[] = [];
    hypNgrams.forEach((h, n) => {
      const r = refNgrams[n]!;
      let match = 0;
      let hypCount = 0;
      for (const [g, c] of h) {
        hypCount += c;
        const rc = r.get(g);
        if (rc !== undefined) match += Math.min(c, rc);
      }
      let refCount = 0;
      for (const c of r.values()) refCount += c;
      // sacreBLEU: hypothesis n-grams do not count when the reference has none of that order
      stats.push(r.size > 0 ? hypCount : 0, refCount, match);
    });
    const f = chrfFromStats(stats, cfg);
    if (f > bestF) {
      bestF = f;
      best = stats;
    }
  }
  return best;
}
