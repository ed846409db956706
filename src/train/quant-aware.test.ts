/**
 * Quantization-aware training: the training forward sees exactly the int8 export's dequantized matrices,
 * gradients reach every matrix (straight-through), losses stay finite, the 2-worker path fake-quantizes
 * too, evaluation stays float32, `quantAware: false` changes nothing, and bad values name the key.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../config/load.js';
import { Transformer, createTransformer } from '../model/transformer.js';
import { ParamStore } from '../model/params.js';
import { Rng } from '../util/random.js';
import { makeBatch } from '../data/batches.js';
import { maxAbsDiff, useTestBackend } from '../test-utils/backend.js';
import { channelAxisOf, dequantizeInt8, isQuantizable, quantizeInt8 } from '../compress/quantize.js';
import { ConfigError } from '../util/errors.js';
import { Trainer } from './trainer.js';
import { ProgressLine } from './progress.js';
import { quantAwareWeights } from './quant-aware.js';

import { reversePairs } from '../test-utils/pairs.js';

const V = 24;

const TINY = [
  'model.dModel=16',
  'model.dFF=32',
  'model.heads=2',
  'model.encoderLayers=1',
  'model.decoderLayers=1',
  'model.dropout=0.1',
  'train.maxTokensPerBatch=300',
  'train.evalEverySteps=0',
  'train.logEverySteps=100',
  'train.peakLr=3e-3',
  'train.warmupSteps=3',
  'train.workers=1',
];
const quiet = () => new ProgressLine(process.stderr, true);

beforeAll(() => useTestBackend());
afterAll(() => expect(tf.memory().numTensors).toBeLessThan(10));

async function trainRun(extra: string[], steps: number) {
  const cfg = loadConfig(null, [...TINY, `train.maxSteps=${steps}`, ...extra]);
  const model = createTransformer(cfg.model, V, new Rng(3));
  const before = await model.params.toArrays();
  const t = new Trainer({ config: cfg, model, train: reversePairs(300, 1), valid: reversePairs(10, 2), run: null, progress: quiet() });
  for (let i = 0; i < steps; i++) await t.trainStep();
  await t.syncModel();
  const out = { losses: t.history.map((h) => h.loss), before, after: await model.params.toArrays(), workerCount: t.workerCount };
  t.dispose();
  model.dispose();
  return out;
}

describe('quantization-aware training (train.quantAware)', () => {
  it('the training forward sees every matrix as the int8 export stores it, and nothing else changes', async () => {
    const cfg = loadConfig(null, [...TINY, 'model.dropout=0', 'model.tieEmbeddings=false']);
    const model = createTransformer(cfg.model, V, new Rng(5));
    const view = quantAwareWeights({ bits: 8 })!;
    // each weight's view against compress/quantize.ts: equal but for float32-vs-float64 scale rounding, which
    // can move an element sitting on a rounding boundary by one step (fake-quant.ts's header)
    const store = new ParamStore();
    let matrices = 0;
    for (const [name, v] of model.params.vars) {
      const w = v.dataSync() as Float32Array;
      const seen = tf.tidy(() => view(name, v).dataSync() as Float32Array);
      store.add(name, v.shape, seen);
      if (!isQuantizable(name, v.shape)) {
        expect(Array.from(seen)).toEqual(Array.from(w));
        continue;
      }
      matrices++;
      const q = quantizeInt8(w, v.shape, channelAxisOf(name, 'heads'));
      const ref = dequantizeInt8(q.q, v.shape, q.scale, q.scaleShape);
      const maxScale = Math.max(...q.scale);
      let offByOneStep = 0;
      for (let i = 0; i < w.length; i++) {
        const e = Math.abs(seen[i]! - ref[i]!);
        if (e > 1e-6) {
          expect(e).toBeLessThanOrEqual(maxScale * 1.001);
          offByOneStep++;
        }
      }
      expect(offByOneStep).toBeLessThanOrEqual(Math.ceil(w.length / 100));
      expect(maxAbsDiff(seen, w)).toBeGreaterThan(0); // it is quantized
    }
    expect(matrices).toBe(3 + 12 + 4); // emb.src, emb.tgt, out.proj, attention, FFN
    // the forward uses the view for every weight: the same logits as a model holding the viewed weights
    const viewed = new Transformer(cfg.model, V, store);
    const b = makeBatch(reversePairs(6, 9), [0, 1, 2, 3, 4, 5]);
    const [qat, direct, float, qatEval] = tf.tidy(() => {
      const src = tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32');
      const tgtIn = tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32');
      return [
        model.forward(src, tgtIn, { isTraining: true, seed: 1, weightView: view }).dataSync(),
        viewed.forward(src, tgtIn, { isTraining: true, seed: 1 }).dataSync(),
        model.forward(src, tgtIn, { isTraining: true, seed: 1 }).dataSync(),
        model.forward(src, tgtIn, { isTraining: false, weightView: view }).dataSync(),
      ];
    });
    expect(maxAbsDiff(qat, direct)).toBeLessThan(1e-5);
    expect(maxAbsDiff(qatEval, direct)).toBeLessThan(1e-5); // an eval-mode forward may take the view too
    expect(maxAbsDiff(qat, float)).toBeGreaterThan(1e-4); // and it is not the float model
    const n = tf.memory().numTensors;
    tf.tidy(() =>
      model
        .forward(tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32'), tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32'), {
          isTraining: false,
          weightView: view,
        })
        .dispose(),
    );
    expect(tf.memory().numTensors).toBe(n);
    model.dispose();
    viewed.dispose();
  });

  it('trains: finite losses, every matrix changes, losses differ from float training; off changes nothing', async () => {
    const qat = await trainRun(['train.quantAware={bits: 8}'], 6);
    expect(qat.losses.every(Number.isFinite)).toBe(true);
    for (const [name, a] of Object.entries(qat.before)) {
      if (a.shape.length !== 2) continue;
      expect([name, a.data.some((x, i) => x !== qat.after[name]!.data[i])]).toEqual([name, true]);
    }
    const plain = await trainRun([], 6);
    const off = await trainRun(['train.quantAware=false'], 6);
    expect(off.losses).toEqual(plain.losses); // bit-identical
    expect(qat.losses[0]).not.toBe(plain.losses[0]);
    expect(Math.abs(qat.losses[0]! - plain.losses[0]!)).toBeLessThan(0.05 * plain.losses[0]!); // a small perturbation
  });

  it('fake-quantizes on the workers too (2 workers = in-process)', async () => {
    const steps = ['train.accumulateSteps=2'];
    const a = await trainRun([...steps, 'train.quantAware={bits: 8}'], 4);
    const b = await trainRun([...steps, 'train.quantAware={bits: 8}', 'train.workers=2'], 4);
    const plain = await trainRun([...steps, 'train.workers=2'], 4);
    expect([a.workerCount, b.workerCount]).toEqual([1, 2]);
    for (let i = 0; i < 4; i++) expect(Math.abs(b.losses[i]! - a.losses[i]!)).toBeLessThan(1e-5 * a.losses[i]!);
    expect(plain.losses[0]).not.toBe(b.losses[0]);
  });

  it('evaluation stays float32: the dev loss does not depend on train.quantAware', async () => {
    const devLoss = async (extra: string[]) => {
      const cfg = loadConfig(null, [...TINY, 'train.devBleuSentences=0', ...extra]);
      const model = createTransformer(cfg.model, V, new Rng(4));
      const t = new Trainer({ config: cfg, model, train: reversePairs(20, 1), valid: reversePairs(20, 2), run: null, progress: quiet() });
      const r = await t.evaluate(false);
      t.dispose();
      model.dispose();
      return r.devLoss;
    };
    expect(await devLoss(['train.quantAware={bits: 8}'])).toBe(await devLoss([]));
  });

  it('keeps the tensor count constant over QAT steps', async () => {
    const cfg = loadConfig(null, [...TINY, 'train.maxSteps=20', 'train.quantAware={bits: 8}']);
    const model = createTransformer(cfg.model, V, new Rng(1));
    const t = new Trainer({ config: cfg, model, train: reversePairs(100, 7), valid: reversePairs(5, 8), run: null, progress: quiet() });
    for (let i = 0; i < 2; i++) await t.trainStep();
    const n = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) await t.trainStep();
    expect(tf.memory().numTensors).toBe(n);
    t.dispose();
    model.dispose();
  });

  it.each([
    ['train.quantAware=true', /train\.quantAware: expected false or \{ bits: 8 \}, got true/],
    ['train.quantAware={bits: 4}', /train\.quantAware(\.bits)?: expected (8|false or \{ bits: 8 \})/],
    ['train.quantAware={bits: 8, perTensor: true}', /train\.quantAware\.perTensor: unknown key; expected one of: bits/],
  ])('%s is refused naming the key', (set, want) => {
    let msg = '';
    try {
      loadConfig(null, [set]);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      msg = (e as Error).message;
    }
    expect(msg).toMatch(want);
  });
});
