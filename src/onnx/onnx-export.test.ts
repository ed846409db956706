/**
 * @jest-environment ./src/test-utils/shared-typed-arrays-environment.mjs
 */
/**
 * ONNX export checked in ONNX Runtime (onnxruntime-node): tiny gated run folders (post-norm tied, and
 * pre-norm untied with FFN pruning) are exported with `--format onnx` next to the toolkit format, and for
 * a full, a pruned, a 0-head-layer and an int8 model:
 *   - teacher-forced logits through encoder.onnx + decoder.onnx (step by step, with the caches) against
 *     the toolkit's own forward pass of the exported folder (loadModel), within 1e-4;
 *   - greedy and beam-4 translations through decode.ts against `heads translate`'s path
 *     (translateSentences on the exported toolkit folder): the same strings;
 *   - int8: ORT's integer arithmetic against an independent plain-JS computation of the same quantized
 *     arithmetic (per-row int8 activations, per-channel int8 weights, int32 sums) within 1e-4, and its
 *     greedy translations against the reference's greedy decoding; against the float model (toolkit int8
 *     export, weight-only) the difference is measured and printed, not required to be small.
 * Plus the folder layout and metadata, and bad folders (one-line CheckpointErrors).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import type { HeadsConfig, ModelConfig } from '../config/schema.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { HeadGates } from '../gates/head-gates.js';
import { createTransformer } from '../model/transformer.js';
import { sinusoidalTable } from '../model/layers.js';
import { translateSentences } from '../eval/translate.js';
import { loadModel } from '../io/load-model.js';
import { type NamedArrays, readCheckpoint, writeCheckpoint } from '../io/checkpoint.js';
import { useTestBackend } from '../test-utils/backend.js';
import { Rng } from '../util/random.js';
import { CheckpointError } from '../util/errors.js';
import { type HeadMask, maskFromKeptSets } from '../io/head-mask.js';
import { exportModel } from '../export/export-model.js';
import { originalMaskShape, headsPerLayer } from '../config/head-layout.js';
import { quantizeInt8 } from '../compress/quantize.js';
import { readModelInfo } from './graph-builder.js';
import { onnxBeam, onnxGreedy, onnxTeacherForcedLogits, translateWithOnnx } from './decode.js';
import { type LoadedOnnxModel, loadOnnxModel } from './load-node.js';
import { ONNX_FILES, type OnnxExportMetadata } from './layout.js';
import * as exportCommand from '../cli/commands/export.js';
import * as translateCommand from '../cli/commands/translate.js';

// onnxruntime-node is an optional dependency: without it these tests skip, saying so
const hasOrt = await import('onnxruntime-node').then(
  () => true,
  () => false,
);
if (!hasOrt) console.warn('src/onnx/onnx-export.test.ts: skipped: onnxruntime-node is not installed (npm install onnxruntime-node@1.30.0)');
const describeOrt = hasOrt ? describe : describe.skip;

const root = mkdtempSync(join(tmpdir(), 'heads-onnx-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SENTENCES = [
  'the cat sat on the mat .',
  'a dog ran in the park',
  'the bird sings',
  'cats and dogs are friends .',
  'on the mat sat a cat',
  'dogs sat',
  'a bird in the park sings on the mat .',
];

function tinyConfig(model: Partial<HeadsConfig['model']>): HeadsConfig {
  return {
    ...DEFAULT_CONFIG,
    name: 'tiny',
    seed: 3,
    model: {
      ...DEFAULT_CONFIG.model,
      encoderLayers: 2,
      decoderLayers: 2,
      heads: 4,
      dModel: 16,
      dFF: 32,
      maxPositions: 64,
      norm: 'post',
      tieEmbeddings: true,
      ...model,
    },
    gates: { ...DEFAULT_CONFIG.gates, attention: ['enc-self', 'dec-self', 'dec-enc'] },
    eval: { ...DEFAULT_CONFIG.eval, beamSize: 4, maxLenA: 1, maxLenB: 4, batchSentences: 3 },
  };
}

/** A gated run folder as training writes it (random weights, open, closed and fractional gates). */
async function makeRun(name: string, model: Partial<HeadsConfig['model']>): Promise<string> {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const tok = BpeTokenizer.learn(SENTENCES, { numMerges: 30 });
  tok.save(join(dir, 'tokenizer.json'));
  const config = tinyConfig(model);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const m = createTransformer(config.model, tok.vocabSize, new Rng(1));
  const rng = new Rng(2);
  for (const [n, v] of m.params.vars)
    m.params.assign(
      n,
      v.shape,
      Float32Array.from({ length: v.size }, () => rng.normal() * 0.5 + (n.endsWith('.g') ? 1 : 0)),
    );
  const params: NamedArrays = await m.params.toArrays();
  const gates = new HeadGates(config.gates, m.shape, config.seed);
  for (const [n, v] of gates.variables)
    params[n] = { shape: v.shape.slice(), data: Float32Array.from({ length: v.size }, (_, i) => [20, 1.2, -0.7, 0.4, 20][(i + n.length) % 5]!) };
  gates.dispose();
  writeCheckpoint(dir, { step: 50, dataPosition: { epoch: 0, batch: 0 }, adamStep: 0, config, extra: {} }, params, {}, 1);
  m.dispose();
  return dir;
}

