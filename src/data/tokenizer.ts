/**
 * Joint byte-pair encoding (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword
 * Units") learned on both sides of the training data, with SentencePiece-style word-start markers so that
 * decoding is exactly reversible for whitespace-normalised text. Ids: <pad>=0, <s>=1, </s>=2, <unk>=3,
 * then characters (most frequent first), then merge results in merge order.
 *
 * Pre-tokenisation (version `ws-punct-v1`): text is split on whitespace (JS `\s`); each word is split
 * into maximal runs of word characters (letters, marks, digits) and maximal runs of everything else
 * (punctuation, symbols, emoji). The first run of a word carries the marker `▁` (U+2581); later runs
 * are glued to it. So "package." -> `▁package` `.` shares `▁package` with "package", and
 * "(common)" -> `▁(` `common` `)`. BPE never merges across runs. Decoding concatenates the pieces and
 * turns each `▁` into a space. Characters are code points, so surrogate pairs stay whole.
 */
import { DataError } from '../util/errors.js';
import { readJsonFile, writeJsonAtomic } from '../util/fs.js';
import { SentencePiece } from './sentencepiece.js';

export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const UNK_ID = 3;
export const SPECIAL_TOKENS: readonly string[] = ['<pad>', '<s>', '</s>', '<unk>'];
/** Word-start marker (U+2581 LOWER ONE EIGHTH BLOCK), as in SentencePiece. */
export const WORD_START = '\u2581';
export const TOKENIZER_FILE_VERSION = 1;
export const PRETOKENIZER = 'ws-punct-v1';

// A literal U+2581 in the input would be indistinguishable from the marker; it is swapped for this
// noncharacter, which never enters the vocabulary, so it encodes as <unk> and cannot break the markers.
const NONCHAR = '\uffff';
const SEGMENT_RE = /[\p{L}\p{M}\p{N}]+|[^\p{L}\p{M}\p{N}]+/gu;
const WHITESPACE_RE = /\s+/;
// Pair keys pack two ids into one safe integer: left * 2^24 + right.
const PAIR_SHIFT = 0x1000000;
// Bound on the per-word encode cache so a long-running decode service cannot grow without limit.
const CACHE_LIMIT = 500_000;

/** Split one whitespace-free word into its pre-tokens; the first carries the word-start marker. */
function segmentWord(word: string): string[] {
  const w = word.includes(WORD_START) ? word.replaceAll(WORD_START, NONCHAR) : word;
  const out: string[] = [];
  let isFirst = true;
  for (const m of w.matchAll(SEGMENT_RE)) {
    out.push(isFirst ? WORD_START + m[0] : m[0]);
    isFirst = false;
  }
  return out;
}

/** The pre-tokens of a text (see the module header): the units BPE merges within. */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  for (const word of text.split(WHITESPACE_RE)) {
    if (word !== '') for (const seg of segmentWord(word)) out.push(seg);
  }
  return out;
}

/** Whitespace normalisation that `decode(encode(s))` reproduces for text made of known characters. */
export function normalizeWhitespace(text: string): string {
  return text.trim().split(WHITESPACE_RE).join(' ');
}

export interface BpeLearnOptions {
  /** Number of merges to learn (>= 0). Fewer are learned if no pair reaches `minPairCount`. */
  numMerges: number;
  /** Characters seen fewer times than this map to <unk>. Default 1 (keep every character). */
  minCharCount?: number;
  /** Stop early when the best pair occurs fewer times than this. Default 2. */
  minPairCount?: number;
  onProgress?: (done: number, total: number) => void;
}

/** JSON form written by `save` (`version` 1). `vocab` is redundant and checked against chars + merges. */
export interface BpeTokenizerJson {
  version: number;
  type: 'bpe';
  pretokenizer: string;
  specialTokens: string[];
  chars: string[];
  /** `"left right"` in merge order (pieces never contain spaces). */
  merges: string[];
  vocab: string[];
}

