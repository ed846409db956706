/**
 * Int8 weight quantization: every weight within half a quantization step of its channel; the quantized
 * safetensors file has a valid header (I8 matrices + F32 scales tiling the buffer) and round-trips; a
 * tiny model's logits barely move; `exportModel` with --int8 / --ffn-prune / --magnitude-sparsity writes a
 * folder that loadModel and translation read; the CLI refuses bad flag values naming the flag.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import type { HeadsConfig, ModelConfig } from '../config/schema.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { translateSentences } from '../eval/translate.js';
import { createTransformer } from '../model/transformer.js';
import { type NamedArrays, readCheckpoint, writeCheckpoint } from '../io/checkpoint.js';
import { loadModel } from '../io/load-model.js';
import { useTestBackend } from '../test-utils/backend.js';
import { Rng } from '../util/random.js';
import { exportModel, formatExportSummary } from '../export/export-model.js';
import { createTransformerFromArrays } from '../export/prune-model.js';
import { dequantizeInt8, quantizeInt8 } from './quantize.js';
import { dequantizeTensors, quantizeTensors } from '../io/quantized-tensors.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';

const root = mkdtempSync(join(tmpdir(), 'heads-quantize-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeAll(async () => {
  await useTestBackend();
});

const MODEL: ModelConfig = { ...DEFAULT_CONFIG.model, encoderLayers: 2, decoderLayers: 2, heads: 4, dModel: 16, dFF: 32, dropout: 0, maxPositions: 64 };

async function tinyParams(vocab: number, seed: number): Promise<NamedArrays> {
  const m = createTransformer(MODEL, vocab, new Rng(seed));
  const rng = new Rng(seed + 1);
  for (const [n, v] of m.params.vars)
    m.params.assign(
      n,
      v.shape,
      Float32Array.from({ length: v.size }, () => rng.normal() * 0.3 + (n.endsWith('.g') ? 1 : 0)),
    );
  const p = await m.params.toArrays();
  m.dispose();
  return p;
}

describe('per-channel int8', () => {
  it.each([0, 1] as const)('axis %p: |w - deq(q(w))| <= scale/2 for every weight of its channel; q in [-127, 127]', (axis) => {
    const rng = new Rng(3);
    const shape = [9, 7];
    // channels of very different ranges, one all-zero channel
    const data = Float32Array.from({ length: 63 }, (_, i) => ((axis === 0 ? Math.floor(i / 7) : i % 7) === 2 ? 0 : rng.normal() * 10 ** ((i % 5) - 2)));
    const { q, scale, scaleShape } = quantizeInt8(data, shape, axis);
    expect(scaleShape).toEqual(axis === 0 ? [9, 1] : [1, 7]);
    expect(scale[2]).toBe(0);
    const deq = dequantizeInt8(q, shape, scale, scaleShape);
    for (let i = 0; i < data.length; i++) {
      const s = scale[axis === 0 ? Math.floor(i / 7) : i % 7]!;
      expect(Math.abs(q[i]!)).toBeLessThanOrEqual(127);
      // exact product q·s (in double) against the bound
      expect(Math.abs(data[i]! - q[i]! * s)).toBeLessThanOrEqual(s / 2);
      // the float32 dequantized value, allowing its own float32 rounding
      expect(Math.abs(data[i]! - deq[i]!)).toBeLessThanOrEqual(s / 2 + Math.abs(deq[i]!) * 2 ** -24);
    }
    // the largest |w| of each channel maps to ±127
    for (let c = 0; c < (axis === 0 ? 9 : 7); c++)
      if (scale[c]! > 0)
        expect(
          Math.max(
            ...Array.from(q)
              .filter((_, i) => (axis === 0 ? Math.floor(i / 7) : i % 7) === c)
              .map(Math.abs),
          ),
        ).toBe(127);
  });

  it('the quantized safetensors file has a valid header and round-trips', async () => {
    const params = await tinyParams(23, 1);
    const { tensors, report } = quantizeTensors(params, 'heads');
    const path = join(root, 'q.safetensors');
    writeSafetensors(path, tensors, { quantization: 'int8' });
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const { __metadata__: meta, ...entries } = header as Record<string, never>;
    expect(meta).toEqual({ quantization: 'int8' });
    const spans = Object.values(entries as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>).sort(
      (a, b) => a.data_offsets[0] - b.data_offsets[0],
    );
    let at = 0;
    for (const s of spans) {
      expect(s.data_offsets[0]).toBe(at);
      expect(s.data_offsets[1] - s.data_offsets[0]).toBe(s.shape.reduce((a, b) => a * b, 1) * (s.dtype === 'I8' ? 1 : 4));
      at = s.data_offsets[1];
    }
    expect(8 + n + at).toBe(bytes.length);
    const h = header as Record<string, { dtype: string; shape: number[] }>;
    expect(h['enc.0.ffn.w1']).toMatchObject({ dtype: 'I8', shape: [16, 32] });
    expect(h['enc.0.ffn.w1.scale']).toMatchObject({ dtype: 'F32', shape: [1, 32] });
    expect(h['emb.shared.scale']).toMatchObject({ dtype: 'F32', shape: [23, 1] });
    expect(h['enc.0.ffn.b1']).toMatchObject({ dtype: 'F32', shape: [32] });
    expect(h['enc.0.ln1.g']!.dtype).toBe('F32');
    // read back: identical tensors, and dequantized weights within half a step
    const back = readSafetensors(path);
    for (const [name, t] of Object.entries(tensors)) expect(back.tensors[name]!.data).toEqual(t.data);
    const deq = dequantizeTensors(back.tensors, path);
    expect(Object.keys(deq).sort()).toEqual(Object.keys(params).sort());
    expect(report.maxErrorInScales).toBeLessThanOrEqual(0.5 + 1e-6);
    expect(report.tensors).toBe(Object.values(params).filter((t) => t.shape.length === 2).length);
    expect(report.payloadBytesAfter).toBe(report.int8Parameters + 4 * (report.scales + report.float32Parameters));
    expect(report.payloadBytesAfter).toBeLessThan(report.payloadBytesBefore / 2); // d = 16: scales and vectors weigh a lot
    // a missing scale is refused naming the tensor
    const { ['enc.0.ffn.w1.scale']: _gone, ...broken } = back.tensors;
    expect(() => dequantizeTensors(broken, 'x.safetensors')).toThrow(/x.safetensors: tensor enc.0.ffn.w1 is I8 but has no scale tensor/);
  });

  it("a tiny model's logits move by less than 2% of their spread (max |diff| < 0.02 · (max - min))", async () => {
    const V = 23;
    const params = await tinyParams(V, 4);
    const float = createTransformerFromArrays(MODEL, V, params);
    const quant = createTransformerFromArrays(MODEL, V, dequantizeTensors(quantizeTensors(params, 'heads').tensors, 'q'));
    const rng = new Rng(7);
    const ids = (k: number) => Int32Array.from({ length: k }, () => 3 + rng.int(V - 3));
    const [a, b] = tf.tidy(() => {
      const src = tf.tensor2d(ids(4 * 9), [4, 9], 'int32');
      const tgt = tf.tensor2d(ids(4 * 6), [4, 6], 'int32');
      return [
        float.forward(src, tgt, { isTraining: false }).dataSync() as Float32Array,
        quant.forward(src, tgt, { isTraining: false }).dataSync() as Float32Array,
      ].map((x) => Float32Array.from(x));
    }) as [Float32Array, Float32Array];
    float.dispose();
    quant.dispose();
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    const spread = Math.max(...a) - Math.min(...a);
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(0.02 * spread);
  });
});

describe('exportModel with weight compression', () => {
  const SENTENCES = ['the cat sat on the mat .', 'a dog ran in the park', 'the bird sings', 'cats and dogs are friends .'];
  let run: string;
  beforeAll(async () => {
    run = join(root, 'run');
    mkdirSync(run, { recursive: true });
    const tok = BpeTokenizer.learn(SENTENCES, { numMerges: 20 });
    tok.save(join(run, 'tokenizer.json'));
    const config: HeadsConfig = {
      ...DEFAULT_CONFIG,
      name: 'tiny',
      model: { ...DEFAULT_CONFIG.model, ...MODEL, keptHeads: null, ffnWidths: null },
      eval: { ...DEFAULT_CONFIG.eval, beamSize: 2, maxLenA: 1, maxLenB: 3 },
    };
    writeFileSync(join(run, 'config.json'), JSON.stringify(config));
    writeCheckpoint(run, { step: 10, dataPosition: { epoch: 0, batch: 0 }, adamStep: 10, config, extra: {} }, await tinyParams(tok.vocabSize, 2), {}, 1);
  });

  it('--ffn-prune + --magnitude-sparsity + --int8: smaller files, loads and translates, reports the numbers', async () => {
    const out = join(root, 'out-all');
    const s = await exportModel({ from: run, mask: 'none', outDir: out, ffn: { fraction: 0.25 }, magnitude: { sparsity: 0.5 }, int8: true });
    const c = s.compression!;
    expect(s.verification!.maxAbsLogitDiff).toBeLessThan(1e-5); // FFN-masked model vs shrunk model
    expect(c.ffn!.widthsAfter).toEqual({ encoder: [24, 24], decoder: [24, 24] });
    expect(c.magnitude!.zeroed).toBe(Math.round(0.5 * c.magnitude!.prunable));
    expect(c.int8!.maxAbsLogitDiff).not.toBeNull();
    // at d = 16 the JSON header, scales and vectors are a large share; large models approach 1/4
    expect(s.files.heads!.modelBytes).toBeLessThan(s.files.before.modelBytes * 0.6);
    expect(s.files.safetensors!.modelBytes).toBeLessThan(s.files.before.modelBytes * 0.6);
    expect(s.parameters.after).toBeLessThan(s.parameters.before);
    expect(c.nonZeroParameters).toBeLessThan(s.parameters.after);
    expect(formatExportSummary(s)).toMatch(/int8: .* tensor bytes .* -> /);
    // the toolkit checkpoint holds I8 + scales and loads dequantized
    const ck = readCheckpoint(join(out, 'checkpoints', 'step-0000010'));
    expect(ck.state.config.model.ffnWidths).toEqual({ encoder: [24, 24], decoder: [24, 24] });
    expect(readSafetensors(join(ck.path, 'model.safetensors')).tensors['enc.0.ffn.w1']!.dtype).toBe('I8');
    const loaded = loadModel(out);
    const { outputs } = await translateSentences(loaded.model, loaded.tokenizer, SENTENCES, { ...loaded.config.eval });
    expect(outputs).toHaveLength(SENTENCES.length);
    loaded.model.dispose();
    // the PyTorch file: I8 weights with [out, 1] `_scale`s, float biases; config records widths and the scheme
    const torch = readSafetensors(join(out, 'safetensors', 'model.safetensors'));
    expect(torch.tensors['encoder.layers.0.fc1.weight']).toMatchObject({ dtype: 'I8', shape: [24, 16] });
    expect(torch.tensors['encoder.layers.0.fc1.weight_scale']).toMatchObject({ dtype: 'F32', shape: [24, 1] });
    expect(torch.tensors['encoder.layers.0.fc1.bias']!.dtype).toBe('F32');
    const torchConfig = JSON.parse(readFileSync(join(out, 'safetensors', 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(torchConfig.ffn_widths).toEqual({ encoder: [24, 24], decoder: [24, 24] });
    expect(torchConfig.quantization).toMatchObject({ method: 'int8-weight-only' });
  });

  it('--int8 alone: dequantized checkpoint weights are within half a step of the float ones', async () => {
    const out = join(root, 'out-int8');
    const s = await exportModel({ from: run, mask: 'none', outDir: out, int8: true, formats: ['heads'] });
    expect(s.compression!.int8!.maxErrorInScales).toBeLessThanOrEqual(0.5 + 1e-6);
    const before = readCheckpoint(join(run, 'checkpoints', 'step-0000010')).params;
    const after = readCheckpoint(join(out, 'checkpoints', 'step-0000010')).params;
    for (const [n, t] of Object.entries(before)) {
      if (t.shape.length !== 2) expect(after[n]!.data).toEqual(t.data);
      else {
        let m = 0;
        for (let i = 0; i < t.data.length; i++) m = Math.max(m, Math.abs(t.data[i]!));
        for (let i = 0; i < t.data.length; i++) expect(Math.abs(t.data[i]! - after[n]!.data[i]!)).toBeLessThanOrEqual(m / 127 / 2 + 1e-6);
      }
    }
  });
});