const SHAPE = originalMaskShape(tinyConfig({}).model);
const PRUNED = {
  'enc-self': [[0, 2, 3], [1]],
  'dec-self': [
    [0, 1, 2, 3],
    [2, 3],
  ],
  'dec-enc': [
    [1, 3],
    [0, 1, 2],
  ],
};
const ZERO_HEADS = { 'enc-self': [[0, 1], []], 'dec-self': [[], [1, 2]], 'dec-enc': [[3], []] };

let postRun: string;
let preRun: string;
beforeAll(async () => {
  await useTestBackend();
  postRun = await makeRun('post', {});
  preRun = await makeRun('pre', { norm: 'pre', tieEmbeddings: false });
});

interface Variant {
  name: string;
  run: () => string;
  mask: HeadMask | 'none';
  int8?: boolean;
  ffn?: number;
}

const VARIANTS: Variant[] = [
  { name: 'full (post-norm, tied)', run: () => postRun, mask: 'none' },
  { name: 'pruned', run: () => postRun, mask: maskFromKeptSets(PRUNED, SHAPE, 'pruned') },
  { name: 'a 0-head layer in every attention type', run: () => postRun, mask: maskFromKeptSets(ZERO_HEADS, SHAPE, 'zero heads') },
  { name: 'pruned, pre-norm, untied, FFN-pruned', run: () => preRun, mask: maskFromKeptSets(PRUNED, SHAPE, 'pruned'), ffn: 0.25 },
];

async function exportVariant(v: Variant, dir: string): Promise<void> {
  await exportModel({
    from: v.run(),
    mask: v.mask,
    outDir: dir,
    formats: ['heads', 'onnx'],
    ...(v.int8 ? { int8: true } : {}),
    ...(v.ffn ? { ffn: { fraction: v.ffn, scope: 'per-layer' } } : {}),
  });
}

