/**
 * What physical head pruning buys at inference: in ONE run, times the encoder forward pass, full-batch
 * greedy decoding and beam-4 decoding of the full model and of pruned models at several head counts
 * (prune-model.ts), and prints each variant's time against the full model's, next to the ratio of
 * matmul FLOPs, i.e. what perfect scaling would give.
 *
 *   npx tsx scripts/bench-export.ts                       # random d_model 256, 8 heads, 6+6 layers, V 8000
 *   npx tsx scripts/bench-export.ts --model runs/<run>    # a trained model (adds its gates' mask if gated)
 *   options: --sentences 16 --src-len 24 --out-len 24 --reps 4 --backend auto --json results.json
 *
 * Every variant stays in memory and the repetitions run in turns (rep 1 of every variant, then rep 2, ...,
 * each turn starting one variant later), so the machine's drift and noise (±20 %, more when other jobs
 * share the 2 cores; shared/notes/probe-performance.md) hit all variants alike. The table reports the best
 * of the repetitions, the least disturbed run (--json also has every sample and the medians).
 * The random model's </s> embedding is zeroed, so its logit is always 0 while the best of 8000 random
 * logits is positive: every variant decodes exactly --out-len steps and the times are comparable. A
 * trained model stops at </s>, so its output token counts are printed too.
 *
 * Then ONNX Runtime against tfjs (issue 19): the full model and pruned variants (--onnx-variants) are
 * built as ONNX graphs in memory (src/onnx/, as `heads export --format onnx` writes them) and opened in
 * onnxruntime-node; each translates the same sentences (--test-file, e.g. the DDTP test set, first
 * --test-sentences lines; without it, random token ids) greedy and with beam 4, through
 * `translateSentences` (heads translate's tfjs path) and through src/onnx/decode.ts (heads translate
 * --engine onnx), in turns as above. The table prints sentences/s of both engines side by side, the
 * pruned variants' speed-up over the full model in each engine, and how many translations the two
 * engines agree on. --onnx-only skips the first table; --no-onnx skips this one; --onnx-int8 adds each
 * variant's int8 graphs (MatMulInteger, --int8) in ORT.
 */
import * as tf from '@tensorflow/tfjs';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { BackendChoice } from '../src/backend/select.js';
import { initBackendFromEnv } from '../src/cli/environment.js';
import { DEFAULT_CONFIG } from '../src/config/defaults.js';
import { ATTENTION_TYPES, type AttentionType } from '../src/config/head-id.js';
import type { ModelConfig } from '../src/config/schema.js';
import { EOS_ID, beamSearch, greedyDecode } from '../src/eval/decode.js';
import { ForwardContext } from '../src/model/layers.js';
import { type Transformer } from '../src/model/transformer.js';
import type { HeadGates } from '../src/gates/head-gates.js';
import { loadModel } from '../src/io/load-model.js';
import type { NamedArrays } from '../src/io/checkpoint.js';
import { type HeadMask, maskFromKeptSets } from '../src/io/head-mask.js';
import { type HeadShape, type PerHead, headLayout, headsPerLayer, originalMaskShape } from '../src/config/head-layout.js';
import { applyMaskToModel, createTransformerFromArrays, deriveMaskFromGates } from '../src/export/prune-model.js';
import { Rng } from '../src/util/random.js';
import { readFileSync } from 'node:fs';
import { translateSentences, type TextCodec } from '../src/eval/translate.js';
import { buildOnnxExport } from '../src/onnx/onnx-export.js';
import { type OnnxModel, type OrtTensorClass, translateWithOnnx } from '../src/onnx/decode.js';
import { loadOnnxRuntime } from '../src/onnx/load-node.js';
import { loadavg } from 'node:os';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    sentences: { type: 'string', default: '16' },
    'src-len': { type: 'string', default: '24' },
    'out-len': { type: 'string', default: '24' },
    reps: { type: 'string', default: '4' },
    backend: { type: 'string', default: 'auto' },
    json: { type: 'string' },
    'test-file': { type: 'string' },
    'test-sentences': { type: 'string', default: '100' },
    'onnx-variants': { type: 'string', default: 'full,all 50%,all 12.5%' },
    'onnx-only': { type: 'boolean', default: false },
    'no-onnx': { type: 'boolean', default: false },
    'onnx-reps': { type: 'string', default: '3' },
    'onnx-int8': { type: 'boolean', default: false },
  },
});
const B = Number(args.sentences);
const S = Number(args['src-len']);
const OUT_LEN = Number(args['out-len']);
const REPS = Number(args.reps);
const BEAM = 4;

