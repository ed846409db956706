import * as tf from '@tensorflow/tfjs';
import { createTransformer, type GateTensors, type Transformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { beamSearch, greedyDecode, EOS_ID, type Decoder } from './decode.js';
import { translateSentences } from './translate.js';
import { useTestBackend } from '../test-utils/backend.js';
import { loadConfig } from '../config/load.js';
import { Trainer } from '../train/trainer.js';
import { argMaxOfLogSoftmax, readF32 } from './fast-decode.js';
import { BEAM_TOPK_KERNEL, hasBeamTopk, nativeBeamTopk } from '../backend/beam-kernel.js';
import { loadNativeBlas } from '../backend/native-blas.js';
import { installBackendFixes } from '../backend/ops.js';
import { CACHE_SCORES_KERNEL, cacheRows, hasKvCache, nativeKvCache } from '../backend/kv-cache-kernel.js';

const V = 13;

/**
 * The fast decoders against the legacy ones on a briefly trained model with pruned heads (physically: an
 * encoder layer without heads, a decoder layer with one self-attention head; and by gates: a closed
 * cross-attention head, a half-open one): the same token ids for greedy and beam search, at several
 * batch sizes, with sentences of one batch ending at different steps (so the fast batch shrinks).
 */
describe('fast decoders', () => {
  let model: Transformer;
  let gates: GateTensors;
  const rng = new Rng(21);
  const sentences = Array.from({ length: 14 }, () => Array.from({ length: 2 + rng.int(9) }, () => 3 + rng.int(V - 3)));
  beforeAll(async () => {
    await useTestBackend();
    const cfg = loadConfig(null, [
      'model.dModel=16',
      'model.dFF=32',
      'model.heads=2',
      'model.encoderLayers=2',
      'model.decoderLayers=2',
      'model.dropout=0',
      'model.keptHeads={"enc-self":[[0,1],[]],"dec-self":[[1],[0,1]],"dec-enc":[[0,1],[0,1]]}',
      'train.maxSteps=50',
      'train.peakLr=5e-3',
      'train.warmupSteps=10',
      'train.maxTokensPerBatch=300',
      'train.evalEverySteps=0',
    ]);
    const r = new Rng(1);
    // reverse, and stop early after a 3: output lengths differ from the input lengths and between sentences
    const pairs = Array.from({ length: 400 }, (_, index) => {
      const src = Array.from({ length: 2 + r.int(9) }, () => 3 + r.int(V - 3));
      const rev = [...src].reverse();
      const cut = rev.indexOf(3);
      return { src, tgt: cut > 0 ? rev.slice(0, cut) : rev, index };
    });
    model = createTransformer(cfg.model, V, new Rng(5));
    const t = new Trainer({ config: cfg, model, train: pairs, valid: pairs.slice(0, 4), run: null });
    await t.run();
    t.dispose();
    gates = { 'dec-enc': [tf.tensor1d([0, 1]), tf.tensor1d([1, 0.5])] };
  }, 120000);
  afterAll(() => {
    model.dispose();
    tf.dispose(gates['dec-enc']!.filter((g): g is tf.Tensor => g !== null));
  });

  function batch(rows: number[][]): { src: Int32Array; B: number; S: number } {
    const S = Math.max(...rows.map((r) => r.length)) + 1;
    const src = new Int32Array(rows.length * S);
    rows.forEach((r, b) => src.set([...r, EOS_ID], b * S));
    return { src, B: rows.length, S };
  }

  it.each([
    [1, 1],
    [1, 4],
    [1, 14],
    [4, 1],
    [4, 5],
    [4, 14],
    [2, 14],
  ])('beam %p, batches of %p sentences: the same outputs as the legacy decoder', async (k, size) => {
    const o = { beamSize: k, lengthPenalty: 0.6, maxLenA: 1.2, maxLenB: 2 };
    const lengths = new Set<number>();
    // one sentence per batch: the first few only (slow, and the same code path every time)
    for (let start = 0; start < (size === 1 ? 4 : sentences.length); start += size) {
      const { src, B, S } = batch(sentences.slice(start, start + size));
      for (const g of [undefined, gates]) {
        const run = (decoder: Decoder) => (k === 1 ? greedyDecode : beamSearch)(model, src, B, S, { ...o, decoder, ...(g ? { gates: g } : {}) });
        const before = tf.memory().numTensors;
        const fast = await run('fast');
        expect(tf.memory().numTensors).toBe(before); // no tensor left behind
        expect(fast).toEqual(await run('legacy'));
        if (!g) fast.forEach((h) => lengths.add(h.length));
      }
    }
    // the batches really had sentences ending at different steps
    expect(lengths.size).toBeGreaterThan(size === 1 ? 1 : 2);
  });

  it('translates a corpus to the same text with either decoder (sorted, batched, with gates)', async () => {
    const codec = { encode: (s: string) => s.split(' ').map(Number), decode: (ids: number[]) => ids.join(' ') };
    const text = sentences.map((s) => s.join(' '));
    const o = { beamSize: 4, lengthPenalty: 1, maxLenA: 1.5, maxLenB: 3, batchSentences: 6, maxTokensPerBatch: 40, gates };
    const fast = await translateSentences(model, codec, text, { ...o, decoder: 'fast' });
    const legacy = await translateSentences(model, codec, text, { ...o, decoder: 'legacy' });
    expect(fast.outputs).toEqual(legacy.outputs);
    expect(fast.outputs.filter((x) => x.length > 0).length).toBeGreaterThan(sentences.length / 2);
  });

  it.each([4, 2])("beam %p: the native beam kernel (HeadsBeamTopk) gives the JS path's translations and the legacy decoder's", async (k) => {
    if (tf.getBackend() !== 'wasm' || nativeBeamTopk(loadNativeBlas().blas) === null) {
      console.warn('native beam kernel case skipped: not on wasm with the addon (its beamTopk)');
      return;
    }
    const codec = { encode: (s: string) => s.split(' ').map(Number), decode: (ids: number[]) => ids.join(' ') };
    const r = new Rng(8);
    const text = Array.from({ length: 60 }, () => Array.from({ length: 1 + r.int(11) }, () => 3 + r.int(V - 3)).join(' '));
    const o = { beamSize: k, lengthPenalty: 0.6, maxLenA: 1.5, maxLenB: 3, batchSentences: 16, maxTokensPerBatch: 120 };
    const run = async (g: GateTensors | undefined) => {
      const p = await tf.profile(async () => (await translateSentences(model, codec, text, { ...o, decoder: 'fast', ...(g ? { gates: g } : {}) })).outputs);
      return { outputs: p.result as string[], kernels: new Set(p.kernelNames) };
    };
    try {
      for (const g of [undefined, gates]) {
        installBackendFixes('wasm');
        expect(hasBeamTopk()).toBe(true);
        const native = await run(g);
        installBackendFixes('wasm', { nativeBeam: false });
        expect(hasBeamTopk()).toBe(false);
        const js = await run(g);
        // the kernel is used where registered, the ops path (and its Exp) where not
        expect(native.kernels.has(BEAM_TOPK_KERNEL) && !native.kernels.has('Exp')).toBe(true);
        expect(js.kernels.has('Exp') && !js.kernels.has(BEAM_TOPK_KERNEL)).toBe(true);
        expect(native.outputs).toEqual(js.outputs);
        const legacy = await translateSentences(model, codec, text, { ...o, decoder: 'legacy', ...(g ? { gates: g } : {}) });
        expect(native.outputs).toEqual(legacy.outputs);
        expect(new Set(native.outputs.map((x) => x.split(' ').length)).size).toBeGreaterThan(3);
      }
    } finally {
      installBackendFixes('wasm');
    }
  });

  it.each([1, 2, 4])(
    "beam %p: the in-place self-attention caches (HeadsCacheScores) and fused biases give the concatenated caches' translations and the legacy decoder's",
    async (k) => {
      if (tf.getBackend() !== 'wasm' || nativeKvCache(loadNativeBlas().blas) === null) {
        console.warn('in-place cache case skipped: not on wasm with the addon (its cache functions)');
        return;
      }
      const codec = { encode: (s: string) => s.split(' ').map(Number), decode: (ids: number[]) => ids.join(' ') };
      const r = new Rng(9);
      const text = Array.from({ length: 40 }, () => Array.from({ length: 1 + r.int(11) }, () => 3 + r.int(V - 3)).join(' '));
      // gates on the self-attention too (a half-open head, a closed one), and on the cross-attention
      const selfGates: GateTensors = { ...gates, 'dec-self': [tf.tensor1d([0.5]), tf.tensor1d([1, 0])] };
      const base = { beamSize: k, lengthPenalty: 0.6, batchSentences: 16, maxTokensPerBatch: 120 };
      // length limits: as usual, every sentence cut at 4 tokens (the caches' last position written), and at 1
      const limits = [
        { maxLenA: 1.5, maxLenB: 3 },
        { maxLenA: 0, maxLenB: 4 },
        { maxLenA: 0, maxLenB: 1 },
      ];
      const run = async (g: GateTensors | undefined, lim: (typeof limits)[number]) => {
        const p = await tf.profile(
          async () => (await translateSentences(model, codec, text, { ...base, ...lim, decoder: 'fast', ...(g ? { gates: g } : {}) })).outputs,
        );
        return { outputs: p.result as string[], kernels: new Set(p.kernelNames) };
      };
      try {
        for (const g of [undefined, selfGates])
          for (const lim of limits) {
            installBackendFixes('wasm');
            expect(hasKvCache()).toBe(true);
            const before = tf.memory().numTensors;
            const inPlace = await run(g, lim);
            expect(tf.memory().numTensors).toBe(before);
            installBackendFixes('wasm', { nativeKvCache: false });
            expect(hasKvCache()).toBe(false);
            const concat = await run(g, lim);
            // the kernels are used where registered (no split of q|k|v), the concatenated caches where not
            expect(inPlace.kernels.has(CACHE_SCORES_KERNEL) && !inPlace.kernels.has('SplitV')).toBe(true);
            expect(concat.kernels.has('SplitV') && !concat.kernels.has(CACHE_SCORES_KERNEL)).toBe(true);
            // and with them, the decoder steps' biases in the products' epilogue (the native _FusedMatMul)
            expect(inPlace.kernels.has('_FusedMatMul') && !concat.kernels.has('_FusedMatMul')).toBe(true);
            expect(inPlace.outputs).toEqual(concat.outputs);
            const legacy = await translateSentences(model, codec, text, { ...base, ...lim, decoder: 'legacy', ...(g ? { gates: g } : {}) });
            expect(inPlace.outputs).toEqual(legacy.outputs);
            if (lim.maxLenB === 3) expect(new Set(inPlace.outputs.map((x) => x.split(' ').length)).size).toBeGreaterThan(3);
          }
      } finally {
        installBackendFixes('wasm');
        tf.dispose(selfGates['dec-self']!.filter((x): x is tf.Tensor => x !== null));
      }
    },
    120000,
  );

  it('cacheRows moves rows in place as a gather would (repeated sources, rows read and overwritten, fewer rows)', () => {
    if (tf.getBackend() !== 'wasm' || nativeKvCache(loadNativeBlas().blas) === null) {
      console.warn('cacheRows case skipped: not on wasm with the addon (its cache functions)');
      return;
    }
    installBackendFixes('wasm');
    const r = new Rng(3);
    const [rowsCap, T, w] = [9, 5, 6];
    for (let trial = 0; trial < 40; trial++) {
      const rowsOut = 1 + r.int(rowsCap);
      const src = Int32Array.from({ length: rowsOut }, (_, i) => (r.int(3) === 0 ? i : r.int(rowsCap)));
      const positions = r.int(T + 1);
      const init = [0, 1].map(() => new Float32Array(rowsCap * T * w).map(() => r.normal()));
      const caches = init.map((x) => tf.tensor3d(x, [rowsCap, T, w]));
      cacheRows(caches, src, positions);
      caches.forEach((c, n) => {
        const got = c.dataSync();
        const want = Float32Array.from(init[n]!);
        for (let i = 0; i < rowsOut; i++) want.set(init[n]!.subarray(src[i]! * T * w, src[i]! * T * w + positions * w), i * T * w);
        expect(Array.from(got)).toEqual(Array.from(want));
      });
      tf.dispose(caches);
    }
  });

  it('greedy picks what tf.logSoftmax(...).argMax(1) picks, near ties and exact ties included', () => {
    const r = new Rng(4);
    const V2 = 3000;
    const rows = 12;
    const x = new Float32Array(rows * V2).map(() => r.normal() * 3);
    for (let i = 0; i < rows; i++) {
      const o = i * V2;
      let m = 0;
      for (let v = 1; v < V2; v++) if (x[o + v]! > x[o + m]!) m = v;
      const lower = r.int(Math.max(1, m));
      // rows 0-3: a lower-index logit one float32 step below the max (rounding may merge them); 4-7: an exact tie; 8-11: as drawn
      if (i < 4 && m > 0) x[o + lower] = x[o + m]! - Math.abs(x[o + m]!) * 2 ** -23;
      else if (i < 8 && m > 0) x[o + lower] = x[o + m]!;
    }
    // all rows (near ties: the log-softmax path), and rows 4-11 only (exact ties and drawn rows: the scan)
    for (const part of [x, x.subarray(4 * V2)]) {
      const t = tf.tensor2d(part, [part.length / V2, V2]);
      const want = tf.tidy(() => tf.logSoftmax(t).argMax(1)).dataSync();
      expect(Array.from(argMaxOfLogSoftmax(t))).toEqual(Array.from(want));
      t.dispose();
    }
  });

  it('reads a tensor in place with its values', () => {
    const t = tf.tensor2d([
      [1.5, -2],
      [3, 4.25],
    ]);
    const { data, offset } = readF32(t);
    expect(Array.from(data.subarray(offset, offset + 4))).toEqual([1.5, -2, 3, 4.25]);
    t.dispose();
  });
});
