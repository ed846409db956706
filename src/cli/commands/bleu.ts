/** `heads bleu`: BLEU, chrF/chrF++ and TER identical to sacreBLEU 2's, with its flags, signatures, JSON, CIs and paired tests. */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { runHandler } from '../common.js';
import { intFlag, numFlag } from '../options.js';
import { runBleuCommand } from '../../eval/bleu-command.js';
import { BLEU_TOKENIZERS, SMOOTH_METHODS, type BleuTokenizer, type SmoothMethod } from '../../eval/bleu.js';

interface Args {
  /** several with -i a b c; a single string when the handler is called directly */
  input?: string | string[];
  // the flags below have yargs defaults; optional so that callers of the handler may leave them out
  metrics?: string[];
  'effective-order'?: boolean;
  'chrf-char-order'?: number;
  'chrf-word-order'?: number;
  'chrf-beta'?: number;
  'chrf-whitespace'?: boolean;
  'chrf-lowercase'?: boolean;
  'chrf-eps-smoothing'?: boolean;
  'ter-case-sensitive'?: boolean;
  'ter-no-punct'?: boolean;
  'ter-normalized'?: boolean;
  'ter-asian-support'?: boolean;
  confidence?: boolean;
  'confidence-n'?: number;
  'paired-bs'?: boolean;
  'paired-bs-n'?: number;
  'paired-ar'?: boolean;
  'paired-ar-n'?: number;
  seed?: number;
  refs?: string[];
  reference?: string[];
  tokenize: BleuTokenizer;
  'smooth-method': SmoothMethod;
  'smooth-value'?: number;
  lowercase: boolean;
  'sentence-level': boolean;
  'score-only': boolean;
  format: 'text' | 'json';
  width: number;
  short: boolean;
}

export const command = 'bleu [refs..]';
export const describe = 'BLEU, chrF/chrF++ and TER against references, identical to sacreBLEU 2; CIs and paired significance tests';

