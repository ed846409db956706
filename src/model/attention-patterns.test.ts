import * as tf from '@tensorflow/tfjs';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import type { AttentionPattern, ModelConfig, ResolvedConfig } from '../config/schema.js';
import type { AttentionType } from '../config/head-id.js';
import { loadConfig, loadConfigOn } from '../config/load.js';
import { ConfigError } from '../util/errors.js';
import { stageIdentity, FEATURE_KEYS_OFF_BY_DEFAULT } from '../experiments/stage.js';
import { Rng } from '../util/random.js';
import { ForwardContext } from './layers.js';
import { Transformer, createTransformer, type DecoderState, type GateTensors } from './transformer.js';
import type { AttentionRecord } from './attention.js';
import { allowedPairs, attentionSavings, formatAttentionSavings, hasAttentionPatterns, patternBias } from './attention-patterns.js';
import { greedyDecode, beamSearch } from '../eval/decode.js';
import { useTestBackend, maxAbsDiff } from '../test-utils/backend.js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunFolder } from '../util/run-folder.js';
import { ProgressLine } from '../train/progress.js';
import { runTraining } from '../train/run-training.js';

const V = 17;
const base: ModelConfig = { ...DEFAULT_CONFIG.model, encoderLayers: 2, decoderLayers: 2, heads: 4, dModel: 16, dFF: 32, dropout: 0, maxPositions: 64 };
const withPatterns = (p: ModelConfig['attentionPatterns']): ModelConfig => ({ ...base, attentionPatterns: p });

/** 1 where the bias allows a pair, 0 where it masks it. */
function allowedMatrix(type: AttentionType, p: AttentionPattern | null, Tq: number, Tk: number, qOffset = 0): number[][] {
  const b = patternBias(type, p, Tq, Tk, qOffset);
  const m = (b.reshape([Tq, Tk]).arraySync() as number[][]).map((row) => row.map((x) => (x === 0 ? 1 : 0)));
  b.dispose();
  return m;
}

function randomIds(rng: Rng, B: number, T: number, padFrom?: number[]): Int32Array {
  const a = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) a[b * T + t] = padFrom && t >= padFrom[b]! ? 0 : 3 + rng.int(V - 3);
  return a;
}

/**
 * The reference "full-sequence decoding": every step re-runs the whole decoder on the prefix so far
 * (teacher-forced `decode`, full pattern masks), no key/value cache. The prefix travels in the state's
 * first self-cache slot [B, 1, t, 1], so greedy and beam search reorder it like a real cache.
 */
class FullRecomputeTransformer extends Transformer {
  override decodeStep(state: DecoderState, lastTokens: tf.Tensor1D, gates?: GateTensors): { logProbs: tf.Tensor2D; state: DecoderState } {
    const B = lastTokens.shape[0];
    const tok = lastTokens.cast('float32').reshape([B, 1, 1, 1]) as tf.Tensor4D;
    const prev = state.self[0];
    const hist = prev ? (tf.concat([prev.k, tok], 2) as tf.Tensor4D) : tok;
    const T = state.step + 1;
    const hidden = this.decode(hist.reshape([B, T]).cast('int32') as tf.Tensor2D, state.memory, state.srcBias, ForwardContext.eval(), { gates });
    const last = hidden.slice([0, T - 1, 0], [B, 1, this.config.dModel]);
    const logProbs = tf.logSoftmax(this.logits(last)) as tf.Tensor2D;
    const self = state.self.map((_, l) => (l === 0 ? { k: hist, v: hist.clone() } : null));
    return { logProbs, state: { ...state, self, step: T } };
  }
}

let dense: Transformer;
beforeAll(async () => {
  await useTestBackend();
  dense = createTransformer(base, V, new Rng(7));
});
afterAll(() => dense.dispose());

/** The dense model's weights under other attention patterns (shares its parameters: do not dispose). */
const patterned = (p: ModelConfig['attentionPatterns']) => new Transformer(withPatterns(p), V, dense.params);

