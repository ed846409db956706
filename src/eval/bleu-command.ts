/**
 * The `heads bleu` command body: reads a hypothesis file (or stdin text) and reference files and returns what
 * `sacrebleu -i HYP REF... [-tok] [-lc] [-s] [-sv] [-sl] [-b] [-f text|json] [-w] [-sh]` would print for one system
 * and the BLEU metric (sacreBLEU 2.x sacrebleu.py main()). The CLI wiring only parses flags and prints the result.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ConfigError, DataError } from '../util/errors.js';
import { firstInvalidUtf8Line } from '../util/fs.js';
import { BLEU_TOKENIZERS, SMOOTH_METHODS, corpusBleu, sentenceBleu, type BleuScore, type BleuTokenizer, type SmoothMethod } from './bleu.js';
import { pyRstrip } from './tokenizer-13a.js';

export interface BleuCommandOptions {
  /** Hypothesis file (`-i`); plain UTF-8 or `.gz`. Takes precedence over hypothesisText, as `-i` does over stdin. */
  readonly hypothesisPath?: string;
  /** Hypothesis text read from stdin, used when no hypothesisPath is given. */
  readonly hypothesisText?: string;
  /** One or more reference files (`-r` / positional refs), each one line per hypothesis line. */
  readonly referencePaths: readonly string[];
  readonly tokenize: BleuTokenizer;
  readonly smoothMethod: SmoothMethod;
  /** For floor / add-k; ignored by exp / none, as in sacreBLEU. */
  readonly smoothValue?: number;
  readonly lowercase: boolean;
  /** One score line per segment (sacreBLEU `-sl`; turns on effective order, prints text even when format is json). */
  readonly sentenceLevel: boolean;
  /** Print only the number (`-b`), which wins over `json`. */
  readonly scoreOnly: boolean;
  /** sacreBLEU 2's CLI default is json. */
  readonly format: 'text' | 'json';
  /** Decimals of the score (`-w`, default 1 as sacreBLEU's CLI). */
  readonly width?: number;
  /** Short signature in text output (`-sh`); JSON always carries the full one, as in sacreBLEU. */
  readonly short?: boolean;
}

/** Where the hypothesis came from, for error messages. */
const STDIN_NAME = '<stdin>';

/**
 * Decode a file as Python's `open(path, encoding='utf-8', newline='\n')` does: strict UTF-8, a byte-order mark
 * kept as a character (Python's 'utf-8' codec does not strip it, so neither do we: scores stay identical).
 */
function readFileText(path: string, what: string): string {
  if (!existsSync(path)) throw new DataError(`${path}: ${what} not found`);
  if (statSync(path).isDirectory()) throw new DataError(`${path}: expected a ${what}, found a directory`);
  let bytes: Uint8Array = readFileSync(path);
  if (path.endsWith('.gz')) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new DataError(`${path}: expected a gzip-compressed ${what} (name ends in .gz), but it does not decompress (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new DataError(`${path}:${firstInvalidUtf8Line(bytes)}: ${what} is not valid UTF-8 (expected UTF-8 text)`);
  }
}

/**
 * Lines as sacreBLEU reads them: split on '\n' only (files are opened with newline='\n'), no phantom last line
 * after a final newline, each line right-stripped of Python whitespace (which also removes a '\r').
 */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map(pyRstrip);
}

/** Stdin goes through Python's universal-newline mode in sacreBLEU, so '\r\n' and a lone '\r' end lines too. */
export function splitStdinLines(text: string): string[] {
  return splitLines(text.replace(/\r\n?/g, '\n'));
}

function validate(opts: BleuCommandOptions): number {
  const problems: string[] = [];
  if (opts.referencePaths.length === 0) problems.push('bleu: expected at least one reference file (-r), got none');
  if (opts.hypothesisPath === undefined && opts.hypothesisText === undefined) {
    problems.push('bleu: expected a hypothesis file (-i) or text on stdin, got neither');
  }
  if (!BLEU_TOKENIZERS.includes(opts.tokenize)) {
    problems.push(`bleu --tokenize: expected one of ${BLEU_TOKENIZERS.join(', ')}, got ${JSON.stringify(opts.tokenize)}`);
  }
  if (!SMOOTH_METHODS.includes(opts.smoothMethod)) {
    problems.push(`bleu --smooth-method: expected one of ${SMOOTH_METHODS.join(', ')}, got ${JSON.stringify(opts.smoothMethod)}`);
  }
  if (opts.smoothValue !== undefined && !(Number.isFinite(opts.smoothValue) && opts.smoothValue >= 0)) {
    problems.push(`bleu --smooth-value: expected a finite number >= 0, got ${String(opts.smoothValue)}`);
  }
  if (opts.format !== 'text' && opts.format !== 'json') {
    problems.push(`bleu --format: expected text or json, got ${JSON.stringify(opts.format)}`);
  }
  const width = opts.width ?? 1;
  if (!Number.isInteger(width) || width < 0 || width > 20) {
    problems.push(`bleu --width: expected an integer from 0 to 20, got ${String(opts.width)}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return width;
}

/** Runs the BLEU command and returns the text to print (no trailing newline). */
export function runBleuCommand(opts: BleuCommandOptions): string {
  const width = validate(opts);

  let hypName: string;
  let hyps: string[];
  if (opts.hypothesisPath !== undefined) {
    hypName = opts.hypothesisPath;
    hyps = splitLines(readFileText(opts.hypothesisPath, 'hypothesis file'));
  } else {
    hypName = STDIN_NAME;
    hyps = splitStdinLines(opts.hypothesisText ?? '');
    // sacreBLEU reads tab-separated stdin columns as several systems and prints a comparison table instead
    const tabLine = hyps.findIndex((l) => l.includes('\t'));
    if (tabLine >= 0) {
      throw new DataError(
        `${STDIN_NAME}:${tabLine + 1}: expected one hypothesis per line, found a tab (sacreBLEU would read tab-separated columns as several systems, which heads does not support; score each system with -i)`,
      );
    }
  }
  if (hyps.length === 0) throw new DataError(`${hypName}: expected hypothesis lines, found an empty input`);

  const refs = opts.referencePaths.map((p) => splitLines(readFileText(p, 'reference file')));
  refs.forEach((stream, k) => {
    if (stream.length !== hyps.length) {
      throw new DataError(
        `line counts differ: hypothesis ${hypName} has ${hyps.length} lines but reference ${opts.referencePaths[k]} has ${stream.length} lines`,
      );
    }
  });

  const cfg = { tokenize: opts.tokenize, lowercase: opts.lowercase, smoothMethod: opts.smoothMethod, smoothValue: opts.smoothValue };
  const textSignature = (s: BleuScore): string => (opts.short ? s.shortSignature : s.signature);

  if (opts.sentenceLevel) {
    return hyps
      .map((h, i) => {
        const s = sentenceBleu(h, refs.map((stream) => stream[i]!), { ...cfg, effectiveOrder: true });
        return s.format({ width, scoreOnly: opts.scoreOnly, signature: textSignature(s) });
      })
      .join('\n');
  }

  const s = corpusBleu(hyps, refs, { ...cfg, effectiveOrder: false });
  if (opts.format === 'json') return s.format({ width, scoreOnly: opts.scoreOnly, json: true, signature: s.signature });
  return s.format({ width, scoreOnly: opts.scoreOnly, signature: textSignature(s) });
}
