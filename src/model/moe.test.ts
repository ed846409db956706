import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import type { ModelConfig, ResolvedConfig } from '../config/schema.js';
import { loadConfig, loadConfigOn } from '../config/load.js';
import { ConfigError } from '../util/errors.js';
import { FEATURE_KEYS_OFF_BY_DEFAULT, stageIdentity } from '../experiments/stage.js';
import { Rng } from '../util/random.js';
import { ForwardContext, feedForward } from './layers.js';
import { Transformer, createTransformer, initParams, stateTensors } from './transformer.js';
import { type FfnWeights, type RoutingRecord, addRoutingCounts, expertCapacity, mixtureOfExperts, routingSummary } from './moe.js';
import { useTestBackend, maxAbsDiff } from '../test-utils/backend.js';
import { RunFolder } from '../util/run-folder.js';
import { ProgressLine } from '../train/progress.js';
import { runTraining } from '../train/run-training.js';
import { microBatchGradients } from '../train/workers/micro-batch.js';
import { makeBatch, type EncodedPair } from '../data/batches.js';
import { readCheckpoint } from '../io/checkpoint.js';
import { Trainer } from '../train/trainer.js';

beforeAll(() => useTestBackend());

// ---- plain-JS reference ----

type Mat = number[][];
const randMat = (rng: Rng, r: number, c: number, scale = 1): Mat =>
  Array.from({ length: r }, () => Array.from({ length: c }, () => (rng.next() * 2 - 1) * scale));
const matVec = (v: number[], m: Mat): number[] => m[0]!.map((_, j) => v.reduce((s, x, i) => s + x * m[i]![j]!, 0));

interface JsExpert {
  w1: Mat;
  b1: number[];
  w2: Mat;
  b2: number[];
}
const ffnJs = (x: number[], e: JsExpert): number[] => {
  const h = matVec(x, e.w1).map((v, j) => Math.max(0, v + e.b1[j]!));
  return matVec(h, e.w2).map((v, j) => v + e.b2[j]!);
};
const softmaxJs = (z: number[]): number[] => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
/** top-k experts by probability (ties: lower index), weights: p (k = 1) or renormalised (k = 2) */
function routeJs(x: number[], router: Mat, k: number): Array<{ e: number; w: number }> {
  const p = softmaxJs(matVec(x, router));
  const order = p
    .map((v, e) => ({ v, e }))
    .sort((a, b) => b.v - a.v || a.e - b.e)
    .slice(0, k);
  const norm = k === 1 ? 1 : order.reduce((s, o) => s + o.v, 0);
  return order.map((o) => ({ e: o.e, w: o.v / norm }));
}
/** y per token: sum over the choices in `keep` (default: all) of w * FFN_e(x) */
function moeJs(xs: Mat, router: Mat, experts: JsExpert[], k: number, keep?: (token: number, e: number) => boolean): Mat {
  return xs.map((x, n) => {
    const y = new Array<number>(x.length).fill(0);
    for (const { e, w } of routeJs(x, router, k)) {
      if (keep && !keep(n, e)) continue;
      ffnJs(x, experts[e]!).forEach((v, j) => (y[j] += w * v));
    }
    return y;
  });
}

function makeExperts(rng: Rng, E: number, d: number, H: number): JsExpert[] {
  return Array.from({ length: E }, () => ({
    w1: randMat(rng, d, H),
    b1: randMat(rng, 1, H, 0.1)[0]!,
    w2: randMat(rng, H, d),
    b2: randMat(rng, 1, d, 0.1)[0]!,
  }));
}
const toTf = (e: JsExpert): FfnWeights => ({ w1: tf.tensor2d(e.w1), b1: tf.tensor1d(e.b1), w2: tf.tensor2d(e.w2), b2: tf.tensor1d(e.b2) });
const flat = (m: Mat) => m.flat();
const evalCtx = ForwardContext.eval();

// ---- the layer ----