describe('pattern masks', () => {
  it('local window 1 over 4 positions (encoder)', () => {
    expect(allowedMatrix('enc-self', { kind: 'local', window: 1 }, 4, 4)).toEqual([
      [1, 1, 0, 0],
      [1, 1, 1, 0],
      [0, 1, 1, 1],
      [0, 0, 1, 1],
    ]);
  });

  it('sliding window 2 over 5 positions (decoder: itself and the 2 previous)', () => {
    expect(allowedMatrix('dec-self', { kind: 'sliding', window: 2 }, 5, 5)).toEqual([
      [1, 0, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [1, 1, 1, 0, 0],
      [0, 1, 1, 1, 0],
      [0, 0, 1, 1, 1],
    ]);
  });

  it('blocks of 2 over 7 positions: own and neighbouring blocks; causal in the decoder', () => {
    // blocks {0,1} {2,3} {4,5} {6}
    expect(allowedMatrix('enc-self', { kind: 'block', block: 2 }, 7, 7)).toEqual([
      [1, 1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 0],
      [0, 0, 1, 1, 1, 1, 1],
      [0, 0, 1, 1, 1, 1, 1],
      [0, 0, 0, 0, 1, 1, 1],
    ]);
    expect(allowedMatrix('dec-self', { kind: 'block', block: 2 }, 7, 7)).toEqual([
      [1, 0, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0],
      [0, 0, 1, 1, 1, 0, 0],
      [0, 0, 1, 1, 1, 1, 0],
      [0, 0, 0, 0, 1, 1, 1],
    ]);
  });

  it('the row of decoding step t is row t of the full mask; no pattern in dec-self is plain causal', () => {
    const p: AttentionPattern = { kind: 'sliding', window: 2 };
    const full = allowedMatrix('dec-self', p, 6, 6);
    for (let t = 0; t < 6; t++) expect(allowedMatrix('dec-self', p, 1, t + 1, t)[0]).toEqual(full[t]!.slice(0, t + 1));
    expect(allowedMatrix('dec-self', null, 3, 3)).toEqual([
      [1, 0, 0],
      [1, 1, 0],
      [1, 1, 1],
    ]);
  });
});

describe('patterns in the Transformer', () => {
  const B = 3,
    S = 7,
    T = 6;
  const rng = new Rng(11);
  const srcIds = randomIds(rng, B, S, [7, 5, 3]);
  const tgtIds = randomIds(rng, B, T, [6, 6, 4]);
  const src = tf.tensor2d(srcIds, [B, S], 'int32');
  const tgtIn = tf.tensor2d(tgtIds, [B, T], 'int32');
  const logitsOf = (m: Transformer) => tf.tidy(() => m.forward(src, tgtIn, { isTraining: false }).dataSync());

  it('a window or block covering the whole sentence gives exactly the dense logits', () => {
    const ref = logitsOf(dense);
    for (const p of [
      { 'enc-self': { kind: 'local', window: S }, 'dec-self': { kind: 'sliding', window: T } },
      { 'enc-self': { kind: 'local', window: S - 1 }, 'dec-self': { kind: 'sliding', window: T - 1 } },
      { 'enc-self': { kind: 'block', block: S }, 'dec-self': { kind: 'block', block: 100 }, 'dec-enc': null },
    ] as const)
      expect(maxAbsDiff(logitsOf(patterned(p)), ref)).toBe(0);
    // and a narrow one changes them (the masks are in use)
    expect(maxAbsDiff(logitsOf(patterned({ 'enc-self': { kind: 'local', window: 1 } })), ref)).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(logitsOf(patterned({ 'dec-self': { kind: 'block', block: 2 } })), ref)).toBeGreaterThan(1e-4);
  });

  it('composes with padding: padded and pattern-masked keys get no weight, rows sum to one', () => {
    const pats = { 'enc-self': { kind: 'local', window: 1 }, 'dec-self': { kind: 'sliding', window: 1 } } as const;
    const m = patterned(pats);
    const recs: Array<[AttentionType, number[][][][]]> = [];
    tf.tidy(() => m.forward(src, tgtIn, { isTraining: false, record: (s, _l, r: AttentionRecord) => recs.push([s, r.weights.arraySync()]) })).dispose();
    const srcLen = [7, 5, 3],
      tgtLen = [6, 6, 4];
    let checked = 0;
    for (const [stack, w] of recs) {
      const qLen = stack === 'enc-self' ? srcLen : tgtLen;
      const kLen = stack === 'dec-self' ? tgtLen : srcLen;
      for (let b = 0; b < B; b++)
        for (const head of w[b]!)
          for (let q = 0; q < qLen[b]!; q++) {
            const row = head[q]!;
            expect(row.reduce((a, x) => a + x, 0)).toBeCloseTo(1, 5);
            for (let k = 0; k < row.length; k++) {
              const isPad = k >= kLen[b]!;
              const isMasked = stack === 'enc-self' ? Math.abs(q - k) > 1 : stack === 'dec-self' ? k > q || q - k > 1 : false;
              if (isPad || isMasked) expect(row[k]).toBe(0);
              else expect(row[k]).toBeGreaterThan(0);
              checked++;
            }
          }
    }
    expect(checked).toBeGreaterThan(500);
  });

  it.each([
    ['sliding 2 + local 1', { 'enc-self': { kind: 'local', window: 1 }, 'dec-self': { kind: 'sliding', window: 2 } }],
    ['block 2 (both)', { 'enc-self': { kind: 'block', block: 2 }, 'dec-self': { kind: 'block', block: 2 } }],
  ] as const)('incremental decoding equals full-sequence decoding under %s', async (_label, pats) => {
    const m = patterned(pats);
    const full = new FullRecomputeTransformer(withPatterns(pats), V, dense.params);
    // step by step: cached log-probs equal the teacher-forced forward's rows
    const ref = tf.tidy(() =>
      tf
        .logSoftmax(m.forward(src, tgtIn, { isTraining: false }))
        .reshape([B, T, V])
        .arraySync(),
    ) as number[][][];
    const tin = tgtIn.arraySync();
    let state = tf.tidy(() => m.startDecoding(src) as unknown as tf.TensorContainer) as unknown as DecoderState;
    for (let t = 0; t < 4; t++) {
      // rows 0..3 have no target padding up to step 3
      const tok = tf.tensor1d(
        tin.map((row) => row[t]!),
        'int32',
      );
      const r = tf.tidy(() => m.decodeStep(state, tok) as unknown as tf.TensorContainer) as unknown as { logProbs: tf.Tensor2D; state: DecoderState };
      const lp = r.logProbs.arraySync();
      for (let b = 0; b < B; b++) expect(maxAbsDiff(lp[b]!, ref[b]![t]!)).toBeLessThan(1e-4);
      for (const c of state.self) if (c) tf.dispose([c.k, c.v]);
      tf.dispose([tok, r.logProbs]);
      state = r.state;
    }
    tf.dispose([state.srcBias, state.memory, ...state.cross.flatMap((c) => [c.k, c.v]), ...state.self.flatMap((c) => (c ? [c.k, c.v] : []))]);
    // whole searches: outputs up to 11 tokens, longer than the windows
    const o = { beamSize: 1, lengthPenalty: 0.6, maxLenA: 1, maxLenB: 4 };
    const greedy = await greedyDecode(m, srcIds, B, S, o);
    expect(Math.max(...greedy.map((g) => g.length))).toBeGreaterThan(4);
    expect(greedy).toEqual(await greedyDecode(full, srcIds, B, S, o));
    const beam = await beamSearch(m, srcIds, B, S, { ...o, beamSize: 3 });
    expect(beam).toEqual(await beamSearch(full, srcIds, B, S, { ...o, beamSize: 3 }));
    // and the pattern matters for what is decoded here (not vacuous)
    expect(
      tf.tidy(() => maxAbsDiff(m.forward(src, tgtIn, { isTraining: false }).dataSync(), dense.forward(src, tgtIn, { isTraining: false }).dataSync())),
    ).toBeGreaterThan(1e-4);
  });

  it('does not leak tensors in forward, greedy and beam decoding under patterns', async () => {
    const m = patterned({ 'enc-self': { kind: 'block', block: 2 }, 'dec-self': { kind: 'sliding', window: 1 } });
    const o = { beamSize: 3, lengthPenalty: 0.6, maxLenA: 1, maxLenB: 4 };
    await beamSearch(m, srcIds, B, S, o);
    const before = tf.memory().numTensors;
    tf.tidy(() => m.forward(src, tgtIn, { isTraining: true, seed: 1 })).dispose();
    await greedyDecode(m, srcIds, B, S, { ...o, beamSize: 1 });
    await beamSearch(m, srcIds, B, S, o);
    const b = patternBias('dec-self', { kind: 'block', block: 3 }, 4, 4);
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a model config without the key (written before it existed) is dense', () => {
    const { attentionPatterns: _drop, ...old } = base;
    const m = new Transformer(old as ModelConfig, V, dense.params);
    expect(hasAttentionPatterns(old as ModelConfig)).toBe(false);
    expect(maxAbsDiff(logitsOf(m), logitsOf(dense))).toBe(0);
  });
});

