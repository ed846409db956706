/**
 * Parallel corpus reading: Moses-style line-aligned file pairs (`train.en` + `train.de`) or one TSV file,
 * into `SentencePair[]`. The reader only checks and splits; it never filters or normalises text beyond
 * line endings, because length filtering depends on the BPE segmentation and belongs to batching.
 * Every malformed input gives one `DataError` line naming the file and the 1-based line.
 */
import Papa from 'papaparse';
import { DataError } from '../util/errors.js';
import { readTextFile, writeFileAtomic } from '../util/fs.js';

export interface SentencePair {
  src: string;
  tgt: string;
}

/** Two line-aligned files `<prefix>.<srcLang>` and `<prefix>.<tgtLang>`, one sentence per line. */
export interface MosesCorpusSpec {
  format: 'moses';
  /** Path without the language suffix, e.g. `../shared/data/ddtp/en-de/train`. */
  prefix: string;
  srcLang: string;
  tgtLang: string;
}

/** One tab-separated file, one pair per line. */
export interface TsvCorpusSpec {
  format: 'tsv';
  path: string;
  /** 0-based column index or a header name. Default 0. */
  srcColumn?: number | string;
  /** 0-based column index or a header name. Default 1. */
  tgtColumn?: number | string;
  /** Whether line 1 names the columns. Default: true if a column is given by name, else false. */
  hasHeader?: boolean;
  /**
   * Whether fields may be wrapped in double quotes (CSV-style quoting, may span lines). Default false:
   * plain TSV, where a `"` inside a sentence is just a character (common in real text).
   */
  isQuoted?: boolean;
}

export type CorpusSpec = MosesCorpusSpec | TsvCorpusSpec;

/** Read a parallel corpus; throws `DataError` on any malformed input. */
export function readParallelCorpus(spec: CorpusSpec): SentencePair[] {
  return spec.format === 'moses' ? readMosesCorpus(spec) : readTsvCorpus(spec);
}

/** The two file paths of a Moses-style spec. */
export function mosesPaths(spec: MosesCorpusSpec): { srcPath: string; tgtPath: string } {
  return { srcPath: `${spec.prefix}.${spec.srcLang}`, tgtPath: `${spec.prefix}.${spec.tgtLang}` };
}

/**
 * Split file text into lines: drops a leading BOM and one trailing newline at EOF (so `a\nb\n` is two
 * lines), and a `\r` before each newline (files written on Windows).
 */
export function splitLines(text: string): string[] {
  let t = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (t.endsWith('\n')) t = t.slice(0, -1);
  if (t === '') return [];
  const lines = t.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.endsWith('\r')) lines[i] = l.slice(0, -1);
  }
  return lines;
}

const BLANK = /^\s*$/;

function checkNotBlank(line: string, path: string, lineNo: number, side = ''): void {
  if (BLANK.test(line)) {
    throw new DataError(`${path}:${lineNo}: empty ${side}sentence (expected text on every line)`);
  }
}

function readMosesCorpus(spec: MosesCorpusSpec): SentencePair[] {
  const { srcPath, tgtPath } = mosesPaths(spec);
  const srcLines = splitLines(readTextFile(srcPath, 'corpus file'));
  const tgtLines = splitLines(readTextFile(tgtPath, 'corpus file'));
  if (srcLines.length !== tgtLines.length) {
    throw new DataError(
      `line counts differ: ${srcPath} has ${srcLines.length} lines but ${tgtPath} has ${tgtLines.length} (parallel files must be line-aligned)`,
    );
  }
  if (srcLines.length === 0) throw new DataError(`${srcPath}: empty corpus (expected at least one line)`);
  const pairs: SentencePair[] = new Array(srcLines.length);
  for (let i = 0; i < srcLines.length; i++) {
    const src = srcLines[i]!;
    const tgt = tgtLines[i]!;
    checkNotBlank(src, srcPath, i + 1);
    checkNotBlank(tgt, tgtPath, i + 1);
    pairs[i] = { src, tgt };
  }
  return pairs;
}

