/**
 * Data-parallel decoding: batches decoded side by side in worker threads give the translations of
 * decoding in the main thread (greedy and beam, with gates, legacy and fast), in input order; a failure
 * in a worker reaches the caller; a stop between batches waits for the batches in flight.
 */
import * as tf from '@tensorflow/tfjs';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { trainedTinyModel } from '../test-utils/tiny-model.js';
import { reversePairs } from '../test-utils/pairs.js';
import { TranslationStopped, translateSentences } from './translate.js';
import { DecodePool, gateTensorsOf, gateValues } from './decode-pool.js';
import { nativeBlasStatus } from '../backend/ops.js';
import { useTestBackend } from '../test-utils/backend.js';
import { withDecodePool } from '../train/run-training.js';
import { ProgressLine } from '../train/progress.js';
import { loadConfig } from '../config/load.js';
import { jest } from '@jest/globals';

const V = 13;

describe('decoding pool', () => {
  let model: Transformer;
  let gates: GateTensors;
  let pool: DecodePool;
  const rng = new Rng(4);
  const text = Array.from({ length: 120 }, () => Array.from({ length: 2 + rng.int(9) }, () => 3 + rng.int(V - 3)).join(' '));
  const codec = { encode: (s: string) => s.split(' ').map(Number), decode: (ids: number[]) => ids.join(' ') };
  beforeAll(async () => {
    await useTestBackend();
    model = await trainedTinyModel(V, reversePairs(300, 1, V), ['model.encoderLayers=2', 'model.decoderLayers=2', 'train.maxSteps=40']);
    gates = { 'dec-enc': [tf.tensor1d([0, 1]), tf.tensor1d([1, 0.5])], 'enc-self': [null, tf.tensor1d([0.25, 1])] };
    pool = await DecodePool.start(model, 2);
  }, 120_000);
  afterAll(async () => {
    await pool.close();
    model.dispose();
    for (const l of Object.values(gates)) tf.dispose(l.filter((g): g is tf.Tensor => g !== null));
  });

  it('gate values survive the trip to plain arrays and back', () => {
    const back = gateTensorsOf(gateValues(gates))!;
    expect(Object.keys(back).sort()).toEqual(Object.keys(gates).sort());
    for (const t of ['dec-enc', 'enc-self'] as const)
      back[t]!.forEach((g, i) => {
        const want = gates[t]![i];
        expect(g === null ? null : Array.from(g.dataSync())).toEqual(want ? Array.from(want.dataSync()) : null);
        g?.dispose();
      });
    expect(gateValues(undefined)).toBeNull();
  });

  it.each([
    [1, 'fast'],
    [4, 'fast'],
    [4, 'legacy'],
  ] as const)(
    'beam %p (%p): the same translations in input order as in the main thread, with and without gates',
    async (beamSize, decoder) => {
      const o = { beamSize, lengthPenalty: 0.6, maxLenA: 1.5, maxLenB: 3, batchSentences: 7, maxTokensPerBatch: 60, decoder };
      for (const g of [undefined, gates]) {
        const main = await translateSentences(model, codec, text, { ...o, ...(g ? { gates: g } : {}) });
        const seen: number[] = [];
        const par = await translateSentences(model, codec, text, { ...o, ...(g ? { gates: g } : {}), pool, onProgress: (d) => seen.push(d) });
        expect(par.outputs).toEqual(main.outputs);
        expect(par.stats.outputTokens).toBe(main.stats.outputTokens);
        // progress counts finished sentences, up to all of them
        expect(seen.at(-1)).toBe(text.length);
        expect([...seen].sort((a, b) => a - b)).toEqual(seen);
      }
      // the gates matter here (else the comparison above would not test their trip to the workers)
      const open = await translateSentences(model, codec, text, { ...o });
      const gated = await translateSentences(model, codec, text, { ...o, gates, pool });
      expect(gated.outputs).not.toEqual(open.outputs);
    },
    120_000,
  );

  it("a worker's error reaches the caller; a stop waits for the batches in flight", async () => {
    const o = { beamSize: 2, lengthPenalty: 0.6, maxLenA: 1.5, maxLenB: 3, batchSentences: 5, maxTokensPerBatch: 60 };
    // a token id past the vocabulary fails in the worker's embedding lookup or its checks
    await expect(
      translateSentences(model, { ...codec, encode: (s: string) => [...codec.encode(s), V + 1000] }, text.slice(0, 12), { ...o, pool }),
    ).rejects.toThrow();
    let calls = 0;
    const stopped = translateSentences(model, codec, text, { ...o, pool, isStopRequested: () => ++calls > 3 });
    const e = await stopped.then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(TranslationStopped);
    expect((e as TranslationStopped).done).toBeGreaterThan(0);
    expect((e as TranslationStopped).done).toBeLessThan(text.length);
    // the pool still works after both
    const main = await translateSentences(model, codec, text.slice(0, 9), o);
    expect((await translateSentences(model, codec, text.slice(0, 9), { ...o, pool })).outputs).toEqual(main.outputs);
  }, 120_000);

  it("a worker that cannot start: start rejects with the worker's own error and stack, stops every thread it started, and puts the BLAS threads back", async () => {
    const arrays = await model.params.toArrays();
    const name = Object.keys(arrays)[0]!;
    // weights the worker cannot rebuild: the right shape, too few values
    const broken = {
      config: model.config,
      vocabSize: model.vocabSize,
      params: { toArrays: async () => ({ ...arrays, [name]: { shape: arrays[name]!.shape, data: new Float32Array(4) } }) },
    } as unknown as Transformer;
    const blasBefore = nativeBlasStatus().threads;
    const { Worker } = await import('node:worker_threads');
    const terminate = jest.spyOn(Worker.prototype, 'terminate');
    const e = await DecodePool.start(broken, 2).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(Error);
    const size = arrays[name]!.shape.reduce((a, b) => a * b, 1);
    expect((e as Error).message).toBe(
      `decoding worker: Based on the provided shape, [${arrays[name]!.shape.join(',')}], the tensor should have ${size} values but has 4`,
    );
    expect((e as Error).stack).toContain('(worker) Error: Based on the provided shape');
    expect(nativeBlasStatus().threads).toBe(blasBefore);
    // both workers it started were terminated (the one that failed and the one that may have been ready)
    expect(terminate).toHaveBeenCalledTimes(2);
    terminate.mockRestore();
    // and the pool already running is untouched
    const greedy = { beamSize: 1, lengthPenalty: 1, maxLenA: 1.5, maxLenB: 3, batchSentences: 3, maxTokensPerBatch: 60 };
    const main = await translateSentences(model, codec, text.slice(0, 9), greedy);
    expect((await translateSentences(model, codec, text.slice(0, 9), { ...greedy, pool })).outputs).toEqual(main.outputs);
  }, 120_000);

  it('withDecodePool: a pool only where it pays, closed after; a pool that cannot start leaves the work to the main thread', async () => {
    const cfg = loadConfig(null, ['eval.batchSentences=10']);
    const lines: string[] = [];
    const progress = new ProgressLine({ write: (t: string) => lines.push(t) !== 0, isTTY: false });
    const sizeOf = (p: DecodePool | null) => Promise.resolve(p ? p.size : 0);
    // one worker, or fewer than two batches per worker (39 sentences: 4 batches < 2 x 3), run in the main thread
    expect(await withDecodePool(model, 1, 1000, cfg, progress, sizeOf)).toBe(0);
    expect(await withDecodePool(model, 3, 39, cfg, progress, sizeOf)).toBe(0);
    let seen: DecodePool | null = null;
    expect(
      await withDecodePool(model, 2, 40, cfg, progress, async (p) => {
        seen = p;
        return p ? (await translateSentences(model, codec, text.slice(0, 40), { ...cfg.eval, pool: p })).outputs.length : 0;
      }),
    ).toBe(40);
    // closed after: it refuses more work
    await expect(seen!.beamSearch(new Int32Array([5, 2]), 1, 2, { beamSize: 1, lengthPenalty: 1, maxLenA: 1, maxLenB: 2 })).rejects.toThrow(/closed/);
    const start = jest.spyOn(DecodePool, 'start').mockImplementationOnce(() => Promise.reject(new Error('no threads here')));
    expect(await withDecodePool(model, 2, 40, cfg, progress, sizeOf)).toBe(0);
    start.mockRestore();
    expect(lines.join('')).toContain('decoding workers did not start (no threads here); translating in the main thread');
  }, 60_000);
});