/** The bench shape: Transformer-base depth and heads at a width the 2-core machine decodes in seconds. */
const BENCH_MODEL: ModelConfig = {
  ...DEFAULT_CONFIG.model,
  encoderLayers: 6,
  decoderLayers: 6,
  heads: 8,
  dModel: 256,
  dFF: 1024,
  dropout: 0,
  maxPositions: 256,
  norm: 'pre',
  tieEmbeddings: true,
};
const BENCH_VOCAB = 8000;

interface Variant {
  name: string;
  model: Transformer;
  /** the pruned parameters and config (for the ONNX graphs) */
  pruned: { params: NamedArrays; config: ModelConfig; mask: HeadMask };
  heads: Record<AttentionType, number>;
  params: number;
  /** decoder attention layers with no heads hit the wasm empty-gather bug in beam search */
  canBeam: boolean;
  times: { encoder: number[]; greedy: number[]; beam: number[] };
  outputTokens: { greedy: number; beam: number };
}

function randomModelArrays(c: ModelConfig, V: number, seed: number): NamedArrays {
  const rng = new Rng(seed);
  const out: NamedArrays = {};
  const d = c.dModel;
  const h = headsPerLayer(c);
  const add = (name: string, shape: number[], f: () => number) =>
    (out[name] = { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f) });
  const lin = (name: string, i: number, o: number) => add(name, [i, o], () => (rng.next() * 2 - 1) * Math.sqrt(6 / (i + o)));
  const vec = (name: string, n: number, v: number) => add(name, [n], () => v);
  const norm = (p: string) => (vec(`${p}.g`, d, 1), vec(`${p}.b`, d, 0));
  const attn = (p: string, heads: number) => {
    for (const m of ['q', 'k', 'v']) (lin(`${p}.w${m}`, d, heads * (d / c.heads)), vec(`${p}.b${m}`, heads * (d / c.heads), 0));
    lin(`${p}.wo`, heads * (d / c.heads), d);
    vec(`${p}.bo`, d, 0);
  };
  const ffn = (p: string) => (lin(`${p}.w1`, d, c.dFF), vec(`${p}.b1`, c.dFF, 0), lin(`${p}.w2`, c.dFF, d), vec(`${p}.b2`, d, 0));
  add('emb.shared', [V, d], () => rng.normal() / Math.sqrt(d));
  out['emb.shared']!.data.fill(0, EOS_ID * d, (EOS_ID + 1) * d); // </s> logit is always 0: never the argmax
  for (let l = 0; l < c.encoderLayers; l++) (norm(`enc.${l}.ln1`), attn(`enc.${l}.self`, h['enc-self'][l]!), norm(`enc.${l}.ln2`), ffn(`enc.${l}.ffn`));
  norm('enc.ln');
  for (let l = 0; l < c.decoderLayers; l++) {
    norm(`dec.${l}.ln1`);
    attn(`dec.${l}.self`, h['dec-self'][l]!);
    norm(`dec.${l}.ln2`);
    attn(`dec.${l}.cross`, h['dec-enc'][l]!);
    norm(`dec.${l}.ln3`);
    ffn(`dec.${l}.ffn`);
  }
  norm('dec.ln');
  return out;
}

