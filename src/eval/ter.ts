/**
 * TER (Snover et al. 2006) identical to sacreBLEU 2.x's `TER` (metrics/ter.py, lib_ter.py, tokenizers/tokenizer_ter.py):
 * the Tercom-compatible tokenizer (lowercased unless case-sensitive; optional normalisation, punctuation removal and
 * CJK handling), then per reference the fewest edits = block shifts + word-level edit distance, found greedily as
 * Tercom does: repeatedly apply the shift that lowers the edit distance most (ties: longer, then earlier in the
 * hypothesis, then earlier target), until none helps or 1000 shift candidates have been tried. Shifts are at most
 * 10 words long and move a phrase whose hypothesis and reference starts differ by at most 50 positions; the edit
 * distance is a beam of 25 cells each side of the length-scaled diagonal (wider for very unequal lengths).
 * A segment's statistics are [fewest edits over references, mean reference length]; TER = 100 * edits / length.
 */
import { pyRstrip, pySplit } from './tokenizer-13a.js';

export interface TerConfig {
  /** Keep case (`--ter-case-sensitive`); sacreBLEU lowercases by default. */
  readonly caseSensitive: boolean;
  /** Tercom normalisation: XML entities, punctuation split off, possessive 's (`--ter-normalized`). */
  readonly normalized: boolean;
  /** Remove . , ? : ; ! " ( ) (`--ter-no-punct`). */
  readonly noPunct: boolean;
  /** Split CJK characters (with normalized) and remove CJK punctuation (with noPunct) (`--ter-asian-support`). */
  readonly asianSupport: boolean;
}

export type TerOptions = Partial<TerConfig>;

export const TER_DEFAULTS: TerConfig = { caseSensitive: false, normalized: false, noPunct: false, asianSupport: false };