/** A padded batch of source ids and random target prefixes (ids >= 3, <s> first). */
function batch(vocab: number, seed: number): { src: Int32Array; B: number; S: number; tgt: Int32Array; T: number } {
  const rng = new Rng(seed);
  const B = 3;
  const S = 7;
  const T = 6;
  const lens = [7, 4, 2];
  const src = new Int32Array(B * S);
  for (let b = 0; b < B; b++) for (let s = 0; s < lens[b]!; s++) src[b * S + s] = s === lens[b]! - 1 ? 2 : 3 + rng.int(vocab - 3);
  const tgt = Int32Array.from({ length: B * T }, (_, i) => (i % T === 0 ? 1 : 3 + rng.int(vocab - 3)));
  return { src, B, S, tgt, T };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function toolkitLogits(dir: string, x: ReturnType<typeof batch>): Promise<Float32Array> {
  const ex = loadModel(dir);
  try {
    return tf.tidy(
      () =>
        ex.model.forward(tf.tensor2d(x.src, [x.B, x.S], 'int32'), tf.tensor2d(x.tgt, [x.B, x.T], 'int32'), { isTraining: false }).dataSync() as Float32Array,
    );
  } finally {
    ex.model.dispose();
  }
}

async function toolkitTranslations(dir: string, beamSize: number): Promise<string[]> {
  const ex = loadModel(dir);
  try {
    return (await translateSentences(ex.model, ex.tokenizer, SENTENCES, { ...ex.config.eval, beamSize })).outputs;
  } finally {
    ex.model.dispose();
  }
}

async function onnxTranslations(m: LoadedOnnxModel, beamSize: number): Promise<string[]> {
  const g = m.metadata.generation;
  return (await translateWithOnnx(m, m.tokenizer, SENTENCES, { ...g, beamSize })).outputs;
}

describeOrt.each(VARIANTS)('ONNX export in onnxruntime-node: $name', (v) => {
  let dir: string;
  let m: LoadedOnnxModel;
  beforeAll(async () => {
    dir = join(root, v.name.replace(/\W+/g, '-'));
    await exportVariant(v, dir);
    m = await loadOnnxModel(dir);
  });

  it('teacher-forced logits match the toolkit forward pass within 1e-4', async () => {
    const x = batch(m.metadata.vocabSize, 5);
    const want = await toolkitLogits(dir, x);
    const got = await onnxTeacherForcedLogits(m, x.src, x.B, x.S, x.tgt, x.T);
    const d = maxDiff(got, want);
    expect(d).toBeLessThan(1e-4);
  });

  it("greedy and beam-4 translations are the toolkit translate path's", async () => {
    for (const beam of [1, 4]) expect(await onnxTranslations(m, beam)).toEqual(await toolkitTranslations(dir, beam));
  });

  it('the graphs carry the per-layer head counts', () => {
    const cfg = loadModel(dir);
    cfg.model.dispose();
    expect(m.metadata.headsPerLayer).toEqual(headsPerLayer(cfg.config.model));
    const info = readModelInfo(readFileSync(join(dir, 'onnx', ONNX_FILES.decoder)));
    const selfLayers = m.metadata.headsPerLayer['dec-self'].flatMap((h, l) => (h ? [l] : []));
    expect(info.inputs.filter((n) => n.startsWith('past_key_'))).toEqual(selfLayers.map((l) => `past_key_${l}`));
  });
});

describeOrt('the export folder', () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(root, 'layout');
    await exportModel({ from: postRun, mask: maskFromKeptSets(PRUNED, SHAPE, 'pruned'), outDir: dir, formats: ['onnx'] });
  });

  it('holds onnx/ with both graphs, model.json and the tokenizer; opset 17 and the metadata in both graphs', () => {
    for (const f of Object.values(ONNX_FILES)) expect(existsSync(join(dir, 'onnx', f))).toBe(true);
    expect(existsSync(join(dir, 'checkpoints'))).toBe(false);
    const meta = JSON.parse(readFileSync(join(dir, 'onnx', 'model.json'), 'utf8')) as OnnxExportMetadata;
    expect(readFileSync(join(dir, 'onnx', 'tokenizer.json'))).toEqual(readFileSync(join(postRun, 'tokenizer.json')));
    for (const f of [ONNX_FILES.encoder, ONNX_FILES.decoder]) {
      const info = readModelInfo(readFileSync(join(dir, 'onnx', f)));
      expect(info.opset).toBeGreaterThanOrEqual(17);
      expect(JSON.parse(info.metadata.keptHeads!)).toEqual(PRUNED);
      expect(JSON.parse(info.metadata.headsPerLayer!)).toEqual(meta.headsPerLayer);
      expect(JSON.parse(info.metadata.source!).run).toBe(postRun);
      expect(JSON.parse(info.metadata.mask!).source).toBe('pruned');
      expect(JSON.parse(info.metadata.tokenizer!).file).toBe('tokenizer.json');
    }
    expect(meta.keptHeads).toEqual(PRUNED);
    const ex = JSON.parse(readFileSync(join(dir, 'export.json'), 'utf8')) as { files: { onnx: { encoderBytes: number } } };
    expect(ex.files.onnx.encoderBytes).toBe(readFileSync(join(dir, 'onnx', 'encoder.onnx')).length);
  });

  it('refuses bad folders with one line naming the file', async () => {
    const expectOneLine = async (p: Promise<unknown>, re: RegExp) => {
      const e = await p.then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(CheckpointError);
      expect((e as Error).message).toMatch(re);
      expect((e as Error).message).not.toContain('\n');
    };
    await expectOneLine(loadOnnxModel(join(root, 'nowhere')), /no such export folder/);
    await expectOneLine(loadOnnxModel(postRun), /not an ONNX export folder/);
    const copy = (name: string) => {
      const d = join(root, name);
      mkdirSync(d);
      for (const f of Object.values(ONNX_FILES)) writeFileSync(join(d, f), readFileSync(join(dir, 'onnx', f)));
      return d;
    };
    const missing = copy('missing');
    rmSync(join(missing, 'decoder.onnx'));
    await expectOneLine(loadOnnxModel(missing), /decoder\.onnx: missing/);
    const garbage = copy('garbage');
    const bytes = readFileSync(join(garbage, 'encoder.onnx'));
    writeFileSync(join(garbage, 'encoder.onnx'), bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expectOneLine(loadOnnxModel(garbage), /encoder\.onnx: not a valid ONNX model/);
    const badMeta = copy('bad-meta');
    writeFileSync(join(badMeta, 'model.json'), JSON.stringify({ format: 'something else' }));
    await expectOneLine(loadOnnxModel(badMeta), /model\.json: not a heads ONNX export: format/);
    // a recorded file changed after heads wrote it: refused by its digest before ORT sees it
    const recorded = join(dir, 'onnx', 'decoder.onnx');
    const saved = readFileSync(recorded);
    const flipped = Buffer.from(saved);
    flipped[flipped.length - 3] ^= 0xff;
    writeFileSync(recorded, flipped);
    try {
      await expectOneLine(loadOnnxModel(dir), /decoder\.onnx: damaged or changed since heads wrote it/);
    } finally {
      writeFileSync(recorded, saved);
    }
  });

  it('refuses a model the graphs cannot express, before writing anything', async () => {
    const run = await makeRun('moe', { moe: { experts: 2, topK: 1, layers: 'encoder', capacityFactor: 1.25, auxLossWeight: 0.01 } });
    const out = join(root, 'moe-out');
    await expect(exportModel({ from: run, mask: 'none', outDir: out, formats: ['onnx'] })).rejects.toThrow(/--format onnx: model\.moe/);
    expect(existsSync(out)).toBe(false);
  });
});

