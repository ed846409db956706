/**
 * `heads bench train`: training tokens/s of the bench model for every supported configuration side by
 * side (1 worker / N workers, wasm wrapper / native BLAS), achieved GFLOP/s against the machine's matMul
 * peak measured in the same run, and decoding speed.
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { type BackendChoice, BACKEND_CHOICES } from '../../backend/select.js';
import { describeBackendFixes } from '../../backend/ops.js';
import { runHandler, startBackend } from '../common.js';
import { ignoredIn, intFlag, refuseIgnoredFlags } from '../options.js';
import { MAX_BEAM_SIZE } from '../../config/schema.js';
import { HeadsError } from '../../util/errors.js';
import { benchDecode, benchTrain, formatBenchTable } from '../../train/bench.js';
import { loadModel, openModelFiles } from '../../io/load-model.js';
import { disposeGates } from '../../model/gate-tensors.js';
import { readTextFile } from '../../util/fs.js';
import { loadavg } from 'node:os';

interface Args {
  what: 'train' | 'decode';
  model?: string;
  input?: string;
  limit?: number;
  beams?: number[];
  steps: number;
  warmup: number;
  sentences: number;
  length: number;
  set?: string[];
  configs?: string[];
  workers?: number;
  ablation: boolean;
  decoding: boolean;
  peer: boolean;
  backend: BackendChoice;
}

export const command = 'bench <what>';
export const describe =
  'Benchmarks: `train` = training tokens/s per configuration (workers, kernel paths), GFLOP/s against the matMul peak, decoding speed; `decode` = sentences/s of a trained model (greedy, beam 4)';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('what', { choices: ['train', 'decode'] as const, demandOption: true })
    .option('model', { alias: 'm', type: 'string', describe: 'decode: run folder or checkpoint folder' })
    .option('input', { alias: 'i', type: 'string', describe: 'decode: source sentences, one per line' })
    .option('limit', { alias: 'n', ...intFlag('limit', 1), describe: 'decode: only the first N sentences' })
    .option('beams', { ...intFlag('beams', 1, MAX_BEAM_SIZE, { array: true }), describe: 'decode: beam sizes (default 1 4)' })
    .option('steps', { ...intFlag('steps', 1), default: 3, describe: 'timed training steps per configuration' })
    .option('warmup', { ...intFlag('warmup', 0), default: 1, describe: 'untimed warm-up steps per configuration' })
    .option('sentences', { ...intFlag('sentences', 1), default: 80, describe: 'sentences per step (the global batch, split over workers)' })
    .option('length', { ...intFlag('length', 1), default: 24, describe: 'tokens per sentence (plus </s>)' })
    .option('set', { type: 'string', array: true, describe: 'config overrides, e.g. model.norm=post' })
    .option('configs', {
      type: 'string',
      array: true,
      describe:
        'only these configurations: wrapper, native-before, native-1t-before18, native-1t, native-<N>t, wrapper-workers, native-workers (with --ablation: native-1t-no-<kernel>)',
    })
    .option('workers', { ...intFlag('workers', 1), describe: 'workers of the data-parallel configurations (default: the number of cores)' })
    .option('ablation', { type: 'boolean', default: false, describe: 'train: also native BLAS 1T with each new kernel switched off in turn' })
    .option('decoding', { type: 'boolean', default: true, describe: 'also measure greedy / beam decoding steps/s' })
    .option('peer', {
      type: 'boolean',
      default: true,
      describe: 'train: also time the PyTorch peer (scripts/bench_train_torch.py) on 1 and all threads when torch imports',
    })
    .option('backend', { type: 'string', choices: BACKEND_CHOICES as BackendChoice[], default: 'auto' as BackendChoice }) as unknown as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  if (args.what === 'decode') return decodeHandler(args);
  await runHandler(async () => {
    refuseIgnoredFlags([
      ...ignoredIn(args.what === 'train', 'only with bench decode', [['model', 'm'], ['input', 'i'], ['limit', 'n'], 'beams']),
      ...ignoredIn(args.what === 'decode', 'only with bench train', [
        'steps',
        'warmup',
        'sentences',
        'length',
        'set',
        'configs',
        'workers',
        'ablation',
        'decoding',
        'peer',
      ]),
    ]);
    const info = await startBackend(args.backend);
    console.log(describeBackendFixes(info.name));
    const r = await benchTrain({
      steps: args.steps,
      warmupSteps: args.warmup,
      sentences: args.sentences,
      length: args.length,
      vocab: 8000,
      overrides: args.set ?? [],
      ...(args.configs ? { configs: args.configs } : {}),
      ...(args.workers !== undefined ? { workers: args.workers } : {}),
      skipDecoding: !args.decoding,
      peer: args.peer,
      ablation: args.ablation,
      log: (l) => console.error(l),
    });
    const tokens = r.rows.find((x) => x.error === undefined)?.tokensPerStep ?? args.sentences * (args.length + 1);
    console.log(
      `bench model: d_model 256, 4 heads, 3+3 layers, d_ff 1024, vocab 8000, ${tokens} target tokens per step; ${r.cores} cores; load average ${r.loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${r.loadAfter.map((x) => x.toFixed(2)).join(' ')} after`,
    );
    console.log(`model FLOPs: ${(r.flopsPerTargetToken / 1e6).toFixed(1)} MFLOP per target token per training step (3x forward)`);
    if (r.peak)
      console.log(
        `matMul peak (native OpenBLAS, plain): ${r.peak.oneThread.toFixed(1)} GFLOP/s on 1 thread, ${r.peak.allThreads.toFixed(1)} GFLOP/s on ${r.peak.threads} (the machine peak below; measured in this run, so low on a loaded machine); ${r.peak.oneThreadPerCpuSecond.toFixed(1)} GFLOP per CPU second on 1 thread (the load-independent reference of the last column)`,
      );
    console.log(`matMul without native BLAS (${r.backend}): ${r.wasmMatMulGflops.toFixed(1)} GFLOP/s`);
    for (const line of formatBenchTable(r)) console.log(line);
    if (r.greedyStepsPerSec !== null && r.beamStepsPerSec !== null)
      console.log(`decoding (32 sentences): greedy ${r.greedyStepsPerSec.toFixed(1)} steps/s, beam 4 ${r.beamStepsPerSec.toFixed(1)} steps/s`);
  });
}

async function decodeHandler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    refuseIgnoredFlags([
      ...ignoredIn(args.what === 'train', 'only with bench decode', [['model', 'm'], ['input', 'i'], ['limit', 'n'], 'beams']),
      ...ignoredIn(args.what === 'decode', 'only with bench train', [
        'steps',
        'warmup',
        'sentences',
        'length',
        'set',
        'configs',
        'workers',
        'ablation',
        'decoding',
        'peer',
      ]),
    ]);
    if (!args.model || !args.input) throw new HeadsError('bench decode needs --model <run folder> and --input <source file>');
    const files = openModelFiles(args.model, (m) => console.error(`warning: ${m}`));
    const lines = readTextFile(args.input, 'source file').replace(/\n$/, '').split('\n');
    const info = await startBackend(args.backend);
    console.log(describeBackendFixes(info.name));
    const { model, tokenizer, gates, config, checkpoint } = loadModel(files);
    const sentences = args.limit !== undefined ? lines.slice(0, args.limit) : lines;
    const g = gates?.testGates();
    const before = loadavg();
    const rows = await benchDecode(model, tokenizer, sentences, config.eval, args.beams ?? [1, 4], g);
    if (g) disposeGates(g);
    model.dispose();
    console.log(
      `model: ${checkpoint.path} (step ${checkpoint.state.step}); ${sentences.length} sentences of ${args.input}; batches of ${config.eval.batchSentences} sentences / ${config.eval.maxTokensPerBatch} tokens; load average ${before.map((x) => x.toFixed(2)).join(' ')} before, ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} after`,
    );
    console.log('| decoding | sentences | seconds | sentences/s | output tokens | output hash |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows)
      console.log(
        `| ${r.beamSize === 1 ? 'greedy' : `beam ${r.beamSize}`} | ${r.sentences} | ${r.seconds.toFixed(1)} | ${r.sentencesPerSec.toFixed(2)} | ${r.outputTokens} | ${r.outputHash} |`,
      );
  });
}
