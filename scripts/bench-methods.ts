/**
 * Decode speed of every finished export stage of a study, in ONE run, rows in turns (src/experiments/
 * methods-bench.ts): the speeds of the sparsity-methods table, taken by a bench instead of by each
 * stage on a machine doing other work.
 *
 *   npm run bench:methods -- experiments/sparsity-methods.yaml --seeds 2 --out experiments/results/sparsity-methods
 *   options: --preset <name> --seeds N --runs-dir runs --sentences 100 --reps 3 --beam <k> --backend auto
 *            --out <dir>: writes <dir>/decode-bench.json, which `heads experiment report --out <dir>` reads
 *
 * `npm run bench:methods` sets HEADS_BLAS_THREADS=1, so CPU seconds are work, not waiting BLAS threads.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BackendChoice } from '../src/backend/select.js';
import { initBackendFromEnv } from '../src/cli/environment.js';
import { describeBackendFixes } from '../src/backend/ops.js';
import { expandStages, loadSpec } from '../src/experiments/spec.js';
import { type ResolvedStage, resolveStages } from '../src/experiments/stage.js';
import { DECODE_BENCH } from '../src/experiments/export-stage.js';
import { DECODE_BENCH_FILE, benchExportStages, decodeBenchMarkdown, finishedExports } from '../src/experiments/methods-bench.js';
import { writeJsonAtomic } from '../src/util/fs.js';

const fail = (m: string): never => {
  console.error(`bench:methods: ${m}`);
  process.exit(2);
};
const OPTIONS = {
  preset: { type: 'string' },
  seeds: { type: 'string' },
  'runs-dir': { type: 'string', default: 'runs' },
  sentences: { type: 'string', default: String(DECODE_BENCH.sentences) },
  reps: { type: 'string', default: String(DECODE_BENCH.reps) },
  beam: { type: 'string' },
  backend: { type: 'string', default: 'auto' },
  out: { type: 'string' },
} as const;
function parse() {
  try {
    return parseArgs({ allowPositionals: true, options: OPTIONS });
  } catch (e) {
    return fail((e as Error).message);
  }
}
const { values: args, positionals } = parse();
if (positionals.length !== 1)
  fail(`expected one experiment spec (e.g. experiments/sparsity-methods.yaml), found ${positionals.length ? positionals.join(' ') : 'none'}`);
const specPath = positionals[0]!;
const posInt = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\s*\d+\s*$/.test(v) || Number(v) < 1) fail(`--${name}: expected a positive integer, found '${v}'`);
  return Number(v);
};
const sentences = posInt('sentences', args.sentences)!;
const reps = posInt('reps', args.reps)!;
const beam = posInt('beam', args.beam);
const seeds =
  args.seeds === undefined
    ? null
    : args.seeds
        .split(',')
        .map((x: string): number => (/^\s*\d+\s*$/.test(x) ? Number(x) : fail(`--seeds: expected integers separated by commas, found '${args.seeds}'`)));
if (args.out !== undefined && existsSync(args.out) && !statSync(args.out).isDirectory()) fail(`--out: ${args.out} exists and is not a folder`);
if (!existsSync(specPath)) fail(`${specPath}: no such experiment spec`);

function resolve(): ResolvedStage[] {
  try {
    const spec = loadSpec(specPath, args.preset, seeds ? { seeds } : {});
    return resolveStages(spec, expandStages(spec), args['runs-dir']);
  } catch (e) {
    return fail((e as Error).message.split('\n')[0]!);
  }
}
const stages = resolve();
const exports = finishedExports(stages);
if (!exports.length)
  fail(
    `${specPath}: no finished export stage under ${args['runs-dir']} (run the study first: heads experiment run ${specPath}${seeds ? ` --seeds ${seeds.join(',')}` : ''})`,
  );

const backend = await initBackendFromEnv(args.backend as BackendChoice);
tf.env().set('PROD', true);
console.log(describeBackendFixes(backend.name));
const blasThreads = process.env['HEADS_BLAS_THREADS'] ?? null;
if (blasThreads !== '1') console.error('bench:methods: HEADS_BLAS_THREADS is not 1: CPU seconds include waiting BLAS threads (npm run bench:methods sets it)');
console.log(
  `${exports.length} export stages of ${specPath}${seeds ? ` (seeds ${seeds.join(',')})` : ''}: the first ${sentences} test sentences, best of ${reps} repetitions in turns`,
);

const rec = await benchExportStages(stages, {
  spec: specPath,
  seeds,
  sentences,
  reps,
  ...(beam ? { beamSize: beam } : {}),
  blasThreads,
  log: (line) => console.error(line),
  loadavg,
});
console.log(
  `beam ${rec.beamSize}; load average ${rec.loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${rec.loadAfter.map((x) => x.toFixed(2)).join(' ')} after`,
);
console.log(decodeBenchMarkdown(rec));
if (args.out !== undefined) {
  const path = join(args.out, DECODE_BENCH_FILE);
  writeJsonAtomic(path, rec);
  console.log(`wrote ${path}`);
}