describeOrt('heads export --format all and heads translate --engine onnx (CLI handlers, in-process)', () => {
  const quiet = async (f: () => Promise<void>): Promise<string[]> => {
    const err = jest.spyOn(console, 'error').mockImplementation(() => {});
    const log = jest.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await f();
      return err.mock.calls.map((c) => String(c[0]));
    } finally {
      err.mockRestore();
      log.mockRestore();
    }
  };

  it('exports all three formats; translate --engine onnx writes what --engine tfjs writes; bad folders exit 2 with one line', async () => {
    const out = join(root, 'cli-all');
    const input = join(root, 'cli.en');
    writeFileSync(input, SENTENCES.join('\n') + '\n');
    await quiet(() =>
      exportCommand.handler({
        _: ['export'],
        $0: 'heads',
        model: postRun,
        'mask-descriptor': 'E:1:2 D:2:1,2,3,4 A:1:1',
        out,
        'runs-dir': root,
        format: 'all',
        verify: true,
        'fold-gates': true,
        backend: tf.getBackend() as 'wasm',
      } as Parameters<typeof exportCommand.handler>[0]),
    );
    expect(process.exitCode ?? 0).toBe(0);
    for (const f of ['checkpoints/latest.json', 'safetensors/model.safetensors', 'onnx/encoder.onnx', 'onnx/decoder.onnx'])
      expect(existsSync(join(out, f))).toBe(true);
    const translate = (engine: 'tfjs' | 'onnx', model: string, output: string) =>
      quiet(() =>
        translateCommand.handler({ _: ['translate'], $0: 'heads', model, input, output, beam: 4, backend: 'auto', engine } as Parameters<
          typeof translateCommand.handler
        >[0]),
      );
    await translate('tfjs', out, join(root, 'cli.tfjs.de'));
    await translate('onnx', out, join(root, 'cli.onnx.de'));
    expect(process.exitCode ?? 0).toBe(0);
    expect(readFileSync(join(root, 'cli.onnx.de'), 'utf8')).toBe(readFileSync(join(root, 'cli.tfjs.de'), 'utf8'));
    const errors = await translate('onnx', postRun, join(root, 'cli.bad.de'));
    expect(process.exitCode).toBe(2);
    process.exitCode = 0;
    expect(errors.filter((l) => l.startsWith('error:'))).toEqual([expect.stringMatching(/^error: .*post: not an ONNX export folder/)]);
    expect(existsSync(join(root, 'cli.bad.de'))).toBe(false);
  });
});

// ---- int8: an independent computation of the same quantized arithmetic ----

