/** `heads bench train`: training and decoding throughput of a fixed model on the chosen backend. */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { type BackendChoice, BACKEND_CHOICES } from '../../backend/select.js';
import { describeBackendFixes } from '../../backend/ops.js';
import { runHandler, startBackend } from '../common.js';
import { benchTrain } from '../../train/bench.js';

interface Args {
  what: 'train';
  steps: number;
  warmup: number;
  sentences: number;
  length: number;
  set?: string[];
  backend: BackendChoice;
}

export const command = 'bench <what>';
export const describe = 'Benchmarks: `train` = training tokens/s, matMul GFLOP/s and decoding speed of the bench model';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('what', { choices: ['train'] as const, demandOption: true })
    .option('steps', { type: 'number', default: 5, describe: 'timed training steps' })
    .option('warmup', { type: 'number', default: 2, describe: 'untimed warm-up steps' })
    .option('sentences', { type: 'number', default: 80, describe: 'sentences per batch' })
    .option('length', { type: 'number', default: 24, describe: 'tokens per sentence (plus </s>)' })
    .option('set', { type: 'string', array: true, describe: 'config overrides, e.g. model.norm=post' })
    .option('backend', { type: 'string', choices: BACKEND_CHOICES as BackendChoice[], default: 'auto' as BackendChoice }) as unknown as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    const info = await startBackend(args.backend);
    console.log(describeBackendFixes(info.name));
    const r = await benchTrain({ steps: args.steps, warmupSteps: args.warmup, sentences: args.sentences, length: args.length, vocab: 8000, overrides: args.set ?? [], log: (l) => console.error(l) });
    console.log(`bench model: d_model 256, 4 heads, 3+3 layers, d_ff 1024, vocab 8000, ${r.tokensPerStep} target tokens per batch`);
    console.log(`training:          ${r.trainTokensPerSec.toFixed(0)} target tokens/s (median step ${r.stepMsMedian.toFixed(0)} ms)`);
    console.log(`model FLOPs:       ${(r.flopsPerTargetToken / 1e6).toFixed(1)} MFLOP per target token per training step (3x forward)`);
    console.log(`achieved:          ${r.achievedGflops.toFixed(1)} GFLOP/s`);
    console.log(`plain matMul:      ${r.matMulGflops.toFixed(1)} GFLOP/s (2000x256 @ 256x1024, same run)`);
    console.log(`ratio:             ${(r.fractionOfMatMul * 100).toFixed(0)}% of the matMul rate`);
    console.log(`decoding (32 sentences): greedy ${r.greedyStepsPerSec.toFixed(1)} steps/s, beam 4 ${r.beamStepsPerSec.toFixed(1)} steps/s`);
  });
}
