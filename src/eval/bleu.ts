/**
 * Corpus and sentence BLEU identical to sacreBLEU 2.x's (`corpus_bleu` / `sentence_bleu`; BLEU code unchanged from
 * 2.4.0 to 2.6.0): 13a/none tokenizers, exp/floor/add-k/none smoothing, effective order, closest-ref brevity
 * penalty, score line, JSON and signature; plus the tokenized lowercased BLEU of Voita et al. (2019)'s bleu.py.
 */
import { ConfigError, DataError } from '../util/errors.js';
import { pyRstrip, pySplit, tokenize13a, tokenizeNone } from './tokenizer-13a.js';

export type BleuTokenizer = '13a' | 'none';
export type SmoothMethod = 'exp' | 'floor' | 'add-k' | 'none';

export const BLEU_TOKENIZERS: readonly BleuTokenizer[] = ['13a', 'none'];
export const SMOOTH_METHODS: readonly SmoothMethod[] = ['exp', 'floor', 'add-k', 'none'];

/**
 * sacreBLEU's SMOOTH_DEFAULTS (values from Chen & Cherry 2014). `undefined` means the method takes no value,
 * and then the signature shows no `[value]` and a given smoothValue is ignored, as in sacreBLEU.
 */
export const SMOOTH_DEFAULTS: Readonly<Record<SmoothMethod, number | undefined>> = {
  none: undefined,
  floor: 0.1,
  'add-k': 1,
  exp: undefined,
};

/**
 * The `version:` field of our signatures. We cannot claim a sacreBLEU version since sacreBLEU did not produce
 * the number, yet a reader must know which semantics were reproduced: heads' version, then the sacreBLEU
 * release whose BLEU it matches (no `:` or `|`, which the signature syntax reserves).
 */
export const BLEU_SIGNATURE_VERSION = 'heads-0.1.0+sacrebleu-2.6.0';

/** sacreBLEU's floor for log(0) (`utils.my_log`), so a zero precision drives the score to 0 without NaN. */
const LOG_ZERO = -9999999999;

export interface BleuConfig {
  /** '13a' (default) or 'none'. */
  readonly tokenize: BleuTokenizer;
  /** Lowercase hypotheses and references before tokenising (sacreBLEU `-lc`). */
  readonly lowercase: boolean;
  readonly smoothMethod: SmoothMethod;
  /** Value for floor / add-k; undefined = the method's default. */
  readonly smoothValue: number | undefined;
  /** Average only over orders up to the last one with any hypothesis n-gram (sentence-level BLEU). */
  readonly effectiveOrder: boolean;
  readonly maxNgramOrder: number;
}

export type BleuOptions = Partial<BleuConfig>;

const CORPUS_DEFAULTS: BleuConfig = {
  tokenize: '13a',
  lowercase: false,
  smoothMethod: 'exp',
  smoothValue: undefined,
  effectiveOrder: false,
  maxNgramOrder: 4,
};