/**
 * Max-heap of (count, pair key) with a deterministic tie-break: higher count first, then the pair whose
 * left piece, then right piece, is smaller in JS string order (UTF-16 code units).
 */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  constructor(private readonly pieces: string[]) {}
  get size(): number {
    return this.keys.length;
  }
  private before(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    if (ci !== cj) return ci > cj;
    const ki = this.keys[i]!;
    const kj = this.keys[j]!;
    const li = this.pieces[Math.floor(ki / PAIR_SHIFT)]!;
    const lj = this.pieces[Math.floor(kj / PAIR_SHIFT)]!;
    if (li !== lj) return li < lj;
    return this.pieces[ki % PAIR_SHIFT]! < this.pieces[kj % PAIR_SHIFT]!;
  }
  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  /** Removes the top; returns [count, key]. Caller checks size first. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const last = this.keys.length - 1;
    this.swap(0, last);
    this.counts.pop();
    this.keys.pop();
    const n = this.keys.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < n && this.before(l, best)) best = l;
      if (r < n && this.before(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
    return top;
  }
}

export class BpeTokenizer {
  private readonly pieces: string[];
  private readonly idByPiece: Map<string, number>;
  private readonly charIds: Map<string, number>;
  /** pair key -> merge rank. */
  private readonly mergeRank: Map<number, number>;
  /** merge rank -> left id, right id, resulting id. */
  private readonly mergeLeft: Int32Array;
  private readonly mergeRight: Int32Array;
  private readonly mergeResult: Int32Array;
  private readonly cache = new Map<string, number[]>();

  protected constructor(
    readonly chars: readonly string[],
    readonly merges: readonly (readonly [string, string])[],
  ) {
    this.pieces = [...SPECIAL_TOKENS, WORD_START, ...chars.filter((c) => c !== WORD_START)];
    this.idByPiece = new Map();
    this.pieces.forEach((p, i) => this.idByPiece.set(p, i));
    this.charIds = new Map();
    for (let i = SPECIAL_TOKENS.length; i < this.pieces.length; i++) this.charIds.set(this.pieces[i]!, i);
    this.mergeRank = new Map();
    this.mergeLeft = new Int32Array(merges.length);
    this.mergeRight = new Int32Array(merges.length);
    this.mergeResult = new Int32Array(merges.length);
    merges.forEach(([l, r], rank) => {
      const a = this.idByPiece.get(l);
      const b = this.idByPiece.get(r);
      if (a === undefined || b === undefined || a < SPECIAL_TOKENS.length || b < SPECIAL_TOKENS.length) {
        throw new Error(`merge ${rank} (${l} ${r}) uses an unknown piece`);
      }
      const key = a * PAIR_SHIFT + b;
      if (this.mergeRank.has(key)) throw new Error(`merge ${rank} (${l} ${r}) is a duplicate`);
      this.mergeRank.set(key, rank);
      this.mergeLeft[rank] = a;
      this.mergeRight[rank] = b;
      const merged = l + r;
      let c = this.idByPiece.get(merged);
      // A string already in the vocabulary (reached by a different split) reuses its id, as in
      // HuggingFace tokenizers, so `idOf` stays a bijection.
      if (c === undefined) {
        c = this.pieces.length;
        this.pieces.push(merged);
        this.idByPiece.set(merged, c);
      } else if (c < SPECIAL_TOKENS.length) {
        throw new Error(`merge ${rank} (${l} ${r}) produces a special token`);
      }
      this.mergeResult[rank] = c;
    });
  }

  /**
   * Learn a joint BPE model on `texts` (feed both sides of the training corpus). Deterministic: the
   * most frequent pair is merged first, ties going to the lexicographically smallest (left, right).
   * Pair counts are updated incrementally, using an index from each pair to the words containing it.
   */
  static learn(texts: Iterable<string>, opts: BpeLearnOptions): BpeTokenizer {
    const numMerges = opts.numMerges;
    const minCharCount = opts.minCharCount ?? 1;
    const minPairCount = opts.minPairCount ?? 2;
    if (!Number.isInteger(numMerges) || numMerges < 0) throw new RangeError(`numMerges must be an integer >= 0, got ${numMerges}`);

    // Word types first (cheap: split only), then pre-tokens per type, weighted by word counts.
    const wordCounts = new Map<string, number>();
    for (const text of texts) {
      for (const w of text.split(WHITESPACE_RE)) if (w !== '') wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
    const segCounts = new Map<string, number>();
    for (const [w, c] of wordCounts) for (const s of segmentWord(w)) segCounts.set(s, (segCounts.get(s) ?? 0) + c);

    const charCounts = new Map<string, number>();
    for (const [s, c] of segCounts) {
      for (const ch of s) if (ch !== WORD_START && ch !== NONCHAR) charCounts.set(ch, (charCounts.get(ch) ?? 0) + c);
    }
    const chars = [...charCounts.entries()]
      .filter(([, c]) => c >= minCharCount)
      .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
      .map(([ch]) => ch);

    // Symbol ids match the final vocabulary ids; unknown characters become UNK_ID, which never pairs.
    const pieces: string[] = [...SPECIAL_TOKENS, WORD_START, ...chars];
    const idByPiece = new Map<string, number>();
    pieces.forEach((p, i) => idByPiece.set(p, i));
    if (pieces.length + numMerges >= PAIR_SHIFT) throw new RangeError('vocabulary too large');

    const numWords = segCounts.size;
    const words: Int32Array[] = new Array(numWords);
    const freq = new Float64Array(numWords);
    {
      let w = 0;
      for (const [s, c] of segCounts) {
        const cps = Array.from(s);
        const syms = new Int32Array(cps.length);
        for (let i = 0; i < cps.length; i++) syms[i] = idByPiece.get(cps[i]!) ?? UNK_ID;
        words[w] = syms;
        freq[w] = c;
        w++;
      }
    }

    const counts = new Map<number, number>();
    const where = new Map<number, number[]>();
    for (let w = 0; w < numWords; w++) {
      const s = words[w]!;
      const f = freq[w]!;
      for (let i = 0; i + 1 < s.length; i++) {
        const a = s[i]!;
        const b = s[i + 1]!;
        if (a === UNK_ID || b === UNK_ID) continue;
        const key = a * PAIR_SHIFT + b;
        counts.set(key, (counts.get(key) ?? 0) + f);
        let list = where.get(key);
        if (!list) where.set(key, (list = []));
        if (list[list.length - 1] !== w) list.push(w);
      }
    }
    const heap = new PairHeap(pieces);
    for (const [key, c] of counts) heap.push(c, key);

    const merges: [string, string][] = [];
    const visited = new Int32Array(numWords).fill(-1);
    const progressEvery = Math.max(1, Math.floor(numMerges / 100));
    for (let m = 0; m < numMerges; m++) {
      // Pop until an entry matches the live count. Counts of existing pairs only fall, so a stale entry
      // is an upper bound and is re-queued with its live count; pairs that can grow are pushed anew below.
      let best = -1;
      let bestCount = 0;
      while (heap.size > 0) {
        const [c, key] = heap.pop();
        const live = counts.get(key) ?? 0;
        if (live === c) {
          best = key;
          bestCount = c;
          break;
        }
        if (live > 0 && live < c) heap.push(live, key);
      }
      if (best < 0 || bestCount < minPairCount) break;

      const a = Math.floor(best / PAIR_SHIFT);
      const b = best % PAIR_SHIFT;
      merges.push([pieces[a]!, pieces[b]!]);
      const mergedPiece = pieces[a]! + pieces[b]!;
      let c = idByPiece.get(mergedPiece);
      if (c === undefined) {
        c = pieces.length;
        pieces.push(mergedPiece);
        idByPiece.set(mergedPiece, c);
      }

      const grown = new Set<number>();
      const list = where.get(best) ?? [];
      where.delete(best);
      for (const w of list) {
        if (visited[w] === m) continue;
        visited[w] = m;
        const s = words[w]!;
        let hasPair = false;
        for (let i = 0; i + 1 < s.length; i++) {
          if (s[i] === a && s[i + 1] === b) {
            hasPair = true;
            break;
          }
        }
        if (!hasPair) continue; // stale index entry
        const out: number[] = [];
        for (let i = 0; i < s.length;) {
          if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
            out.push(c);
            i += 2;
          } else out.push(s[i++]!);
        }
        const ns = Int32Array.from(out);
        const f = freq[w]!;
        // Subtract the word's old pairs and add its new ones: simple and exact, words are short.
        for (let i = 0; i + 1 < s.length; i++) {
          const x = s[i]!;
          const y = s[i + 1]!;
          if (x === UNK_ID || y === UNK_ID) continue;
          const key = x * PAIR_SHIFT + y;
          const v = (counts.get(key) ?? 0) - f;
          if (v > 0) counts.set(key, v);
          else counts.delete(key);
        }
        for (let i = 0; i + 1 < ns.length; i++) {
          const x = ns[i]!;
          const y = ns[i + 1]!;
          if (x === UNK_ID || y === UNK_ID) continue;
          const key = x * PAIR_SHIFT + y;
          counts.set(key, (counts.get(key) ?? 0) + f);
          if (x === c || y === c) {
            // only pairs with the new symbol can gain occurrences; index this word under them
            grown.add(key);
            let l = where.get(key);
            if (!l) where.set(key, (l = []));
            if (l[l.length - 1] !== w) l.push(w);
          }
        }
        words[w] = ns;
      }
      for (const key of grown) {
        const v = counts.get(key);
        if (v !== undefined) heap.push(v, key);
      }
      if (opts.onProgress && (m + 1) % progressEvery === 0) opts.onProgress(m + 1, numMerges);
    }
    opts.onProgress?.(merges.length, numMerges);
    return new BpeTokenizer(chars, merges);
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** The piece string of an id; throws RangeError outside [0, vocabSize). */
  pieceOf(id: number): string {
    const p = this.pieces[id];
    if (p === undefined) throw new RangeError(`token id ${id} outside the vocabulary [0, ${this.pieces.length})`);
    return p;
  }

  /** The id of a piece, or undefined if it is not in the vocabulary. */
  idOf(piece: string): number | undefined {
    return this.idByPiece.get(piece);
  }

  /** BPE ids of one pre-token (cached). */
  private encodeSegment(seg: string): number[] {
    const hit = this.cache.get(seg);
    if (hit) return hit;
    const cps = Array.from(seg);
    let syms: number[] = new Array(cps.length);
    for (let i = 0; i < cps.length; i++) {
      // a `▁` here is always the marker: literal U+2581 was swapped out in segmentWord
      syms[i] = this.charIds.get(cps[i]!) ?? UNK_ID;
    }
    // Apply the lowest-ranked merge present, everywhere in the word, until none applies. This
    // replays learning order, so training words get exactly their learned segmentation.
    while (syms.length > 1) {
      let bestRank = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.mergeRank.get(syms[i]! * PAIR_SHIFT + syms[i + 1]!);
        if (r !== undefined && r < bestRank) bestRank = r;
      }
      if (bestRank === Infinity) break;
      const a = this.mergeLeft[bestRank]!;
      const b = this.mergeRight[bestRank]!;
      const c = this.mergeResult[bestRank]!;
      const next: number[] = [];
      for (let i = 0; i < syms.length;) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          next.push(c);
          i += 2;
        } else next.push(syms[i++]!);
      }
      syms = next;
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(seg, syms);
    return syms;
  }

  /** Token ids of `text` (no <s> or </s>). Unknown characters become <unk>. */
  encode(text: string): number[] {
    const out: number[] = [];
    for (const seg of pretokenize(text)) for (const id of this.encodeSegment(seg)) out.push(id);
    return out;
  }

  /** Token ids of a target-side text (a joint BPE: the same as `encode`; Marian: the target SentencePiece model). */
  encodeTarget(text: string): number[] {
    return this.encode(text);
  }

  /** Piece strings of `text`, e.g. ["▁The", "▁pack", "age", "."]. */
  encodeToPieces(text: string): string[] {
    return this.encode(text).map((id) => this.pieces[id]!);
  }

  /**
   * Text of `ids`: drops <pad>, <s> and </s>, renders <unk> as the literal `<unk>`, turns markers into
   * spaces and normalises whitespace (so stray markers in model output cannot leave double spaces).
   */
  decode(ids: readonly number[]): string {
    let s = '';
    for (const id of ids) {
      if (id === PAD_ID || id === BOS_ID || id === EOS_ID) continue;
      s += this.pieceOf(id);
    }
    return s.replaceAll(WORD_START, ' ').replace(/ {2,}/g, ' ').trim();
  }

  /** Throws DataError if this vocabulary does not have `vocabSize` entries (e.g. checkpoint mismatch). */
  checkVocabSize(vocabSize: number, sourceName: string): void {
    if (vocabSize !== this.vocabSize) {
      throw new DataError(`${sourceName}: vocabulary size mismatch: expected ${vocabSize}, the tokenizer has ${this.vocabSize}`);
    }
  }

  toJSON(): BpeTokenizerJson {
    return {
      version: TOKENIZER_FILE_VERSION,
      type: 'bpe',
      pretokenizer: PRETOKENIZER,
      specialTokens: [...SPECIAL_TOKENS],
      chars: [...this.chars],
      merges: this.merges.map(([l, r]) => `${l} ${r}`),
      vocab: [...this.pieces],
    };
  }

  /** Rebuild from `toJSON()` output; throws DataError naming `sourceName` on any malformed field. */
  static fromJSON(obj: unknown, sourceName: string): BpeTokenizer {
    const fail = (msg: string): never => {
      throw new DataError(`${sourceName}: ${msg}`);
    };
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) fail('expected a tokenizer JSON object');
    const o = obj as Record<string, unknown>;
    if (o.type === MARIAN_TOKENIZER_TYPE) return MarianTokenizer.fromJSON(o, sourceName);
    if (o.version !== TOKENIZER_FILE_VERSION) {
      fail(`version: expected ${TOKENIZER_FILE_VERSION}, got ${JSON.stringify(o.version)}`);
    }
    if (o.type !== 'bpe') fail(`type: expected "bpe", got ${JSON.stringify(o.type)}`);
    if (o.pretokenizer !== PRETOKENIZER) fail(`pretokenizer: expected "${PRETOKENIZER}", got ${JSON.stringify(o.pretokenizer)}`);
    const strings = (field: string): string[] => {
      const v = o[field];
      if (!Array.isArray(v)) return fail(`${field}: expected an array of strings, got ${typeof v}`);
      v.forEach((x, i) => {
        if (typeof x !== 'string') fail(`${field}[${i}]: expected a string, got ${JSON.stringify(x)}`);
      });
      return v as string[];
    };
    const specials = strings('specialTokens');
    if (specials.length !== SPECIAL_TOKENS.length || specials.some((s, i) => s !== SPECIAL_TOKENS[i])) {
      fail(`specialTokens: expected ${JSON.stringify(SPECIAL_TOKENS)}, got ${JSON.stringify(specials)}`);
    }
    const chars = strings('chars');
    const seen = new Set<string>();
    chars.forEach((ch, i) => {
      if (Array.from(ch).length !== 1) fail(`chars[${i}]: expected one character, got ${JSON.stringify(ch)}`);
      if (seen.has(ch) || ch === WORD_START) fail(`chars[${i}]: duplicate character ${JSON.stringify(ch)}`);
      seen.add(ch);
    });
    const known = new Set<string>([WORD_START, ...chars]);
    const merges = strings('merges').map((m, i): [string, string] => {
      const parts = m.split(' ');
      if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
        return fail(`merges[${i}]: expected "left right", got ${JSON.stringify(m)}`);
      }
      const [l, r] = parts as [string, string];
      if (!known.has(l) || !known.has(r)) fail(`merges[${i}]: "${m}" uses a piece not defined before it`);
      known.add(l + r);
      return [l, r];
    });
    const vocab = strings('vocab');
    let tok: BpeTokenizer;
    try {
      tok = new BpeTokenizer(chars, merges);
    } catch (e) {
      return fail(`inconsistent merges: ${(e as Error).message}`);
    }
    if (vocab.length !== tok.vocabSize) fail(`vocab: expected ${tok.vocabSize} entries (from chars and merges), got ${vocab.length}`);
    for (let i = 0; i < vocab.length; i++) {
      if (vocab[i] !== tok.pieces[i]) {
        fail(`vocab[${i}]: expected ${JSON.stringify(tok.pieces[i])} (from chars and merges), got ${JSON.stringify(vocab[i])}`);
      }
    }
    return tok;
  }

  /** Write the tokenizer as JSON (atomic). */
  save(path: string): void {
    writeJsonAtomic(path, this.toJSON());
  }

  static load(path: string): BpeTokenizer {
    return BpeTokenizer.fromJSON(readJsonFile(path, 'tokenizer file'), path);
  }
}

