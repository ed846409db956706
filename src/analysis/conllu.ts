/**
 * CoNLL-U dependency parses (Universal Dependencies format, https://universaldependencies.org/format.html)
 * for the syntactic-head analysis of Voita et al. 2019 (§5.2), and their alignment to the toolkit's BPE
 * pieces. A sentence is a block of lines ended by a blank line: `#` comments (`# sent_id =`, `# text =`
 * are kept), word lines with an integer ID, multi-word token lines `1-2` (one surface token that is
 * several syntactic words, e.g. French "du" = "de" + "le") and empty nodes `1.1` (enhanced graphs only;
 * skipped). Ten tab-separated fields per line. Every error is a DataError naming `file:line`.
 *
 * Alignment works on characters: the non-whitespace characters of the surface tokens must equal those
 * of the BPE pieces (the `▁` word-start marker removed, `<unk>` matching one character). A piece is
 * assigned to every surface token its characters touch, and each syntactic word gets the pieces of its
 * surface token (so the two words of a multi-word token share their pieces).
 */
import { DataError } from '../util/errors.js';
import { readTextFile } from '../util/fs.js';
import { WORD_START } from '../data/tokenizer.js';

export interface ConlluWord {
  /** 1-based word id */
  id: number;
  form: string;
  lemma: string;
  upos: string;
  /** 0 = root */
  head: number;
  deprel: string;
  /** index into `tokens` of the surface token holding this word */
  token: number;
}

export interface ConlluToken {
  /** the surface form (the MWT line's form for a multi-word token) */
  form: string;
  /** ids of the syntactic words it holds (one, or several for a multi-word token) */
  words: number[];
  /** MISC column contains SpaceAfter=No */
  hasNoSpaceAfter: boolean;
}

export interface ConlluSentence {
  sentId: string | null;
  text: string | null;
  /** 1-based line number of the sentence's first line */
  line: number;
  words: ConlluWord[];
  tokens: ConlluToken[];
}

const FIELDS = 10;

/** Parse CoNLL-U text; `sourceName` (the file) is used in error messages. */
export function parseConllu(text: string, sourceName: string): ConlluSentence[] {
  const lines = text
    .replace(/^\ufeff/, '')
    .split('\n')
    .map((l) => l.replace(/\r$/, ''));
  const out: ConlluSentence[] = [];
  let cur: {
    start: number;
    sentId: string | null;
    text: string | null;
    words: ConlluWord[];
    tokens: ConlluToken[];
    heads: Array<{ line: number; word: ConlluWord }>;
    mwtEnd: number;
  } | null = null;
  const fail = (lineNo: number, msg: string): never => {
    throw new DataError(`${sourceName}:${lineNo}: ${msg}`);
  };

  const finish = () => {
    if (!cur) return;
    if (cur.words.length === 0) fail(cur.start, 'sentence has comments or multi-word tokens but no words');
    if (cur.mwtEnd > cur.words.length) fail(cur.start, `multi-word token reaches word ${cur.mwtEnd}, but the sentence has ${cur.words.length} words`);
    for (const { line, word } of cur.heads) {
      if (word.head > cur.words.length) fail(line, `HEAD ${word.head} out of range 0..${cur.words.length}`);
    }
    out.push({ sentId: cur.sentId, text: cur.text, line: cur.start, words: cur.words, tokens: cur.tokens });
    cur = null;
  };

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!;
    if (line.trim() === '') {
      finish();
      continue;
    }
    cur ??= { start: lineNo, sentId: null, text: null, words: [], tokens: [], heads: [], mwtEnd: 0 };
    if (line.startsWith('#')) {
      const m = /^#\s*(sent_id|text)\s*=\s?(.*)$/.exec(line);
      if (m) {
        if (m[1] === 'sent_id') cur.sentId = m[2]!.trim();
        else cur.text = m[2]!;
      }
      continue;
    }
    const f = line.split('\t');
    if (f.length !== FIELDS) fail(lineNo, `expected ${FIELDS} tab-separated fields, got ${f.length}`);
    const [idField, form, lemma, upos, , , headField, deprel, , misc] = f as [string, string, string, string, string, string, string, string, string, string];
    const hasNoSpaceAfter = misc.split('|').includes('SpaceAfter=No');
    if (/^\d+\.\d+$/.test(idField)) continue; // empty node of the enhanced graph: not a surface word
    const range = /^(\d+)-(\d+)$/.exec(idField);
    if (range) {
      const a = Number(range[1]);
      const b = Number(range[2]);
      if (a !== cur.words.length + 1) fail(lineNo, `multi-word token ${idField} must start at word ${cur.words.length + 1}`);
      if (b < a) fail(lineNo, `multi-word token ${idField}: the range is empty`);
      if (cur.mwtEnd >= a) fail(lineNo, `multi-word token ${idField} overlaps the previous one`);
      cur.mwtEnd = b;
      cur.tokens.push({ form, words: [], hasNoSpaceAfter });
      continue;
    }
    if (!/^\d+$/.test(idField)) fail(lineNo, `ID: expected an integer, a range like 1-2 or an empty node like 1.1, got "${idField}"`);
    const id = Number(idField);
    if (id !== cur.words.length + 1) fail(lineNo, `ID: expected word ${cur.words.length + 1}, got ${id}`);
    if (!/^\d+$/.test(headField)) fail(lineNo, `HEAD: expected an integer (0 = root), got "${headField}"`);
    if (deprel === '_' || deprel === '') fail(lineNo, 'DEPREL: missing');
    const inMwt = id <= cur.mwtEnd;
    if (!inMwt) cur.tokens.push({ form, words: [], hasNoSpaceAfter });
    const token = cur.tokens.length - 1;
    cur.tokens[token]!.words.push(id);
    const word: ConlluWord = { id, form, lemma, upos, head: Number(headField), deprel, token };
    if (word.head === id) fail(lineNo, `HEAD: word ${id} cannot be its own head`);
    cur.words.push(word);
    cur.heads.push({ line: lineNo, word });
  }
  finish();
  return out;
}

