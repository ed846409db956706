/** `heads data synth`: write a generated corpus (toy-mt, copy, reverse) as Moses-style file pairs. */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { join } from 'node:path';
import { runHandler } from '../common.js';
import { checkOutputFolder } from '../../util/dirs.js';
import { intFlag } from '../options.js';
import { MAX_SYNTHETIC_PAIRS } from '../../config/schema.js';
import { generateSyntheticCorpus, SYNTHETIC_TASKS, type SyntheticTask } from '../../data/synthetic.js';
import { writeMosesCorpus, describeCorpus } from '../../data/corpus.js';

interface Args {
  action: 'synth';
  task: SyntheticTask;
  out: string;
  seed: number;
  'train-pairs': number;
  'valid-pairs': number;
  'test-pairs': number;
  'src-lang': string;
  'tgt-lang': string;
}

export const command = 'data <action>';
export const describe = 'Data tools: `synth` writes a generated corpus as train/valid/test file pairs';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('action', { choices: ['synth'] as const, demandOption: true })
    .option('task', { type: 'string', choices: SYNTHETIC_TASKS as SyntheticTask[], default: 'toy-mt' as SyntheticTask })
    .option('out', { type: 'string', default: 'data/toy-ende/generated', describe: 'output folder' })
    .option('seed', { ...intFlag('seed', 0), default: 1 })
    .option('train-pairs', { ...intFlag('train-pairs', 1, MAX_SYNTHETIC_PAIRS), default: 20000 })
    .option('valid-pairs', { ...intFlag('valid-pairs', 1, MAX_SYNTHETIC_PAIRS), default: 300 })
    .option('test-pairs', { ...intFlag('test-pairs', 1, MAX_SYNTHETIC_PAIRS), default: 500 })
    .option('src-lang', { type: 'string', default: 'en' })
    .option('tgt-lang', { type: 'string', default: 'de' }) as unknown as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    checkOutputFolder(args.out, '--out');
    const c = generateSyntheticCorpus(args.task, {
      seed: args.seed,
      trainPairs: args['train-pairs'],
      validPairs: args['valid-pairs'],
      testPairs: args['test-pairs'],
    });
    for (const split of ['train', 'valid', 'test'] as const) {
      writeMosesCorpus({ prefix: join(args.out, split), srcLang: args['src-lang'], tgtLang: args['tgt-lang'] }, c[split]);
      console.log(`${join(args.out, split)}.{${args['src-lang']},${args['tgt-lang']}}: ${describeCorpus(c[split]).text}`);
    }
  });
}
