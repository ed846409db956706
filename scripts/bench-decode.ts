/**
 * Decoding speed, the fast decoders against the legacy ones in ONE run: sentences/s of greedy and beam-4
 * translation (translate.ts: sorted by length, eval batches) for the full model and a pruned one, each
 * with `--decoder legacy` and `fast`, the ratio, and whether the outputs are identical (hash of all text).
 *
 *   npm run bench:decode                                     # random bench model, synthetic sources
 *   npm run bench:decode -- --model runs/<run>               # a trained model on ../shared/data/ddtp/en-de/test.en
 *   options: --input <file> --limit N --beams 1,4 --decoders legacy,fast --reps 1 --backend auto --json <file>
 *            --off <BackendFixOptions key> (repeatable): each fast decoder also runs, just before, with those
 *            kernel fixes switched off (a column "fast -key"), e.g. `--decoders fast --off nativeBeam` compares
 *            fastBeam with and without the native beam kernel (the ratio is the last column over the first)
 *            --workers N (N > 1): a last column "fast xN", the fast decoder with batches side by side in N
 *            worker threads (eval/decode-pool.ts, one BLAS thread each; its start-up is timed and printed)
 *
 * Without --model: the issue's bench shape (d_model 256, 4 heads, 3+3 layers, d_ff 1024, vocab 8000), randomly
 * initialised, with the </s> embedding zeroed (its logit is always 0, never among the best of 8000 random
 * logits), so every sentence decodes to its length limit: 1.5 x its source length + 10 (the eval defaults).
 * Source lengths are the word counts of the DDTP test set when ../shared/data/ddtp exists (else 3-40 at
 * random). The pruned model is the same network with 8 of the 12 encoder heads and 3 of 12 heads of each
 * decoder attention closed by gates (as prune stages translate); with --model, the run's own gates when
 * it has them, else the same fraction closed. The pairs run in turns (legacy, fast) so drift hits both.
 * Each run's wall time and this process's CPU time are taken; on a shared machine the CPU figures are
 * the steadier ones (run with HEADS_BLAS_THREADS=1 so that waiting BLAS threads do not count as work).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { BackendChoice } from '../src/backend/select.js';
import { initBackendFromEnv } from '../src/cli/environment.js';
import { type BackendFixOptions, describeBackendFixes, installBackendFixes } from '../src/backend/ops.js';
import { loadConfig } from '../src/config/load.js';
import type { EvalConfig } from '../src/config/schema.js';
import { ATTENTION_TYPES } from '../src/config/head-id.js';
import { DECODERS, type Decoder, EOS_ID } from '../src/eval/decode.js';
import { type TextCodec, translateSentences } from '../src/eval/translate.js';
import { type GateTensors, type Transformer, createTransformer } from '../src/model/transformer.js';
import { loadModel } from '../src/io/load-model.js';
import { Rng } from '../src/util/random.js';
import { DecodePool } from '../src/eval/decode-pool.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    input: { type: 'string' },
    limit: { type: 'string' },
    beams: { type: 'string', default: '1,4' },
    decoders: { type: 'string', default: 'legacy,fast' },
    reps: { type: 'string', default: '1' },
    backend: { type: 'string', default: 'auto' },
    json: { type: 'string' },
    off: { type: 'string', multiple: true, default: [] },
    workers: { type: 'string', default: '1' },
  },
});
const fail = (m: string): never => {
  console.error(`bench:decode: ${m}`);
  process.exit(2);
};
const beams = args.beams!.split(',').map(Number);
if (beams.some((b) => !Number.isInteger(b) || b < 1)) fail(`--beams: expected beam sizes such as 1,4, found '${args.beams}'`);
const decoderList = args.decoders!.split(',') as Decoder[];
if (decoderList.some((d) => !DECODERS.includes(d))) fail(`--decoders: expected some of ${DECODERS.join(', ')}, found '${args.decoders}'`);
const off = args.off ?? [];
/** the columns: a decoder, with some kernel fixes switched off (--off) or all on */
interface Variant {
  label: string;
  decoder: Decoder;
  off: string[];
  /** decode in the worker pool */
  pool?: boolean;
}
const variants: Variant[] = decoderList.flatMap((d): Variant[] =>
  d === 'fast' && off.length
    ? [
        { label: `fast -${off.join(' -')}`, decoder: d, off },
        { label: d, decoder: d, off: [] },
      ]
    : [{ label: d, decoder: d, off: [] }],
);
const workers = Number(args.workers);
if (!Number.isInteger(workers) || workers < 1) fail(`--workers: expected a positive integer, found '${args.workers}'`);
if (workers > 1) variants.push({ label: `fast x${workers}`, decoder: 'fast', off: [], pool: true });
const decoders = variants.map((v) => v.label);
const reps = Number(args.reps);
if (!Number.isInteger(reps) || reps < 1) fail(`--reps: expected a positive integer, found '${args.reps}'`);
const limit = args.limit === undefined ? undefined : Number(args.limit);
if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) fail(`--limit: expected a positive integer, found '${args.limit}'`);
const DDTP_TEST = '../shared/data/ddtp/en-de/test.en';
const inputPath = args.input ?? (existsSync(DDTP_TEST) ? DDTP_TEST : null);
if (args.model && !inputPath) fail(`--model needs --input <source file> (no ${DDTP_TEST} here)`);
if (inputPath && !existsSync(inputPath)) fail(`--input: ${inputPath} not found`);