/** How often each id occurs in `encoded` (e.g. for frequency-binned analysis). Index = token id. */
export function tokenFrequencies(encoded: readonly (readonly number[])[], vocabSize: number): Int32Array {
  const freq = new Int32Array(vocabSize);
  for (const seq of encoded) {
    for (const id of seq) {
      if (!(id >= 0 && id < vocabSize)) throw new RangeError(`token id ${id} outside [0, ${vocabSize})`);
      freq[id]!++;
    }
  }
  return freq;
}

// ---- imported Marian (opus-mt) models: SentencePiece source and target models + vocab.json (issue 21) ----

export const MARIAN_TOKENIZER_TYPE = 'marian-spm';

/** JSON form of a MarianTokenizer: Marian's vocabulary by Marian id, and both .spm files in base64. */
export interface MarianTokenizerJson {
  version: number;
  type: typeof MARIAN_TOKENIZER_TYPE;
  /** vocab.json's pieces in Marian id order: "</s>" 0, "<unk>" 1, ..., "<pad>" last */
  vocab: string[];
  source: string;
  target: string;
}

/**
 * Marian's tokenization (HF MarianTokenizer) in the toolkit's id space. Text -> source SentencePiece
 * pieces -> vocab.json ids (unknown pieces: <unk>); ids -> pieces -> the target model's DecodePieces,
 * skipping special tokens as `skip_special_tokens` does. Marian's pad is also its decoder start token,
 * while the toolkit keeps pad 0 (masked) apart from <s> 1 (not masked), so the toolkit's vocabulary has
 * one entry more: toolkit 0 = pad (a row of its own), 1 = <s> = Marian's pad, 2 = </s> = Marian 0,
 * 3 = <unk> = Marian 1, and toolkit t >= 4 = Marian t - 2 (`toMarian` / `fromMarian`).
 */
