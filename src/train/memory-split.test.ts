/**
 * The memory splitter: row chunks give the same gradient as the whole micro-batch (dropout off, per-
 * sentence gate noise sliced by rows), the trainer splits what exceeds the heap budget and trains the
 * same, the estimate grows with the batch, and a wasm heap failure is reported as out of memory.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../config/load.js';
import { createTransformer } from '../model/transformer.js';
import { HeadGates } from '../gates/head-gates.js';
import { Rng } from '../util/random.js';
import { OutOfMemoryError } from '../util/errors.js';
import { type EncodedPair, makeBatch } from '../data/batches.js';
import { useTestBackend } from '../test-utils/backend.js';
import { chunkRowsFor, estimateStepBytes, guardWasmHeap, sliceBatchRows } from './memory-split.js';
import { microBatchGradients } from './workers/micro-batch.js';
import { Trainer } from './trainer.js';
import { ProgressLine } from './progress.js';

const V = 30;
function pairs(n: number, seed: number): EncodedPair[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, (_, index) => ({
    src: Array.from({ length: 2 + r.int(9) }, () => 4 + r.int(V - 4)),
    tgt: Array.from({ length: 2 + r.int(9) }, () => 4 + r.int(V - 4)),
    index,
  }));
}
const TINY = [
  'model.dModel=32',
  'model.dFF=64',
  'model.heads=2',
  'model.encoderLayers=2',
  'model.decoderLayers=2',
  'model.dropout=0',
  'train.evalEverySteps=0',
  'train.logEverySteps=100',
];

beforeAll(() => useTestBackend());

describe('memory splitter', () => {
  it('row chunks give the same gradient and loss as the whole micro-batch', async () => {
    const cfg = loadConfig(null, [...TINY, 'gates.attention=[enc-self,dec-self]', 'gates.noise=sentence']);
    const model = createTransformer(cfg.model, V, new Rng(4));
    const gates = new HeadGates(cfg.gates, model.shape, cfg.seed);
    const data = pairs(13, 9);
    const b = makeBatch(
      data,
      data.map((_, i) => i),
    );
    const varList = [...model.params.vars.values(), ...gates.variables.values()];
    const names = new Map<string, string>(
      [...model.params.vars].map(([n, v]) => [v.name, n] as [string, string]).concat([...gates.variables].map(([n, v]) => [v.name, n] as [string, string])),
    );
    const ctx = {
      model,
      gates,
      varList,
      varNameToParam: names,
      seed: 7,
      labelSmoothing: 0.1,
      step: 3,
      stepTgtTokens: b.tgtTokens,
      penalty: () => gates.penalty().mul(0.01) as tf.Scalar,
    };
    const whole = await microBatchGradients({ ...ctx, chunkRows: b.batchSize }, b, 1);
    const split = await microBatchGradients({ ...ctx, chunkRows: 4 }, b, 1); // 4 chunks: 3, 3, 3, 4 rows
    expect(Math.abs(split.ce - whole.ce)).toBeLessThan(1e-6 * whole.ce); // float32 sums in another order
    expect(split.penalty).toBeCloseTo(whole.penalty!, 7);
    expect([...split.grads.keys()].sort()).toEqual([...whole.grads.keys()].sort());
    let worst = 0;
    for (const [k, g] of whole.grads) {
      const a = g.dataSync();
      const c = split.grads.get(k)!.dataSync();
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - c[i]!) / (1e-3 + Math.abs(a[i]!)));
    }
    expect(worst).toBeLessThan(1e-3);
    tf.dispose([...whole.grads.values(), ...split.grads.values()]);
    model.dispose();
    gates.dispose();
  });

  it('slices rows and trims their padding', () => {
    const data = pairs(6, 2);
    const b = makeBatch(
      data,
      data.map((_, i) => i),
    );
    const part = sliceBatchRows(b, 2, 4);
    expect(part.batchSize).toBe(2);
    expect(part.indices).toEqual(b.indices.slice(2, 4));
    const lens = part.indices.map((i) => data[i]!);
    expect(part.srcLen).toBe(Math.max(...lens.map((p) => p.src.length)) + 1);
    expect(part.tgtLen).toBe(Math.max(...lens.map((p) => p.tgt.length)) + 1);
    expect(part.tgtTokens).toBe(lens.reduce((a, p) => a + p.tgt.length + 1, 0));
    expect(Array.from(part.src.subarray(0, part.srcLen))).toEqual(Array.from(b.src.subarray(2 * b.srcLen, 2 * b.srcLen + part.srcLen)));
  });

  it('estimates the bench model near the measured heap and splits what exceeds the budget', () => {
    const bench = {
      model: { encoderLayers: 3, decoderLayers: 3, heads: 4, dModel: 256, dFF: 1024, dropout: 0.1, attentionDropout: 0 },
      vocabSize: 8000,
      parameters: 7578624,
    };
    const gib = (rows: number) => estimateStepBytes(bench, rows, 25, 25) / 2 ** 30;
    // measured on wasm (memory-split.ts header): 1.07 / 1.98 / 2.91 GiB for 40 / 80 / 120 sentences
    expect(gib(40)).toBeGreaterThan(1.0);
    expect(gib(40)).toBeLessThan(1.15);
    expect(gib(80)).toBeGreaterThan(1.9);
    expect(gib(80)).toBeLessThan(2.15);
    expect(gib(120)).toBeGreaterThan(2.8);
    expect(gib(120)).toBeLessThan(3.1);
    const budget = 3.4 * 2 ** 30;
    expect(chunkRowsFor(bench, { batchSize: 80, srcLen: 25, tgtLen: 25 }, budget)).toBe(80);
    expect(chunkRowsFor(bench, { batchSize: 160, srcLen: 25, tgtLen: 25 }, budget)).toBe(80);
    expect(chunkRowsFor(bench, { batchSize: 400, srcLen: 25, tgtLen: 25 }, budget)).toBe(134); // 3 chunks: 134, 133, 133
    expect(chunkRowsFor(bench, { batchSize: 7, srcLen: 25, tgtLen: 25 }, 1)).toBe(1);
    expect(chunkRowsFor(bench, { batchSize: 400, srcLen: 25, tgtLen: 25 }, Infinity)).toBe(400);
  });

  it('the trainer splits micro-batches over the budget and trains as without splitting', async () => {
    const cfg = loadConfig(null, [...TINY, 'train.maxTokensPerBatch=300', 'train.maxSteps=5']);
    const run = async (heapBudgetMB?: number) => {
      const model = createTransformer(cfg.model, V, new Rng(5));
      const runtime = heapBudgetMB === undefined ? {} : { heapBudgetMB };
      const t = new Trainer({
        config: cfg,
        model,
        train: pairs(200, 3),
        valid: pairs(5, 4),
        run: null,
        progress: new ProgressLine(process.stderr, true),
        runtime,
      });
      for (let i = 0; i < 5; i++) await t.trainStep();
      const rows = makeBatch(
        pairs(30, 3),
        Array.from({ length: 30 }, (_, i) => i),
      );
      const chunk = t.chunkRows(rows);
      const losses = t.history.map((h) => h.loss);
      t.dispose();
      model.dispose();
      return { losses, chunk };
    };
    const plain = await run();
    const split = await run(3); // the parameters take ~0.7 MB, a sentence ~0.6 MB: chunks of a few rows
    expect(plain.chunk).toBe(30);
    expect(split.chunk).toBeLessThan(30);
    split.losses.forEach((l, i) => expect(Math.abs(l - plain.losses[i]!)).toBeLessThan(1e-4 * plain.losses[i]!));
  });

  it('reports a wasm heap failure as out of memory, naming the batch', () => {
    const data = pairs(3, 1);
    const b = makeBatch(data, [0, 1, 2]);
    const boom = () =>
      guardWasmHeap(b, () => {
        throw Object.assign(new Error('memory access out of bounds'), { name: 'RuntimeError' });
      });
    expect(boom).toThrow(OutOfMemoryError);
    expect(boom).toThrow(/micro-batch of 3 sentences/);
    expect(() =>
      guardWasmHeap(b, () => {
        throw new TypeError('unrelated');
      }),
    ).toThrow(TypeError);
  });
});
