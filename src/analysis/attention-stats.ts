/**
 * Per-head statistics of attention distributions, from the weights alone (pure; data in, data out):
 *
 * - confidence (Voita et al. 2019, §4): for each real query token, the largest attention weight over the
 *   keys that are neither `</s>` nor padding (nor, in decoder self-attention, in the future), taken as
 *   is (not renormalised over the remaining keys); averaged over the real (non-pad) query tokens that
 *   have such a key (all but the query of an empty source). `</s>` is excluded because it is not a real
 *   token (the paper's footnote 2): heads park attention there.
 * - entropy: −Σ_k p_k ln p_k (nats) of the full distribution (every key, `</s>` included), averaged over
 *   the real query tokens, as in Michel et al.'s `heads_stats` and the bertology script.
 * - argmax offset: position of the key with the largest weight (same key set as confidence; ties go to
 *   the first) minus the query position, counted per offset; the report keeps -5..+5 and "other".
 * - rare-token rate (Voita et al. §5.3): how often that argmax key holds the rarest token among the
 *   query's candidate keys (the same key set, `<s>` also removed), rarity by training-corpus frequency;
 *   ties in frequency all count as "the rarest". The top-2 rate counts the argmax when its frequency is
 *   at most the second smallest frequency of the candidates (as a multiset). The chance rate is what a
 *   uniformly random choice among the keys would score. Queries are counted only when the rarest
 *   candidate's frequency rank (1 = most frequent) exceeds `rareMinRank` (the paper: 500).
 */
import { BOS_ID, EOS_ID, PAD_ID } from '../data/tokenizer.js';

/** Offsets kept individually in the histogram; others go to "other". */
export const OFFSET_RANGE = 5;

/** One head's attention over one sentence: rows of a padded [Tq, stride] matrix. */
export interface AttentionMatrix {
  weights: ArrayLike<number>;
  /** index of element [0, 0] in `weights` */
  base: number;
  /** row length (padded key length) */
  stride: number;
  /** number of real (non-pad) query rows, from row 0 */
  queries: number;
  /** token id of each key position (length >= stride is not required beyond `stride`); 0 = pad */
  keyIds: ArrayLike<number>;
  /** decoder self-attention: query q sees keys 0..q only */
  isCausal: boolean;
}

export interface RareTokenOptions {
  /** frequency of each token id in the training corpus (index = id) */
  frequencies: ArrayLike<number>;
  /** rank of each token id by frequency, 1 = most frequent (see `frequencyRanks`) */
  ranks: ArrayLike<number>;
  /** count a query only when its rarest candidate's rank is > this (0: every query) */
  minRank: number;
}

export interface HeadStatsAccumulator {
  queries: number;
  confidenceSum: number;
  entropySum: number;
  /** queries whose argmax was defined (at least one allowed key) */
  argmaxQueries: number;
  offsetCounts: Map<number, number>;
  rareQueries: number;
  rareHits: number;
  rareTop2Hits: number;
  rareChanceSum: number;
}

export function createHeadStats(): HeadStatsAccumulator {
  return {
    queries: 0,
    confidenceSum: 0,
    entropySum: 0,
    argmaxQueries: 0,
    offsetCounts: new Map(),
    rareQueries: 0,
    rareHits: 0,
    rareTop2Hits: 0,
    rareChanceSum: 0,
  };
}

/** Ranks 1..V by decreasing frequency (ties: lower id first). */
export function frequencyRanks(frequencies: ArrayLike<number>): Int32Array {
  const ids = Array.from({ length: frequencies.length }, (_, i) => i);
  ids.sort((a, b) => frequencies[b]! - frequencies[a]! || a - b);
  const ranks = new Int32Array(frequencies.length);
  ids.forEach((id, r) => (ranks[id] = r + 1));
  return ranks;
}

function isContentKey(id: number): boolean {
  return id !== PAD_ID && id !== EOS_ID;
}

/** Argmax key over the allowed keys of row q, or -1 when none is allowed. */
export function argmaxKey(m: AttentionMatrix, q: number): number {
  const row = m.base + q * m.stride;
  const last = m.isCausal ? Math.min(q, m.stride - 1) : m.stride - 1;
  let best = -1;
  let bestW = -Infinity;
  for (let k = 0; k <= last; k++) {
    if (!isContentKey(m.keyIds[k]!)) continue;
    const w = m.weights[row + k]!;
    if (w > bestW) {
      bestW = w;
      best = k;
    }
  }
  return best;
}

