/** `heads train`: train a (gated) Transformer from a config; `--resume <run>` continues a run. */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type CommonArgs, createRun, installStopHandler, resolveConfig, runHandler, startBackend, withCommonOptions } from '../common.js';
import { runTraining } from '../../train/run-training.js';
import { RunFolder } from '../../util/run-folder.js';
import { readJsonFile } from '../../util/fs.js';
import { loadConfigOn } from '../../config/load.js';
import { HeadsError } from '../../util/errors.js';
import type { ResolvedConfig } from '../../config/schema.js';

interface Args extends CommonArgs {
  resume?: string;
}

export const command = 'train';
export const describe = 'Train a Transformer translation model (gated heads when gates.attention is set)';

export function builder(y: Argv): Argv<Args> {
  return withCommonOptions(y)
    .option('resume', { type: 'string', describe: 'continue this run folder from its newest valid checkpoint (--set may change e.g. train.maxSteps)' })
    .example('$0 train -c configs/ddtp-ende-small.yaml', 'train on the real EN-DE corpus')
    .example('$0 train --resume runs/20261124-101500-train-ddtp', 'continue an interrupted run') as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    let cfg: ResolvedConfig;
    let run: RunFolder;
    if (args.resume) {
      if (!existsSync(join(args.resume, 'config.json'))) throw new HeadsError(`${args.resume}: not a run folder (no config.json)`);
      // over the defaults: a run saved before a config key existed still resumes
      cfg = loadConfigOn(readJsonFile<ResolvedConfig>(join(args.resume, 'config.json')), null, args.set ?? [], join(args.resume, 'config.json'));
      run = RunFolder.open(args.resume);
      run.recordResume(cfg, process.argv.slice(1));
    } else cfg = resolveConfig(args);
    const backend = await startBackend(args.backend ?? cfg.backend);
    if (!args.resume) run = createRun(args, cfg, backend, 'train');
    console.error(`run folder: ${run!.path}`);
    const r = await runTraining({ config: cfg, run: run!, isResume: Boolean(args.resume), isStopRequested: installStopHandler() });
    if (r.test) {
      console.log(r.test.formatted);
      console.log(`signature: ${r.test.signature}`);
      console.log(`${'BLEU(tok,lc,no-smooth)'} = ${r.test.tokenizedLowercaseBleu.toFixed(2)} (the reference paper's tokenized, lowercased BLEU)`);
    }
    console.error(`${r.stoppedEarly ? 'stopped' : 'done'}: ${r.steps} steps in ${(r.elapsedMs / 1000).toFixed(0)}s; run folder ${run!.path}`);
  });
}