function resolveConfig(opts: BleuOptions, defaults: BleuConfig): BleuConfig {
  const cfg: BleuConfig = {
    tokenize: opts.tokenize ?? defaults.tokenize,
    lowercase: opts.lowercase ?? defaults.lowercase,
    smoothMethod: opts.smoothMethod ?? defaults.smoothMethod,
    smoothValue: opts.smoothValue ?? defaults.smoothValue,
    effectiveOrder: opts.effectiveOrder ?? defaults.effectiveOrder,
    maxNgramOrder: opts.maxNgramOrder ?? defaults.maxNgramOrder,
  };
  const problems: string[] = [];
  if (!BLEU_TOKENIZERS.includes(cfg.tokenize)) {
    problems.push(`bleu.tokenize: expected one of ${BLEU_TOKENIZERS.join(', ')}, got ${JSON.stringify(cfg.tokenize)}`);
  }
  if (!SMOOTH_METHODS.includes(cfg.smoothMethod)) {
    problems.push(`bleu.smoothMethod: expected one of ${SMOOTH_METHODS.join(', ')}, got ${JSON.stringify(cfg.smoothMethod)}`);
  }
  // sacreBLEU does not check these; a negative or NaN value silently yields nonsense scores, so we refuse it
  if (cfg.smoothValue !== undefined && !(Number.isFinite(cfg.smoothValue) && cfg.smoothValue >= 0)) {
    problems.push(`bleu.smoothValue: expected a finite number >= 0, got ${String(cfg.smoothValue)}`);
  }
  if (!Number.isInteger(cfg.maxNgramOrder) || cfg.maxNgramOrder < 1) {
    problems.push(`bleu.maxNgramOrder: expected an integer >= 1, got ${String(cfg.maxNgramOrder)}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return cfg;
}

// ---------------------------------------------------------------------------------------------------------
// Python-compatible number formatting (the score line must be byte-identical to sacreBLEU's)
// ---------------------------------------------------------------------------------------------------------

/**
 * Python's `f"{x:.{digits}f}"`. JavaScript's toFixed rounds exact ties away from zero, Python to even; ties are
 * real here (e.g. precision 100*49/400 = 12.25 exactly: Python prints 12.2), so exact ties are detected from the
 * full decimal expansion and rounded to even. Exact for |x| < 1e21 and digits <= 20.
 */
export function pyFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const a = Math.abs(x);
  let body = a.toFixed(digits);
  if (a < 1e21) {
    const exact = a.toFixed(100); // a double in this range has a terminating expansion well within 100 digits
    const dot = exact.indexOf('.');
    const tail = exact.slice(dot + 1 + digits);
    if (/^50*$/.test(tail)) {
      const truncated = exact.slice(0, digits === 0 ? dot : dot + 1 + digits);
      const lastDigit = Number(truncated[truncated.length - 1]);
      if (lastDigit % 2 === 0) body = truncated;
    }
  }
  return sign + body;
}

/** Python's `repr(float)`: shortest round-trip digits, always a `.0` or exponent, exponent form outside [1e-4, 1e16). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN'; // json.dumps spelling
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant, expStr] = Math.abs(x).toExponential().split('e') as [string, string];
  const exp = Number(expStr);
  const digits = mant.replace('.', '');
  if (exp >= -4 && exp < 16) {
    if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
    const frac = digits.slice(exp + 1);
    return `${sign}${intPart}.${frac.length > 0 ? frac : '0'}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const e = Math.abs(exp).toString().padStart(2, '0');
  return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
}

// ---------------------------------------------------------------------------------------------------------
// Signature
// ---------------------------------------------------------------------------------------------------------

export interface BleuSignatureFields {
  readonly nrefs: number;
  readonly lowercase: boolean;
  readonly effectiveOrder: boolean;
  readonly tokenize: BleuTokenizer;
  readonly smoothMethod: SmoothMethod;
  readonly smoothValue?: number | undefined;
}

/**
 * sacreBLEU 2's BLEU signature: `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:...`, or with `short`
 * `#:1|c:mixed|e:no|tok:13a|s:exp|v:...`. floor/add-k show their value with 2 decimals: `smooth:floor[0.10]`.
 */
export function bleuSignature(f: BleuSignatureFields, short = false): string {
  let smooth: string = f.smoothMethod;
  const def = SMOOTH_DEFAULTS[f.smoothMethod];
  if (def !== undefined) smooth += `[${pyFixed(f.smoothValue ?? def, 2)}]`;
  const pairs: [string, string, string][] = [
    ['nrefs', '#', String(f.nrefs)],
    ['case', 'c', f.lowercase ? 'lc' : 'mixed'],
    ['eff', 'e', f.effectiveOrder ? 'yes' : 'no'],
    ['tok', 'tok', f.tokenize],
    ['smooth', 's', smooth],
    ['version', 'v', BLEU_SIGNATURE_VERSION],
  ];
  return pairs.map(([long, abbr, v]) => `${short ? abbr : long}:${v}`).join('|');
}

// ---------------------------------------------------------------------------------------------------------
// Score object
// ---------------------------------------------------------------------------------------------------------

export interface BleuFormatOptions {
  /** Decimals of the score (sacreBLEU API default 2; its CLI uses 1). Precisions always get 1, BP/ratio 3. */
  readonly width?: number;
  /** Only the score, e.g. `34.12` (wins over `json`, as in sacreBLEU). */
  readonly scoreOnly?: boolean;
  /** Printed as `BLEU|<signature> = ...`; in JSON also split into one key per field. */
  readonly signature?: string;
  readonly json?: boolean;
}

export class BleuScore {
  /** sacreBLEU's `ratio`: hypothesis length over reference length, 0 when there is no reference token. */
  readonly ratio: number;

  constructor(
    /** BLEU on the 0-100 scale. */
    readonly score: number,
    /** Clipped n-gram matches per order (for add-k these include the +k on orders >= 2, as sacreBLEU reports them). */
    readonly counts: readonly number[],
    /** Hypothesis n-grams per order (same add-k remark). */
    readonly totals: readonly number[],
    /** Per-order precisions in percent, after smoothing. */
    readonly precisions: readonly number[],
    readonly bp: number,
    readonly sys_len: number,
    readonly ref_len: number,
    /** Full sacreBLEU-style signature ('' when the metric has none). */
    readonly signature: string = '',
    /** Short-form signature. */
    readonly shortSignature: string = '',
    /** Metric name in score lines and JSON. */
    readonly name: string = 'BLEU',
  ) {
    this.ratio = ref_len ? sys_len / ref_len : 0;
  }

  /** The part after the score: `64.5/40.2/27.1/18.9 (BP = 0.982 ratio = 0.982 hyp_len = 90 ref_len = 92)`. */
  get verbose(): string {
    const prec = this.precisions.map((p) => pyFixed(p, 1)).join('/');
    return `${prec} (BP = ${pyFixed(this.bp, 3)} ratio = ${pyFixed(this.ratio, 3)} hyp_len = ${this.sys_len} ref_len = ${this.ref_len})`;
  }

  /** sacreBLEU's `Score.format`: `BLEU = 34.12 64.5/... (BP = ...)`, the bare score, or its JSON object. */
  format(opts: BleuFormatOptions = {}): string {
    const width = opts.width ?? 2;
    const sc = pyFixed(this.score, width);
    if (opts.scoreOnly) return sc;
    const signature = opts.signature ?? '';
    if (opts.json) {
      const entries: [string, string][] = [
        ['name', JSON.stringify(this.name)],
        ['score', pyFloatRepr(Number(sc))],
        ['signature', JSON.stringify(signature)],
        ['verbose_score', JSON.stringify(this.verbose)],
      ];
      if (signature !== '') {
        for (const param of signature.split('|')) {
          const i = param.indexOf(':');
          entries.push([param.slice(0, i), JSON.stringify(param.slice(i + 1))]);
        }
      }
      // json.dumps(indent=1) layout; JSON.stringify escapes strings the same way for valid text
      return `{\n${entries.map(([k, v]) => ` ${JSON.stringify(k)}: ${v}`).join(',\n')}\n}`;
    }
    const head = signature !== '' ? `${this.name}|${signature}` : this.name;
    return `${head} = ${sc} ${this.verbose}`;
  }

  toString(): string {
    return this.format();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------------------

/** Counts of every n-gram of order 1..maxOrder, one map per order, keyed by the tokens joined with a space. */
function ngramCounts(tokens: readonly string[], maxOrder: number): Map<string, number>[] {
  const out: Map<string, number>[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    const m = new Map<string, number>();
    for (let i = 0; i + n <= tokens.length; i++) {
      // tokens never contain whitespace (they come from pySplit), so ' ' is an unambiguous separator
      const key = n === 1 ? tokens[i]! : tokens.slice(i, i + n).join(' ');
      m.set(key, (m.get(key) ?? 0) + 1);
    }
    out.push(m);
  }
  return out;
}

/** sacreBLEU's `_get_closest_ref_len`: the reference length nearest the hypothesis length, ties to the shorter. */
export function closestRefLen(hypLen: number, refLens: readonly number[]): number {
  let closestDiff = -1;
  let closestLen = -1;
  for (const r of refLens) {
    const diff = Math.abs(hypLen - r);
    if (closestDiff === -1 || diff < closestDiff) {
      closestDiff = diff;
      closestLen = r;
    } else if (diff === closestDiff && r < closestLen) {
      closestLen = r;
    }
  }
  return closestLen;
}

/** One segment's sufficient statistics: [hypLen, refLen, correct_1..N, total_1..N] as in sacreBLEU. */
function segmentStats(hypTokens: readonly string[], refTokens: readonly (readonly string[])[], maxOrder: number): number[] {
  // references are merged by taking, per n-gram, the maximum count over references (clipping counts)
  const refMax: Map<string, number>[] = Array.from({ length: maxOrder }, () => new Map<string, number>());
  for (const ref of refTokens) {
    const counts = ngramCounts(ref, maxOrder);
    for (let n = 0; n < maxOrder; n++) {
      const merged = refMax[n]!;
      for (const [g, c] of counts[n]!) {
        const prev = merged.get(g);
        if (prev === undefined || c > prev) merged.set(g, c);
      }
    }
  }
  const hypCounts = ngramCounts(hypTokens, maxOrder);
  const correct = new Array<number>(maxOrder).fill(0);
  const total = new Array<number>(maxOrder).fill(0);
  for (let n = 0; n < maxOrder; n++) {
    for (const [g, c] of hypCounts[n]!) {
      total[n]! += c;
      const r = refMax[n]!.get(g);
      if (r !== undefined) correct[n]! += Math.min(c, r);
    }
  }
  const refLen = closestRefLen(
    hypTokens.length,
    refTokens.map((r) => r.length),
  );
  return [hypTokens.length, refLen, ...correct, ...total];
}

/**
 * sacreBLEU's `BLEU.compute_bleu`, operation for operation so the floating-point result is the same. Quirks kept
 * on purpose: the score is 0 with all-zero precisions if no n-gram of any order matches; floor applies to every
 * order but add-k only to orders >= 2 (and adds k to both the match count and the total, so an order with no
 * hypothesis n-gram gets precision k/k = 100%); exp smoothing halves the pseudo-precision 1/total for each
 * successive zero-match order; orders past the first with no hypothesis n-gram are skipped (`break`), which
 * without effective order leaves a zero precision and hence a ~0 score.
 */
export function computeBleu(
  correctIn: readonly number[],
  totalIn: readonly number[],
  sysLen: number,
  refLen: number,
  cfg: Pick<BleuConfig, 'smoothMethod' | 'smoothValue' | 'effectiveOrder' | 'maxNgramOrder'>,
  signature = '',
  shortSignature = '',
): BleuScore {
  const maxOrder = cfg.maxNgramOrder;
  const smoothValue = cfg.smoothValue ?? SMOOTH_DEFAULTS[cfg.smoothMethod] ?? 0;
  const correct = [...correctIn];
  const total = [...totalIn];

  let bp = 1.0;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0.0;

  const precisions = new Array<number>(maxOrder).fill(0);
  if (!correct.some((c) => c !== 0)) {
    return new BleuScore(0.0, correct, total, precisions, bp, sysLen, refLen, signature, shortSignature);
  }

  let smoothMteval = 1.0;
  let effOrder = maxOrder;
  for (let n = 1; n <= maxOrder; n++) {
    if (cfg.smoothMethod === 'add-k' && n > 1) {
      correct[n - 1]! += smoothValue;
      total[n - 1]! += smoothValue;
    }
    if (total[n - 1] === 0) break;
    if (cfg.effectiveOrder) effOrder = n;
    if (correct[n - 1] === 0) {
      if (cfg.smoothMethod === 'exp') {
        smoothMteval *= 2;
        precisions[n - 1] = 100 / (smoothMteval * total[n - 1]!);
      } else if (cfg.smoothMethod === 'floor') {
        precisions[n - 1] = (100 * smoothValue) / total[n - 1]!;
      }
    } else {
      precisions[n - 1] = (100 * correct[n - 1]!) / total[n - 1]!;
    }
  }

  // left-to-right sum as Python's (<= 3.11) built-in sum()
  let logSum = 0;
  for (const p of precisions.slice(0, effOrder)) logSum += p === 0 ? LOG_ZERO : Math.log(p);
  const score = bp * Math.exp(logSum / effOrder);
  return new BleuScore(score, correct, total, precisions, bp, sysLen, refLen, signature, shortSignature);
}

/** Throws a DataError unless every reference stream has one line per hypothesis. */
function checkShapes(nHyps: number, refs: readonly (readonly string[])[], what: string): void {
  if (refs.length === 0) throw new DataError(`${what}: expected at least one reference stream, got none`);
  refs.forEach((stream, k) => {
    if (stream.length !== nHyps) {
      throw new DataError(`${what}: reference stream ${k + 1} has ${stream.length} segments but there are ${nHyps} hypotheses`);
    }
  });
}

/**
 * Corpus BLEU exactly as `sacrebleu.corpus_bleu(hyps, refs, ...)`: `refs` is a list of reference streams
 * (`refs[k][i]` is the k-th reference of segment i). Defaults: 13a, mixed case, exp smoothing, no effective order.
 * Unlike sacreBLEU, which silently truncates to the shortest stream, mismatched lengths throw a DataError.
 */
export function corpusBleu(hyps: readonly string[], refs: readonly (readonly string[])[], opts: BleuOptions = {}): BleuScore {
  return scoreWith(hyps, refs, resolveConfig(opts, CORPUS_DEFAULTS), 'corpusBleu');
}

/**
 * `sacrebleu.sentence_bleu(hyp, refs)`: one segment against one or more references, with sacreBLEU's
 * sentence-level defaults (effective order on, exp smoothing); `opts` may override them.
 */
export function sentenceBleu(hyp: string, refs: readonly string[], opts: BleuOptions = {}): BleuScore {
  const cfg = resolveConfig(opts, { ...CORPUS_DEFAULTS, effectiveOrder: true });
  return scoreWith(
    [hyp],
    refs.map((r) => [r]),
    cfg,
    'sentenceBleu',
  );
}

/** sacreBLEU's `_preprocess_segment`: lowercase (optional), strip trailing whitespace, tokenize, split. */
export function preprocessSegment(s: string, cfg: Pick<BleuConfig, 'lowercase' | 'tokenize'>): string[] {
  const lc = cfg.lowercase ? s.toLowerCase() : s;
  const tok = cfg.tokenize === '13a' ? tokenize13a(pyRstrip(lc)) : tokenizeNone(pyRstrip(lc));
  return pySplit(tok);
}

function scoreWith(hyps: readonly string[], refs: readonly (readonly string[])[], cfg: BleuConfig, what: string): BleuScore {
  checkShapes(hyps.length, refs, what);
  const N = cfg.maxNgramOrder;
  const sums = new Array<number>(2 + 2 * N).fill(0);
  for (let i = 0; i < hyps.length; i++) {
    const refTokens = refs.map((stream) => preprocessSegment(stream[i]!, cfg));
    const st = segmentStats(preprocessSegment(hyps[i]!, cfg), refTokens, N);
    for (let j = 0; j < sums.length; j++) sums[j]! += st[j]!;
  }
  const sigFields: BleuSignatureFields = { ...cfg, nrefs: refs.length };
  return computeBleu(sums.slice(2, 2 + N), sums.slice(2 + N), sums[0]!, sums[1]!, cfg, bleuSignature(sigFields), bleuSignature(sigFields, true));
}

/**
 * The validated BLEU config for `opts` over sacreBLEU's corpus defaults, or its sentence defaults (effective order
 * on) when `sentence` is set: what corpusBleu / sentenceBleu use, exposed for the metric registry (metric.ts).
 */
export function resolveBleuConfig(opts: BleuOptions = {}, sentence = false): BleuConfig {
  return resolveConfig(opts, sentence ? { ...CORPUS_DEFAULTS, effectiveOrder: true } : CORPUS_DEFAULTS);
}

/**
 * One segment's sufficient statistics as sacreBLEU's BLEU keeps them: [hypLen, refLen, correct_1..N, total_1..N],
 * after the same preprocessing as corpusBleu. Summing these over segments and calling bleuFromStats gives corpusBleu.
 */
export function bleuSegmentStats(hyp: string, refs: readonly string[], cfg: BleuConfig): number[] {
  const refTokens = refs.map((r) => preprocessSegment(r, cfg));
  return segmentStats(preprocessSegment(hyp, cfg), refTokens, cfg.maxNgramOrder);
}

/** BLEU from segment statistics summed over a corpus (or a resample of it), with the signature for `nrefs`. */
export function bleuFromStats(stats: ArrayLike<number>, cfg: BleuConfig, nrefs: number): BleuScore {
  const N = cfg.maxNgramOrder;
  const correct: number[] = [];
  const total: number[] = [];
  for (let n = 0; n < N; n++) {
    correct.push(stats[2 + n]!);
    total.push(stats[2 + N + n]!);
  }
  const sigFields: BleuSignatureFields = { ...cfg, nrefs };
  return computeBleu(correct, total, stats[0]!, stats[1]!, cfg, bleuSignature(sigFields), bleuSignature(sigFields, true));
}

// ---------------------------------------------------------------------------------------------------------
// Voita et al.'s tokenized, lowercased BLEU
// ---------------------------------------------------------------------------------------------------------

/** Label of the Voita-style BLEU in score lines, so it is never mistaken for sacreBLEU's detokenized BLEU. */
export const TOKENIZED_LC_BLEU_NAME = 'BLEU(tok,lc,no-smooth)';

export class TokenizedBleuScore extends BleuScore {
  constructor(
    base: BleuScore,
    /** 0-based indices of segments left out because all their references are empty (as Voita's script does). */
    readonly skippedSegments: readonly number[],
  ) {
    super(base.score, base.counts, base.totals, base.precisions, base.bp, base.sys_len, base.ref_len, '', '', TOKENIZED_LC_BLEU_NAME);
  }
}

/**
 * The BLEU Voita et al. (2019, "Analyzing Multi-Head Self-Attention") report, following their
 * lib/task/seq2seq/bleu.py: lowercased, split on whitespace (input is expected to be tokenized already),
 * corpus BLEU-4 with uniform weights and no smoothing (any order with zero matches gives 0), brevity penalty
 * from the closest non-empty reference length (ties to the shorter). Their script skips a segment whose
 * references are all empty; we do the same (treating whitespace-only as empty) and list skipped segments. Reported on
 * the 0-100 scale and not rounded (their script prints a 0-1 value rounded to 4 decimals).
 */
export function tokenizedLowercaseBleu(hyps: readonly string[], refs: readonly (readonly string[])[]): TokenizedBleuScore {
  checkShapes(hyps.length, refs, 'tokenizedLowercaseBleu');
  const N = 4;
  const correct = new Array<number>(N).fill(0);
  const total = new Array<number>(N).fill(0);
  let sysLen = 0;
  let refLen = 0;
  const skipped: number[] = [];
  for (let i = 0; i < hyps.length; i++) {
    const rawRefs = refs.map((stream) => stream[i]!).filter((r) => pyRstrip(r) !== '');
    if (rawRefs.length === 0) {
      skipped.push(i);
      continue;
    }
    const hypTokens = pySplit(hyps[i]!.toLowerCase());
    const refTokens = rawRefs.map((r) => pySplit(r.toLowerCase()));
    const st = segmentStats(hypTokens, refTokens, N);
    sysLen += st[0]!;
    // unlike sacreBLEU, empty references do not compete for the closest length; with none left it is 0
    const nonEmpty = refTokens.map((r) => r.length).filter((l) => l > 0);
    refLen += nonEmpty.length > 0 ? closestRefLen(hypTokens.length, nonEmpty) : 0;
    for (let n = 0; n < N; n++) {
      correct[n]! += st[2 + n]!;
      total[n]! += st[2 + N + n]!;
    }
  }
  // Voita's brev_penalty: 1 only when strictly longer; an empty system output would divide by zero there
  let bp: number;
  if (sysLen > refLen) bp = 1;
  else bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0;
  const precisions = correct.map((c, n) => (c > 0 && total[n]! > 0 ? (100 * c) / total[n]! : 0));
  let score = 0;
  if (correct.every((c, n) => c > 0 && total[n]! > 0)) {
    let average = 0;
    for (let n = 0; n < N; n++) average += 0.25 * Math.log(correct[n]! / total[n]!);
    score = 100 * bp * Math.exp(average);
  }
  return new TokenizedBleuScore(new BleuScore(score, correct, total, precisions, bp, sysLen, refLen), skipped);
}
