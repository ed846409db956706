/** `heads bleu`: corpus BLEU identical to sacreBLEU's, with its flags, signature and JSON output. */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { runHandler } from '../common.js';
import { runBleuCommand } from '../../eval/bleu-command.js';
import { BLEU_TOKENIZERS, SMOOTH_METHODS, type BleuTokenizer, type SmoothMethod } from '../../eval/bleu.js';

interface Args {
  input?: string;
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
export const describe = "Corpus BLEU of a hypothesis file against references, identical to sacreBLEU's default";

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('refs', { type: 'string', array: true, describe: 'reference files' })
    .option('input', { alias: 'i', type: 'string', describe: 'hypothesis file (default: stdin)' })
    .option('reference', { alias: 'r', type: 'string', array: true, describe: 'reference file(s) (repeatable)' })
    .option('tokenize', { alias: 'tok', type: 'string', choices: BLEU_TOKENIZERS as BleuTokenizer[], default: '13a' as BleuTokenizer })
    .option('smooth-method', { alias: 's', type: 'string', choices: SMOOTH_METHODS as SmoothMethod[], default: 'exp' as SmoothMethod })
    .option('smooth-value', { alias: 'sv', type: 'number', describe: 'floor: 0.1, add-k: 1 by default' })
    .option('lowercase', { alias: 'lc', type: 'boolean', default: false })
    .option('sentence-level', { alias: 'sl', type: 'boolean', default: false, describe: 'one score per sentence' })
    .option('score-only', { alias: 'b', type: 'boolean', default: false, describe: 'print only the score' })
    .option('format', { alias: 'f', type: 'string', choices: ['text', 'json'] as const, default: 'text' as const })
    .option('width', { alias: 'w', type: 'number', default: 2, describe: 'decimals of the score' })
    .option('short', { alias: 'sh', type: 'boolean', default: false, describe: 'short signature' })
    .example('$0 bleu -i hyp.de -r ref.de', 'score a system') as unknown as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    const referencePaths = [...(args.reference ?? []), ...(args.refs ?? [])];
    const out = runBleuCommand({
      hypothesisPath: args.input,
      hypothesisText: args.input ? undefined : readFileSync(0, 'utf8'),
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
    });
    process.stdout.write(out.endsWith('\n') ? out : out + '\n');
  });
}
