import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Papa from 'papaparse';
import { BpeTokenizer } from '../data/tokenizer.js';
import type { SentencePair } from '../data/corpus.js';
import { countKept, maskToKeptSets, readHeadMask } from '../io/head-mask.js';
import { RunFolder } from '../util/run-folder.js';
import { ConfigError } from '../util/errors.js';
import type { Transformer } from '../model/transformer.js';
import { useTestBackend } from '../test-utils/backend.js';
import { encodeForModel } from './analyze.js';
import { fillPerHead, headLayout } from '../config/head-layout.js';
import { estimateMichelImportance } from './importance.js';
import { type PruneCandidate, headsPerStep, runImportancePruning, selectHeadsToPrune } from './importance-pruning.js';
import { tinyConfig, tinyModel } from './test-fixtures.js';

describe('selectHeadsToPrune', () => {
  const c = (key: string, score: number): PruneCandidate => {
    const [stack, layer] = key.split('.') as ['enc-self', string];
    return { key, stack, layer: Number(layer), score };
  };
  const cands = [c('enc-self.0.0', 0.1), c('enc-self.0.1', 0.2), c('enc-self.1.0', 0.3), c('enc-self.1.1', 0.05), c('enc-self.1.2', 0.05)];
  const kept = new Map([
    ['enc-self.0', 2],
    ['enc-self.1', 3],
  ]);

  it('takes the lowest scores first (ties by key)', () => {
    expect(selectHeadsToPrune(cands, kept, 3, 0)).toEqual(['enc-self.1.1', 'enc-self.1.2', 'enc-self.0.0']);
  });

  it('never leaves a layer below the minimum, and then takes fewer', () => {
    expect(selectHeadsToPrune(cands, kept, 3, 1)).toEqual(['enc-self.1.1', 'enc-self.1.2', 'enc-self.0.0']);
    expect(selectHeadsToPrune(cands, kept, 4, 1)).toEqual(['enc-self.1.1', 'enc-self.1.2', 'enc-self.0.0']);
    expect(selectHeadsToPrune(cands, kept, 5, 2)).toEqual(['enc-self.1.1']);
  });

  it('removes round(N * p / 100) heads per step, at least one', () => {
    expect(headsPerStep(144, 10)).toBe(14);
    expect(headsPerStep(12, 25)).toBe(3);
    expect(headsPerStep(5, 1)).toBe(1);
  });
});