describe('model.attentionPatterns in configs', () => {
  function errorOf(set: string): string {
    try {
      loadConfig(null, [set]);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error(`expected a ConfigError for ${set}`);
  }

  const bad: Array<[string, string[]]> = [
    ['model.attentionPatterns={enc-self: {kind: sliding, window: 3}}', ['model.attentionPatterns.enc-self.kind', "'local' or 'block'"]],
    ['model.attentionPatterns={dec-self: {kind: local, window: 3}}', ['model.attentionPatterns.dec-self.kind', "'sliding' or 'block'"]],
    ['model.attentionPatterns={dec-enc: {kind: local, window: 3}}', ['model.attentionPatterns.dec-enc', 'expected null']],
    ['model.attentionPatterns={enc-self: {kind: local, window: 0}}', ['model.attentionPatterns.enc-self.window', 'positive integer', 'got 0']],
    ['model.attentionPatterns={dec-self: {kind: sliding, window: 2.5}}', ['model.attentionPatterns.dec-self.window', 'positive integer', 'got 2.5']],
    ['model.attentionPatterns={enc-self: {kind: block, block: "x"}}', ['model.attentionPatterns.enc-self.block', 'positive integer', 'got "x"']],
    ['model.attentionPatterns={enc-self: {kind: block, window: 2}}', ['model.attentionPatterns.enc-self']],
    ['model.attentionPatterns={enc_self: {kind: local, window: 2}}', ['model.attentionPatterns.enc_self', 'unknown key', "did you mean 'enc-self'", 'dec-enc']],
    ['model.attentionPatterns=local', ['model.attentionPatterns', '"local"']],
  ];
  it.each(bad)('%s', (set, fragments) => {
    const msg = errorOf(set);
    for (const f of fragments) expect(msg).toContain(f);
  });

  it('accepts per-type patterns and --set of one type; the default is off and registered as such', () => {
    const c = loadConfig(null, ['model.attentionPatterns={enc-self: {kind: local, window: 4}, dec-self: {kind: sliding, window: 8}, dec-enc: null}']);
    expect(c.model.attentionPatterns).toEqual({ 'enc-self': { kind: 'local', window: 4 }, 'dec-self': { kind: 'sliding', window: 8 }, 'dec-enc': null });
    expect(hasAttentionPatterns(c.model)).toBe(true);
    expect(loadConfig(null, ['model.attentionPatterns.dec-self={kind: block, block: 16}']).model.attentionPatterns).toEqual({
      'dec-self': { kind: 'block', block: 16 },
    });
    expect(DEFAULT_CONFIG.model.attentionPatterns).toBeNull();
    expect(FEATURE_KEYS_OFF_BY_DEFAULT['model.attentionPatterns']).toBe(DEFAULT_CONFIG.model.attentionPatterns);
    expect('attentionPatterns' in (stageIdentity(loadConfig(null))['model'] as object)).toBe(false);
    expect((stageIdentity(c)['model'] as Record<string, unknown>)['attentionPatterns']).toEqual(c.model.attentionPatterns);
  });

  it('a config saved before the key existed loads over the defaults, dense', () => {
    const old = JSON.parse(JSON.stringify(loadConfig(null))) as { model: Record<string, unknown> };
    delete old.model['attentionPatterns'];
    const c = loadConfigOn(old as unknown as ResolvedConfig, null, [], 'old/config.json');
    expect(c.model.attentionPatterns).toBeNull();
    expect(hasAttentionPatterns(c.model)).toBe(false);
  });
});

describe('attention FLOPs under a pattern', () => {
  it('counts allowed pairs and 2 * dHead FLOPs per pair, head and product, against hand counts', () => {
    // local 1 over 4: rows allow 2, 3, 3, 2 keys = 10 (dense 16)
    expect(allowedPairs('enc-self', { kind: 'local', window: 1 }, 4, 4)).toBe(10);
    // sliding 1 over 3: 1, 2, 2 = 5 (dense causal 1 + 2 + 3 = 6)
    expect(allowedPairs('dec-self', { kind: 'sliding', window: 1 }, 3, 3)).toBe(5);
    // blocks of 2 over 7, as in the hand-written masks above: 4+4+6+6+5+5+3 = 33; causal 1+2+3+4+3+4+3 = 20
    expect(allowedPairs('enc-self', { kind: 'block', block: 2 }, 7, 7)).toBe(33);
    expect(allowedPairs('dec-self', { kind: 'block', block: 2 }, 7, 7)).toBe(20);

    const heads = { 'enc-self': [2, 2], 'dec-self': [2, 1], 'dec-enc': [2, 2] };
    const s = attentionSavings({ attentionPatterns: { 'enc-self': { kind: 'local', window: 1 }, 'dec-self': { kind: 'sliding', window: 1 } } }, heads, 4, [
      { src: 4, tgt: 3 },
      { src: 2, tgt: 1 },
    ]);
    // enc-self: pattern 10 + 4 (local 1 over 2 is dense) = 14 pairs, dense 16 + 4 = 20; 4 heads, dHead 4: 2*4*4 = 32 FLOPs per pair
    expect(s['enc-self'].pattern).toEqual({ pairs: 14, scoreFlops: 14 * 32, contextFlops: 14 * 32 });
    expect(s['enc-self'].dense).toEqual({ pairs: 20, scoreFlops: 20 * 32, contextFlops: 20 * 32 });
    // dec-self: 5 + 1 vs 6 + 1, 3 heads: 24 FLOPs per pair
    expect(s['dec-self'].pattern.scoreFlops).toBe(6 * 24);
    expect(s['dec-self'].dense.scoreFlops).toBe(7 * 24);
    // dec-enc has no pattern: T * S = 12 + 2 pairs both ways
    expect(s['dec-enc'].pattern).toEqual(s['dec-enc'].dense);
    expect(s['dec-enc'].dense.pairs).toBe(14);
    expect(s['enc-self'].patternLabel).toBe('local(1)');
    const line = formatAttentionSavings(s);
    expect(line).toContain('enc-self local(1) 70% of dense');
    expect(line).toContain('dec-self sliding(1) 86% of dense');
    expect(line).not.toContain('dec-enc');
  });
});

describe('training under patterns', () => {
  it('runs, prints the FLOPs line once at start and records it in results.json', async () => {
    const lines: string[] = [];
    const progress = new (class extends ProgressLine {
      override log(text: string): void {
        lines.push(text);
      }
    })(process.stderr, true);
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
      'train.maxSteps=2',
      'train.maxTokensPerBatch=300',
      'train.workers=1',
      'train.evalEverySteps=0',
      'train.devBleuSentences=0',
      'train.checkpointEverySteps=1000',
      'model.attentionPatterns={enc-self: {kind: local, window: 2}, dec-self: {kind: block, block: 3}}',
    ]);
    const run = RunFolder.create(mkdtempSync(join(tmpdir(), 'heads-patterns-')), 'patterns');
    const r = await runTraining({ config: cfg, run, progress, evaluateTest: false });
    expect(r.steps).toBe(2);
    const flopLines = lines.filter((l) => l.startsWith('attention patterns:'));
    expect(flopLines).toHaveLength(1);
    expect(flopLines[0]).toMatch(
      /^attention patterns: enc-self local\(2\) \d+% of dense, dec-self block\(3\) \d+% of dense; total [\d.]+ of [\d.]+ GFLOP QK\^T\+AV \(\d+%\) per epoch/,
    );
    const results = JSON.parse(readFileSync(join(run.path, 'results.json'), 'utf8')) as {
      attentionPatterns: { patterns: unknown; flopsPerEpoch: Record<string, { dense: { pairs: number }; pattern: { pairs: number } }> };
    };
    expect(results.attentionPatterns.patterns).toEqual(cfg.model.attentionPatterns);
    const enc = results.attentionPatterns.flopsPerEpoch['enc-self']!;
    expect(enc.pattern.pairs).toBeLessThan(enc.dense.pairs);
  });
});