type Mat = { rows: number; cols: number; data: Float64Array };

/** y = int8(x) @ int8(W) as ORT's graph does it: per-row s = max|x| / 127, q = round-half-even(x / s), int32 sums. */
function qLinear(x: Mat, w: { q: Int8Array; scale: Float32Array; cols: number }, b: Float32Array | null): Mat {
  const out = new Float64Array(x.rows * w.cols);
  const qx = new Int32Array(x.cols);
  for (let r = 0; r < x.rows; r++) {
    let m = 0;
    for (let i = 0; i < x.cols; i++) m = Math.max(m, Math.abs(x.data[r * x.cols + i]!));
    const s = Math.fround(Math.max(Math.fround(m), 1e-30) / 127);
    for (let i = 0; i < x.cols; i++) {
      const v = Math.fround(x.data[r * x.cols + i]! / s);
      const f = Math.floor(v);
      const rounded = v - f === 0.5 ? (f % 2 === 0 ? f : f + 1) : Math.round(v);
      qx[i] = Math.max(-127, Math.min(127, rounded));
    }
    for (let c = 0; c < w.cols; c++) {
      let acc = 0;
      for (let i = 0; i < x.cols; i++) acc += qx[i]! * w.q[i * w.cols + c]!;
      out[r * w.cols + c] = acc * s * w.scale[c]! + (b ? b[c]! : 0);
    }
  }
  return { rows: x.rows, cols: w.cols, data: out };
}

/** The whole teacher-forced forward in float64 with int8 products (one sentence at a time). */
const quantizedCache = new WeakMap<NamedArrays, Map<string, ReturnType<typeof quantizeInt8>>>();

/** quantize.ts's int8 numbers of a parameter (the input both computations share), per column or (embeddings) per row. */
function quantized(p: NamedArrays, name: string, axis: 0 | 1): ReturnType<typeof quantizeInt8> {
  let m = quantizedCache.get(p);
  if (!m) quantizedCache.set(p, (m = new Map()));
  let q = m.get(`${name}:${axis}`);
  if (!q) m.set(`${name}:${axis}`, (q = quantizeInt8(p[name]!.data, p[name]!.shape, axis)));
  return q;
}

