/**
 * `heads translate`: translate stdin or a file with a trained model (greedy or beam search), in tfjs or,
 * with `--engine onnx`, through ONNX Runtime on an ONNX export folder (src/onnx/).
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { existsSync, readFileSync } from 'node:fs';
import { type BackendChoice, BACKEND_CHOICES } from '../../backend/select.js';
import { runHandler, startBackend } from '../common.js';
import { ignoredIn, intFlag, numFlag, refuseIgnoredFlags } from '../options.js';
import { MAX_BEAM_SIZE } from '../../config/schema.js';
import { loadModel, openModelFiles } from '../../io/load-model.js';
import { translateSentences } from '../../eval/translate.js';
import { startDecodePool } from '../../eval/decode-pool.js';
import { resolveWorkerCount } from '../../train/workers/pool.js';
import { runtimeOptions } from '../environment.js';
import { firstInvalidUtf8Line, readTextFile, writeFileAtomic } from '../../util/fs.js';
import { checkOutputFile } from '../../util/dirs.js';
import { CheckpointError, DataError } from '../../util/errors.js';
import { FOREIGN_TEXT_UNKNOWN_RATE, describeCoverage, unknownTokenRate } from '../../data/coverage.js';
import { disposeGates } from '../../model/gate-tensors.js';
import { ProgressLine, eta, formatDuration } from '../../train/progress.js';
import { loadOnnxModel } from '../../onnx/load-node.js';
import { translateWithOnnx } from '../../onnx/decode.js';

export const ENGINES = ['tfjs', 'onnx'] as const;

interface Args {
  model: string;
  input?: string;
  output?: string;
  beam?: number;
  'length-penalty'?: number;
  'batch-sentences'?: number;
  backend: BackendChoice;
  engine: (typeof ENGINES)[number];
  workers?: number;
}

export const command = 'translate';
export const describe = 'Translate sentences (stdin or --input) with a trained model';

export function builder(y: Argv): Argv<Args> {
  return y
    .option('model', {
      alias: 'm',
      type: 'string',
      demandOption: true,
      describe: 'run folder or checkpoint folder (with --engine onnx: an export folder written with --format onnx, or its onnx/ folder)',
    })
    .option('input', {
      alias: 'i',
      type: 'string',
      describe: 'source file, one sentence per line, UTF-8 (default: stdin); blank lines stay blank, empty input is refused',
    })
    .option('output', { alias: 'o', type: 'string', describe: 'write translations here (default: stdout)' })
    .option('beam', { ...intFlag('beam', 1, MAX_BEAM_SIZE), describe: 'beam size (1 = greedy; default: the model config)' })
    .option('length-penalty', { ...numFlag('length-penalty', { min: 0 }), describe: 'GNMT length penalty alpha' })
    .option('batch-sentences', { ...intFlag('batch-sentences', 1), describe: 'sentences per decoding batch' })
    .option('workers', {
      ...intFlag('workers', 1),
      describe:
        'decoding worker threads, each decoding whole batches (the same translations; default: the cores this process may use, HEADS_CORES, on wasm and cpu, when there is more than one batch)',
    })
    .option('backend', {
      type: 'string',
      choices: BACKEND_CHOICES as BackendChoice[],
      default: 'auto' as BackendChoice,
      describe: 'tfjs backend (--engine tfjs)',
    })
    .option('engine', {
      type: 'string',
      choices: ENGINES,
      default: 'tfjs' as const,
      describe: 'tfjs (the toolkit model) or onnx (encoder.onnx + decoder.onnx in onnxruntime-node)',
    })
    .example('$0 translate -m runs/<export> --engine onnx -i test.en', 'decode the ONNX export through ONNX Runtime') as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    // the output path and the input file are checked before anything loads
    refuseIgnoredFlags(ignoredIn(args.engine === 'onnx', 'not with --engine onnx, which runs ONNX Runtime instead of tfjs', ['backend', 'workers']));
    if (args.output) checkOutputFile(args.output, '--output');
    const sourceText = args.input ? readTextFile(args.input, 'source file') : null;
    if (args.engine === 'onnx') return translateOnnx(args, sourceText);
    if (!existsSync(args.model)) throw new CheckpointError(`${args.model}: no such run or checkpoint folder (--model)`);
    const files = openModelFiles(args.model, (m) => console.error(`warning: ${m}`));
    const backend = await startBackend(args.backend);
    const { model, tokenizer, gates, config, checkpoint } = loadModel(files);
    console.error(`model: ${checkpoint.path} (step ${checkpoint.state.step})`);
    const source = args.input ?? 'stdin';
    const lines = sourceLines(sourceText ?? decodeStdin(readFileSync(0)), source);
    warnAboutSource(lines, source, model.config.maxPositions, tokenizer);
    // blank lines stay blank in the output (a model would invent a sentence for them)
    const todo = lines.flatMap((l, i) => (l.trim() === '' ? [] : [i]));
    const g = gates?.testGates();
    const batchSentences = args['batch-sentences'] ?? config.eval.batchSentences;
    // worker threads only where they can run side by side (wasm, cpu) and there is more than one batch
    const workers = Math.min(resolveWorkerCount(args.workers ?? 'auto', backend.name, runtimeOptions().cores), Math.ceil(todo.length / batchSentences));
    const pool = workers > 1 ? await startDecodePool(model, workers, (m) => console.error(m)) : null;
    if (pool) console.error(`decoding: ${workers} worker threads (--workers)`);
    // one rewritten line on a terminal; in a log file (not a TTY) a plain line every 10 s
    const progress = new ProgressLine(process.stderr, false, { everyMs: 10_000 });
    const { outputs: translated, stats } = await translateSentences(
      model,
      tokenizer,
      todo.map((i) => lines[i]!),
      {
        ...config.eval,
        beamSize: args.beam ?? config.eval.beamSize,
        lengthPenalty: args['length-penalty'] ?? config.eval.lengthPenalty,
        batchSentences,
        gates: g,
        ...(pool ? { pool } : {}),
        onProgress: (done, total, ms) =>
          progress.update(`translate ${done}/${total} | ${((done / ms) * 1000).toFixed(1)} sent/s | ETA ${formatDuration(eta(done, total, ms))}`),
      },
    ).finally(() => pool?.close());
    progress.done();
    if (g) disposeGates(g);
    const outputs = lines.map(() => '');
    todo.forEach((i, k) => (outputs[i] = translated[k]!));
    const out = outputs.join('\n') + '\n';
    // the user's own output file: not recorded for integrity checks (it may be edited, then scored)
    if (args.output) writeFileAtomic(args.output, out, { integrity: false });
    else process.stdout.write(out);
    console.error(`${stats.sentences} sentences in ${(stats.elapsedMs / 1000).toFixed(1)}s (${stats.sentencesPerSec.toFixed(1)} sent/s)`);
  });
}

/** `heads translate --engine onnx`: the same input, output and messages, decoded by src/onnx/decode.ts in onnxruntime-node. */
async function translateOnnx(args: ArgumentsCamelCase<Args>, sourceText: string | null): Promise<void> {
  const m = await loadOnnxModel(args.model);
  const g = m.metadata.generation;
  console.error(
    `model: ${m.folder} (ONNX Runtime, onnxruntime-node${m.metadata.quantization ? ', int8' : ''}; exported from ${m.metadata.source.checkpoint}, step ${m.metadata.source.step})`,
  );
  const source = args.input ?? 'stdin';
  const lines = sourceLines(sourceText ?? decodeStdin(readFileSync(0)), source);
  warnAboutSource(lines, source, m.metadata.maxPositions, m.tokenizer);
  const todo = lines.flatMap((l, i) => (l.trim() === '' ? [] : [i]));
  const progress = new ProgressLine(process.stderr, false, { everyMs: 10_000 });
  const { outputs: translated, stats } = await translateWithOnnx(
    m,
    m.tokenizer,
    todo.map((i) => lines[i]!),
    {
      ...g,
      beamSize: args.beam ?? g.beamSize,
      lengthPenalty: args['length-penalty'] ?? g.lengthPenalty,
      batchSentences: args['batch-sentences'] ?? g.batchSentences,
      onProgress: (done, total, ms) =>
        progress.update(`translate ${done}/${total} | ${((done / ms) * 1000).toFixed(1)} sent/s | ETA ${formatDuration(eta(done, total, ms))}`),
    },
  );
  progress.done();
  const outputs = lines.map(() => '');
  todo.forEach((i, k) => (outputs[i] = translated[k]!));
  const out = outputs.join('\n') + '\n';
  if (args.output) writeFileAtomic(args.output, out, { integrity: false });
  else process.stdout.write(out);
  console.error(`${stats.sentences} sentences in ${(stats.elapsedMs / 1000).toFixed(1)}s (${stats.sentencesPerSec.toFixed(1)} sent/s)`);
}