/** Add one head's attention over one sentence to `acc`. */
export function accumulateAttention(acc: HeadStatsAccumulator, m: AttentionMatrix, rare?: RareTokenOptions | null): void {
  for (let q = 0; q < m.queries; q++) {
    const row = m.base + q * m.stride;
    let entropy = 0;
    for (let k = 0; k < m.stride; k++) {
      const p = m.weights[row + k]!;
      if (p > 0) entropy -= p * Math.log(p);
    }
    acc.queries++;
    acc.entropySum += entropy;
    const best = argmaxKey(m, q);
    if (best < 0) continue;
    acc.confidenceSum += m.weights[row + best]!;
    acc.argmaxQueries++;
    const off = best - q;
    acc.offsetCounts.set(off, (acc.offsetCounts.get(off) ?? 0) + 1);
    if (rare) accumulateRare(acc, m, q, best, rare);
  }
}

function accumulateRare(acc: HeadStatsAccumulator, m: AttentionMatrix, q: number, best: number, rare: RareTokenOptions): void {
  const last = m.isCausal ? Math.min(q, m.stride - 1) : m.stride - 1;
  let allowed = 0;
  let min = Infinity;
  let second = Infinity;
  let minCount = 0;
  let rarestRank = 0;
  for (let k = 0; k <= last; k++) {
    const id = m.keyIds[k]!;
    if (!isContentKey(id)) continue;
    allowed++;
    if (id === BOS_ID) continue;
    const f = rare.frequencies[id] ?? 0;
    if (f < min) {
      second = min;
      min = f;
      minCount = 1;
      rarestRank = rare.ranks[id] ?? 0;
    } else if (f === min) {
      second = f;
      minCount++;
    } else if (f < second) second = f;
  }
  if (minCount === 0 || rarestRank <= rare.minRank) return;
  const bestId = m.keyIds[best]!;
  acc.rareQueries++;
  acc.rareChanceSum += minCount / allowed;
  if (bestId === BOS_ID) return;
  const f = rare.frequencies[bestId] ?? 0;
  if (f === min) acc.rareHits++;
  if (f <= (Number.isFinite(second) ? second : min)) acc.rareTop2Hits++;
}

/** Shares of query tokens per argmax offset: `shares[i]` is offset `from + i`; `other` is beyond the range. */
export interface OffsetHistogram {
  from: number;
  to: number;
  shares: number[];
  other: number;
}

export interface HeadAttentionSummary {
  /** real query tokens seen */
  queries: number;
  confidence: number;
  entropy: number;
  /** share of queries (with a defined argmax) per argmax offset */
  offsetHistogram: OffsetHistogram;
  /** most frequent argmax offset and its share */
  modeOffset: number | null;
  modeFraction: number;
  rare: { queries: number; rate: number; top2Rate: number; chanceRate: number } | null;
}

export function offsetShare(acc: HeadStatsAccumulator, offset: number): number {
  return acc.argmaxQueries ? (acc.offsetCounts.get(offset) ?? 0) / acc.argmaxQueries : 0;
}

export function summarizeHeadStats(acc: HeadStatsAccumulator, hasRare: boolean): HeadAttentionSummary {
  const n = acc.argmaxQueries;
  const shares: number[] = [];
  let inRange = 0;
  for (let o = -OFFSET_RANGE; o <= OFFSET_RANGE; o++) {
    const c = acc.offsetCounts.get(o) ?? 0;
    inRange += c;
    shares.push(n ? c / n : 0);
  }
  const offsetHistogram: OffsetHistogram = { from: -OFFSET_RANGE, to: OFFSET_RANGE, shares, other: n ? (n - inRange) / n : 0 };
  let modeOffset: number | null = null;
  let modeCount = 0;
  for (const [o, c] of [...acc.offsetCounts.entries()].sort((a, b) => a[0] - b[0])) {
    if (c > modeCount) {
      modeOffset = o;
      modeCount = c;
    }
  }
  return {
    queries: acc.queries,
    confidence: n ? acc.confidenceSum / n : 0,
    entropy: acc.queries ? acc.entropySum / acc.queries : 0,
    offsetHistogram,
    modeOffset,
    modeFraction: n ? modeCount / n : 0,
    rare: hasRare
      ? {
          queries: acc.rareQueries,
          rate: acc.rareQueries ? acc.rareHits / acc.rareQueries : 0,
          top2Rate: acc.rareQueries ? acc.rareTop2Hits / acc.rareQueries : 0,
          chanceRate: acc.rareQueries ? acc.rareChanceSum / acc.rareQueries : 0,
        }
      : null,
  };
}
