/**
 * sacreBLEU's `13a` tokenizer (mteval-v13a.pl as re-implemented in sacrebleu/tokenizers/tokenizer_13a.py +
 * tokenizer_re.py, sacreBLEU 2.x) and its `none` tokenizer, plus the few Python string primitives
 * (`str.split()`, `str.rstrip()`) whose whitespace set differs from JavaScript's and would otherwise shift scores.
 */

/**
 * Every code point for which Python's `str.isspace()` is true. JavaScript's `\s` differs: it lacks
 * U+001C..U+001F and U+0085 and adds U+FEFF, so `\s`-based splitting would tokenise some lines differently.
 */
const PY_WS_CLASS = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WS_RUN = new RegExp(`[${PY_WS_CLASS}]+`, 'u');
const PY_WS_TRAILING = new RegExp(`[${PY_WS_CLASS}]+$`, 'u');

/** Python `s.split()` with no argument: split on whitespace runs, never yielding empty strings. */
export function pySplit(s: string): string[] {
  return s.split(PY_WS_RUN).filter((t) => t.length > 0);
}

/** Python `s.rstrip()` with no argument. */
export function pyRstrip(s: string): string {
  return s.replace(PY_WS_TRAILING, '');
}

/*
 * The four substitutions of sacreBLEU's TokenizerRegexp, applied in this order with global, non-overlapping,
 * left-to-right matching (same as Python's re.sub). The first class spells out the ranges of the original
 * `[\{-\~\[-\` -\&\(-\+\:-\@\/]`: {|}~, [\]^_`, space!"#$%&, ()*+, :;<=>?@ and /.
 */
const RE_SYMBOLS = /([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40\x2F])/gu;
/** period and comma are split off unless preceded by a digit ... */
const RE_PUNCT_AFTER_NONDIGIT = /([^0-9])([.,])/gu;
/** ... and unless followed by a digit (so `1,000.5` stays one token but `end.` and `,x` do not). */
const RE_PUNCT_BEFORE_NONDIGIT = /([.,])([^0-9])/gu;
/** a dash right after a digit is split off (`1990-1995` -> `1990 - 1995`). */
const RE_DASH_AFTER_DIGIT = /([0-9])(-)/gu;

/** sacreBLEU's TokenizerRegexp: the language-dependent part of 13a, then whitespace normalisation. */
function tokenizeRegexp(line: string): string {
  let s = line.replace(RE_SYMBOLS, ' $1 ');
  s = s.replace(RE_PUNCT_AFTER_NONDIGIT, '$1 $2 ');
  s = s.replace(RE_PUNCT_BEFORE_NONDIGIT, ' $1 $2');
  s = s.replace(RE_DASH_AFTER_DIGIT, '$1 $2 ');
  return pySplit(s).join(' ');
}

/**
 * sacreBLEU's Tokenizer13a: drop `<skipped>`, join `-\n` hyphenations, turn newlines into spaces, unescape the
 * four XML entities mteval emits (only these four, and `&quot;` before `&amp;`, so `&amp;quot;` becomes `&quot;`
 * rather than `"`), then run the regexp tokenizer on the line padded with one space on each side.
 */
export function tokenize13a(line: string): string {
  let s = line.replaceAll('<skipped>', '');
  s = s.replaceAll('-\n', '');
  s = s.replaceAll('\n', ' ');
  if (s.includes('&')) {
    s = s.replaceAll('&quot;', '"');
    s = s.replaceAll('&amp;', '&');
    s = s.replaceAll('&lt;', '<');
    s = s.replaceAll('&gt;', '>');
  }
  return tokenizeRegexp(` ${s} `);
}

/** sacreBLEU's NoneTokenizer: the line unchanged (n-grams are then taken from its whitespace split). */
export function tokenizeNone(line: string): string {
  return line;
}