/** stdin as UTF-8, refusing invalid bytes with the line they are on (as readTextFile does for files). */
function decodeStdin(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DataError(`stdin:${firstInvalidUtf8Line(bytes)}: invalid UTF-8 (expected UTF-8 text)`);
  }
}

/** One sentence per line; empty input is refused (it would print one invented sentence). */
export function sourceLines(text: string, source: string): string[] {
  const body = text.replace(/^\uFEFF/, '').replace(/\r?\n$/, '');
  if (body === '') throw new DataError(`${source}: no sentences to translate (the input is empty)`);
  return body.split(/\r?\n/);
}

/**
 * Warnings about what the model will not see as written: lines longer than it reads (translateSentences
 * keeps the first maxPositions - 2 tokens), and text mostly outside its vocabulary.
 */
function warnAboutSource(lines: readonly string[], source: string, maxPositions: number, codec: { encode(t: string): number[] }): void {
  const limit = maxPositions - 2;
  const long = lines.flatMap((l, i) => {
    const n = codec.encode(l).length;
    return n > limit ? [`${i + 1} (${n} tokens)`] : [];
  });
  if (long.length)
    console.error(
      `warning: ${source}: ${long.length} line${long.length > 1 ? 's' : ''} longer than the model reads (${limit} tokens, model.maxPositions ${maxPositions}), translated from the first ${limit} tokens only: line ${long.slice(0, 5).join(', ')}${long.length > 5 ? `, ... (${long.length - 5} more)` : ''}`,
    );
  const coverage = unknownTokenRate(codec, lines);
  if (coverage.rate > FOREIGN_TEXT_UNKNOWN_RATE) console.error(`warning: ${source}: ${describeCoverage(coverage)}: is it in the model's source language?`);
}