describe('mixtureOfExperts', () => {
  it('with one expert (k = 1, ample capacity) equals the plain FFN with the same weights', () => {
    const rng = new Rng(1);
    const [js] = makeExperts(rng, 1, 8, 16);
    const x = tf.tensor3d(randMat(rng, 6, 8).flat(), [2, 3, 8]);
    const w = toTf(js!);
    const router = tf.tensor2d(randMat(rng, 8, 1));
    const { y } = mixtureOfExperts(x, { router, experts: [w] }, { topK: 1, capacity: null }, evalCtx);
    const plain = feedForward(x, w.w1, w.b1, w.w2, w.b2, evalCtx);
    expect(y.shape).toEqual([2, 3, 8]);
    expect(maxAbsDiff(y.dataSync(), plain.dataSync())).toBeLessThan(1e-5);
    tf.dispose([x, router, y, plain, ...Object.values(w)]);
  });

  it.each([1, 2])('with 4 experts, top-%i and ample capacity, equals a per-token JS reference', (k) => {
    const rng = new Rng(10 + k);
    const d = 6;
    const experts = makeExperts(rng, 4, d, 10);
    const router = randMat(rng, d, 4, 2);
    const xs = randMat(rng, 12, d);
    const x = tf.tensor2d(flat(xs), [12, d]);
    const ws = experts.map(toTf);
    const r = tf.tensor2d(router);
    // rows 5 and 11 are padding: zero output, no claims
    const mask = tf.tensor1d(xs.map((_, n) => (n === 5 || n === 11 ? 0 : 1)));
    const { y, record } = mixtureOfExperts(x, { router: r, experts: ws }, { topK: k, capacity: null }, evalCtx, mask);
    const want = moeJs(xs, router, experts, k).map((row, n) => (n === 5 || n === 11 ? row.map(() => 0) : row));
    expect(maxAbsDiff(y.dataSync(), flat(want))).toBeLessThan(1e-5);
    expect(record.tokens).toBe(10);
    expect(record.assigned.reduce((a, b) => a + b, 0)).toBe(10 * k);
    expect(record.kept).toEqual(record.assigned);
    tf.dispose([x, r, mask, y, record.auxLoss, ...ws.flatMap((w) => Object.values(w))]);
  });

  it('capacity drops exactly the claims the ordering rule says (first choices first, then row order)', () => {
    // router = identity: logits are x itself, so each row's preferences can be read off
    const eye = [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ];
    const rows: Mat = [
      [3, 2, 0], // t0: e0, then e1
      [3, 0, 2], // t1: e0, then e2
      [5, 0, 0], // padding (would want e0): claims nothing
      [2, 3, 0], // t2 (row 3): e1, then e0
      [3, 2, 0.5], // t3 (row 4): e0, then e1
      [2, 0, 3], // t4 (row 5): e2, then e0
    ];
    const experts = makeExperts(new Rng(5), 3, 3, 8);
    const ws = experts.map(toTf);
    const x = tf.tensor2d(flat(rows), [6, 3]);
    const r = tf.tensor2d(eye);
    const mask = tf.tensor1d([1, 1, 0, 1, 1, 1]);
    const { y, record } = mixtureOfExperts(x, { router: r, experts: ws }, { topK: 2, capacity: 2 }, evalCtx, mask);
    // first choices in row order: e0 <- t0, t1, [t3 dropped]; e1 <- t2; e2 <- t4.
    // second choices in row order: e1 <- t0 (2nd slot), e2 <- t1 (2nd slot), e0 <- t2 dropped (full),
    // e1 <- t3 dropped (full), e0 <- t4 dropped. So t3 keeps nothing: zero output, the residual carries it.
    const kept: Record<number, number[]> = { 0: [0, 1], 1: [0, 2], 2: [], 3: [1], 4: [], 5: [2] };
    const want = moeJs(rows, eye, experts, 2, (n, e) => kept[n]!.includes(e));
    expect(maxAbsDiff(y.dataSync(), flat(want))).toBeLessThan(1e-5);
    expect(Array.from(y.slice([4, 0], [1, 3]).dataSync())).toEqual([0, 0, 0]);
    expect(record.assigned).toEqual([5, 3, 2]); // e0: t0 t1 t3 + t2 t4; e1: t2 + t0 t3; e2: t4 + t1
    expect(record.kept).toEqual([2, 2, 2]);
    expect(record.capacity).toBe(2);

    // top-1, capacity 1: e0 <- t0 (t1, t3 dropped), e1 <- t2, e2 <- t4
    const one = mixtureOfExperts(x, { router: r, experts: ws }, { topK: 1, capacity: 1 }, evalCtx, mask);
    const kept1: Record<number, number[]> = { 0: [0], 1: [], 2: [], 3: [1], 4: [], 5: [2] };
    expect(maxAbsDiff(one.y.dataSync(), flat(moeJs(rows, eye, experts, 1, (n, e) => kept1[n]!.includes(e))))).toBeLessThan(1e-5);
    expect(one.record.assigned).toEqual([3, 1, 1]);
    expect(one.record.kept).toEqual([1, 1, 1]);
    tf.dispose([x, r, mask, y, record.auxLoss, one.y, one.record.auxLoss, ...ws.flatMap((w) => Object.values(w))]);
  });

  it('expertCapacity is ceil(capacityFactor * tokens * k / E)', () => {
    expect(expertCapacity(1.25, 10, 1, 4)).toBe(4); // 3.125
    expect(expertCapacity(1.25, 10, 2, 4)).toBe(7); // 6.25
    expect(expertCapacity(1, 8, 1, 4)).toBe(2);
  });

  it('the load-balancing loss equals a hand-computed value', () => {
    const ln3 = Math.log(3);
    // router = identity, d = E = 2: probabilities [.75 .25], [.25 .75], [.75 .25], [.5 .5] (tie: e0), padding
    const x = tf.tensor2d([ln3, 0, 0, ln3, ln3, 0, 0, 0, 9, 0], [5, 2]);
    const r = tf.tensor2d([
      [1, 0],
      [0, 1],
    ]);
    const ws = makeExperts(new Rng(2), 2, 2, 4).map(toTf);
    const { y, record } = mixtureOfExperts(x, { router: r, experts: ws }, { topK: 1, capacity: null }, evalCtx, tf.tensor1d([1, 1, 1, 1, 0]));
    // f = [3/4, 1/4]; P = [(.75 + .25 + .75 + .5) / 4, (.25 + .75 + .25 + .5) / 4] = [.5625, .4375]
    // aux = E * sum f P = 2 * (.75 * .5625 + .25 * .4375) = 1.0625
    expect(record.auxLoss.dataSync()[0]).toBeCloseTo(1.0625, 5);
    expect(record.assigned).toEqual([3, 1]);
    tf.dispose([x, r, y, record.auxLoss, ...ws.flatMap((w) => Object.values(w))]);
  });

  it.each([1, 2])('top-%i: the router gets a non-zero gradient that matches finite differences', (k) => {
    const rng = new Rng(30 + k);
    const d = 4;
    const experts = makeExperts(rng, 3, d, 6).map(toTf);
    const router = tf.variable(tf.tensor2d(randMat(rng, d, 3)));
    const x = tf.tensor2d(randMat(rng, 7, d));
    const target = tf.tensor2d(randMat(rng, 7, d));
    const loss = () => tf.tidy(() => mixtureOfExperts(x, { router, experts }, { topK: k, capacity: null }, evalCtx).y.sub(target).square().sum() as tf.Scalar);
    const { value, grads } = tf.variableGrads(loss, [router]);
    const g = grads[router.name]!;
    const ga = g.dataSync();
    expect(Math.max(...Array.from(ga, Math.abs))).toBeGreaterThan(1e-4);
    // central difference on the largest entry (small step: routing choices do not flip)
    const i = Array.from(ga, Math.abs).indexOf(Math.max(...Array.from(ga, Math.abs)));
    const base = router.dataSync().slice();
    const at = (delta: number) => {
      const w = base.slice();
      w[i] = w[i]! + delta;
      router.assign(tf.tensor2d(w, [d, 3]));
      const l = loss();
      const v = l.dataSync()[0]!;
      l.dispose();
      return v;
    };
    const h = 1e-2;
    const fd = (at(h) - at(-h)) / (2 * h);
    expect(Math.abs(fd - ga[i]!) / Math.abs(ga[i]!)).toBeLessThan(0.05);
    tf.dispose([value, g, router, x, target, ...experts.flatMap((w) => Object.values(w))]);
  });

  it('routing counts add up and summarise as shares and dropped claims', () => {
    const a = { 'enc.0': { assigned: [3, 1], kept: [2, 1] } };
    const b = { 'enc.0': { assigned: [1, 3], kept: [1, 2] }, 'dec.1': { assigned: [2, 2], kept: [2, 2] } };
    const c = addRoutingCounts(a, b);
    expect(c).toEqual({ 'enc.0': { assigned: [4, 4], kept: [3, 3] }, 'dec.1': { assigned: [2, 2], kept: [2, 2] } });
    expect(a['enc.0'].assigned).toEqual([3, 1]); // inputs untouched
    expect(routingSummary(c)).toEqual({
      'moe.enc.0.e0': 0.5,
      'moe.enc.0.e1': 0.5,
      'moe.enc.0.dropped': 0.25,
      'moe.dec.1.e0': 0.5,
      'moe.dec.1.e1': 0.5,
      'moe.dec.1.dropped': 0,
    });
  });
});