const backend = await initBackendFromEnv(args.backend as BackendChoice);
tf.env().set('PROD', true);
console.log(describeBackendFixes(backend.name));

interface Setup {
  model: Transformer;
  codec: TextCodec;
  sentences: string[];
  evalConfig: EvalConfig;
  pruned: GateTensors;
  prunedLabel: string;
  label: string;
}

/** Gates closing round(fraction x heads) of each layer's heads of `stack` (the first ones; deterministic). */
function closingGates(model: Transformer, fractions: Record<string, number>): GateTensors {
  const out: GateTensors = {};
  for (const stack of ATTENTION_TYPES) {
    const f = fractions[stack] ?? 0;
    out[stack] = model.shape[stack].map((n) =>
      n === 0
        ? null
        : tf.tensor1d(
            Array.from({ length: n }, (_, h) => (h < Math.round(n * f) ? 0 : 1)),
            'float32',
          ),
    );
  }
  return out;
}

function closedCount(g: GateTensors): string {
  return ATTENTION_TYPES.map((s) => {
    const gs = (g[s] ?? []).filter((x): x is tf.Tensor => x !== null);
    const all = gs.reduce((a, t) => a + t.size, 0);
    const open = gs.reduce((a, t) => a + Array.from(t.dataSync()).filter((v) => v > 0).length, 0);
    return `${s} ${open}/${all}`;
  }).join(', ');
}

function setup(): Setup {
  const lines = inputPath ? readFileSync(inputPath, 'utf8').replace(/\n$/, '').split('\n') : null;
  const fractions = { 'enc-self': 8 / 12, 'dec-self': 0.25, 'dec-enc': 0.25 };
  if (args.model) {
    const { model, tokenizer, gates, config, checkpoint } = loadModel(args.model, (m) => console.error(`warning: ${m}`));
    const pruned = gates ? gates.testGates() : closingGates(model, fractions);
    return {
      model,
      codec: tokenizer,
      sentences: lines!.slice(0, limit),
      evalConfig: config.eval,
      pruned,
      prunedLabel: gates ? 'its gates' : 'heads closed by gates',
      label: `${checkpoint.path} (step ${checkpoint.state.step}) on ${inputPath}`,
    };
  }
  const cfg = loadConfig(null, ['model.encoderLayers=3', 'model.decoderLayers=3', 'model.heads=4', 'model.dModel=256', 'model.dFF=1024', 'model.dropout=0']);
  const V = 8000;
  const model = createTransformer(cfg.model, V, new Rng(2));
  const emb = model.params.get('emb.shared');
  const data = emb.dataSync().slice() as Float32Array;
  data.fill(0, EOS_ID * cfg.model.dModel, (EOS_ID + 1) * cfg.model.dModel);
  model.params.assign('emb.shared', emb.shape, data);
  const rng = new Rng(3);
  const lengths = lines ? lines.map((l) => Math.max(1, l.split(/\s+/).filter(Boolean).length)) : Array.from({ length: 1500 }, () => 3 + rng.int(38));
  // synthetic sources: token ids 3..V-1, the codec is the identity on space-separated ids
  const sentences = lengths
    .slice(0, limit ?? 256)
    .map((n) => Array.from({ length: Math.min(n, cfg.model.maxPositions - 2) }, () => 3 + rng.int(V - 3)).join(' '));
  const codec: TextCodec = { encode: (s) => s.split(' ').map(Number), decode: (ids) => ids.join(' ') };
  return {
    model,
    codec,
    sentences,
    evalConfig: cfg.eval,
    pruned: closingGates(model, fractions),
    prunedLabel: 'heads closed by gates',
    label: `random bench model (d_model 256, 4 heads, 3+3 layers, d_ff 1024, vocab 8000), ${sentences.length} synthetic sources${lines ? ` with the word counts of ${inputPath}` : ''}`,
  };
}

function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