export function resolveTerConfig(opts: TerOptions = {}): TerConfig {
  return { ...TER_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
}

// ---------------------------------------------------------------------------------------------------------
// Tercom tokenizer
// ---------------------------------------------------------------------------------------------------------

const ASIAN_PUNCT = /([\u3001\u3002\u3008-\u3011\u3014-\u301f\uff61-\uff65\u30fb])/gu;
const FULL_WIDTH_PUNCT = /([\uff0e\uff0c\uff1f\uff1a\uff1b\uff01\uff02\uff08\uff09])/gu;

function normalizeGeneralAndWestern(s: string): string {
  s = s.replaceAll('\n-', '').replaceAll('\n', ' ');
  s = s.replaceAll('&quot;', '"').replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  s = ` ${s} `;
  // the same symbol class as 13a: {|}~ [\]^_` space!"#$%& ()*+ :;<=>?@ /
  s = s.replace(/([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40\x2F])/gu, ' $1 ');
  s = s.replace(/'s /gu, " 's ").replace(/'s$/u, " 's");
  s = s.replace(/([^0-9])([.,])/gu, '$1 $2 ');
  s = s.replace(/([.,])([^0-9])/gu, ' $1 $2');
  s = s.replace(/([0-9])(-)/gu, '$1 $2 ');
  return s;
}

function normalizeAsian(s: string): string {
  s = s.replace(/([\u4e00-\u9fff\u3400-\u4dbf])/gu, ' $1 ');
  s = s.replace(/([\u31c0-\u31ef\u2e80-\u2eff])/gu, ' $1 ');
  s = s.replace(/([\u3300-\u33ff\uf900-\ufaff\ufe30-\ufe4f])/gu, ' $1 ');
  s = s.replace(/([\u3200-\u3f22])/gu, ' $1 ');
  // kana runs are split only when they make up the whole line (sacreBLEU's patterns, `^` inside the groups included)
  s = s.replace(/(^|^[\u3040-\u309f])([\u3040-\u309f]+)(?=$|^[\u3040-\u309f])/gu, '$1 $2 ');
  s = s.replace(/(^|^[\u30a0-\u30ff])([\u30a0-\u30ff]+)(?=$|^[\u30a0-\u30ff])/gu, '$1 $2 ');
  s = s.replace(/(^|^[\u31f0-\u31ff])([\u31f0-\u31ff]+)(?=$|^[\u31f0-\u31ff])/gu, '$1 $2 ');
  return s.replace(ASIAN_PUNCT, ' $1 ').replace(FULL_WIDTH_PUNCT, ' $1 ');
}

/** sacreBLEU's TercomTokenizer on a right-stripped line; returns the space-joined tokens. */
export function tokenizeTercom(line: string, cfg: TerConfig): string {
  let s = pyRstrip(line);
  if (s === '') return '';
  if (!cfg.caseSensitive) s = s.toLowerCase();
  if (cfg.normalized) {
    s = normalizeGeneralAndWestern(s);
    if (cfg.asianSupport) s = normalizeAsian(s);
  }
  if (cfg.noPunct) {
    s = s.replace(/[.,?:;!"()]/gu, '');
    if (cfg.asianSupport) s = s.replace(ASIAN_PUNCT, '').replace(FULL_WIDTH_PUNCT, '');
  }
  return pySplit(s).join(' ');
}

// ---------------------------------------------------------------------------------------------------------
// Edit distance with a beam, a prefix cache and the trace of operations
// ---------------------------------------------------------------------------------------------------------

const MAX_SHIFT_SIZE = 10;
const MAX_SHIFT_DIST = 50;
const BEAM_WIDTH = 25;
const MAX_CACHE_SIZE = 10000;
const MAX_SHIFT_CANDIDATES = 1000;
const INF = 1e16;

// operations, as in the trace: no-op, substitution, insertion, deletion, undefined
const NOP = 0;
const SUB = 1;
const INS = 2;
const DEL = 3;
const UNDEF = 4;

interface Row {
  readonly cost: Float64Array;
  readonly op: Uint8Array;
}

interface CacheNode {
  readonly next: Map<string, CacheNode>;
  readonly row: Row;
}

/**
 * Levenshtein distance from a hypothesis to the fixed reference, rewriting the hypothesis; ties prefer
 * no-op/substitution, then deletion, then insertion (sacreBLEU's order, which after flipping the trace is Tercom's).
 * Rows of hypotheses sharing a prefix are reused from a trie; all hypotheses seen by one instance have the same
 * length (shifts keep it), so a cached row is the row that would be recomputed and the cache changes no result.
 */
class BeamEditDistance {
  private readonly nRef: number;
  private readonly initial: Row;
  private readonly cache = new Map<string, CacheNode>();
  private cacheSize = 0;

  constructor(private readonly ref: readonly string[]) {
    this.nRef = ref.length;
    const cost = new Float64Array(this.nRef + 1);
    for (let j = 0; j <= this.nRef; j++) cost[j] = j;
    this.initial = { cost, op: new Uint8Array(this.nRef + 1).fill(INS) };
  }

  /** [edit distance, trace] where the trace lists NOP/SUB/INS/DEL from the start. */
  distance(hyp: readonly string[]): [number, number[]] {
    const rows: Row[] = [this.initial];
    let node: Map<string, CacheNode> = this.cache;
    for (const w of hyp) {
      const hit = node.get(w);
      if (hit === undefined) break;
      rows.push(hit.row);
      node = hit.next;
    }
    const start = rows.length - 1;
    const nH = hyp.length;
    const nRef = this.nRef;
    const ratio = nH > 0 ? nRef / nH : 1;
    const beam = BEAM_WIDTH < ratio / 2 ? Math.ceil(ratio / 2 + BEAM_WIDTH) : BEAM_WIDTH;
    for (let i = start + 1; i <= nH; i++) {
      const cost = new Float64Array(nRef + 1).fill(INF);
      const op = new Uint8Array(nRef + 1).fill(UNDEF);
      const prev = rows[i - 1]!;
      const diag = Math.floor(i * ratio);
      const minJ = Math.max(0, diag - beam);
      const maxJ = i === nH ? nRef + 1 : Math.min(nRef + 1, diag + beam);
      for (let j = minJ; j < maxJ; j++) {
        if (j === 0) {
          cost[0] = prev.cost[0]! + 1;
          op[0] = DEL;
          continue;
        }
        const same = hyp[i - 1] === this.ref[j - 1];
        const c1 = prev.cost[j - 1]! + (same ? 0 : 1);
        if (cost[j]! > c1) {
          cost[j] = c1;
          op[j] = same ? NOP : SUB;
        }
        const c2 = prev.cost[j]! + 1;
        if (cost[j]! > c2) {
          cost[j] = c2;
          op[j] = DEL;
        }
        const c3 = cost[j - 1]! + 1;
        if (cost[j]! > c3) {
          cost[j] = c3;
          op[j] = INS;
        }
      }
      rows.push({ cost, op });
    }
    this.addToCache(hyp, rows, start);

    const trace: number[] = [];
    let i = nH;
    let j = nRef;
    while (i > 0 || j > 0) {
      const o = rows[i]!.op[j]!;
      trace.push(o);
      if (o === SUB || o === NOP) {
        i--;
        j--;
      } else if (o === INS) j--;
      else if (o === DEL) i--;
      else throw new Error(`TER: undefined edit operation at (${i}, ${j})`);
    }
    trace.reverse();
    return [rows[nH]!.cost[nRef]!, trace];
  }

  private addToCache(hyp: readonly string[], rows: readonly Row[], start: number): void {
    if (this.cacheSize >= MAX_CACHE_SIZE) return;
    let node: Map<string, CacheNode> = this.cache;
    for (let i = 0; i < start; i++) node = node.get(hyp[i]!)!.next;
    for (let i = start; i < hyp.length; i++) {
      let hit = node.get(hyp[i]!);
      if (hit === undefined) {
        hit = { next: new Map(), row: rows[i + 1]! };
        node.set(hyp[i]!, hit);
        this.cacheSize++;
      }
      node = hit.next;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Shifts
// ---------------------------------------------------------------------------------------------------------

/** Move words[start, start+length) so it starts before position `target` of the original sequence. */
function performShift(words: readonly string[], start: number, length: number, target: number): string[] {
  if (target < start) {
    return [...words.slice(0, target), ...words.slice(start, start + length), ...words.slice(target, start), ...words.slice(start + length)];
  }
  if (target > start + length) {
    return [...words.slice(0, start), ...words.slice(start + length, target), ...words.slice(start, start + length), ...words.slice(target)];
  }
  return [...words.slice(0, start), ...words.slice(start + length, length + target), ...words.slice(start, start + length), ...words.slice(length + target)];
}

interface ShiftResult {
  readonly gain: number;
  readonly words: readonly string[];
  readonly checked: number;
}

/** The best single shift of `hyp` (gain <= 0 when none helps), counting the candidates evaluated. */
function bestShift(hyp: readonly string[], ref: readonly string[], ed: BeamEditDistance, checkedIn: number): ShiftResult {
  const [preScore, invTrace] = ed.distance(hyp);
  // alignment of the reference onto the hypothesis: the trace read the other way round (insertions <-> deletions)
  const align = new Map<number, number>();
  const hypErr: number[] = [];
  const refErr: number[] = [];
  let posH = -1;
  let posR = -1;
  for (const o0 of invTrace) {
    const o = o0 === INS ? DEL : o0 === DEL ? INS : o0;
    if (o === NOP || o === SUB) {
      posH++;
      posR++;
      align.set(posR, posH);
      hypErr.push(o === SUB ? 1 : 0);
      refErr.push(o === SUB ? 1 : 0);
    } else if (o === INS) {
      posH++;
      hypErr.push(1);
    } else {
      posR++;
      align.set(posR, posH);
      refErr.push(1);
    }
  }
  const anyErr = (err: readonly number[], from: number, len: number): boolean => {
    for (let k = from; k < from + len && k < err.length; k++) if (err[k] !== 0) return true;
    return false;
  };

  let checked = checkedIn;
  let best: { gain: number; length: number; negStart: number; negIdx: number; words: string[] } | undefined;
  const nH = hyp.length;
  const nR = ref.length;
  outer: for (let startH = 0; startH < nH; startH++) {
    for (let startR = 0; startR < nR; startR++) {
      if (Math.abs(startR - startH) > MAX_SHIFT_DIST) continue;
      let length = 0;
      while (hyp[startH + length] === ref[startR + length] && length < MAX_SHIFT_SIZE) {
        length++;
        // one candidate phrase: hyp[startH, +length) equals ref[startR, +length)
        if (anyErr(hypErr, startH, length) && anyErr(refErr, startR, length)) {
          const a = align.get(startR)!;
          if (!(startH <= a && a < startH + length)) {
            let prevIdx = -1;
            for (let offset = -1; offset < length; offset++) {
              let idx: number;
              if (startR + offset === -1) idx = 0;
              else if (align.has(startR + offset)) idx = align.get(startR + offset)! + 1;
              else break;
              if (idx === prevIdx) continue;
              prevIdx = idx;
              const shifted = performShift(hyp, startH, length, idx);
              const gain = preScore - ed.distance(shifted)[0];
              checked++;
              // Tercom's ranking: largest gain, then longest, then earliest start, then earliest target
              if (
                best === undefined ||
                gain > best.gain ||
                (gain === best.gain &&
                  (length > best.length || (length === best.length && (-startH > best.negStart || (-startH === best.negStart && -idx > best.negIdx)))))
              ) {
                best = { gain, length, negStart: -startH, negIdx: -idx, words: shifted };
              }
            }
          }
        }
        if (checked >= MAX_SHIFT_CANDIDATES) break outer;
        if (nH === startH + length || nR === startR + length) break;
      }
    }
  }
  return best === undefined ? { gain: 0, words: hyp, checked } : { gain: best.gain, words: best.words, checked };
}

/** [fewest edits (shifts + edit distance), reference length] of one hypothesis against one reference. */
export function translationEditRate(hyp: readonly string[], ref: readonly string[]): [number, number] {
  if (ref.length === 0) return [hyp.length, 0];
  const ed = new BeamEditDistance(ref);
  let shifts = 0;
  let words = hyp;
  let checked = 0;
  for (;;) {
    const r = bestShift(words, ref, ed, checked);
    checked = r.checked;
    if (checked >= MAX_SHIFT_CANDIDATES || r.gain <= 0) break;
    shifts++;
    words = r.words;
  }
  return [shifts + ed.distance(words)[0], ref.length];
}

/**
 * One segment's statistics: [fewest edits over the references, mean reference length]. sacreBLEU 2.x tokenizes each
 * reference twice (`_cache_references` preprocesses it, then TER's `_extract_reference_info` again), which matters
 * only with normalisation, where tokenizing is not idempotent (`Nima's,` -> `Nima's ,` -> `Nima 's ,`); we do the
 * same so that scores stay identical. Hypotheses are tokenized once.
 */
export function terSegmentStats(hyp: string, refs: readonly string[], cfg: TerConfig): number[] {
  const h = pySplit(tokenizeTercom(hyp, cfg));
  let refLengths = 0;
  let bestEdits = INF;
  for (const ref of refs) {
    const [edits, len] = translationEditRate(h, pySplit(tokenizeTercom(tokenizeTercom(ref, cfg), cfg)));
    refLengths += len;
    if (edits < bestEdits) bestEdits = edits;
  }
  return [bestEdits, refLengths / refs.length];
}

/** TER in percent from summed statistics: 100 when references are empty but the hypothesis is not, 0 when both are. */
export function terFromStats(stats: ArrayLike<number>): number {
  const edits = stats[0]!;
  const refLen = stats[1]!;
  let score: number;
  if (refLen > 0) score = edits / refLen;
  else score = edits > 0 ? 1 : 0;
  return 100 * score;
}