function referenceInt8Logits(c: ModelConfig, vocab: number, p: NamedArrays, src: number[], tgt: number[]): Float64Array {
  const d = c.dModel;
  const dh = d / c.heads;
  const heads = headsPerLayer(c);
  const W = (name: string) => {
    const qt = quantized(p, name, 1);
    return { q: qt.q, scale: qt.scale, cols: p[name]!.shape[1]! };
  };
  const vec = (name: string) => p[name]!.data;
  const add = (a: Mat, b: Mat): Mat => ({ ...a, data: a.data.map((v, i) => v + b.data[i]!) });
  const ln = (x: Mat, prefix: string): Mat => {
    const g = vec(`${prefix}.g`);
    const bb = vec(`${prefix}.b`);
    const out = new Float64Array(x.data.length);
    for (let r = 0; r < x.rows; r++) {
      let mean = 0;
      for (let i = 0; i < d; i++) mean += x.data[r * d + i]!;
      mean /= d;
      let v = 0;
      for (let i = 0; i < d; i++) v += (x.data[r * d + i]! - mean) ** 2;
      v /= d;
      for (let i = 0; i < d; i++) out[r * d + i] = ((x.data[r * d + i]! - mean) / Math.sqrt(v + 1e-5)) * g[i]! + bb[i]!;
    }
    return { ...x, data: out };
  };
  const residual = (x: Mat, norm: string, f: (y: Mat) => Mat): Mat => (c.norm === 'pre' ? add(x, f(ln(x, norm))) : ln(add(x, f(x)), norm));
  const attention = (prefix: string, h: number, xq: Mat, xkv: Mat, masked: (i: number, j: number) => boolean): Mat => {
    const bo = vec(`${prefix}.bo`);
    if (h === 0) return { rows: xq.rows, cols: d, data: Float64Array.from({ length: xq.rows * d }, (_, i) => bo[i % d]!) };
    const q = qLinear(xq, W(`${prefix}.wq`), vec(`${prefix}.bq`));
    const k = qLinear(xkv, W(`${prefix}.wk`), vec(`${prefix}.bk`));
    const v = qLinear(xkv, W(`${prefix}.wv`), vec(`${prefix}.bv`));
    const ctx: Mat = { rows: xq.rows, cols: h * dh, data: new Float64Array(xq.rows * h * dh) };
    for (let hd = 0; hd < h; hd++)
      for (let i = 0; i < xq.rows; i++) {
        const sc = Array.from({ length: xkv.rows }, (_, j) => {
          let s = 0;
          for (let e = 0; e < dh; e++) s += (q.data[i * h * dh + hd * dh + e]! / Math.sqrt(dh)) * k.data[j * h * dh + hd * dh + e]!;
          return masked(i, j) ? s - 1e9 : s;
        });
        const mx = Math.max(...sc);
        const ex = sc.map((s) => Math.exp(s - mx));
        const z = ex.reduce((a, b) => a + b, 0);
        for (let j = 0; j < xkv.rows; j++) for (let e = 0; e < dh; e++) ctx.data[i * h * dh + hd * dh + e] += (ex[j]! / z) * v.data[j * h * dh + hd * dh + e]!;
      }
    return qLinear(ctx, W(`${prefix}.wo`), bo);
  };
  const ffn = (x: Mat, prefix: string): Mat => {
    const hdn = qLinear(x, W(`${prefix}.w1`), vec(`${prefix}.b1`));
    return qLinear({ ...hdn, data: hdn.data.map((v) => Math.max(0, v)) }, W(`${prefix}.w2`), vec(`${prefix}.b2`));
  };
  const table = (side: 'src' | 'tgt') => (c.tieEmbeddings ? 'emb.shared' : side === 'src' ? 'emb.src' : 'emb.tgt');
  const pe = sinusoidalTable(c.maxPositions, d);
  const embed = (ids: number[], side: 'src' | 'tgt'): Mat => {
    const qt = quantized(p, table(side), 0);
    const data = new Float64Array(ids.length * d);
    ids.forEach((id, r) => {
      for (let i = 0; i < d; i++) data[r * d + i] = qt.q[id * d + i]! * qt.scale[id]! * Math.sqrt(d) + pe[r * d + i]!;
    });
    return { rows: ids.length, cols: d, data };
  };
  let x = embed(src, 'src');
  for (let l = 0; l < c.encoderLayers; l++) {
    x = residual(x, `enc.${l}.ln1`, (y) => attention(`enc.${l}.self`, heads['enc-self'][l]!, y, y, (_, j) => src[j] === 0));
    x = residual(x, `enc.${l}.ln2`, (y) => ffn(y, `enc.${l}.ffn`));
  }
  if (c.norm === 'pre' && c.encoderLayers > 0) x = ln(x, 'enc.ln');
  const memory = x;
  let y = embed(tgt, 'tgt');
  for (let l = 0; l < c.decoderLayers; l++) {
    y = residual(y, `dec.${l}.ln1`, (z) => attention(`dec.${l}.self`, heads['dec-self'][l]!, z, z, (i, j) => j > i));
    y = residual(y, `dec.${l}.ln2`, (z) => attention(`dec.${l}.cross`, heads['dec-enc'][l]!, z, memory, (_, j) => src[j] === 0));
    y = residual(y, `dec.${l}.ln3`, (z) => ffn(z, `dec.${l}.ffn`));
  }
  if (c.norm === 'pre') y = ln(y, 'dec.ln');
  if (c.tieEmbeddings) {
    const qt = quantized(p, 'emb.shared', 0);
    // E^T [d, V] with one scale per token (column)
    const qT = new Int8Array(d * vocab);
    for (let v = 0; v < vocab; v++) for (let i = 0; i < d; i++) qT[i * vocab + v] = qt.q[v * d + i]!;
    return qLinear(y, { q: qT, scale: qt.scale, cols: vocab }, null).data;
  }
  return qLinear(y, W('out.proj'), null).data;
}