export function builder(y: Argv): Argv<Args> {
  return (
    y
      // sacreBLEU's multi-letter short flags (-sl, -lc, -tok, -pbs, ...) are aliases, not groups of one-letter flags
      .parserConfiguration({ 'short-option-groups': false })
      .positional('refs', { type: 'string', array: true, describe: 'reference files' })
      .option('input', {
        alias: 'i',
        type: 'string',
        array: true,
        describe: 'hypothesis file(s) (default: stdin); with several, the first is the baseline of paired tests',
      })
      .option('metrics', { alias: 'm', type: 'string', array: true, default: ['bleu'], describe: 'metrics: bleu, chrf, ter (several at once)' })
      .option('reference', { alias: 'r', type: 'string', array: true, describe: 'reference file(s) (repeatable)' })
      .option('tokenize', { alias: 'tok', type: 'string', choices: BLEU_TOKENIZERS as BleuTokenizer[], default: '13a' as BleuTokenizer })
      .option('smooth-method', { alias: 's', type: 'string', choices: SMOOTH_METHODS as SmoothMethod[], default: 'exp' as SmoothMethod })
      .option('smooth-value', { alias: 'sv', ...numFlag('smooth-value', { min: 0 }), describe: 'floor: 0.1, add-k: 1 by default' })
      .option('lowercase', { alias: 'lc', type: 'boolean', default: false })
      .option('sentence-level', { alias: 'sl', type: 'boolean', default: false, describe: 'one score per sentence' })
      .option('score-only', { alias: 'b', type: 'boolean', default: false, describe: 'print only the score' })
      .option('format', { alias: 'f', type: 'string', choices: ['text', 'json'] as const, default: 'text' as const })
      .option('width', { alias: 'w', ...intFlag('width', 0, 10), default: 2, describe: 'decimals of the score' })
      .option('short', { alias: 'sh', type: 'boolean', default: false, describe: 'short signature' })
      .option('effective-order', {
        type: 'boolean',
        describe: 'BLEU effective order (default: on with --sentence-level, off for the corpus; --no-effective-order)',
      })
      .option('chrf-char-order', { alias: 'cc', ...intFlag('chrf-char-order', 0), default: 6, describe: 'chrF character n-gram order' })
      .option('chrf-word-order', { alias: 'cw', ...intFlag('chrf-word-order', 0), default: 0, describe: 'chrF word n-gram order (2 = chrF++)' })
      .option('chrf-beta', { ...intFlag('chrf-beta', 0), default: 2, describe: 'chrF recall weight' })
      .option('chrf-whitespace', { type: 'boolean', default: false, describe: 'keep whitespace in chrF character n-grams' })
      .option('chrf-lowercase', { type: 'boolean', default: false, describe: 'case-insensitive chrF' })
      .option('chrf-eps-smoothing', {
        type: 'boolean',
        default: false,
        describe: "chrF++.py/Moses epsilon smoothing instead of sacreBLEU 2's effective-order averaging",
      })
      .option('ter-case-sensitive', { type: 'boolean', default: false, describe: 'TER keeps case (lowercased by default)' })
      .option('ter-no-punct', { type: 'boolean', default: false, describe: 'TER removes punctuation' })
      .option('ter-normalized', { type: 'boolean', default: false, describe: 'TER applies Tercom normalisation' })
      .option('ter-asian-support', {
        type: 'boolean',
        default: false,
        describe: 'TER splits CJK characters / removes CJK punctuation (with --ter-normalized / --ter-no-punct)',
      })
      .option('confidence', { alias: 'ci', type: 'boolean', default: false, describe: "one system's bootstrap mean and 95% CI" })
      .option('confidence-n', {
        alias: 'cin',
        ...intFlag('confidence-n', 1),
        default: 1000,
        describe: 'bootstrap resamples for --confidence (and the CI of --paired-ar)',
      })
      .option('paired-bs', { alias: 'pbs', type: 'boolean', default: false, describe: 'paired bootstrap resampling test of each -i system against the first' })
      .option('paired-bs-n', { alias: 'pbsn', ...intFlag('paired-bs-n', 1), default: 1000, describe: 'resamples of --paired-bs' })
      .option('paired-ar', {
        alias: 'par',
        type: 'boolean',
        default: false,
        describe: 'paired approximate randomization test of each -i system against the first',
      })
      .option('paired-ar-n', { alias: 'parn', ...intFlag('paired-ar-n', 1), default: 10000, describe: 'trials of --paired-ar' })
      .option('seed', { ...intFlag('seed', 0, 2 ** 32 - 1), default: 12345, describe: "seed of the resampling (sacreBLEU's default)" })
      .example('$0 bleu -i hyp.de -r ref.de', 'score a system')
      .example('$0 bleu -i hyp.de -r ref.de -m bleu chrf ter --chrf-word-order 2', 'BLEU, chrF++ and TER')
      .example(
        '$0 bleu -i base.hyp sys1.hyp sys2.hyp -r ref.de -m bleu chrf --paired-bs',
        'each system against base.hyp: scores, 95% CIs, p-values',
      ) as unknown as Argv<Args>
  );
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    const referencePaths = [...(args.reference ?? []), ...(args.refs ?? [])];
    const inputs = args.input === undefined ? [] : Array.isArray(args.input) ? args.input : [args.input];
    const out = runBleuCommand({
      hypothesisPaths: inputs,
      hypothesisText: inputs.length > 0 ? undefined : readFileSync(0, 'utf8'),
      metrics: args.metrics,
      referencePaths,
      tokenize: args.tokenize,
      smoothMethod: args['smooth-method'],
      smoothValue: args['smooth-value'],
      lowercase: args.lowercase,
      sentenceLevel: args['sentence-level'],
      scoreOnly: args['score-only'],
      format: args.format,
      width: args.width,
      short: args.short,
      effectiveOrder: args['effective-order'],
      chrf: {
        charOrder: args['chrf-char-order'],
        wordOrder: args['chrf-word-order'],
        beta: args['chrf-beta'],
        whitespace: args['chrf-whitespace'],
        lowercase: args['chrf-lowercase'],
        epsSmoothing: args['chrf-eps-smoothing'],
      },
      ter: {
        caseSensitive: args['ter-case-sensitive'],
        noPunct: args['ter-no-punct'],
        normalized: args['ter-normalized'],
        asianSupport: args['ter-asian-support'],
      },
      confidence: args.confidence ?? false,
      confidenceN: args['confidence-n'],
      pairedBs: args['paired-bs'],
      pairedBsN: args['paired-bs-n'],
      pairedAr: args['paired-ar'],
      pairedArN: args['paired-ar-n'],
      seed: args.seed,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(out.endsWith('\n') ? out : out + '\n');
  });
}
