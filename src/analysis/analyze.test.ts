import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import type { ModelConfig } from '../config/schema.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import type { SentencePair } from '../data/corpus.js';
import { HeadGates } from '../gates/head-gates.js';
import { createTransformer, type Transformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { useTestBackend } from '../test-utils/backend.js';
import { AnalysisStopped, analyzeHeads, trainingFrequencies } from './analyze.js';
import { headReportCsv, readHeadReport, writeHeadReport, type HeadReport } from './report.js';
import { tinyConfig } from './test-fixtures.js';

// A physically pruned model: enc-self layer 0 keeps original heads 1 and 3, dec-enc layer 1 keeps head 2.
const KEPT = {
  'enc-self': [
    [1, 3],
    [0, 1, 2, 3],
  ],
  'dec-self': [
    [0, 1, 2, 3],
    [0, 1, 2, 3],
  ],
  'dec-enc': [[0, 1, 2, 3], [2]],
};
const MODEL: Partial<ModelConfig> = { heads: 4, dModel: 16, dFF: 16, norm: 'post', keptHeads: KEPT };
const D = 16;
const D_HEAD = 4;
const SCALE = 8;

const letters = 'abcdefghijklmnop';
function randomWord(rng: Rng, n: number): string {
  return Array.from({ length: n }, () => letters[rng.int(letters.length)]).join('');
}
const rng = new Rng(5);
// one 16-letter word per source: 17 pieces (▁ + letters) + </s>, no padding, so a positional head
// misses only the first query (no previous token): 17/18 = 94% at offset -1
const pairs: SentencePair[] = Array.from({ length: 6 }, () => ({ src: randomWord(rng, 16), tgt: randomWord(rng, 4) }));
const tokenizer = BpeTokenizer.learn(pairs.flatMap((p) => [p.src, p.tgt]).concat([letters]), { numMerges: 0 });

/**
 * Plant two heads in enc-self layer 0 (post-norm, so the layer sees the raw embeddings):
 * - position 0 (original head 1) attends to the previous token. Token embeddings are 0 in dims 0..3,
 *   so those dims hold the sinusoidal position only: (sin p, cos p, sin wp, cos wp), w = 10000^(-2/16).
 *   Keys read them as they are; queries rotate each (sin, cos) pair back by one position, so
 *   q_p . k_j = SCALE (cos(p-1-j) + cos(w(p-1-j))), which is largest exactly at j = p - 1.
 * - position 1 (original head 3) has zero query weights: every score is 0, attention is uniform.
 */
function plantHeads(model: Transformer): void {
  const emb = model.params.get('emb.shared');
  const embData = emb.arraySync() as number[][];
  for (const row of embData) for (let i = 0; i < 4; i++) row[i] = 0;
  tf.tidy(() => emb.assign(tf.tensor2d(embData)));
  const wq = new Float32Array(D * 2 * D_HEAD); // [d, 2 heads * dHead]
  const wk = model.params.get('enc.0.self.wk').arraySync() as number[][];
  const omega = [1, Math.pow(10000, -2 / D)];
  omega.forEach((w, f) => {
    const [s, c] = [Math.sin(w), Math.cos(w)];
    const i = 2 * f; // input dims (sin, cos) of this frequency; output dims of head position 0
    wq[i * 2 * D_HEAD + i] = SCALE * c;
    wq[(i + 1) * 2 * D_HEAD + i] = -SCALE * s;
    wq[i * 2 * D_HEAD + i + 1] = SCALE * s;
    wq[(i + 1) * 2 * D_HEAD + i + 1] = SCALE * c;
  });
  for (let r = 0; r < D; r++) for (let col = 0; col < D_HEAD; col++) wk[r]![col] = r === col ? 1 : 0;
  model.params.assign('enc.0.self.wq', [D, 2 * D_HEAD], wq);
  model.params.assign('enc.0.self.wk', [D, 2 * D_HEAD], Float32Array.from(wk.flat()));
}

let report: HeadReport;
let dir: string;
let leaked = -1;

const progress: string[] = [];
/** gates on enc-self and dec-enc, all open */
const gatedConfig = () =>
  tinyConfig(MODEL, { gates: { ...DEFAULT_CONFIG.gates, attention: ['enc-self', 'dec-enc'], logAlphaInit: { kind: 'constant', value: 10 } } });
beforeAll(async () => {
  await useTestBackend();
  const config = gatedConfig();
  const model = createTransformer(config.model, tokenizer.vocabSize, new Rng(3));
  plantHeads(model);
  const gates = new HeadGates(config.gates, model.shape, config.seed);
  // close original head 2 of enc-self layer 1 (its position is 2: that layer is unpruned)
  tf.tidy(() => gates.variables.get('gate.enc-self.1')!.assign(tf.tensor1d([10, 10, -10, 10])));
  const freq = trainingFrequencies(tokenizer, pairs);
  const tensorsBefore = tf.memory().numTensors;
  report = await analyzeHeads({
    model,
    gates,
    tokenizer,
    config,
    source: { runPath: 'runs/x', checkpoint: 'runs/x/checkpoints/step-0000001', step: 1 },
    split: { name: 'dev', source: 'test pairs', pairs },
    frequencies: { ...freq, source: 'test pairs' },
    ablation: { metric: 'bleu', bleuSentences: 2 },
    lrp: { sentences: 3 },
    onProgress: (m) => progress.push(m),
  });
  leaked = tf.memory().numTensors - tensorsBefore;
  gates.dispose();
  model.dispose();
  dir = mkdtempSync(join(tmpdir(), 'heads-analyze-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('analyzeHeads stops on request', () => {
  it('throws AnalysisStopped at the next stop point (a batch or an ablation) and goes no further', async () => {
    const config = gatedConfig();
    const model = createTransformer(config.model, tokenizer.vocabSize, new Rng(3));
    const gates = new HeadGates(config.gates, model.shape, config.seed);
    const seen: string[] = [];
    let polls = 0;
    try {
      const run = analyzeHeads({
        model,
        gates,
        tokenizer,
        config,
        source: { runPath: 'runs/x', checkpoint: 'runs/x/checkpoints/step-0000001', step: 1 },
        split: { name: 'dev', source: 'test pairs', pairs },
        onProgress: (m) => seen.push(m),
        // asked to stop once the first ablation has been announced
        isStopRequested: () => (polls++, seen.some((m) => m.startsWith('ablation '))),
      });
      await expect(run).rejects.toBeInstanceOf(AnalysisStopped);
    } finally {
      gates.dispose();
      model.dispose();
    }
    expect(polls).toBeGreaterThan(1);
    expect(seen.filter((m) => m.startsWith('ablation '))).toHaveLength(1);
    expect(seen.some((m) => m.startsWith('LRP'))).toBe(false);
  });
});

describe('analyzeHeads on a model with planted heads', () => {
  it('shows progress through every pass over the sentences, ending each at its last batch', () => {
    for (const pass of ['attention statistics', 'importance', 'LRP relevance']) {
      const lines = progress.filter((m) => m.startsWith(`${pass}: batch `));
      expect(lines.length).toBeGreaterThan(0);
      const last = /batch (\d+)\/(\d+) \| .* \| ETA /.exec(lines.at(-1)!);
      expect(last).not.toBeNull();
      expect(last![1]).toBe(last![2]);
    }
  });

  it('reports heads under their original ids', () => {
    const keys = Object.keys(report.heads);
    expect(keys).toContain('enc-self.0.1');
    expect(keys).toContain('enc-self.0.3');
    expect(keys).not.toContain('enc-self.0.0');
    expect(keys.filter((k) => k.startsWith('dec-enc.1.'))).toEqual(['dec-enc.1.2']);
    expect(keys).toHaveLength(2 + 4 + 8 + 4 + 1);
    expect(report.heads['enc-self.0.3']!.position).toBe(1);
    expect(report.model.keptHeads).toEqual(KEPT);
    expect(report.model.headsPerLayer['enc-self']).toEqual([4, 4]);
  });

  it('finds the planted previous-token head as positional', () => {
    const h = report.heads['enc-self.0.1']!;
    expect(h.roles.positional!.isPositional).toBe(true);
    expect(h.roles.positional!.offset).toBe(-1);
    expect(h.roles.positional!.fraction).toBeCloseTo(17 / 18, 10);
    expect(h.roles.labels).toContain('positional -1');
  });

  it('does not call the planted uniform head positional; its confidence and entropy are those of a uniform row', () => {
    const h = report.heads['enc-self.0.3']!;
    expect(h.roles.positional!.isPositional).toBe(false);
    expect(h.roles.labels).toEqual([]);
    // 18 keys (17 pieces + </s>): each weight 1/18, entropy ln 18
    expect(h.attention.confidence).toBeCloseTo(1 / 18, 6);
    expect(h.attention.entropy).toBeCloseTo(Math.log(18), 5);
    expect(h.attention.queries).toBe(6 * 18);
  });

  it('a head with a closed gate: gate 0, importance 0, relevance 0, removing it changes nothing', () => {
    const h = report.heads['enc-self.1.2']!;
    expect(h.gate!.testGate).toBe(0);
    expect(h.importance.perToken).toBe(0);
    expect(h.importance.perBatch).toBe(0);
    expect(h.lrp).toBe(0);
    expect(h.ablation!.deltaLoss).toBe(0);
    expect(report.heads['enc-self.1.1']!.gate!.testGate).toBe(1);
    expect(report.heads['dec-self.0.0']!.gate).toBeNull(); // dec-self is not gated
  });

  it('fills every score and records the settings', () => {
    for (const e of Object.values(report.heads)) {
      expect(Number.isFinite(e.importance.perToken)).toBe(true);
      expect(e.ablation).not.toBeNull();
      expect(e.lrp).not.toBeNull();
      expect(e.roles.rare).not.toBeNull();
      expect(e.attention.offsetHistogram.shares).toHaveLength(11);
    }
    expect(report.data).toMatchObject({ split: 'dev', sentences: 6, skippedTooLong: 0 });
    expect(report.settings.ablation).toMatchObject({ enabled: true, metric: 'bleu', decoding: 'greedy', bleuSentences: 2, lossSentences: 6 });
    expect(report.settings.lrp).toMatchObject({ enabled: true, rule: 'lrp', sentences: 3, steps: 3 * 6 }); // ▁ + 4 letters + </s> per target
    expect(report.settings.importance.queryTokens['enc-self']).toBe(6 * 18);
    expect(report.baseline!.bleuSentences).toBe(2);
    // LRP sums to 1 over each layer that has an open head
    const layerSum = (prefix: string) =>
      Object.entries(report.heads)
        .filter(([k]) => k.startsWith(prefix))
        .reduce((a, [, e]) => a + e.lrp!, 0);
    expect(layerSum('enc-self.1.')).toBeCloseTo(1, 6);
    expect(layerSum('dec-enc.1.')).toBeCloseTo(1, 6);
  });

  it('does not leak tensors', () => {
    expect(leaked).toBe(0);
  });

  it('round-trips through JSON and writes one CSV row per head', () => {
    const path = join(dir, 'head-report.json');
    writeHeadReport(path, report);
    expect(readHeadReport(path)).toEqual(report);
    const lines = headReportCsv(report).trim().split('\n');
    expect(lines).toHaveLength(1 + Object.keys(report.heads).length);
    expect(lines[0]!.split(',').slice(0, 5)).toEqual(['key', 'stack', 'layer', 'head', 'position']);
    expect(lines.find((l) => l.startsWith('enc-self.0.1,'))).toMatch(/,true,-1,/);
  });
});