// ---- in the Transformer ----

const V = 19;
const base: ModelConfig = { ...DEFAULT_CONFIG.model, encoderLayers: 2, decoderLayers: 2, heads: 2, dModel: 16, dFF: 32, dropout: 0, maxPositions: 64 };
const moeCfg = (moe: Partial<NonNullable<ModelConfig['moe']>> = {}): ModelConfig => ({
  ...base,
  moe: { experts: 4, topK: 2, capacityFactor: 1.25, auxLossWeight: 0.01, layers: 'all', ...moe },
});

function ids(rng: Rng, B: number, T: number, lens: number[]): tf.Tensor2D {
  const a = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < lens[b]!; t++) a[b * T + t] = 3 + rng.int(V - 3);
  return tf.tensor2d(a, [B, T], 'int32');
}

describe('Transformer with model.moe', () => {
  it('names router and expert parameters per layer and stack', () => {
    const names = initParams(moeCfg({ layers: 'decoder', experts: 3 }), V, new Rng(1));
    expect(names.has('dec.1.moe.router.w')).toBe(true);
    expect(names.get('dec.1.moe.router.w').shape).toEqual([16, 3]);
    expect(names.get('dec.0.moe.e2.w1').shape).toEqual([16, 32]);
    expect(names.has('dec.0.ffn.w1')).toBe(false);
    expect(names.has('enc.0.ffn.w1')).toBe(true);
    expect(names.has('enc.0.moe.router.w')).toBe(false);
    names.dispose();
  });

  it('one expert with the plain model FFN weights gives the plain model logits (eval and training)', () => {
    const plain = createTransformer(base, V, new Rng(3));
    const cfg = moeCfg({ experts: 1, topK: 1, capacityFactor: 1 });
    const moe = createTransformer(cfg, V, new Rng(4));
    for (const name of moe.params.names()) {
      const from = name.replace(/\.moe\.e0\./, '.ffn.');
      if (plain.params.has(from)) moe.params.assign(name, plain.params.get(from).shape, plain.params.get(from).dataSync() as Float32Array);
    }
    const rng = new Rng(5);
    const src = ids(rng, 3, 7, [7, 4, 2]);
    const tgt = ids(rng, 3, 6, [6, 6, 3]);
    // padding rows differ (MoE gives them zero FFN output; nothing attends to them): compare real rows
    const real = Array.from(tgt.dataSync()).flatMap((id, i) => (id !== 0 ? [i] : []));
    for (const isTraining of [false, true]) {
      const a = tf.tidy(() => tf.gather(plain.forward(src, tgt, { isTraining, seed: 1 }), real));
      const b = tf.tidy(() => tf.gather(moe.forward(src, tgt, { isTraining, seed: 1 }), real));
      expect(a.shape).toEqual([15, V]);
      expect(maxAbsDiff(a.dataSync(), b.dataSync())).toBeLessThan(1e-5);
      tf.dispose([a, b]);
    }
    tf.dispose([src, tgt]);
    plain.dispose();
    moe.dispose();
  });

  it('training forwards use capacity ceil(capacityFactor * non-pad tokens * k / E); eval has no limit', () => {
    const m = createTransformer(moeCfg({ capacityFactor: 0.5 }), V, new Rng(6));
    const rng = new Rng(7);
    const src = ids(rng, 2, 6, [6, 3]); // 9 real tokens
    const tgt = ids(rng, 2, 5, [5, 5]); // 10
    const seen: Array<{ stack: string; layer: number; r: Omit<RoutingRecord, 'auxLoss'> }> = [];
    const hook = (stack: string, layer: number, r: RoutingRecord) =>
      seen.push({ stack, layer, r: { assigned: r.assigned, kept: r.kept, tokens: r.tokens, capacity: r.capacity } });
    tf.tidy(() => m.forward(src, tgt, { isTraining: true, seed: 1, routing: hook }));
    expect(seen.map((s) => `${s.stack}.${s.layer}`)).toEqual(['encoder.0', 'encoder.1', 'decoder.0', 'decoder.1']);
    expect(seen[0]!.r.tokens).toBe(9);
    expect(seen[0]!.r.capacity).toBe(Math.ceil((0.5 * 9 * 2) / 4)); // 3
    expect(seen[2]!.r.capacity).toBe(Math.ceil((0.5 * 10 * 2) / 4)); // 3
    for (const s of seen) expect(s.r.kept).toEqual(s.r.assigned.map((a) => Math.min(a, s.r.capacity!)));
    seen.length = 0;
    tf.tidy(() => m.forward(src, tgt, { isTraining: false, routing: hook }));
    for (const s of seen) {
      expect(s.r.capacity).toBeNull();
      expect(s.r.kept).toEqual(s.r.assigned);
    }
    tf.dispose([src, tgt]);
    m.dispose();
  });

  it('cached decoding matches the teacher-forced eval forward', () => {
    const m = createTransformer(moeCfg({ topK: 1 }), V, new Rng(8));
    const rng = new Rng(9);
    const src = ids(rng, 2, 5, [5, 5]);
    const tgt = ids(rng, 2, 4, [4, 4]);
    const full = tf.tidy(() => tf.logSoftmax(m.forward(src, tgt, { isTraining: false })).reshape([2, 4, V]));
    let state = m.startDecoding(src);
    const tgtRows = tgt.arraySync();
    for (let t = 0; t < 4; t++) {
      const last = tf.tensor1d(
        tgtRows.map((row) => row[t]!),
        'int32',
      );
      const { logProbs, state: next } = m.decodeStep(state, last);
      const want = full.slice([0, t, 0], [2, 1, V]);
      expect(maxAbsDiff(logProbs.dataSync(), want.dataSync())).toBeLessThan(1e-4);
      tf.dispose([last, logProbs, want]);
      tf.dispose(state.self.flatMap((c) => (c ? [c.k, c.v] : [])));
      state = next;
    }
    tf.dispose([src, tgt, full, ...stateTensors(state)]);
    m.dispose();
  });

  it('keeps the tensor count constant over repeated forwards and gradients', () => {
    const m = createTransformer(moeCfg(), V, new Rng(10));
    const rng = new Rng(11);
    const src = ids(rng, 2, 6, [6, 3]);
    const tgt = ids(rng, 2, 5, [5, 2]);
    const vars = [...m.params.vars.values()];
    const round = () => {
      tf.dispose(tf.tidy(() => m.forward(src, tgt, { isTraining: false })));
      tf.dispose(tf.tidy(() => m.forward(src, tgt, { isTraining: true, seed: 3 })));
      const { value, grads } = tf.variableGrads(() => {
        const aux: tf.Scalar[] = [];
        const logits = m.forward(src, tgt, { isTraining: true, seed: 4, routing: (_s, _l, r) => aux.push(r.auxLoss) });
        return logits.square().mean().add(tf.addN(aux)) as tf.Scalar;
      }, vars);
      tf.dispose([value, ...Object.values(grads)]);
    };
    round();
    const n = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) round();
    expect(tf.memory().numTensors).toBe(n);
    tf.dispose([src, tgt]);
    m.dispose();
  });

  it('a model config without the key (an old checkpoint) builds the plain model', () => {
    const old = { ...base } as Record<string, unknown>;
    delete old['moe'];
    const ps = initParams(old as unknown as ModelConfig, V, new Rng(1));
    expect(ps.has('enc.0.ffn.w1')).toBe(true);
    const m = new Transformer(old as unknown as ModelConfig, V, ps);
    const src = tf.tensor2d([[3, 4, 5]], [1, 3], 'int32');
    const out = tf.tidy(() => m.forward(src, src, { isTraining: false }));
    expect(out.shape).toEqual([3, V]);
    tf.dispose([src, out]);
    m.dispose();
  });
});

