/**
 * The `heads bleu` command body: reads hypothesis files (or stdin text) and reference files and returns what
 * sacreBLEU 2.x's CLI (sacrebleu.py main()) prints for `-m bleu chrf ter` with its metric flags, `-sl`, `-b`,
 * `-f text|json`, `-w`, `-sh`, `--confidence`, and for several systems `--paired-bs` / `--paired-ar` (tables are
 * plain text rather than sacreBLEU's coloured grid). The CLI wiring only parses flags and prints the result.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ConfigError, DataError } from '../util/errors.js';
import { firstInvalidUtf8Line } from '../util/fs.js';
import { BLEU_TOKENIZERS, SMOOTH_METHODS, pyFixed, type BleuOptions, type BleuTokenizer, type SmoothMethod } from './bleu.js';
import type { ChrfOptions } from './chrf.js';
import { formatScoreLine, makeMetric, parseMetricName, type Metric, type MetricName, type TestSignatureFields } from './metric.js';
import {
  DEFAULT_AR_N,
  DEFAULT_BOOTSTRAP_N,
  DEFAULT_SEED,
  bootstrapConfidenceFromStats,
  pairedApproximateRandomizationFromStats,
  pairedBootstrapFromStats,
  scoreFromSegmentStats,
  segmentStatistics,
  type PairedResult,
  type SegmentStats,
  type SystemResult,
} from './significance.js';
import type { TerOptions } from './ter.js';
import { pyRstrip } from './tokenizer-13a.js';

export interface BleuCommandOptions {
  /** Hypothesis file (`-i`); plain UTF-8 or `.gz`. Takes precedence over hypothesisText, as `-i` does over stdin. */
  readonly hypothesisPath?: string;
  /** Several systems (`-i base sys1 sys2`), appended after hypothesisPath; the first is the paired tests' baseline. */
  readonly hypothesisPaths?: readonly string[];
  /** Hypothesis text read from stdin, used when no hypothesis file is given. */
  readonly hypothesisText?: string;
  /** One or more reference files (`-r` / positional refs), each one line per hypothesis line. */
  readonly referencePaths: readonly string[];
  /** `-m`: bleu, chrf, ter (several at once; printed in that order, as sacreBLEU sorts them). Default: bleu. */
  readonly metrics?: readonly string[];
  readonly tokenize: BleuTokenizer;
  readonly smoothMethod: SmoothMethod;
  /** For floor / add-k; ignored by exp / none, as in sacreBLEU. */
  readonly smoothValue?: number;
  readonly lowercase: boolean;
  /** BLEU's effective order; undefined = sacreBLEU's default (on for sentence-level scores, off for the corpus). */
  readonly effectiveOrder?: boolean;
  readonly chrf?: ChrfOptions;
  readonly ter?: TerOptions;
  /** One score line per segment and metric (sacreBLEU `-sl`; prints text even when format is json). */
  readonly sentenceLevel: boolean;
  /** Print only the number (`-b`), which wins over `json`. */
  readonly scoreOnly: boolean;
  readonly format: 'text' | 'json';
  /** Decimals of the score (`-w`, default 1 as sacreBLEU's CLI). */
  readonly width?: number;
  /** Short signature in text output (`-sh`); JSON always carries the full one, as in sacreBLEU. */
  readonly short?: boolean;
  /** One system's bootstrap mean and 95% CI (`--confidence`, `--confidence-n` resamples, default 1000). */
  readonly confidence?: boolean;
  readonly confidenceN?: number;
  /** Paired bootstrap resampling of each system against the first (`--paired-bs`, `--paired-bs-n`, default 1000). */
  readonly pairedBs?: boolean;
  readonly pairedBsN?: number;
  /** Paired approximate randomization (`--paired-ar`, `--paired-ar-n`, default 10000; CI from confidenceN resamples). */
  readonly pairedAr?: boolean;
  readonly pairedArN?: number;
  /** Seed of the resampling (sacreBLEU's SACREBLEU_SEED, default 12345). */
  readonly seed?: number;
  /** Progress lines (to stderr in the CLI). */
  readonly log?: (line: string) => void;
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
      throw new DataError(
        `${path}: expected a gzip-compressed ${what} (name ends in .gz), but it does not decompress (${e instanceof Error ? e.message : String(e)})`,
      );
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