function readTsvCorpus(spec: TsvCorpusSpec): SentencePair[] {
  const { path } = spec;
  const isQuoted = spec.isQuoted ?? false;
  const srcColumn = spec.srcColumn ?? 0;
  const tgtColumn = spec.tgtColumn ?? 1;
  const hasHeader = spec.hasHeader ?? (typeof srcColumn === 'string' || typeof tgtColumn === 'string');
  if (!hasHeader && (typeof srcColumn === 'string' || typeof tgtColumn === 'string')) {
    throw new DataError(`${path}: columns given by name need a header line (hasHeader: true)`);
  }
  const lines = splitLines(readTextFile(path, 'corpus file'));
  if (lines.length === 0) throw new DataError(`${path}: empty corpus (expected at least one line)`);
  // fastMode disables quote handling entirely, so a sentence that starts with `"` stays intact.
  const parsed = Papa.parse<string[]>(lines.join('\n'), {
    delimiter: '\t',
    newline: '\n',
    header: false,
    skipEmptyLines: false,
    fastMode: !isQuoted,
    quoteChar: '"',
  });
  if (isQuoted && parsed.errors.length > 0) {
    const e = parsed.errors[0]!;
    throw new DataError(`${path}: row ${(e.row ?? 0) + 1}: ${e.message}`);
  }
  const rows = parsed.data;
  // 1-based line of each row; differs from row+1 only when quoted fields span lines.
  const lineOf: number[] = new Array(rows.length);
  let line = 1;
  for (let r = 0; r < rows.length; r++) {
    lineOf[r] = line;
    line += 1;
    if (isQuoted) for (const f of rows[r]!) for (let k = 0; k < f.length; k++) if (f.charCodeAt(k) === 10) line++;
  }

  const expectedFields = rows[0]!.length;
  const explicitColumns = spec.srcColumn !== undefined || spec.tgtColumn !== undefined;
  if (!explicitColumns && expectedFields !== 2) {
    throw new DataError(`${path}:1: expected 2 tab-separated fields (source, target), found ${expectedFields}; choose columns with srcColumn/tgtColumn`);
  }
  const header = hasHeader ? rows[0]! : undefined;
  const resolve = (col: number | string, role: string): number => {
    if (typeof col === 'number') {
      if (!Number.isInteger(col) || col < 0 || col >= expectedFields) {
        throw new DataError(`${path}:1: ${role} column ${col} out of range (the file has ${expectedFields} fields per line)`);
      }
      return col;
    }
    const idx = header!.indexOf(col);
    if (idx < 0) throw new DataError(`${path}:1: no ${role} column "${col}" in header (columns: ${header!.join(', ')})`);
    return idx;
  };
  const si = resolve(srcColumn, 'source');
  const ti = resolve(tgtColumn, 'target');
  if (si === ti) throw new DataError(`${path}: source and target are the same column (${si})`);

  const pairs: SentencePair[] = [];
  for (let r = hasHeader ? 1 : 0; r < rows.length; r++) {
    const row = rows[r]!;
    const ln = lineOf[r]!;
    if (row.length !== expectedFields) {
      throw new DataError(`${path}:${ln}: expected ${expectedFields} tab-separated fields, found ${row.length}`);
    }
    const src = row[si]!;
    const tgt = row[ti]!;
    checkNotBlank(src, path, ln, 'source ');
    checkNotBlank(tgt, path, ln, 'target ');
    pairs.push({ src, tgt });
  }
  if (pairs.length === 0) throw new DataError(`${path}: no sentence pairs after the header`);
  return pairs;
}

/** Write pairs as two line-aligned files `<prefix>.<srcLang>` / `<prefix>.<tgtLang>` (atomic writes). */
export function writeMosesCorpus(spec: Omit<MosesCorpusSpec, 'format'>, pairs: readonly SentencePair[]): void {
  const { srcPath, tgtPath } = mosesPaths({ format: 'moses', ...spec });
  for (const p of pairs) {
    // a newline inside a sentence would silently shift every later line out of alignment
    if (/[\r\n]/.test(p.src) || /[\r\n]/.test(p.tgt)) throw new DataError(`${srcPath}: sentence contains a line break`);
  }
  // corpora are the user's data, edited and shipped as they like: not recorded for integrity checks
  writeFileAtomic(srcPath, pairs.map((p) => p.src).join('\n') + '\n', { integrity: false });
  writeFileAtomic(tgtPath, pairs.map((p) => p.tgt).join('\n') + '\n', { integrity: false });
}

export interface CorpusStats {
  pairs: number;
  srcWords: number;
  tgtWords: number;
  avgSrcWords: number;
  avgTgtWords: number;
  maxSrcWords: number;
  maxTgtWords: number;
  /** One line for logs, e.g. `40968 pairs | words/sentence src 12.70 (max 88) tgt 11.82 (max 71)`. */
  text: string;
}

function countWords(s: string): number {
  const t = s.trim();
  return t === '' ? 0 : t.split(/\s+/).length;
}

/** Sizes of a corpus in whitespace-separated words, for logs. */
export function describeCorpus(pairs: readonly SentencePair[]): CorpusStats {
  let srcWords = 0;
  let tgtWords = 0;
  let maxSrcWords = 0;
  let maxTgtWords = 0;
  for (const p of pairs) {
    const s = countWords(p.src);
    const t = countWords(p.tgt);
    srcWords += s;
    tgtWords += t;
    if (s > maxSrcWords) maxSrcWords = s;
    if (t > maxTgtWords) maxTgtWords = t;
  }
  const n = pairs.length;
  const avgSrcWords = n ? srcWords / n : 0;
  const avgTgtWords = n ? tgtWords / n : 0;
  const text = `${n} pairs | words/sentence src ${avgSrcWords.toFixed(2)} (max ${maxSrcWords})` + ` tgt ${avgTgtWords.toFixed(2)} (max ${maxTgtWords})`;
  return { pairs: n, srcWords, tgtWords, avgSrcWords, avgTgtWords, maxSrcWords, maxTgtWords, text };
}