// ---- training ----

describe('training with model.moe', () => {
  it('the micro-batch loss adds auxLossWeight * sum of layer aux losses, weighted by the token share', async () => {
    const rng = new Rng(12);
    const pairs: EncodedPair[] = Array.from({ length: 6 }, (_, index) => {
      const src = Array.from({ length: 2 + rng.int(5) }, () => 3 + rng.int(V - 3));
      return { src, tgt: [...src].reverse(), index };
    });
    const b = makeBatch(
      pairs,
      pairs.map((_, i) => i),
    );
    const results: Array<{ aux?: number; grads: Map<string, tf.Tensor> }> = [];
    for (const weight of [0, 0.5]) {
      const m = createTransformer(moeCfg({ auxLossWeight: weight }), V, new Rng(13));
      const vars = [...m.params.vars.values()];
      const varNameToParam = new Map([...m.params.vars].map(([n, v]) => [v.name, n]));
      const ctx = {
        model: m,
        gates: null,
        varList: vars,
        varNameToParam,
        seed: 1,
        labelSmoothing: 0.1,
        step: 1,
        stepTgtTokens: 2 * b.tgtTokens,
        chunkRows: 100,
      };
      const r = await microBatchGradients(ctx, b, 0);
      // the layers' aux losses of the same (dropout-free) forward
      const aux = tf.tidy(() => {
        const all: tf.Scalar[] = [];
        m.forward(tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32'), tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32'), {
          isTraining: true,
          seed: 0,
          routing: (_s, _l, rec) => all.push(rec.auxLoss),
        });
        expect(all).toHaveLength(4);
        return tf.addN(all).dataSync()[0]!;
      });
      expect(r.aux).toBeCloseTo(weight * aux * 0.5, 5);
      expect(Object.keys(r.routing ?? {})).toEqual(['enc.0', 'enc.1', 'dec.0', 'dec.1']);
      results.push({ ...(r.aux !== undefined ? { aux: r.aux } : {}), grads: r.grads });
      m.dispose();
    }
    // the aux term reaches the routers' gradients
    const g0 = results[0]!.grads.get('enc.0.moe.router.w')!.dataSync();
    const g1 = results[1]!.grads.get('enc.0.moe.router.w')!.dataSync();
    expect(maxAbsDiff(g0, g1)).toBeGreaterThan(1e-6);
    for (const r of results) tf.dispose([...r.grads.values()]);
  });

  it('runTraining trains a tiny MoE model, logs expert usage to metrics.jsonl and checkpoints router and experts', async () => {
    const cfg = loadConfig(null, [
      'data.synthetic.task=reverse',
      'data.synthetic.trainPairs=200',
      'data.synthetic.validPairs=4',
      'data.synthetic.testPairs=4',
      'data.bpeMerges=20',
      'model.dModel=16',
      'model.dFF=32',
      'model.heads=2',
      'model.encoderLayers=1',
      'model.decoderLayers=1',
      'train.maxSteps=4',
      'train.logEverySteps=2',
      'train.maxTokensPerBatch=300',
      'train.workers=1',
      'train.evalEverySteps=0',
      'train.devBleuSentences=0',
      'train.checkpointEverySteps=1000',
      'model.moe={experts: 3, topK: 2, capacityFactor: 1, auxLossWeight: 0.01, layers: all}',
    ]);
    const run = RunFolder.create(mkdtempSync(join(tmpdir(), 'heads-moe-')), 'moe');
    const r = await runTraining({ config: cfg, run, progress: new ProgressLine(process.stderr, false), evaluateTest: false });
    expect(r.steps).toBe(4);
    const logs = readFileSync(join(run.path, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, number>)
      .filter((x) => 'loss' in x);
    expect(logs.map((l) => l['step'])).toEqual([2, 4]);
    for (const l of logs) {
      expect(Number.isFinite(l['loss'])).toBe(true);
      expect(l['moe.aux']).toBeGreaterThan(0);
      for (const layer of ['enc.0', 'dec.0']) {
        const shares = [0, 1, 2].map((e) => l[`moe.${layer}.e${e}`]!);
        expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 3);
        expect(l[`moe.${layer}.dropped`]).toBeGreaterThanOrEqual(0);
        expect(l[`moe.${layer}.dropped`]).toBeLessThan(1);
      }
    }
    const steps = readdirSync(join(run.path, 'checkpoints')).filter((n) => n.startsWith('step-'));
    const ckpt = readCheckpoint(join(run.path, 'checkpoints', steps[0]!));
    expect(ckpt.params['enc.0.moe.router.w']!.shape).toEqual([16, 3]);
    expect(ckpt.params['dec.0.moe.e2.w2']!.shape).toEqual([32, 16]);
    expect(ckpt.state.config.model.moe).toEqual(cfg.model.moe);
  });

  it('worker training (2 threads) adds the aux loss and reports expert usage like in-process training', async () => {
    const rng = new Rng(14);
    const pairs: EncodedPair[] = Array.from({ length: 200 }, (_, index) => {
      const src = Array.from({ length: 3 + rng.int(5) }, () => 3 + rng.int(V - 3));
      return { src, tgt: [...src].reverse(), index };
    });
    const runSteps = async (workers: number) => {
      const cfg = loadConfig(null, [
        'model.dModel=16',
        'model.dFF=32',
        'model.heads=2',
        'model.encoderLayers=1',
        'model.decoderLayers=1',
        'model.dropout=0',
        'train.maxTokensPerBatch=300',
        'train.accumulateSteps=2',
        'train.evalEverySteps=0',
        'train.maxSteps=2',
        `train.workers=${workers}`,
        'model.moe={experts: 3, topK: 1, capacityFactor: 1, auxLossWeight: 0.1, layers: all}',
      ]);
      const model = createTransformer(cfg.model, V, new Rng(15));
      const t = new Trainer({ config: cfg, model, train: pairs, valid: pairs.slice(0, 4), run: null, progress: new ProgressLine(process.stderr, false) });
      expect(t.workerCount).toBe(workers);
      for (let i = 0; i < 2; i++) await t.trainStep();
      await t.syncModel();
      const out = { history: t.history.map((h) => ({ ...h })), router: Array.from((await model.params.toArrays())['enc.0.moe.router.w']!.data) };
      t.dispose();
      model.dispose();
      return out;
    };
    const one = await runSteps(1);
    const two = await runSteps(2);
    for (let i = 0; i < 2; i++) {
      expect(two.history[i]!.routing).toEqual(one.history[i]!.routing);
      expect(two.history[i]!.moeAux).toBeCloseTo(one.history[i]!.moeAux!, 5);
      expect(one.history[i]!.moeAux).toBeGreaterThan(0);
    }
    expect(maxAbsDiff(two.router, one.router)).toBeLessThan(1e-4);
  });
});

