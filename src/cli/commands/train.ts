/** `heads train`: train a (gated) Transformer from a config; `--resume <run>` continues a run. */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { type CommonArgs, createRun, installStopHandler, resolveConfig, runHandler, startBackend, withCommonOptions } from '../common.js';
import { ignoredIn, refuseIgnoredFlags } from '../options.js';
import { runTraining, type RunTrainingResult } from '../../train/run-training.js';
import type { RunFolder } from '../../util/run-folder.js';
import { resumeRun } from '../resume.js';
import { runtimeOptions } from '../environment.js';

interface Args extends CommonArgs {
  resume?: string;
}

export const command = 'train';
export const describe = 'Train a Transformer translation model (gated heads when gates.attention is set)';

export function builder(y: Argv): Argv<Args> {
  return withCommonOptions(y)
    .option('resume', {
      type: 'string',
      describe:
        'continue this run folder from its newest valid checkpoint (--set may change e.g. train.maxSteps, not the model); also resumes an L0 `heads prune` run',
    })
    .example('$0 train -c configs/ddtp-ende-small.yaml', 'train on the real EN-DE corpus')
    .example(
      `$0 train -c configs/ddtp-ende-small.yaml --set 'train.earlyStopping={metric: devBleu, patience: 4}' --set train.maxSteps=12000`,
      'train until dev BLEU has not improved for 4 evaluations (the best checkpoint is the model)',
    )
    .example('$0 train --resume runs/20261124-101500-train-ddtp', 'continue an interrupted run') as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    refuseIgnoredFlags(
      ignoredIn(
        args.resume !== undefined,
        'not with --resume, which continues the run with its own config.json (change a setting with --set, e.g. --set train.maxSteps=N)',
        [['config', 'c'], 'runs-dir'],
      ),
    );
    let r: RunTrainingResult;
    let run: RunFolder;
    if (args.resume) {
      // validates the folder, the config and that the model stays as it is before writing anything
      ({ result: r, run } = await resumeRun({ resume: args.resume, set: args.set, backend: args.backend }, process.argv.slice(1)));
    } else {
      const cfg = resolveConfig(args);
      const backend = await startBackend(args.backend ?? cfg.backend);
      run = createRun(args, cfg, backend, 'train');
      console.error(`run folder: ${run.path}`);
      r = await runTraining({ config: cfg, run, isStopRequested: installStopHandler(), runtime: runtimeOptions() });
    }
    if (r.test) {
      console.log(r.test.formatted);
      console.log(`signature: ${r.test.signature}`);
      console.log(`${'BLEU(tok,lc,no-smooth)'} = ${r.test.tokenizedLowercaseBleu.toFixed(2)} (the reference paper's tokenized, lowercased BLEU)`);
    }
    console.error(`${r.stoppedEarly ? 'stopped' : 'done'}: ${r.steps} steps in ${(r.elapsedMs / 1000).toFixed(0)}s; run folder ${run.path}`);
  });
}