const s = setup();
/** A pool for one run (OpenBLAS's threads are process-wide: 1 while a pool lives, so the other columns run without one). */
async function startPool(): Promise<DecodePool> {
  const t0 = performance.now();
  const pool = await DecodePool.start(s.model, workers);
  console.error(`decoding pool: ${workers} worker threads started in ${((performance.now() - t0) / 1000).toFixed(2)} s (not in the figures)`);
  return pool;
}
const loadBefore = loadavg();
console.log(
  `model: ${s.label}; pruned: ${s.prunedLabel} (${closedCount(s.pruned)} open); batches of ${s.evalConfig.batchSentences} sentences / ${s.evalConfig.maxTokensPerBatch} tokens`,
);
interface Row {
  model: string;
  beam: number;
  decoder: string;
  seconds: number[];
  cpuSeconds: number[];
  sentencesPerSec: number;
  sentencesPerCpuSec: number;
  outputTokens: number;
  hash: string;
}
const rows: Row[] = [];
for (const [name, gates] of [
  ['full', undefined],
  ['pruned', s.pruned],
] as const) {
  for (const beamSize of beams) {
    const cell: Row[] = decoders.map((decoder) => ({
      model: name,
      beam: beamSize,
      decoder,
      seconds: [],
      cpuSeconds: [],
      sentencesPerSec: 0,
      sentencesPerCpuSec: 0,
      outputTokens: 0,
      hash: '',
    }));
    for (let r = 0; r < reps; r++) {
      for (const [c, row] of cell.entries()) {
        const v = variants[c]!;
        if (v.off.length) installBackendFixes(backend.name, Object.fromEntries(v.off.map((k) => [k, false])) as BackendFixOptions);
        const pool = v.pool ? await startPool() : null;
        const cpu0 = process.cpuUsage();
        const out = await translateSentences(s.model, s.codec, s.sentences, {
          ...s.evalConfig,
          beamSize,
          decoder: v.decoder,
          ...(gates ? { gates } : {}),
          ...(pool ? { pool } : {}),
        });
        const cpu = process.cpuUsage(cpu0);
        await pool?.close();
        if (v.off.length) installBackendFixes(backend.name);
        row.seconds.push(out.stats.elapsedMs / 1000);
        row.cpuSeconds.push((cpu.user + cpu.system) / 1e6);
        row.outputTokens = out.stats.outputTokens;
        row.hash = fnv(out.outputs.join('\n'));
        console.error(
          `${name} ${beamSize === 1 ? 'greedy' : `beam ${beamSize}`} ${row.decoder}: ${(out.stats.elapsedMs / 1000).toFixed(1)} s, ${out.stats.sentencesPerSec.toFixed(1)} sentences/s, ${row.cpuSeconds.at(-1)!.toFixed(1)} CPU s (load ${loadavg()[0]!.toFixed(1)})`,
        );
      }
    }
    for (const row of cell) {
      row.sentencesPerSec = s.sentences.length / Math.min(...row.seconds);
      row.sentencesPerCpuSec = s.sentences.length / Math.min(...row.cpuSeconds);
    }
    rows.push(...cell);
  }
}
const loadAfter = loadavg();
console.log(
  `${s.sentences.length} sentences; best of ${reps} run(s) each; load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${loadAfter.map((x) => x.toFixed(2)).join(' ')} after`,
);
// wall time suffers from other processes on the machine; CPU time of this process much less (with one BLAS thread, no spinning)
const pair = decoders.length > 1;
console.log(
  `| model | decoding | ${decoders.map((d) => `${d} sentences/s`).join(' | ')} | ${pair ? `${decoders.at(-1)} / ${decoders[0]} | ` : ''}${decoders.map((d) => `${d} sentences/CPU s`).join(' | ')} | ${pair ? `${decoders.at(-1)} / ${decoders[0]} (CPU) | identical outputs | ` : ''}output tokens |`,
);
console.log(`|---|---|${decoders.map(() => '---|').join('')}${pair ? '---|' : ''}${decoders.map(() => '---|').join('')}${pair ? '---|---|' : ''}---|`);
for (let i = 0; i < rows.length; i += decoders.length) {
  const cell = rows.slice(i, i + decoders.length);
  const x = (f: (r: Row) => number) => (pair ? ` ${(f(cell.at(-1)!) / f(cell[0]!)).toFixed(2)}x |` : '');
  const same = pair ? ` ${cell.every((c) => c.hash === cell[0]!.hash) ? 'yes' : 'NO'} |` : '';
  console.log(
    `| ${cell[0]!.model} | ${cell[0]!.beam === 1 ? 'greedy' : `beam ${cell[0]!.beam}`} | ${cell.map((c) => c.sentencesPerSec.toFixed(1)).join(' | ')} |${x((r) => r.sentencesPerSec)} ${cell.map((c) => c.sentencesPerCpuSec.toFixed(1)).join(' | ')} |${x((r) => r.sentencesPerCpuSec)}${same} ${cell[0]!.outputTokens} |`,
  );
}
if (args.json) writeFileSync(args.json, JSON.stringify({ label: s.label, sentences: s.sentences.length, loadBefore, loadAfter, rows }, null, 2));