// ---- config ----

describe('model.moe config', () => {
  function errorOf(set: string[], path: string | null = null): string {
    try {
      loadConfig(path, set);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error(`expected a ConfigError for ${set.join(' ')}`);
  }
  const ok = 'capacityFactor: 1.25, auxLossWeight: 0.01, layers: all';
  const bad: Array<[string[], string[]]> = [
    [[`model.moe={experts: 0, topK: 1, ${ok}}`], ['model.moe.experts', 'integer >= 1', 'got 0']],
    [[`model.moe={experts: 2.5, topK: 1, ${ok}}`], ['model.moe.experts', 'integer >= 1', 'got 2.5']],
    [[`model.moe={experts: 4, topK: 3, ${ok}}`], ['model.moe.topK', 'expected 1 or 2', 'got 3']],
    [['model.moe={experts: 4, topK: 1, capacityFactor: 0, auxLossWeight: 0.01, layers: all}'], ['model.moe.capacityFactor', 'number > 0', 'got 0']],
    [['model.moe={experts: 4, topK: 1, capacityFactor: 1, auxLossWeight: -1, layers: all}'], ['model.moe.auxLossWeight', 'number >= 0', 'got -1']],
    [
      ['model.moe={experts: 4, topK: 1, capacityFactor: 1, auxLossWeight: 0, layers: middle}'],
      ['model.moe.layers', "'encoder', 'decoder' or 'all'", '"middle"'],
    ],
    [[`model.moe={expert: 4, topK: 1, ${ok}}`], ['model.moe.expert', 'unknown key', "did you mean 'experts'"]],
    [['model.moe={experts: 4}'], ['model.moe.topK', 'expected 1 or 2', 'got nothing']],
    [[`model.moe={experts: 1, topK: 2, ${ok}}`], ['model.moe.topK', '2 is more than model.moe.experts = 1']],
    [
      ['model.encoderLayers=0', 'model.moe={experts: 2, topK: 1, capacityFactor: 1, auxLossWeight: 0, layers: encoder}'],
      ['model.moe.layers', 'model.encoderLayers is 0'],
    ],
    [
      [`model.moe={experts: 2, topK: 1, ${ok}}`, 'model.ffnWidths={encoder: [8, 8], decoder: [8, 8]}'],
      ['model.moe', 'model.ffnWidths'],
    ],
    [['model.moe=4'], ['model.moe', 'got 4']],
  ];
  it.each(bad)('%j', (set, fragments) => {
    const msg = errorOf(set);
    for (const f of fragments) expect(msg).toContain(f);
  });

  it('accepts a full block; off by default and registered as such; old configs load with it off', () => {
    const c = loadConfig(null, ['model.moe={experts: 4, topK: 2, capacityFactor: 1.25, auxLossWeight: 0.01, layers: decoder}']);
    expect(c.model.moe).toEqual({ experts: 4, topK: 2, capacityFactor: 1.25, auxLossWeight: 0.01, layers: 'decoder' });
    expect(DEFAULT_CONFIG.model.moe).toBeNull();
    expect(FEATURE_KEYS_OFF_BY_DEFAULT['model.moe']).toBe(DEFAULT_CONFIG.model.moe);
    expect('moe' in (stageIdentity(loadConfig(null))['model'] as object)).toBe(false);
    expect((stageIdentity(c)['model'] as Record<string, unknown>)['moe']).toEqual(c.model.moe);
    const old = JSON.parse(JSON.stringify(loadConfig(null))) as { model: Record<string, unknown> };
    delete old.model['moe'];
    expect(loadConfigOn(old as unknown as ResolvedConfig, null, [], 'old/config.json').model.moe).toBeNull();
  });
});
