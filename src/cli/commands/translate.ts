/** `heads translate`: translate stdin or a file with a trained model (greedy or beam search). */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { type BackendChoice, BACKEND_CHOICES } from '../../backend/select.js';
import { runHandler, startBackend } from '../common.js';
import { intFlag, numFlag } from '../options.js';
import { MAX_BEAM_SIZE } from '../../config/schema.js';
import { loadModel } from '../../train/load-model.js';
import { translateSentences } from '../../eval/translate.js';
import { readTextFile, writeFileAtomic } from '../../util/fs.js';
import { disposeGates } from '../../train/trainer.js';
import { ProgressLine, eta, formatDuration } from '../../train/progress.js';

interface Args {
  model: string;
  input?: string;
  output?: string;
  beam?: number;
  'length-penalty'?: number;
  'batch-sentences'?: number;
  backend: BackendChoice;
}

export const command = 'translate';
export const describe = 'Translate sentences (stdin or --input) with a trained model';

export function builder(y: Argv): Argv<Args> {
  return y
    .option('model', { alias: 'm', type: 'string', demandOption: true, describe: 'run folder or checkpoint folder' })
    .option('input', { alias: 'i', type: 'string', describe: 'source file, one sentence per line (default: stdin)' })
    .option('output', { alias: 'o', type: 'string', describe: 'write translations here (default: stdout)' })
    .option('beam', { ...intFlag('beam', 1, MAX_BEAM_SIZE), describe: 'beam size (1 = greedy; default: the model config)' })
    .option('length-penalty', { ...numFlag('length-penalty', { min: 0 }), describe: 'GNMT length penalty alpha' })
    .option('batch-sentences', { ...intFlag('batch-sentences', 1), describe: 'sentences per decoding batch' })
    .option('backend', { type: 'string', choices: BACKEND_CHOICES as BackendChoice[], default: 'auto' as BackendChoice }) as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    await startBackend(args.backend);
    const { model, tokenizer, gates, config, checkpoint } = loadModel(args.model, (m) => console.error(`warning: ${m}`));
    console.error(`model: ${checkpoint.path} (step ${checkpoint.state.step})`);
    const text = args.input ? readTextFile(args.input, 'source file') : readFileSync(0, 'utf8');
    const lines = text.replace(/\n$/, '').split('\n');
    const g = gates?.testGates();
    // one rewritten line on a terminal; in a log file (not a TTY) a plain line every 10 s
    const progress = new ProgressLine(process.stderr, false, { everyMs: 10_000 });
    const { outputs, stats } = await translateSentences(model, tokenizer, lines, {
      ...config.eval,
      beamSize: args.beam ?? config.eval.beamSize,
      lengthPenalty: args['length-penalty'] ?? config.eval.lengthPenalty,
      batchSentences: args['batch-sentences'] ?? config.eval.batchSentences,
      gates: g,
      onProgress: (done, total, ms) => progress.update(`translate ${done}/${total} | ${((done / ms) * 1000).toFixed(1)} sent/s | ETA ${formatDuration(eta(done, total, ms))}`),
    });
    progress.done();
    if (g) disposeGates(g);
    const out = outputs.join('\n') + '\n';
    // the user's own output file: not recorded for integrity checks (it may be edited, then scored)
    if (args.output) writeFileAtomic(args.output, out, { integrity: false });
    else process.stdout.write(out);
    console.error(`${stats.sentences} sentences in ${(stats.elapsedMs / 1000).toFixed(1)}s (${stats.sentencesPerSec.toFixed(1)} sent/s)`);
  });
}
