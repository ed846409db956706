/**
 * End-to-end export tests on a tiny gated run folder written by the test: the exported toolkit folder
 * loads with loadModel and translates exactly like the masked model; the PyTorch safetensors file has a
 * valid header with tiling offsets, round-trips, and an independent numpy forward pass over it
 * (pytorch_reference.py, when python3 + numpy exist) gives the same logits; exports are idempotent and
 * compose; mask inputs (file, gates, descriptor, HF dicts) and bad inputs; the CLI handler.
 */
import * as tf from '@tensorflow/tfjs';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import { HeadsConfigSchema, type HeadsConfig } from '../config/schema.js';
import { crossFieldProblems } from '../config/load.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { HeadGates } from '../gates/head-gates.js';
import { createTransformer } from '../model/transformer.js';
import { translateSentences } from '../eval/translate.js';
import { loadModel } from '../io/load-model.js';
import { type NamedArrays, readCheckpoint, writeCheckpoint } from '../io/checkpoint.js';
import { disposeGates } from '../model/gate-tensors.js';
import { useTestBackend, maxAbsDiff } from '../test-utils/backend.js';
import { Rng } from '../util/random.js';
import { ConfigError, MaskError } from '../util/errors.js';
import { composeMasks, maskFromKeptSets, maskToHfPruneDict, readHeadMask, writeHeadMask, type HeadMask } from '../io/head-mask.js';
import { readSafetensors } from '../io/safetensors.js';
import { exportModel, formatExportSummary } from './export-model.js';
import { originalMaskShape } from '../config/head-layout.js';
import { deriveMaskFromGates, maskedGateTensors } from './prune-model.js';
import { fromPytorchTensors, pytorchNameOf } from './pytorch-format.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'heads-export-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SENTENCES = ['the cat sat on the mat .', 'a dog ran in the park', 'the bird sings', 'cats and dogs are friends .', 'on the mat sat a cat'];

function tinyConfig(gated: boolean): HeadsConfig {
  return {
    ...DEFAULT_CONFIG,
    name: 'tiny',
    seed: 3,
    model: { ...DEFAULT_CONFIG.model, encoderLayers: 2, decoderLayers: 2, heads: 4, dModel: 16, dFF: 32, maxPositions: 64 },
    gates: { ...DEFAULT_CONFIG.gates, attention: gated ? ['enc-self', 'dec-self', 'dec-enc'] : [] },
    eval: { ...DEFAULT_CONFIG.eval, beamSize: 3, maxLenA: 1, maxLenB: 4, batchSentences: 8 },
  };
}

/** A run folder as training writes it: tokenizer.json, config.json, checkpoints/step-N with gates. */
async function makeRun(name: string, gated: boolean): Promise<string> {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const tok = BpeTokenizer.learn(SENTENCES, { numMerges: 30 });
  tok.save(join(dir, 'tokenizer.json'));
  const config = tinyConfig(gated);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const model = createTransformer(config.model, tok.vocabSize, new Rng(1));
  const rng = new Rng(2);
  for (const [n, v] of model.params.vars)
    model.params.assign(
      n,
      v.shape,
      Float32Array.from({ length: v.size }, () => rng.normal() * 0.5 + (n.endsWith('.g') ? 1 : 0)),
    );
  const params: NamedArrays = await model.params.toArrays();
  if (gated) {
    const gates = new HeadGates(config.gates, model.shape, config.seed);
    for (const [n, v] of gates.variables) {
      // closed, open and fractional gates
      const la = Float32Array.from({ length: v.size }, (_, i) => [-20, 20, 1.2, -0.7, 0.4][(i + n.length) % 5]!);
      params[n] = { shape: v.shape.slice(), data: la };
    }
    gates.dispose();
  }
  const optimizer: NamedArrays = { 'm.enc.0.self.wq': { shape: [16, 16], data: new Float32Array(256) } };
  writeCheckpoint(dir, { step: 120, dataPosition: { epoch: 1, batch: 3 }, adamStep: 120, config, extra: {} }, params, optimizer, 3);
  model.dispose();
  return dir;
}