/** Keep round(fraction x heads) of the heads each layer of `stacks` has, chosen at random (seeded). */
function fractionMask(c: ModelConfig, stacks: readonly AttentionType[], fraction: number, seed: number, source: string): HeadMask {
  const rng = new Rng(seed);
  const layout = headLayout(c).originalIds;
  const kept: PerHead = { 'enc-self': [], 'dec-self': [], 'dec-enc': [] };
  for (const stack of ATTENTION_TYPES) {
    kept[stack] = layout[stack].map((ids) => {
      if (!stacks.includes(stack)) return [...ids];
      const n = Math.round(ids.length * fraction);
      return rng
        .shuffle([...ids])
        .slice(0, n)
        .sort((a, b) => a - b);
    });
  }
  return maskFromKeptSets(kept, originalMaskShape(c), source);
}

function total(h: HeadShape): Record<AttentionType, number> {
  return {
    'enc-self': h['enc-self'].reduce((a, b) => a + b, 0),
    'dec-self': h['dec-self'].reduce((a, b) => a + b, 0),
    'dec-enc': h['dec-enc'].reduce((a, b) => a + b, 0),
  };
}

/** Matmul FLOPs of the encoder forward and of decoding OUT_LEN steps (x beams), for the perfect-scaling column. */
function flops(c: ModelConfig, V: number, beams: number): { encoder: number; decode: number } {
  const d = c.dModel;
  const dh = d / c.heads;
  const h = headsPerLayer(c);
  let enc = 0;
  for (const n of h['enc-self']) enc += B * S * (2 * 4 * d * n * dh + 2 * 2 * S * n * dh + 2 * 2 * d * c.dFF);
  let dec = 0;
  const rows = B * beams;
  for (let l = 0; l < c.decoderLayers; l++) {
    const ns = h['dec-self'][l]!;
    const nc = h['dec-enc'][l]!;
    dec += B * S * 2 * 2 * d * nc * dh; // cross keys/values, once per sentence
    for (let t = 1; t <= OUT_LEN; t++)
      dec += rows * (2 * 4 * d * ns * dh + 2 * 2 * t * ns * dh + 2 * 2 * d * nc * dh + 2 * 2 * S * nc * dh + 2 * 2 * d * c.dFF);
  }
  dec += rows * OUT_LEN * 2 * d * V; // output layer
  return { encoder: enc, decode: dec + enc };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function best(xs: number[]): number {
  return Math.min(...xs);
}

async function timeEncoder(m: Transformer, src: Int32Array): Promise<number> {
  const t0 = performance.now();
  const out = tf.tidy(() => m.encode(tf.tensor2d(src, [B, S], 'int32'), ForwardContext.eval()));
  await out.data();
  out.dispose();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  tf.env().set('PROD', true);
  const backend = await initBackendFromEnv(args.backend as BackendChoice);
  const t0 = performance.now();
  let base: Transformer;
  let gates: HeadGates | null = null;
  let V: number;
  let codec: TextCodec = idCodec;
  let evalConfig: typeof DEFAULT_CONFIG.eval = DEFAULT_CONFIG.eval;
  if (args.model) {
    const loaded = loadModel(args.model);
    base = loaded.model;
    gates = loaded.gates;
    V = loaded.tokenizer.vocabSize;
    codec = loaded.tokenizer;
    evalConfig = loaded.config.eval;
  } else {
    V = BENCH_VOCAB;
    base = createTransformerFromArrays(BENCH_MODEL, V, randomModelArrays(BENCH_MODEL, V, 1));
  }
  const c = base.config;
  console.log(
    `backend ${backend.name}${backend.fixes.length ? ` (${backend.fixes.join(', ')})` : ''} | model ${args.model ?? 'random'}: d_model ${c.dModel}, ${c.heads} heads, ${c.encoderLayers}+${c.decoderLayers} layers, d_ff ${c.dFF}, vocab ${V}`,
  );
  console.log(`batch ${B} sentences x ${S} source tokens | ${args.model ? 'up to ' : ''}${OUT_LEN} output tokens | beam ${BEAM} | best of ${REPS} reps`);

  const all = ['enc-self', 'dec-self', 'dec-enc'] as const;
  // every variant, the full model too, goes through the same export path (a gated model's full variant
  // is its deterministic gated model, gates folded); the control is a second full copy: its ratio is the
  // noise of this run
  const fullMask = fractionMask(c, [], 1, 10, 'full');
  const masks: Array<[string, HeadMask]> = [
    ['full', fullMask],
    ['full (control)', fullMask],
    ['enc 50%', fractionMask(c, ['enc-self'], 0.5, 11, 'enc 50%')],
    ['enc 25%', fractionMask(c, ['enc-self'], 0.25, 12, 'enc 25%')],
    ['enc 12.5%', fractionMask(c, ['enc-self'], 0.125, 13, 'enc 12.5%')],
    ['enc 0%', fractionMask(c, ['enc-self'], 0, 14, 'enc 0%')],
    ['all 50%', fractionMask(c, all, 0.5, 15, 'all 50%')],
    ['all 12.5%', fractionMask(c, all, 0.125, 16, 'all 12.5%')],
    ['all 0%', fractionMask(c, all, 0, 17, 'all 0%')],
  ];
  if (gates) masks.push(['gates', deriveMaskFromGates(gates, c).mask]);

  const emptyGatherBug = tf.tidy(() => tf.gather(tf.zeros([3, 0, 2, 4]), tf.tensor1d([2, 0], 'int32')).shape.join(',') !== '2,0,2,4');
  const variants: Variant[] = masks.map(([name, mask]) => {
    const p = applyMaskToModel(base, gates, mask);
    const model = createTransformerFromArrays(p.config, V, p.params);
    const shape = headsPerLayer(model.config);
    const hasEmptyDecoderLayer = [...shape['dec-self'], ...shape['dec-enc']].some((n) => n === 0);
    return {
      name,
      model,
      pruned: { params: p.params, config: p.config, mask: p.mask },
      heads: total(shape),
      params: model.params.count(),
      canBeam: !(emptyGatherBug && hasEmptyDecoderLayer),
      times: { encoder: [], greedy: [], beam: [] },
      outputTokens: { greedy: 0, beam: 0 },
    };
  });
  base.dispose();
  gates?.dispose();
  if (!args['onnx-only']) await headCountTable(variants, V, t0);
  if (!args['no-onnx']) await onnxTable(variants, V, codec, evalConfig);
  console.log(`total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  for (const v of variants) v.model.dispose();
}

/** The first table: encoder, greedy and beam-4 times of every variant on one random batch, tfjs. */
async function headCountTable(variants: Variant[], V: number, t0: number): Promise<void> {
  const rng = new Rng(7);
  const src = Int32Array.from({ length: B * S }, () => 4 + rng.int(V - 4));
  const o = { lengthPenalty: 0.6, maxLenA: 0, maxLenB: OUT_LEN };
  // warm-up: every kernel shape once per variant (wasm compiles and the matmul plans settle)
  for (const v of variants) {
    await timeEncoder(v.model, src);
    await greedyDecode(v.model, src.slice(0, 2 * S), 2, S, { ...o, maxLenB: 3, beamSize: 1 });
    if (v.canBeam) await beamSearch(v.model, src.slice(0, 2 * S), 2, S, { ...o, maxLenB: 3, beamSize: BEAM });
  }
  for (let r = 0; r < REPS; r++) {
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + r) % variants.length]!;
      v.times.encoder.push(await timeEncoder(v.model, src));
      let t = performance.now();
      const greedy = await greedyDecode(v.model, src, B, S, { ...o, beamSize: 1 });
      v.times.greedy.push(performance.now() - t);
      v.outputTokens.greedy = greedy.reduce((a, x) => a + x.length, 0);
      if (v.canBeam) {
        t = performance.now();
        const beam = await beamSearch(v.model, src, B, S, { ...o, beamSize: BEAM });
        v.times.beam.push(performance.now() - t);
        v.outputTokens.beam = beam.reduce((a, x) => a + x.length, 0);
      }
    }
    process.stderr.write(`rep ${r + 1}/${REPS} done (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
  }

  const full = variants[0]!;
  const fullFlops = { greedy: flops(full.model.config, V, 1), beam: flops(full.model.config, V, BEAM) };
  const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}` : '-');
  const rows: string[][] = [
    ['variant', 'heads enc/dec/x', 'params', 'encoder', 'x (flop x)', 'greedy', 'x (flop x)', `beam-${BEAM}`, 'x (flop x)', 'out tok g/b'],
  ];
  const results = variants.map((v) => {
    const enc = best(v.times.encoder);
    const greedy = best(v.times.greedy);
    const beam = v.canBeam ? best(v.times.beam) : NaN;
    const f1 = flops(v.model.config, V, 1);
    const f4 = flops(v.model.config, V, BEAM);
    rows.push([
      v.name,
      `${v.heads['enc-self']}/${v.heads['dec-self']}/${v.heads['dec-enc']}`,
      `${(v.params / 1e6).toFixed(2)}M`,
      fmt(enc),
      `${ratio(enc, best(full.times.encoder))} (${ratio(f1.encoder, fullFlops.greedy.encoder)})`,
      fmt(greedy),
      `${ratio(greedy, best(full.times.greedy))} (${ratio(f1.decode, fullFlops.greedy.decode)})`,
      v.canBeam ? fmt(beam) : 'n/a*',
      v.canBeam ? `${ratio(beam, best(full.times.beam))} (${ratio(f4.decode, fullFlops.beam.decode)})` : '',
      `${v.outputTokens.greedy}/${v.canBeam ? v.outputTokens.beam : '-'}`,
    ]);
    return {
      name: v.name,
      heads: v.heads,
      params: v.params,
      best: { encoderMs: enc, greedyMs: greedy, beamMs: v.canBeam ? beam : null },
      median: { encoderMs: median(v.times.encoder), greedyMs: median(v.times.greedy), beamMs: v.canBeam ? median(v.times.beam) : null },
      outputTokens: v.outputTokens,
      samples: v.times,
      flops: { greedy: f1, beam: f4 },
    };
  });
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log('');
  for (const [i, r] of rows.entries()) {
    console.log(r.map((x, j) => (j === 0 ? x.padEnd(widths[j]!) : x.padStart(widths[j]!))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log('\ntimes: best of the reps; x = time / full model time; (flop x) = the same ratio of matmul FLOPs, i.e. perfect scaling;');
  console.log('the control row is a second copy of the full model: how far its x is from 1.00 is the noise of this run.');
  if (variants.some((v) => !v.canBeam))
    console.log('* beam search over a decoder attention layer with no heads fails on wasm (tfjs-wasm GatherV2 on empty tensors): see src/export/README.md');
  if (args.json)
    writeFileSync(
      args.json,
      JSON.stringify(
        {
          model: args.model ?? 'random',
          config: variants[0]!.model.config,
          batch: { sentences: B, srcLen: S, outLen: OUT_LEN, beam: BEAM, reps: REPS },
          results,
        },
        null,
        2,
      ) + '\n',
    );
}

/** Token ids written as text: the random model's "tokenizer" (its sentences are random ids). */
const idCodec: TextCodec = { encode: (t) => t.split(' ').filter(Boolean).map(Number), decode: (ids) => ids.join(' ') };

/** The second table: sentences/s of tfjs and ONNX Runtime, full and pruned, greedy and beam 4. */
async function onnxTable(variants: Variant[], V: number, codec: TextCodec, evalConfig: typeof DEFAULT_CONFIG.eval): Promise<void> {
  const ort = await loadOnnxRuntime();
  const names = args['onnx-variants']!.split(',').map((x) => x.trim());
  const chosen = names.map((n) => {
    const v = variants.find((x) => x.name === n);
    if (!v) throw new Error(`--onnx-variants: no variant ${JSON.stringify(n)} (variants: ${variants.map((x) => x.name).join(', ')})`);
    return v;
  });
  const n = Number(args['test-sentences']);
  let sentences: string[];
  if (args['test-file'])
    sentences = readFileSync(args['test-file'], 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .slice(0, n);
  else {
    const rng = new Rng(8);
    sentences = Array.from({ length: n }, () => Array.from({ length: 4 + rng.int(2 * S) }, () => 4 + rng.int(V - 4)).join(' '));
  }
  // the random model never emits </s>: cap its outputs at --out-len tokens, as above
  const ev = args.model ? evalConfig : { ...evalConfig, maxLenA: 0, maxLenB: OUT_LEN };
  const opts = {
    beamSize: 1,
    lengthPenalty: ev.lengthPenalty,
    maxLenA: ev.maxLenA,
    maxLenB: ev.maxLenB,
    batchSentences: ev.batchSentences,
    maxTokensPerBatch: ev.maxTokensPerBatch,
  };
  const rows = await Promise.all(
    chosen.map(async (v) => {
      const open = async (int8: boolean): Promise<{ m: OnnxModel; bytes: number }> => {
        const built = buildOnnxExport({
          model: v.pruned.config,
          vocabSize: V,
          params: v.pruned.params,
          int8,
          tokenizerText: Buffer.from(''),
          generation: { ...opts, beamSize: BEAM },
          source: { run: 'bench', checkpoint: 'bench', step: 0 },
          mask: v.pruned.mask,
          maskDescriptor: '',
        });
        const so = { graphOptimizationLevel: 'all' as const };
        const m: OnnxModel = {
          encoder: await ort.InferenceSession.create(built.encoder, so),
          decoder: await ort.InferenceSession.create(built.decoder, so),
          metadata: built.metadata,
          Tensor: ort.Tensor as unknown as OrtTensorClass,
        };
        return { m, bytes: built.encoder.byteLength + built.decoder.byteLength };
      };
      const f = await open(false);
      const q = args['onnx-int8'] ? await open(true) : null;
      // the same graphs with log_probs hidden: beam search normalises the logits in JS (exports before log_probs)
      const d = f.m.decoder;
      const jsSoftmax: OnnxModel = {
        ...f.m,
        decoder: { inputNames: d.inputNames, outputNames: d.outputNames.filter((n) => n !== 'log_probs'), run: d.run.bind(d) as OnnxModel['decoder']['run'] },
      };
      return {
        v,
        m: f.m,
        jsSoftmax,
        bytes: f.bytes,
        m8: q?.m ?? null,
        times: {
          tfjs1: [] as number[],
          tfjs4: [] as number[],
          ort1: [] as number[],
          ort4: [] as number[],
          int81: [] as number[],
          int84: [] as number[],
          js4: [] as number[],
        },
        same: { 1: 0, 4: 0 },
      };
    }),
  );
  const warm = sentences.slice(0, 4);
  for (const r of rows) {
    await translateSentences(r.v.model, codec, warm, { ...ev, beamSize: BEAM });
    await translateWithOnnx(r.m, codec, warm, { ...opts, beamSize: BEAM });
  }
  const reps = Number(args['onnx-reps']);
  const t0 = performance.now();
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < rows.length; i++) {
      const r = rows[(i + rep) % rows.length]!;
      for (const beam of [1, BEAM] as const) {
        let t = performance.now();
        const a = await translateSentences(r.v.model, codec, sentences, { ...ev, beamSize: beam });
        r.times[beam === 1 ? 'tfjs1' : 'tfjs4'].push(performance.now() - t);
        t = performance.now();
        const b = await translateWithOnnx(r.m, codec, sentences, { ...opts, beamSize: beam });
        r.times[beam === 1 ? 'ort1' : 'ort4'].push(performance.now() - t);
        r.same[beam === 1 ? 1 : 4] = a.outputs.filter((x, j) => x === b.outputs[j]).length;
        if (beam === BEAM) {
          t = performance.now();
          await translateWithOnnx(r.jsSoftmax, codec, sentences, { ...opts, beamSize: beam });
          r.times.js4.push(performance.now() - t);
        }
        if (r.m8) {
          t = performance.now();
          await translateWithOnnx(r.m8, codec, sentences, { ...opts, beamSize: beam });
          r.times[beam === 1 ? 'int81' : 'int84'].push(performance.now() - t);
        }
      }
    }
    process.stderr.write(`onnx vs tfjs: rep ${rep + 1}/${reps} done (${((performance.now() - t0) / 1000).toFixed(0)} s, load ${loadavg()[0]!.toFixed(1)})\n`);
  }
  const sps = (ms: number[]) => (sentences.length / best(ms)) * 1000;
  const full = rows[0]!;
  const int8 = args['onnx-int8'];
  const table: string[][] = [
    [
      'variant',
      'heads enc/dec/x',
      'onnx MB',
      'tfjs greedy',
      'ORT greedy',
      'ORT/tfjs',
      'tfjs beam4',
      'ORT beam4',
      'ORT/tfjs',
      'vs full: tfjs g/b',
      'vs full: ORT g/b',
      'same g/b',
      'ORT beam4 JS softmax',
      ...(int8 ? ['ORT int8 g/b', 'int8/float g/b'] : []),
    ],
  ];
  for (const r of rows) {
    const f = (x: number) => x.toFixed(1);
    table.push([
      r.v.name,
      `${r.v.heads['enc-self']}/${r.v.heads['dec-self']}/${r.v.heads['dec-enc']}`,
      (r.bytes / 1e6).toFixed(2),
      f(sps(r.times.tfjs1)),
      f(sps(r.times.ort1)),
      (sps(r.times.ort1) / sps(r.times.tfjs1)).toFixed(2),
      f(sps(r.times.tfjs4)),
      f(sps(r.times.ort4)),
      (sps(r.times.ort4) / sps(r.times.tfjs4)).toFixed(2),
      `${(sps(r.times.tfjs1) / sps(full.times.tfjs1)).toFixed(2)}/${(sps(r.times.tfjs4) / sps(full.times.tfjs4)).toFixed(2)}`,
      `${(sps(r.times.ort1) / sps(full.times.ort1)).toFixed(2)}/${(sps(r.times.ort4) / sps(full.times.ort4)).toFixed(2)}`,
      `${r.same[1]}/${r.same[4]} of ${sentences.length}`,
      f(sps(r.times.js4)),
      ...(int8
        ? [
            `${f(sps(r.times.int81))}/${f(sps(r.times.int84))}`,
            `${(sps(r.times.int81) / sps(r.times.ort1)).toFixed(2)}/${(sps(r.times.int84) / sps(r.times.ort4)).toFixed(2)}`,
          ]
        : []),
    ]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  console.log(
    `\nONNX Runtime (onnxruntime-node ${ort.env.versions.node}, default threads) vs tfjs: ${sentences.length} sentences (${args['test-file'] ?? 'random ids'}), sentences/s, best of ${reps} reps, load ${loadavg()[0]!.toFixed(1)}`,
  );
  for (const [i, r] of table.entries()) {
    console.log(r.map((x, j) => (j === 0 ? x.padEnd(widths[j]!) : x.padStart(widths[j]!))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log(
    `ORT/tfjs: ORT sentences/s over tfjs sentences/s; vs full: a variant's sentences/s over the full model's in the same engine (what removing heads saves); same: translations identical in both engines; JS softmax: ORT beam search normalising the logits in JS instead of the graph's LogSoftmax output${int8 ? '; int8: the same variant exported with --int8 (MatMulInteger) in ORT, and its speed over the float graphs' : ''}`,
  );
}

await main();
