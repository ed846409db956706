import * as tf from '@tensorflow/tfjs';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import type { ModelConfig } from '../config/schema.js';
import { Rng } from '../util/random.js';
import { createTransformer, type Transformer } from './transformer.js';
import type { AttentionRecord } from './attention.js';
import { greedyDecode, beamSearch } from '../eval/decode.js';
import { useTestBackend, maxAbsDiff } from '../test-utils/backend.js';
import { ForwardContext, paddingBias } from './layers.js';

const V = 17;
const cfg: ModelConfig = { ...DEFAULT_CONFIG.model, encoderLayers: 2, decoderLayers: 2, heads: 4, dModel: 16, dFF: 32, dropout: 0.1, maxPositions: 64 };

function randomIds(rng: Rng, B: number, T: number, padFrom?: number[]): Int32Array {
  const a = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) a[b * T + t] = padFrom && t >= padFrom[b]! ? 0 : 3 + rng.int(V - 3);
  return a;
}

let model: Transformer;
beforeAll(async () => {
  await useTestBackend();
  model = createTransformer(cfg, V, new Rng(7));
});
afterAll(() => model.dispose());

describe('Transformer', () => {
  const B = 3,
    S = 6,
    T = 5;
  const rng = new Rng(11);
  const src = tf.tensor2d(randomIds(rng, B, S, [6, 4, 2]), [B, S], 'int32');
  const tgtIn = tf.tensor2d(randomIds(rng, B, T), [B, T], 'int32');

  it('produces logits [B*T, V] and the same output for the same seed', () => {
    const a = tf.tidy(() => model.forward(src, tgtIn, { isTraining: true, seed: 5 }));
    const b = tf.tidy(() => model.forward(src, tgtIn, { isTraining: true, seed: 5 }));
    const c = tf.tidy(() => model.forward(src, tgtIn, { isTraining: true, seed: 6 }));
    expect(a.shape).toEqual([B * T, V]);
    expect(maxAbsDiff(a.dataSync(), b.dataSync())).toBe(0);
    expect(maxAbsDiff(a.dataSync(), c.dataSync())).toBeGreaterThan(1e-4); // dropout masks differ
    tf.dispose([a, b, c]);
  });

  it('a stack run from a layer on the inputs it collected gives the output of the whole stack, bit for bit', () => {
    const enc: tf.Tensor3D[] = [];
    const dec: tf.Tensor3D[] = [];
    const [whole, fromEnc, wholeDec, fromDec] = tf.tidy(() => {
      const ctx = ForwardContext.eval();
      const memory = model.encode(src, ctx, { collect: enc });
      const bias = paddingBias(src);
      const hidden = model.decode(tgtIn, memory, bias, ctx, { collect: dec });
      return [
        memory,
        model.encode(src, ctx, { from: { layer: 1, input: enc[1]! } }),
        hidden,
        model.decode(tgtIn, memory, bias, ctx, { from: { layer: 1, input: dec[1]! } }),
      ];
    });
    expect([enc.length, dec.length, enc[0]!.shape]).toEqual([2, 2, [B, S, cfg.dModel]]);
    expect(Array.from(fromEnc!.dataSync())).toEqual(Array.from(whole!.dataSync()));
    expect(Array.from(fromDec!.dataSync())).toEqual(Array.from(wholeDec!.dataSync()));
    // layer 0's input is the embedding, not the memory: the collected inputs differ from layer to layer
    expect(maxAbsDiff(enc[0]!.dataSync(), enc[1]!.dataSync())).toBeGreaterThan(1e-3);
    tf.dispose([whole!, fromEnc!, wholeDec!, fromDec!, ...enc, ...dec]);
  });

  it('a closed gate gives exactly the output of a head whose output-projection rows are zeroed', () => {
    const head = 1;
    const dHead = cfg.dModel / cfg.heads;
    const gate = tf.tensor1d([1, 0, 1, 1]);
    const gated = tf.tidy(() => model.forward(src, tgtIn, { isTraining: false, gates: { 'enc-self': [null, gate], 'dec-enc': [gate, null] } }).dataSync());
    // the masked model: same weights, with W_O rows of the head set to zero in the same layers
    const masked = createTransformer(cfg, V, new Rng(7));
    for (const name of ['enc.1.self.wo', 'dec.0.cross.wo']) {
      const wo = masked.params.get(name);
      const rowMask = tf.tidy(() =>
        tf.concat([tf.ones([head * dHead, cfg.dModel]), tf.zeros([dHead, cfg.dModel]), tf.ones([(cfg.heads - head - 1) * dHead, cfg.dModel])]),
      );
      tf.tidy(() => wo.assign(wo.mul(rowMask)));
      rowMask.dispose();
    }
    const ref = tf.tidy(() => masked.forward(src, tgtIn, { isTraining: false }).dataSync());
    expect(maxAbsDiff(gated, ref)).toBeLessThan(1e-5);
    masked.dispose();
    gate.dispose();
  });

  it('attention rows sum to one; causal and padded positions get no weight', () => {
    const recs: Array<[string, number, AttentionRecord]> = [];
    const logits = tf.tidy(() =>
      model.forward(src, tgtIn, { isTraining: false, record: (s, l, r) => recs.push([s, l, { weights: tf.keep(r.weights), context: tf.keep(r.context) }]) }),
    );
    expect(recs.map(([s, l]) => `${s}.${l}`)).toEqual(['enc-self.0', 'enc-self.1', 'dec-self.0', 'dec-enc.0', 'dec-self.1', 'dec-enc.1']);
    const srcLen = [6, 4, 2];
    for (const [stack, , r] of recs) {
      const [b_, h, tq, tk] = r.weights.shape;
      const w = r.weights.arraySync();
      for (let b = 0; b < b_; b++)
        for (let hh = 0; hh < h; hh++)
          for (let q = 0; q < tq; q++) {
            const row = w[b]![hh]![q]!;
            expect(row.reduce((a, x) => a + x, 0)).toBeCloseTo(1, 5);
            for (let k = 0; k < tk; k++) {
              if (stack === 'dec-self' && k > q) expect(row[k]).toBe(0);
              if (stack !== 'dec-self' && k >= srcLen[b]!) expect(row[k]).toBe(0);
            }
          }
      tf.dispose([r.weights, r.context]);
    }
    logits.dispose();
  });

  it('incremental decoding with cached keys/values equals the teacher-forced forward', () => {
    const full = tf.tidy(() =>
      tf
        .logSoftmax(model.forward(src, tgtIn, { isTraining: false }))
        .reshape([B, T, V])
        .arraySync(),
    ) as number[][][];
    const tin = tgtIn.arraySync();
    let state = model.startDecoding(src);
    for (let t = 0; t < T; t++) {
      const tok = tf.tensor1d(
        tin.map((row) => row[t]!),
        'int32',
      );
      const r = model.decodeStep(state, tok);
      const lp = r.logProbs.arraySync();
      for (let b = 0; b < B; b++) expect(maxAbsDiff(lp[b]!, full[b]![t]!)).toBeLessThan(1e-4);
      state = r.state;
      tok.dispose();
    }
  });

  it('does not leak tensors in forward, greedy and beam decoding', async () => {
    const ids = randomIds(new Rng(3), B, S, [6, 4, 2]);
    await greedyDecode(model, ids, B, S, { beamSize: 1, lengthPenalty: 0.6, maxLenA: 1, maxLenB: 4 });
    await beamSearch(model, ids, B, S, { beamSize: 3, lengthPenalty: 0.6, maxLenA: 1, maxLenB: 4 });
    const before = tf.memory().numTensors;
    tf.tidy(() => model.forward(src, tgtIn, { isTraining: true, seed: 1 })).dispose();
    await greedyDecode(model, ids, B, S, { beamSize: 1, lengthPenalty: 0.6, maxLenA: 1, maxLenB: 4 });
    await beamSearch(model, ids, B, S, { beamSize: 3, lengthPenalty: 0.6, maxLenA: 1, maxLenB: 4 });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('beam search with beam 1 equals greedy decoding, and greedy output is the argmax chain', async () => {
    const ids = randomIds(new Rng(4), B, S, [6, 4, 2]);
    const o = { beamSize: 1, lengthPenalty: 0.6, maxLenA: 1, maxLenB: 4 };
    const g = await greedyDecode(model, ids, B, S, o);
    expect(await beamSearch(model, ids, B, S, o)).toEqual(g);
    // re-score: feeding <s> + greedy prefix, each next token must be the forward's argmax
    for (let b = 0; b < B; b++) {
      const y = g[b]!;
      const tin = tf.tensor2d([[1, ...y]], [1, y.length + 1], 'int32');
      const s1 = tf.tensor2d(ids.slice(b * S, (b + 1) * S), [1, S], 'int32');
      const am = tf.tidy(() => model.forward(s1, tin, { isTraining: false }).argMax(1).arraySync()) as number[];
      expect(am.slice(0, y.length)).toEqual(y);
      tf.dispose([tin, s1]);
    }
  });

  it('supports physically smaller layers, including a layer with no heads', () => {
    const small = createTransformer({ ...cfg, keptHeads: { 'enc-self': [[0, 2], []], 'dec-self': [[1], [0, 1, 2, 3]], 'dec-enc': [[], [3]] } }, V, new Rng(1));
    expect(small.params.get('enc.0.self.wq').shape).toEqual([16, 8]);
    expect(small.params.get('enc.1.self.wq').shape).toEqual([16, 0]);
    const out = tf.tidy(() => small.forward(src, tgtIn, { isTraining: false }));
    expect(out.shape).toEqual([B * T, V]);
    expect(Array.from(out.dataSync()).every(Number.isFinite)).toBe(true);
    out.dispose();
    small.dispose();
  });
});
