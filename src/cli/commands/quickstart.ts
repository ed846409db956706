/**
 * `heads quickstart`: the embedded default end to end with no download: generate the toy EN->DE corpus,
 * learn BPE, train the small model, translate the held-out test set and print its BLEU.
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { type CommonArgs, createRun, installStopHandler, resolveConfig, runHandler, startBackend, withCommonOptions } from '../common.js';
import { runTraining } from '../../train/run-training.js';
import { runtimeOptions } from '../environment.js';

export const command = 'quickstart';
export const describe = 'Train the embedded default model on generated toy EN->DE data, translate its test set, print BLEU';

export function builder(y: Argv): Argv<CommonArgs> {
  return withCommonOptions(y);
}

export async function handler(args: ArgumentsCamelCase<CommonArgs>): Promise<void> {
  await runHandler(async () => {
    const t0 = performance.now();
    const cfg = resolveConfig(args);
    const backend = await startBackend(args.backend ?? cfg.backend);
    const run = createRun(args, cfg, backend, 'quickstart');
    console.error(`run folder: ${run.path}`);
    const r = await runTraining({ config: cfg, run, isStopRequested: installStopHandler(), runtime: runtimeOptions() });
    if (!r.test) return;
    console.log(r.test.formatted);
    console.log(`signature: ${r.test.signature}`);
    console.log(`BLEU(tok,lc,no-smooth) = ${r.test.tokenizedLowercaseBleu.toFixed(2)}`);
    console.error(
      `quickstart done in ${((performance.now() - t0) / 1000).toFixed(0)}s: ${r.test.sentences} test sentences, translations in ${run.file('test.hyp')}`,
    );
  });
}