interface Plan {
  readonly width: number;
  readonly metrics: readonly MetricName[];
  readonly hypPaths: readonly string[];
  readonly test: 'bs' | 'ar' | undefined;
  readonly testN: number;
  readonly confidenceN: number;
  readonly seed: number;
}

const isCount = (n: number): boolean => Number.isInteger(n) && n >= 1;

/** Every flag checked before any file is read; all problems reported at once. */
function validate(opts: BleuCommandOptions): Plan {
  const problems: string[] = [];
  const hypPaths = [...(opts.hypothesisPath !== undefined ? [opts.hypothesisPath] : []), ...(opts.hypothesisPaths ?? [])];
  if (opts.referencePaths.length === 0) problems.push('bleu: expected at least one reference file (-r), got none');
  if (hypPaths.length === 0 && opts.hypothesisText === undefined) {
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
  const metrics: MetricName[] = [];
  for (const name of opts.metrics ?? ['bleu']) {
    try {
      const id = parseMetricName(name);
      if (!metrics.includes(id)) metrics.push(id);
    } catch (e) {
      if (e instanceof ConfigError) problems.push(...e.problems);
      else throw e;
    }
  }
  // sacreBLEU computes the metrics in sorted order: BLEU, CHRF, TER
  metrics.sort((a, b) => ['bleu', 'chrf', 'ter'].indexOf(a) - ['bleu', 'chrf', 'ter'].indexOf(b));
  if (opts.pairedBs && opts.pairedAr) problems.push('bleu: --paired-bs and --paired-ar exclude each other, got both');
  const test = opts.pairedBs ? 'bs' : opts.pairedAr ? 'ar' : undefined;
  const pairedBsN = opts.pairedBsN ?? DEFAULT_BOOTSTRAP_N;
  const pairedArN = opts.pairedArN ?? DEFAULT_AR_N;
  const confidenceN = opts.confidenceN ?? DEFAULT_BOOTSTRAP_N;
  const seed = opts.seed ?? DEFAULT_SEED;
  if (!isCount(pairedBsN)) problems.push(`bleu --paired-bs-n: expected an integer >= 1, got ${String(opts.pairedBsN)}`);
  if (!isCount(pairedArN)) problems.push(`bleu --paired-ar-n: expected an integer >= 1, got ${String(opts.pairedArN)}`);
  if (!isCount(confidenceN)) problems.push(`bleu --confidence-n: expected an integer >= 1, got ${String(opts.confidenceN)}`);
  if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) problems.push(`bleu --seed: expected an integer from 0 to 2^32-1, got ${String(opts.seed)}`);
  const nSystems = hypPaths.length > 0 ? hypPaths.length : 1;
  if (test !== undefined && nSystems < 2) {
    problems.push(`bleu --paired-${test}: expected a baseline and at least one system (-i base.hyp sys1.hyp ...), got ${nSystems} hypothesis file`);
  }
  if (opts.confidence && nSystems > 1) {
    problems.push(`bleu --confidence: gives one system's CI, got ${nSystems} systems (use --paired-bs or --paired-ar to compare them)`);
  }
  if (opts.sentenceLevel && (nSystems > 1 || test !== undefined || opts.confidence)) {
    problems.push('bleu --sentence-level: expected one system and no statistical test (sacreBLEU has none at sentence level)');
  }
  // each metric's own options (chrF orders and beta), validated by building the metrics once
  for (const id of metrics) {
    try {
      makeMetric(id, { bleu: bleuOptions(opts, opts.sentenceLevel), chrf: opts.chrf, ter: opts.ter }, opts.sentenceLevel);
    } catch (e) {
      if (e instanceof ConfigError) problems.push(...e.problems);
      else throw e;
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { width, metrics, hypPaths, test, testN: test === 'ar' ? pairedArN : pairedBsN, confidenceN, seed };
}

function bleuOptions(opts: BleuCommandOptions, sentence: boolean): BleuOptions {
  return {
    tokenize: opts.tokenize,
    lowercase: opts.lowercase,
    smoothMethod: opts.smoothMethod,
    smoothValue: opts.smoothValue,
    effectiveOrder: opts.effectiveOrder ?? sentence,
  };
}

/** Reads one system's lines; stdin (with its tab check) when no file is given. */
function readSystem(path: string | undefined, text: string | undefined): { name: string; lines: string[] } {
  if (path !== undefined) return { name: path, lines: splitLines(readFileText(path, 'hypothesis file')) };
  const lines = splitStdinLines(text ?? '');
  // sacreBLEU reads tab-separated stdin columns as several systems and prints a comparison table instead
  const tabLine = lines.findIndex((l) => l.includes('\t'));
  if (tabLine >= 0) {
    throw new DataError(
      `${STDIN_NAME}:${tabLine + 1}: expected one hypothesis per line, found a tab (sacreBLEU would read tab-separated columns as several systems, which heads does not support; give each system with -i)`,
    );
  }
  return { name: STDIN_NAME, lines };
}

/** sacreBLEU's print_single_results: one line per metric, right-aligned on the ' = '; JSON: one object, or a list. */
function joinSingleResults(lines: readonly string[], json: boolean, scoreOnly: boolean): string {
  if (json && !scoreOnly) return lines.length > 1 ? `[\n${lines.join(',\n')}\n]` : lines[0]!;
  if (lines.length === 1) return lines[0]!;
  const lens = lines.map((l) => l.indexOf('=') - 1);
  const w = Math.max(...lens);
  return lines.map((l, i) => (lens[i]! < 0 ? l : l.slice(0, lens[i]).padStart(w) + l.slice(lens[i]))).join('\n');
}

/** Columns padded to their widest cell, two spaces apart. */
function table(rows: readonly (readonly string[])[], rightAlign: readonly boolean[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (rightAlign[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function elapsed(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

/** Runs the command and returns the text to print (no trailing newline). */
export function runBleuCommand(opts: BleuCommandOptions): string {
  const plan = validate(opts);
  const { width } = plan;
  const log = opts.log ?? ((): void => undefined);

  const systems = plan.hypPaths.length > 0 ? plan.hypPaths.map((p) => readSystem(p, undefined)) : [readSystem(undefined, opts.hypothesisText)];
  for (const s of systems) if (s.lines.length === 0) throw new DataError(`${s.name}: expected hypothesis lines, found an empty input`);
  const refs = opts.referencePaths.map((p) => splitLines(readFileText(p, 'reference file')));
  const nLines = systems[0]!.lines.length;
  for (const s of systems) {
    if (s.lines.length !== nLines) {
      throw new DataError(`line counts differ: hypothesis ${systems[0]!.name} has ${nLines} lines but hypothesis ${s.name} has ${s.lines.length} lines`);
    }
  }
  refs.forEach((stream, k) => {
    if (stream.length !== nLines) {
      throw new DataError(
        `line counts differ: hypothesis ${systems[0]!.name} has ${nLines} lines but reference ${opts.referencePaths[k]} has ${stream.length} lines`,
      );
    }
  });

  const nrefs = refs.length;
  const build = (id: MetricName, sentence: boolean): Metric => makeMetric(id, { bleu: bleuOptions(opts, sentence), chrf: opts.chrf, ter: opts.ter }, sentence);
  const sig = (m: Metric, test: TestSignatureFields | undefined, forText: boolean): string =>
    m.signature(nrefs, test, forText && opts.format !== 'json' ? (opts.short ?? false) : false);

  if (opts.sentenceLevel) {
    const metrics = plan.metrics.map((id) => build(id, true));
    const out: string[] = [];
    systems[0]!.lines.forEach((h, i) => {
      const segRefs = refs.map((stream) => stream[i]!);
      for (const m of metrics) {
        const st = m.segmentStats(h, segRefs);
        out.push(
          formatScoreLine(m.name, m.scoreFromStats(st), m.verboseFromStats(st), {
            width,
            scoreOnly: opts.scoreOnly,
            signature: m.signature(nrefs, undefined, opts.short ?? false),
          }),
        );
      }
    });
    return out.join('\n');
  }

  const metrics = plan.metrics.map((id) => build(id, false));
  const t0 = performance.now();
  // sentence statistics once per metric and system (TER's shift search makes this the slow part): one progress
  // line per step with its rate and the ETA of the remaining steps, for corpora or comparisons big enough to wait on
  const stats = new Map<Metric, SegmentStats[]>();
  const steps = metrics.length * systems.length;
  const verbose = systems.length > 1 || nLines >= 1000;
  let step = 0;
  for (const m of metrics) {
    const perSystem: SegmentStats[] = [];
    for (const s of systems) {
      const t = performance.now();
      perSystem.push(segmentStatistics(m, s.lines, refs));
      step++;
      if (verbose) {
        const rate = nLines / Math.max((performance.now() - t) / 1000, 1e-6);
        const eta = ((performance.now() - t0) / step) * (steps - step);
        log(
          `bleu: [${step}/${steps}] ${m.name} statistics of ${s.name}: ${nLines} sentences in ${elapsed(t)} (${rate.toFixed(0)} sentences/s), ETA ${(eta / 1000).toFixed(1)} s`,
        );
      }
    }
    stats.set(m, perSystem);
  }

  if (systems.length === 1) {
    const lines = metrics.map((m) => {
      const st = stats.get(m)![0]!;
      const sum = sumAll(st);
      if (!opts.confidence) {
        return formatScoreLine(m.name, m.scoreFromStats(sum), m.verboseFromStats(sum), {
          width,
          scoreOnly: opts.scoreOnly,
          json: opts.format === 'json',
          signature: sig(m, undefined, true),
        });
      }
      const r = bootstrapConfidenceFromStats(m, st, plan.confidenceN, plan.seed);
      const test = { bs: plan.confidenceN, seed: plan.seed };
      return formatScoreLine(m.name, r.score, m.verboseFromStats(sum), {
        width,
        scoreOnly: opts.scoreOnly,
        json: opts.format === 'json',
        signature: sig(m, test, true),
        confidence: r,
      });
    });
    return joinSingleResults(lines, opts.format === 'json', opts.scoreOnly);
  }

  if (plan.test === undefined)
    return scoreTable(
      systems.map((s) => s.name),
      metrics,
      stats,
      opts,
      plan,
      sig,
    );

  const tTests = performance.now();
  const results = metrics.map((m, k): PairedResult => {
    const t = performance.now();
    const [base, ...rest] = stats.get(m)!;
    const r =
      plan.test === 'bs'
        ? pairedBootstrapFromStats(m, base!, rest, plan.testN, plan.seed)
        : pairedApproximateRandomizationFromStats(m, base!, rest, plan.testN, plan.seed, plan.confidenceN);
    const what = plan.test === 'bs' ? 'bootstrap resamples' : 'randomization trials';
    const done = performance.now() - tTests;
    log(
      `bleu: [${k + 1}/${metrics.length}] ${m.name} paired test, ${rest.length} system(s) x ${plan.testN} ${what} in ${elapsed(t)}, ETA ${(((done / (k + 1)) * (metrics.length - k - 1)) / 1000).toFixed(1)} s`,
    );
    return r;
  });
  return pairedReport(
    systems.map((s) => s.name),
    metrics,
    results,
    opts,
    plan,
    sig,
  );
}

function sumAll(st: SegmentStats): Float64Array {
  const out = new Float64Array(st.k);
  for (let i = 0; i < st.n; i++) for (let j = 0; j < st.k; j++) out[j]! += st.data[i * st.k + j]!;
  return out;
}

type SigFn = (m: Metric, test: TestSignatureFields | undefined, forText: boolean) => string;

/** Several systems without a test: sacreBLEU's table of scores (JSON: one object per system). */
function scoreTable(
  names: readonly string[],
  metrics: readonly Metric[],
  stats: Map<Metric, SegmentStats[]>,
  opts: BleuCommandOptions,
  plan: Plan,
  sig: SigFn,
): string {
  const scores = metrics.map((m) => stats.get(m)!.map((st) => scoreFromSegmentStats(m, st)));
  if (opts.format === 'json') {
    return JSON.stringify(
      names.map((name, s) => ({ system: name, ...Object.fromEntries(metrics.map((m, k) => [m.name, pyFixed(scores[k]![s]!, plan.width)])) })),
      null,
      4,
    );
  }
  const rows = [['System', ...metrics.map((m) => m.name)], ...names.map((name, s) => [name, ...metrics.map((_, k) => pyFixed(scores[k]![s]!, plan.width))])];
  return `${table(
    rows,
    rows[0]!.map((_, c) => c > 0),
  )}\n\n${signatureBlock(metrics, (m) => sig(m, undefined, true))}`;
}

function signatureBlock(metrics: readonly Metric[], sigOf: (m: Metric) => string): string {
  return ['Metric signatures:', ...metrics.map((m) => ` - ${m.name.padEnd(10)} ${sigOf(m)}`)].join('\n');
}

/** The paired tests as a table (one row per system and metric) with a legend, or as sacreBLEU-shaped JSON. */
function pairedReport(
  names: readonly string[],
  metrics: readonly Metric[],
  results: readonly PairedResult[],
  opts: BleuCommandOptions,
  plan: Plan,
  sig: SigFn,
): string {
  const w = plan.width;
  const testFields = (r: PairedResult): TestSignatureFields =>
    r.test === 'bs' ? { bs: r.n, seed: r.seed } : { ...(r.bootstrapN > 0 ? { bs: r.bootstrapN } : {}), ar: r.n, seed: r.seed };
  const label = (s: number): string => (s === 0 ? `Baseline: ${names[0]}` : names[s]!);
  const per = (r: PairedResult, s: number): SystemResult => (s === 0 ? r.baseline : r.systems[s - 1]!);

  if (opts.format === 'json') {
    const out = names.map((_, s) => ({
      system: label(s),
      ...Object.fromEntries(
        metrics.map((m, k) => {
          const r = per(results[k]!, s);
          const hasCi = !Number.isNaN(r.mean);
          return [
            m.name,
            {
              score: r.score,
              p_value: r.pValue,
              mean: hasCi ? r.mean : null,
              ci: hasCi ? r.halfWidth : null,
              ci_low: hasCi ? r.ci[0] : null,
              ci_high: hasCi ? r.ci[1] : null,
              signature: sig(m, testFields(results[k]!), false),
            },
          ];
        }),
      ),
    }));
    return JSON.stringify(out, null, 4);
  }

  const rows: string[][] = [['System', 'Metric', 'Score', 'Mean', '95% CI', '±', 'p-value']];
  names.forEach((_, s) => {
    metrics.forEach((m, k) => {
      const r = per(results[k]!, s);
      const hasCi = !Number.isNaN(r.mean);
      rows.push([
        k === 0 ? label(s) : '',
        m.name,
        pyFixed(r.score, w),
        hasCi ? pyFixed(r.mean, w) : '-',
        hasCi ? `[${pyFixed(r.ci[0], w)}, ${pyFixed(r.ci[1], w)}]` : '-',
        hasCi ? pyFixed(r.halfWidth, w) : '-',
        r.pValue === null ? '' : `${pyFixed(r.pValue, 4)}${r.pValue < 0.05 ? '*' : ' '}`,
      ]);
    });
  });
  const r0 = results[0]!;
  const head =
    r0.test === 'bs'
      ? `Paired bootstrap resampling test with ${r0.n} resampling trials (seed ${r0.seed})`
      : `Paired approximate randomization test with ${r0.n} trials (seed ${r0.seed}); mean and CI from ${r0.bootstrapN} bootstrap resamples`;
  const legend = [
    head,
    ` - Each system is compared with the baseline, ${names[0]}, on the same resampled sentences.`,
    ' - Mean and 95% CI: over bootstrap resamples of the test set (percentile interval, 2.5% to 97.5%); ± is half its width.',
    ' - p-value: (c + 1) / (n + 1), c = trials whose score difference (centred, for the bootstrap) is at least the observed',
    '   |system - baseline|. * marks p < 0.05: the difference is unlikely to be chance. It says the systems differ,',
    '   not which one is better (TER: lower is better).',
  ];
  return [
    table(rows, [false, false, true, true, false, true, true]),
    '',
    ...legend,
    '',
    signatureBlock(metrics, (m) => sig(m, testFields(results[metrics.indexOf(m)]!), true)),
  ].join('\n');
}