export function readConllu(path: string): ConlluSentence[] {
  return parseConllu(readTextFile(path, 'CoNLL-U file'), path);
}

/** Which BPE pieces make up each syntactic word of a sentence. */
export interface WordAlignment {
  /** per word (index = id - 1): the piece positions (0-based, in the source without </s>) */
  wordPieces: number[][];
  /** per piece: the word indices it belongs to (several when a piece spans tokens, or for a multi-word token) */
  pieceWords: number[][];
}

const UNK_PIECE = '<unk>';

/**
 * Align a parsed sentence to the BPE pieces of the same source sentence (e.g. `tokenizer.encode(src)`
 * mapped through `pieceOf`). Returns null when the characters differ (a different sentence, or a
 * normalisation the parser applied), so the caller can skip the sentence and count it.
 */
export function alignWordsToPieces(sentence: ConlluSentence, pieces: readonly string[]): WordAlignment | null {
  // characters of the surface tokens, each tagged with its token
  const chars: string[] = [];
  const charToken: number[] = [];
  sentence.tokens.forEach((t, ti) => {
    for (const ch of t.form) {
      if (/\s/u.test(ch)) continue;
      chars.push(ch);
      charToken.push(ti);
    }
  });
  const pieceTokens: number[][] = [];
  let pos = 0;
  for (const piece of pieces) {
    const pc = piece === UNK_PIECE ? ['?'] : Array.from(piece.replaceAll(WORD_START, ''));
    const touched = new Set<number>();
    for (const ch of pc) {
      if (pos >= chars.length) return null;
      if (piece !== UNK_PIECE && chars[pos] !== ch) return null;
      touched.add(charToken[pos]!);
      pos++;
    }
    pieceTokens.push([...touched]);
  }
  if (pos !== chars.length) return null;
  // a piece with no characters (a lone `▁` before an unknown character) belongs with the next piece
  for (let p = pieceTokens.length - 2; p >= 0; p--) if (pieceTokens[p]!.length === 0) pieceTokens[p] = [...pieceTokens[p + 1]!];
  const tokenPieces: number[][] = sentence.tokens.map(() => []);
  pieceTokens.forEach((ts, p) => ts.forEach((t) => tokenPieces[t]!.push(p)));
  const wordPieces = sentence.words.map((w) => [...tokenPieces[w.token]!]);
  const pieceWords: number[][] = pieces.map(() => []);
  wordPieces.forEach((ps, wi) => ps.forEach((p) => pieceWords[p]!.push(wi)));
  if (wordPieces.some((ps) => ps.length === 0)) return null;
  return { wordPieces, pieceWords };
}