describeOrt('int8: ONNX MatMulInteger graphs', () => {
  let dir: string;
  let m: LoadedOnnxModel;
  let params: NamedArrays;
  let config: ModelConfig;
  beforeAll(async () => {
    dir = join(root, 'int8');
    await exportVariant({ name: 'int8', run: () => postRun, mask: maskFromKeptSets(PRUNED, SHAPE, 'pruned'), int8: true }, dir);
    m = await loadOnnxModel(dir);
    // the float weights the int8 export quantized: the same mask exported without --int8
    const floatDir = join(root, 'int8-float');
    await exportVariant({ name: 'float', run: () => postRun, mask: maskFromKeptSets(PRUNED, SHAPE, 'pruned') }, floatDir);
    params = readCheckpoint(join(floatDir, 'checkpoints', 'step-0000050')).params;
    config = loadModel(floatDir).config.model;
  });

  it('computes in int8: every product with a weight matrix is a MatMulInteger on int8 weights', () => {
    for (const f of [ONNX_FILES.encoder, ONNX_FILES.decoder]) {
      const info = readModelInfo(readFileSync(join(dir, 'onnx', f)));
      const init = new Map(info.initializers.map((t) => [t.name, t]));
      // float matrices left: the position table only; the weights are int8
      expect(info.initializers.filter((t) => t.type === 'float32' && t.dims.length === 2).map((t) => t.name)).toEqual(['positions']);
      expect(info.initializers.filter((t) => t.type === 'int8').length).toBeGreaterThan(0);
      // float MatMul / Gemm only between activations (QK^T, weights x V)
      for (const n of info.nodes.filter((x) => x.op === 'MatMul' || x.op === 'Gemm')) expect(n.inputs.filter((i) => init.has(i))).toEqual([]);
      const integer = info.nodes.filter((x) => x.op === 'MatMulInteger');
      expect(integer.length).toBeGreaterThan(0);
      for (const n of integer) expect(init.get(n.inputs[1]!)?.type).toBe('int8');
    }
    expect(m.metadata.quantization?.method).toBe('int8-matmul-integer');
  });

  it('logits match an independent computation of the same quantized arithmetic within 1e-4; the float model is further away', async () => {
    const x = batch(m.metadata.vocabSize, 9);
    const got = await onnxTeacherForcedLogits(m, x.src, x.B, x.S, x.tgt, x.T);
    const V = m.metadata.vocabSize;
    const want = new Float64Array(got.length);
    for (let b = 0; b < x.B; b++) {
      const src = Array.from(x.src.subarray(b * x.S, (b + 1) * x.S));
      want.set(referenceInt8Logits(config, V, params, src, Array.from(x.tgt.subarray(b * x.T, (b + 1) * x.T))), b * x.T * V);
    }
    expect(maxDiff(got, want)).toBeLessThan(1e-4);
    const floatLogits = await toolkitLogits(dir, x); // the toolkit int8 export: weight-only, float activations
    const vsFloat = maxDiff(got, floatLogits);
    console.log(
      `int8 ONNX vs independent int8 reference: max |logit diff| ${maxDiff(got, want).toExponential(2)}; vs the weight-only int8 toolkit model: ${vsFloat.toExponential(2)}`,
    );
    expect(vsFloat).toBeGreaterThan(1e-4);
  });

  it('greedy translations equal greedy decoding with the reference arithmetic; beam 4 runs', async () => {
    const V = m.metadata.vocabSize;
    const g = m.metadata.generation;
    const ids = SENTENCES.slice(0, 4).map((s) => [...m.tokenizer.encode(s), 2]);
    const S = Math.max(...ids.map((s) => s.length));
    const src = new Int32Array(ids.length * S);
    ids.forEach((s, b) => src.set(s, b * S));
    const got = await onnxGreedy(m, src, ids.length, S, { beamSize: 1, lengthPenalty: g.lengthPenalty, maxLenA: g.maxLenA, maxLenB: g.maxLenB });
    const want = ids.map((s) => {
      const padded = [...s, ...Array<number>(S - s.length).fill(0)];
      const limit = Math.max(1, Math.min(Math.floor(g.maxLenA * s.length + g.maxLenB), m.metadata.maxPositions - 1));
      const out: number[] = [];
      while (out.length < limit) {
        const logits = referenceInt8Logits(config, V, params, padded, [1, ...out]);
        const last = logits.subarray(out.length * V, (out.length + 1) * V);
        let best = 0;
        for (let v = 1; v < V; v++) if (last[v]! > last[best]!) best = v;
        if (best === 2) break;
        out.push(best);
      }
      return out;
    });
    expect(got).toEqual(want);
    const beam = await onnxBeam(m, src, ids.length, S, { beamSize: 4, lengthPenalty: g.lengthPenalty, maxLenA: g.maxLenA, maxLenB: g.maxLenB });
    expect(beam).toHaveLength(ids.length);
  });
});