export class MarianTokenizer extends BpeTokenizer {
  private readonly idByMarianPiece = new Map<string, number>();

  constructor(
    readonly marianVocab: readonly string[],
    readonly sourceModel: Uint8Array,
    readonly targetModel: Uint8Array,
    private readonly sourceSpm = SentencePiece.fromBytes(sourceModel),
    private readonly targetSpm = SentencePiece.fromBytes(targetModel),
  ) {
    super([], []);
    marianVocab.forEach((p, i) => {
      if (!this.idByMarianPiece.has(p)) this.idByMarianPiece.set(p, i);
    });
  }

  /** Marian's pad id (= decoder_start_token_id): the last entry. */
  get marianPad(): number {
    return this.marianVocab.length - 1;
  }

  override get vocabSize(): number {
    return this.marianVocab.length + 1;
  }

  /** Marian id of toolkit id `t` (toolkit 0, the pad row of its own, maps to Marian's pad too). */
  toMarian(t: number): number {
    if (t <= 1) return this.marianPad;
    if (t === 2) return 0;
    if (t === 3) return 1;
    return t - 2;
  }

  /** Toolkit id of Marian id `m`. */
  fromMarian(m: number): number {
    if (m === this.marianPad) return BOS_ID;
    if (m === 0) return EOS_ID;
    if (m === 1) return UNK_ID;
    return m + 2;
  }