describe('runImportancePruning', () => {
  const pairs: SentencePair[] = ['a b c', 'b c d e', 'c d', 'd e a b', 'e a b c d'].map((s, i) => ({
    src: s,
    tgt: s.split(' ').reverse().join(' ') + (i % 2 ? ' a' : ''),
  }));
  const tokenizer = BpeTokenizer.learn(
    pairs.flatMap((p) => [p.src, p.tgt]),
    { numMerges: 2 },
  );
  const config = tinyConfig();
  const layout = headLayout(config.model);
  let model: Transformer;
  let root: string;

  beforeAll(async () => {
    await useTestBackend();
    model = tinyModel(tokenizer.vocabSize);
    root = mkdtempSync(join(tmpdir(), 'heads-prune-'));
  });
  afterAll(() => {
    model.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  const run = (name: string) => RunFolder.create(root, name);
  const base = { tokenizer, config, data: { estimate: pairs, eval: pairs.slice(0, 3) }, bleuSentences: 2, seed: 1 };

  it('removes the expected number of heads per step, respects minHeadsPerLayer, writes masks and the curve', async () => {
    const r = run('importance');
    const before = tf.memory().numTensors;
    const res = await runImportancePruning({ ...base, model, run: r, method: 'importance', stepPercent: 25, minHeadsPerLayer: 1, reestimate: true });
    expect(tf.memory().numTensors).toBe(before);
    // 12 heads (3 types x 2 layers x 2 heads), 3 per step, 6 layers keep >= 1 each: 12 -> 9 -> 6, then stop
    expect(res.table.map((s) => s.headsKept)).toEqual([12, 9, 6]);
    expect(res.table.map((s) => s.removed.length)).toEqual([0, 3, 3]);
    for (const step of res.table) {
      const mask = readHeadMask(r.file(step.maskFile), layout.originalShape);
      expect(countKept(mask, layout.originalShape)).toBe(step.headsKept);
      const kept = maskToKeptSets(mask, layout.originalShape);
      for (const stack of ['enc-self', 'dec-self', 'dec-enc'] as const) for (const l of kept[stack]) expect(l.length).toBeGreaterThanOrEqual(1);
      expect(Number.isFinite(step.loss) && Number.isFinite(step.bleu)).toBe(true);
    }
    const csv = Papa.parse<Record<string, string>>(readFileSync(res.curvePath, 'utf8').trim(), { header: true }).data;
    expect(csv.map((row) => Number(row.heads_kept))).toEqual([12, 9, 6]);
    expect(csv[1]!.mask_file).toBe('masks/step-01.json');
    expect(Number(csv[2]!.loss)).toBeCloseTo(res.table[2]!.loss, 5);
  });

  it.each([
    ['by default the per-example form, layer-normalised (Michel et al.)', {}, 'example', 'layer'],
    ['--importance-form token --importance-normalize none: the raw per-token form', { importanceForm: 'token', importanceNormalize: 'none' }, 'token', 'none'],
  ] as const)('the first step removes the heads with the lowest importance: %s', async (_name, settings, form, normalize) => {
    const r = run(`importance-once-${form}`);
    const res = await runImportancePruning({ ...base, model, run: r, method: 'importance', stepPercent: 25, minHeadsPerLayer: 0, ...settings });
    const imp = await estimateMichelImportance(
      model,
      layout,
      encodeForModel(tokenizer, pairs, 48).encoded,
      fillPerHead(layout, () => 1),
      {
        stacks: ['enc-self', 'dec-self', 'dec-enc'],
        maxTokensPerBatch: config.train.maxTokensPerBatch,
        labelSmoothing: config.train.labelSmoothing,
      },
    );
    const raw = form === 'example' ? imp.perExample : imp.perToken;
    // layer normalisation written out: each head over the l2 norm of its layer
    const score = (l: number[], v: number) => (normalize === 'layer' ? v / Math.hypot(...l) : v);
    const ranked = (['enc-self', 'dec-self', 'dec-enc'] as const)
      .flatMap((s) => raw[s].flatMap((l, li) => l.map((v, h) => ({ key: `${s}.${li}.${h}`, v: score(l, v) }))))
      .sort((a, b) => a.v - b.v);
    expect(new Set(res.table[1]!.removed)).toEqual(new Set(ranked.slice(0, 3).map((x) => x.key)));
    // without a minimum every head goes in the end: 12, 9, 6, 3, 0
    expect(res.table.map((s) => s.headsKept)).toEqual([12, 9, 6, 3, 0]);
    const saved = JSON.parse(readFileSync(r.file('pruning-result.json'), 'utf8')) as { settings: Record<string, unknown> };
    expect(saved.settings).toMatchObject({ importanceForm: form, importanceNormalize: normalize });
  });

  it('the forms rank the heads of this model differently (otherwise the option would be moot)', async () => {
    const order = async (settings: Partial<Parameters<typeof runImportancePruning>[0]>, name: string) =>
      (await runImportancePruning({ ...base, model, run: run(name), method: 'importance', stepPercent: 25, ...settings })).table.flatMap((s) => s.removed);
    const orders = [
      await order({ importanceForm: 'example', importanceNormalize: 'none' }, 'order-example'),
      await order({ importanceForm: 'token', importanceNormalize: 'none' }, 'order-token'),
      await order({ importanceForm: 'batch', importanceNormalize: 'none' }, 'order-batch'),
    ];
    expect(new Set(orders.map((o) => o.join(' '))).size).toBeGreaterThan(1);
  });

  it('prunes one attention type only, and random pruning is reproducible from the seed', async () => {
    const a = await runImportancePruning({ ...base, model, run: run('random-a'), method: 'random', stepPercent: 50, stacks: ['dec-enc'] });
    const b = await runImportancePruning({ ...base, model, run: run('random-b'), method: 'random', stepPercent: 50, stacks: ['dec-enc'] });
    expect(a.table.map((s) => s.headsKept)).toEqual([4, 2, 0]);
    expect(a.table.map((s) => s.headsKeptTotal)).toEqual([12, 10, 8]);
    expect(a.table.map((s) => s.removed)).toEqual(b.table.map((s) => s.removed));
    for (const s of a.table) for (const k of s.removed) expect(k.startsWith('dec-enc.')).toBe(true);
  });

  it('confidence pruning runs; bad settings are a ConfigError', async () => {
    const res = await runImportancePruning({ ...base, model, run: run('confidence'), method: 'confidence', stepPercent: 50, minHeadsPerLayer: 2 });
    expect(res.table).toHaveLength(1); // every layer has exactly 2 heads: nothing may go
    await expect(runImportancePruning({ ...base, model, run: run('bad'), method: 'importance', stepPercent: 0 })).rejects.toThrow(ConfigError);
    await expect(runImportancePruning({ ...base, model, run: run('bad-form'), method: 'importance', importanceForm: 'sentence' as 'example' })).rejects.toThrow(
      'importanceForm: expected example, batch, token, got "sentence"',
    );
  });
});