const MASK_KEPT = {
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

let gatedRun: string;
let plainRun: string;
const maskPath = join(root, 'mask.json');
let mask: HeadMask;
const SHAPE = originalMaskShape(tinyConfig(true).model);

beforeAll(async () => {
  await useTestBackend();
  gatedRun = await makeRun('gated', true);
  plainRun = await makeRun('plain', false);
  mask = maskFromKeptSets(MASK_KEPT, SHAPE, 'manual');
  writeHeadMask(maskPath, mask);
});

function fileBytes(path: string): Buffer {
  return readFileSync(path);
}

/** Translations of the loaded source model under the masked gates (what the export must reproduce). */
async function maskedTranslations(runPath: string, m: HeadMask, beamSize: number): Promise<string[]> {
  const src = loadModel(runPath);
  const g = maskedGateTensors(src.model, src.gates, m);
  const { outputs } = await translateSentences(src.model, src.tokenizer, SENTENCES, { ...src.config.eval, beamSize, gates: g });
  disposeGates(g);
  src.gates?.dispose();
  src.model.dispose();
  return outputs;
}

async function exportedTranslations(outDir: string, beamSize: number): Promise<string[]> {
  const ex = loadModel(outDir);
  expect(ex.gates).toBeNull();
  const { outputs } = await translateSentences(ex.model, ex.tokenizer, SENTENCES, { ...ex.config.eval, beamSize });
  ex.model.dispose();
  return outputs;
}

describe('exportModel: the toolkit folder', () => {
  let out: string;
  let summary: Awaited<ReturnType<typeof exportModel>>;
  beforeAll(async () => {
    out = join(root, 'out-mask');
    summary = await exportModel({ from: gatedRun, mask: readHeadMask(maskPath), maskName: maskPath, outDir: out });
  });

  it('writes a run-like folder, a safetensors folder, the mask and export.json', () => {
    for (const f of [
      'config.json',
      'tokenizer.json',
      'mask.json',
      'export.json',
      'checkpoints/latest.json',
      'checkpoints/step-0000120/model.safetensors',
      'checkpoints/step-0000120/optimizer.safetensors',
      'checkpoints/step-0000120/state.json',
      'safetensors/model.safetensors',
      'safetensors/config.json',
      'safetensors/tokenizer.json',
    ]) {
      expect(existsSync(join(out, f))).toBe(true);
    }
    expect(readHeadMask(join(out, 'mask.json')).stacks).toEqual(mask.stacks);
    const written = JSON.parse(readFileSync(join(out, 'export.json'), 'utf8')) as typeof summary;
    expect(written.parameters).toEqual(summary.parameters);
  });

  it('config.json is a valid config with the per-layer head lists and no gates', () => {
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as HeadsConfig;
    const source = JSON.parse(readFileSync(join(gatedRun, 'config.json'), 'utf8')) as HeadsConfig;
    // only the layout and the (folded) gates differ from the source run's config
    expect(cfg).toEqual({ ...source, model: { ...source.model, keptHeads: MASK_KEPT }, gates: { ...source.gates, attention: [] } });
    expect(HeadsConfigSchema.shape.model.parse(cfg.model)).toEqual(cfg.model);
    expect(crossFieldProblems(cfg, 'config.json')).toEqual([]);
    expect(cfg.model.keptHeads).toEqual(MASK_KEPT);
    expect(cfg.gates.attention).toEqual([]);
    const ck = readCheckpoint(join(out, 'checkpoints/step-0000120'));
    expect(ck.state.config.model.keptHeads).toEqual(MASK_KEPT);
    expect(ck.optimizer).toEqual({});
    expect(Object.keys(ck.params).some((k) => k.startsWith('gate.'))).toBe(false);
  });

  it('reports heads, parameters and file sizes before and after, and a passing self-check', () => {
    expect(summary.heads.original).toEqual({ 'enc-self': 8, 'dec-self': 8, 'dec-enc': 8 });
    expect(summary.heads.after).toEqual({ 'enc-self': 4, 'dec-self': 6, 'dec-enc': 5 });
    // 9 heads removed: 4 * dHead * d weights + 3 * dHead biases each
    expect(summary.parameters.before - summary.parameters.after).toBe(9 * (4 * 4 * 16 + 3 * 4));
    expect(summary.parameters.gateLogAlphas).toBe(24);
    expect(summary.files.heads!.modelBytes).toBeLessThan(summary.files.before.modelBytes);
    expect(summary.files.safetensors!.modelBytes).toBeLessThan(summary.files.before.modelBytes);
    expect(summary.verification!.maxAbsLogitDiff).toBeLessThan(1e-5);
    expect(summary.foldedGates.length).toBeGreaterThan(0);
    const text = formatExportSummary(summary);
    expect(text).toMatch(/enc-self +heads +4\/8 \| per layer: 3 1/);
    expect(text).toMatch(/parameters: .* -> .*\(-\d+\.\d%\)/);
    expect(text).toMatch(/check: max \|logit difference\| masked vs exported = /);
  });

  it('loads with loadModel and translates exactly like the masked gated model (greedy and beam)', async () => {
    for (const beam of [1, 3]) expect(await exportedTranslations(out, beam)).toEqual(await maskedTranslations(gatedRun, mask, beam));
  });
});

describe('exportModel: the PyTorch safetensors file', () => {
  let out: string;
  beforeAll(async () => {
    out = join(root, 'out-torch');
    await exportModel({ from: gatedRun, mask, outDir: out, formats: ['safetensors'] });
  });

  it('writes only the safetensors folder (plus mask.json and export.json) for --format safetensors', () => {
    expect(existsSync(join(out, 'checkpoints'))).toBe(false);
    expect(existsSync(join(out, 'config.json'))).toBe(false);
    expect(existsSync(join(out, 'safetensors/model.safetensors'))).toBe(true);
  });

  it('has an 8-byte length, a JSON header and offsets that tile the little-endian F32 data exactly', () => {
    const bytes = fileBytes(join(out, 'safetensors/model.safetensors'));
    const n = Number(bytes.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const entries = Object.entries(header).filter(([k]) => k !== '__metadata__');
    const spans = entries.map(([, v]) => v.data_offsets).sort((a, b) => a[0] - b[0]);
    let pos = 0;
    for (const [b, e] of spans) {
      expect(b).toBe(pos);
      pos = e;
    }
    expect(8 + n + pos).toBe(bytes.length);
    for (const [name, v] of entries) {
      expect(v.dtype).toBe('F32');
      expect(v.data_offsets[1] - v.data_offsets[0]).toBe(v.shape.reduce((a, x) => a * x, 1) * 4);
      // a value read by hand equals the parsed tensor's
      if (v.shape.reduce((a, x) => a * x, 1) > 0) {
        const parsed = readSafetensors(join(out, 'safetensors/model.safetensors')).tensors[name]!;
        expect(bytes.readFloatLE(8 + n + v.data_offsets[0])).toBe((parsed.data as Float32Array)[0]);
      }
    }
  });

  it('uses the documented names and torch.nn.Linear layout, and round-trips to the toolkit parameters', () => {
    const file = readSafetensors(join(out, 'safetensors/model.safetensors'));
    const t = file.tensors;
    expect(t['shared.weight']!.shape[1]).toBe(16);
    expect(t['encoder.layers.0.self_attn.q_proj.weight']!.shape).toEqual([3 * 4, 16]);
    expect(t['encoder.layers.1.self_attn.out_proj.weight']!.shape).toEqual([16, 1 * 4]);
    expect(t['encoder.layers.1.self_attn.out_proj.bias']!.shape).toEqual([16]);
    expect(t['decoder.layers.0.encoder_attn.k_proj.bias']!.shape).toEqual([2 * 4]);
    expect(t['decoder.layers.1.fc1.weight']!.shape).toEqual([32, 16]);
    expect(t['decoder.layer_norm.weight']!.shape).toEqual([16]);
    expect(file.metadata.format).toBe('heads.pytorch-export');
    // the exported toolkit checkpoint of the same mask holds the same numbers, transposed where documented
    const ck = readCheckpoint(join(root, 'out-mask', 'checkpoints/step-0000120'));
    const back = fromPytorchTensors(file.tensors, ck.params);
    for (const [name, v] of Object.entries(ck.params)) {
      expect(back[name]!.shape).toEqual(v.shape);
      expect(maxAbsDiff(back[name]!.data, v.data)).toBe(0);
    }
    expect(pytorchNameOf('dec.1.cross.wo')).toEqual({ name: 'decoder.layers.1.encoder_attn.out_proj.weight', isTransposed: true });
  });

  it('config.json carries the head lists, the HF pruned_heads dicts and the tied embedding', () => {
    const c = JSON.parse(readFileSync(join(out, 'safetensors/config.json'), 'utf8')) as Record<string, unknown>;
    expect(c.heads_per_layer).toEqual({ 'enc-self': [3, 1], 'dec-self': [4, 2], 'dec-enc': [2, 3] });
    expect(c.kept_heads).toEqual(MASK_KEPT);
    expect(c.pruned_heads).toEqual({ 'enc-self': { '0': [1], '1': [0, 2, 3] }, 'dec-self': { '1': [0, 1] }, 'dec-enc': { '0': [0, 2], '1': [3] } });
    expect(c.pruned_heads).toEqual(maskToHfPruneDict(mask));
    expect(c.tie_word_embeddings).toBe(true);
    expect(c.head_dim).toBe(4);
    expect(c.embed_scale).toBe(4);
  });

  const python = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
  (python ? it : it.skip)('an independent numpy forward pass over the files gives the toolkit logits (pytorch_reference.py)', () => {
    const src = [
      [5, 9, 12, 7, 2],
      [8, 6, 2, 0, 0],
    ];
    const tgtIn = [
      [1, 10, 4, 11],
      [1, 13, 3, 0],
    ];
    const idsPath = join(root, 'ids.json');
    writeFileSync(idsPath, JSON.stringify({ src, tgt_in: tgtIn }));
    const res = JSON.parse(execFileSync('python3', [join(here, 'pytorch_reference.py'), join(out, 'safetensors'), idsPath], { encoding: 'utf8' })) as {
      shape: number[];
      logits: number[];
    };
    const ex = loadModel(join(root, 'out-mask'));
    const ours = tf.tidy(
      () => ex.model.forward(tf.tensor2d(src, undefined, 'int32'), tf.tensor2d(tgtIn, undefined, 'int32'), { isTraining: false }).dataSync() as Float32Array,
    );
    ex.model.dispose();
    expect(res.shape).toEqual([8, ex.tokenizer.vocabSize]);
    // padded target positions are garbage in both; compare the real ones
    const V = ex.tokenizer.vocabSize;
    for (const row of [0, 1, 2, 3, 4, 5, 6])
      expect(maxAbsDiff(res.logits.slice(row * V, (row + 1) * V), ours.slice(row * V, (row + 1) * V))).toBeLessThan(1e-4);
  });
});

describe('exportModel: masks from the gates, descriptors and HF dicts; idempotence and composition', () => {
  it("--mask gates: the paper's rule, fractional gates folded, translations equal the gated model's", async () => {
    const out = join(root, 'out-gates');
    const s = await exportModel({ from: gatedRun, mask: 'gates', outDir: out });
    expect(s.mask.source).toBe('gates');
    expect(s.fractionalGates.some((g) => g.isKept)).toBe(true);
    expect(s.fractionalGates.some((g) => !g.isKept)).toBe(true);
    expect(s.foldedGates.every((g) => g.gate > 0 && g.gate < 1)).toBe(true);
    const src = loadModel(gatedRun);
    const derived = deriveMaskFromGates(src.gates!, src.config.model).mask;
    src.gates!.dispose();
    src.model.dispose();
    expect(readHeadMask(join(out, 'mask.json')).stacks).toEqual(derived.stacks);
    expect(await exportedTranslations(out, 3)).toEqual(await maskedTranslations(gatedRun, derived, 3));
  });

  it('--no-fold-gates: kept heads at gate 1, the binary-gate model', async () => {
    const out = join(root, 'out-binary');
    const s = await exportModel({ from: gatedRun, mask: 'gates', outDir: out, foldGates: false });
    expect(s.foldedGates).toEqual([]);
    expect(s.verification!.maxAbsLogitDiff).toBeLessThan(1e-5);
    const src = loadModel(gatedRun);
    const binary = src.gates!.binaryGates(src.gates!.keptPositions());
    const { outputs } = await translateSentences(src.model, src.tokenizer, SENTENCES, { ...src.config.eval, gates: binary });
    disposeGates(binary);
    src.gates!.dispose();
    src.model.dispose();
    expect(await exportedTranslations(out, 3)).toEqual(outputs);
  });

  it('exporting twice gives byte-identical tensors, and re-applying the mask to the export changes nothing', async () => {
    const a = join(root, 'idem-a');
    const b = join(root, 'idem-b');
    const c = join(root, 'idem-c');
    await exportModel({ from: gatedRun, mask, outDir: a });
    await exportModel({ from: gatedRun, mask, outDir: b });
    await exportModel({ from: a, mask, outDir: c });
    for (const f of ['checkpoints/step-0000120/model.safetensors', 'safetensors/model.safetensors']) {
      expect(fileBytes(join(b, f)).equals(fileBytes(join(a, f)))).toBe(true);
      expect(fileBytes(join(c, f)).equals(fileBytes(join(a, f)))).toBe(true);
    }
  });

  it('pruning an exported model again equals exporting once with the composed mask', async () => {
    const m2 = maskFromKeptSets(
      {
        'enc-self': [
          [0, 1],
          [1, 2],
        ],
        'dec-enc': [[1, 2, 3], [0]],
      },
      SHAPE,
      'step 2',
    );
    const first = join(root, 'chain-1');
    const second = join(root, 'chain-2');
    const once = join(root, 'chain-once');
    await exportModel({ from: gatedRun, mask, outDir: first });
    const s2 = await exportModel({ from: first, mask: m2, outDir: second });
    await exportModel({ from: gatedRun, mask: composeMasks(mask, m2), outDir: once });
    expect(
      fileBytes(join(second, 'checkpoints/step-0000120/model.safetensors')).equals(fileBytes(join(once, 'checkpoints/step-0000120/model.safetensors'))),
    ).toBe(true);
    expect(s2.heads.before).toEqual({ 'enc-self': 4, 'dec-self': 6, 'dec-enc': 5 });
    expect(s2.heads.keptPerLayer['enc-self']).toEqual([[0], [1]]);
    expect(s2.notes.join(' ')).toMatch(/already pruned/);
    expect(await exportedTranslations(second, 3)).toEqual(await maskedTranslations(gatedRun, composeMasks(mask, m2), 3));
  });

  it('a descriptor and HF dicts (also a config holding pruned_heads) give the same model as the mask file', async () => {
    const ref = fileBytes(join(root, 'out-mask', 'checkpoints/step-0000120/model.safetensors'));
    const d = join(root, 'out-desc');
    await exportModel({ from: gatedRun, mask: { kind: 'descriptor', text: 'E:1:2 E:2:1,3,4 D:2:1,2 A:1:1,3 A:2:4' }, outDir: d });
    expect(fileBytes(join(d, 'checkpoints/step-0000120/model.safetensors')).equals(ref)).toBe(true);
    const h = join(root, 'out-hf');
    await exportModel({ from: gatedRun, mask: { kind: 'hf-prune-dict', value: maskToHfPruneDict(mask), sourceName: 'hf.json' }, outDir: h });
    expect(fileBytes(join(h, 'checkpoints/step-0000120/model.safetensors')).equals(ref)).toBe(true);
    const cfgPath = join(root, 'out-mask', 'safetensors/config.json');
    const h2 = join(root, 'out-hf-config');
    await exportModel({ from: gatedRun, mask: { kind: 'hf-prune-dict', value: JSON.parse(readFileSync(cfgPath, 'utf8')), sourceName: cfgPath }, outDir: h2 });
    expect(fileBytes(join(h2, 'checkpoints/step-0000120/model.safetensors')).equals(ref)).toBe(true);
  });

  it('an ungated model exports with a mask (no folding) and equals the 0/1-masked model', async () => {
    const out = join(root, 'out-plain');
    const s = await exportModel({ from: plainRun, mask, outDir: out });
    expect(s.foldedGates).toEqual([]);
    expect(s.parameters.gateLogAlphas).toBe(0);
    expect(s.verification!.maxAbsLogitDiff).toBeLessThan(1e-5);
    expect(await exportedTranslations(out, 3)).toEqual(await maskedTranslations(plainRun, mask, 3));
  });
});

describe('exportModel: bad inputs give one clear error', () => {
  const wrongLayers: HeadMask = {
    format: 'heads.head-mask',
    version: 1,
    source: 'x',
    stacks: { 'dec-self': { layers: [{ kept: [0, 1, 2, 3], removed: [] }] } },
  };
  const outOfRange: HeadMask = {
    format: 'heads.head-mask',
    version: 1,
    source: 'x',
    stacks: {
      'enc-self': {
        layers: [
          { kept: [0, 1, 2, 3], removed: [] },
          { kept: [0, 1, 2], removed: [3, 4] },
        ],
      },
    },
  };
  const cases: Array<[string, () => Parameters<typeof exportModel>[0], typeof MaskError | typeof ConfigError, RegExp]> = [
    ['--mask gates on an ungated model', () => ({ from: plainRun, mask: 'gates' }), MaskError, /--mask gates: .*has no gates/],
    [
      'wrong layer count, named by the mask file',
      () => ({ from: gatedRun, mask: wrongLayers, maskName: 'masks/m.json' }),
      MaskError,
      /^masks\/m\.json: stacks\.dec-self\.layers: the mask has 1 layers, the model has 2$/,
    ],
    [
      'head id out of range',
      () => ({ from: gatedRun, mask: outOfRange, maskName: 'm.json' }),
      MaskError,
      /m\.json: stacks\.enc-self\.layers\[1\]: head 4 out of range 0\.\.3/,
    ],
    [
      'descriptor layer out of range',
      () => ({ from: gatedRun, mask: { kind: 'descriptor', text: 'D:3:1' } }),
      MaskError,
      /"D:3:1": layer 3 out of range 1\.\.2 \(dec-self, 1-based\)/,
    ],
    [
      'HF dict with a bad layer key',
      () => ({ from: gatedRun, mask: { kind: 'hf-prune-dict', value: { 'enc-self': { '5': [0] } }, sourceName: 'hf.json' } }),
      MaskError,
      /hf\.json: enc-self\["5"\]: layer 5 out of range 0\.\.1/,
    ],
    [
      'HF dict with an unknown attention type',
      () => ({ from: gatedRun, mask: { kind: 'hf-prune-dict', value: { encoder: { '0': [0] } }, sourceName: 'hf.json' } }),
      MaskError,
      /hf\.json: encoder: unknown attention type/,
    ],
    [
      'unknown format',
      () => ({ from: gatedRun, mask, formats: ['tflite' as 'heads'] }),
      ConfigError,
      /--format: expected some of heads, safetensors, onnx, got \["tflite"\]/,
    ],
  ];
  it.each(cases)('%s', async (_name, opts, type, message) => {
    const outDir = join(root, `bad-${Math.random().toString(36).slice(2)}`);
    await expect(exportModel({ ...opts(), outDir })).rejects.toThrow(type);
    await expect(exportModel({ ...opts(), outDir })).rejects.toThrow(message);
    expect(existsSync(outDir)).toBe(false); // nothing left behind
  });

  it('refuses a non-empty output folder before loading anything', async () => {
    await expect(exportModel({ from: gatedRun, mask, outDir: join(root, 'out-mask') })).rejects.toThrow(/folder exists and is not empty/);
  });

  it('leaks no tensors beyond what loadModel itself leaves behind', async () => {
    await exportModel({ from: gatedRun, mask, outDir: join(root, 'leak-1') });
    // loadModel leaves the initial tensors of tf.variable(...) and gate assign(...) registered
    // (model/params.ts, io/load-model.ts): measured here, so only the exporter's own tensors count
    const n0 = tf.memory().numTensors;
    const l = loadModel(gatedRun);
    l.gates?.dispose();
    l.model.dispose();
    const loadLeak = tf.memory().numTensors - n0;
    const before = tf.memory().numTensors;
    await exportModel({ from: gatedRun, mask: 'gates', outDir: join(root, 'leak-2') });
    expect(tf.memory().numTensors - before).toBe(loadLeak);
  });
});

describe('exportModel as `heads export` calls it', () => {
  it('exports into a folder and summarises the heads kept', async () => {
    const outDir = join(root, 'lib-export');
    const summary = await exportModel({ from: gatedRun, mask: readHeadMask(maskPath), outDir });
    const printed = formatExportSummary(summary);
    expect(printed.split('\n')[0]).toBe(`exported ${outDir}`);
    expect(printed).toMatch(/dec-enc +heads +5\/8/);
    for (const f of ['config.json', 'export.json', 'safetensors/model.safetensors'])
      expect({ f, exists: existsSync(join(outDir, f)) }).toEqual({ f, exists: true });
  });

  it('a descriptor that does not fit the model is a MaskError naming the head and the range', async () => {
    const outDir = join(root, 'lib-bad-descriptor');
    const run = exportModel({ from: gatedRun, mask: { kind: 'descriptor', text: 'E:1:9' }, outDir });
    await expect(run).rejects.toThrow(MaskError);
    await expect(exportModel({ from: gatedRun, mask: { kind: 'descriptor', text: 'E:1:9' }, outDir })).rejects.toThrow(
      /"E:1:9": head 9 out of range 1\.\.4 \(1-based\)$/,
    );
  });
});