  override pieceOf(id: number): string {
    if (!(id >= 0 && id < this.vocabSize)) throw new RangeError(`token id ${id} outside the vocabulary [0, ${this.vocabSize})`);
    return id === PAD_ID ? '<pad>' : id === BOS_ID ? '<s>' : this.marianVocab[this.toMarian(id)]!;
  }

  override idOf(piece: string): number | undefined {
    const m = this.idByMarianPiece.get(piece);
    return m === undefined ? undefined : this.fromMarian(m);
  }

  /** Marian ids of the source pieces of `text` (without the final </s>). */
  marianIds(text: string, side: 'source' | 'target' = 'source'): number[] {
    const spm = side === 'source' ? this.sourceSpm : this.targetSpm;
    return spm.encodePieces(text).map((p) => this.idByMarianPiece.get(p) ?? 1);
  }

  override encode(text: string): number[] {
    return this.marianIds(text).map((m) => this.fromMarian(m));
  }

  override encodeTarget(text: string): number[] {
    return this.marianIds(text, 'target').map((m) => this.fromMarian(m));
  }

  override encodeToPieces(text: string): string[] {
    return this.encode(text).map((id) => this.pieceOf(id));
  }

  /** Text of toolkit ids: special tokens (pad, <s>, </s>, <unk>) skipped, pieces joined by the target model. */
  override decode(ids: readonly number[]): string {
    const pieces: string[] = [];
    for (const id of ids) if (id > UNK_ID) pieces.push(this.pieceOf(id));
    return this.targetSpm.decodePieces(pieces);
  }

  override checkVocabSize(vocabSize: number, sourceName: string): void {
    if (vocabSize !== this.vocabSize)
      throw new DataError(`${sourceName}: vocabulary size mismatch: expected ${vocabSize}, the tokenizer has ${this.vocabSize}`);
  }

  toMarianJSON(): MarianTokenizerJson {
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
    return {
      version: TOKENIZER_FILE_VERSION,
      type: MARIAN_TOKENIZER_TYPE,
      vocab: [...this.marianVocab],
      source: b64(this.sourceModel),
      target: b64(this.targetModel),
    };
  }

  override toJSON(): BpeTokenizerJson {
    return this.toMarianJSON() as unknown as BpeTokenizerJson;
  }

  override save(path: string): void {
    writeJsonAtomic(path, this.toMarianJSON());
  }

  static override fromJSON(o: Record<string, unknown>, sourceName: string): MarianTokenizer {
    const fail = (msg: string): never => {
      throw new DataError(`${sourceName}: ${msg}`);
    };
    if (o.version !== TOKENIZER_FILE_VERSION) fail(`version: expected ${TOKENIZER_FILE_VERSION}, got ${JSON.stringify(o.version)}`);
    if (!Array.isArray(o.vocab) || o.vocab.length < 3 || o.vocab.some((p) => typeof p !== 'string')) fail('vocab: expected an array of at least 3 strings');
    const vocab = o.vocab as string[];
    if (vocab[0] !== '</s>' || vocab[1] !== '<unk>' || vocab[vocab.length - 1] !== '<pad>')
      fail(`vocab: expected "</s>" at 0, "<unk>" at 1 and "<pad>" last, got ${JSON.stringify([vocab[0], vocab[1], vocab[vocab.length - 1]])}`);
    const model = (field: 'source' | 'target'): Uint8Array => {
      if (typeof o[field] !== 'string') return fail(`${field}: expected the base64 text of a SentencePiece model`);
      return new Uint8Array(Buffer.from(o[field] as string, 'base64'));
    };
    const src = model('source');
    const tgt = model('target');
    try {
      return new MarianTokenizer(vocab, src, tgt);
    } catch (e) {
      return fail(`not a usable SentencePiece model: ${(e as Error).message}`);
    }
  }
}
