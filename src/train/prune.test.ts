import { mkdtempSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, loadConfigOn } from '../config/load.js';
import { RunFolder } from '../util/run-folder.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import * as tf from '@tensorflow/tfjs';
import { originalMaskShape } from '../config/head-layout.js';
import { readHeadMask, countKept, maskToGateValues } from '../io/head-mask.js';
import { ATTENTION_TYPES } from '../config/head-id.js';
import { loadCorpora } from '../data/prepare.js';
import { runTraining, scoreTranslations } from './run-training.js';
import { loadModel } from '../io/load-model.js';
import { disposeGates } from '../model/gate-tensors.js';
import { runPruning } from './prune.js';
import { DecodePool } from '../eval/decode-pool.js';
import type { RuntimeOptions } from '../config/runtime.js';
import { jest } from '@jest/globals';
import { findLatestValidCheckpoint } from '../io/checkpoint.js';
import { ProgressLine } from './progress.js';
import { useTestBackend } from '../test-utils/backend.js';
import { closingOrder, keepRuleOf } from '../plots/gates.js';
import { readGateSettings, readGateTrajectory } from '../plots/readers.js';

const quiet = new ProgressLine(process.stderr, true);
const root = mkdtempSync(join(tmpdir(), 'heads-prune-'));
const BASE = [
  'data.synthetic.task=reverse',
  'data.synthetic.trainPairs=2000',
  'data.synthetic.validPairs=30',
  'data.synthetic.testPairs=30',
  'data.bpeMerges=40',
  'model.dModel=32',
  'model.dFF=64',
  'model.heads=4',
  'model.encoderLayers=2',
  'model.decoderLayers=1',
  'model.dropout=0',
  'train.maxTokensPerBatch=600',
  'train.evalEverySteps=0',
  'train.devBleuSentences=0',
  'train.logEverySteps=50',
  'train.checkpointEverySteps=1000',
  'eval.beamSize=2',
];

let parentPath = '';
beforeAll(async () => {
  await useTestBackend();
  const cfg = loadConfig(null, [...BASE, 'train.maxSteps=200', 'train.peakLr=3e-3', 'train.warmupSteps=40']);
  const run = RunFolder.create(root, 'parent');
  await runTraining({ config: cfg, run, progress: quiet, evaluateTest: false });
  parentPath = run.path;
});

async function prune(name: string, sets: string[], runtime?: RuntimeOptions) {
  const parent = findLatestValidCheckpoint(parentPath);
  const tokenizer = BpeTokenizer.load(join(parentPath, 'tokenizer.json'));
  const cfg = loadConfigOn(parent.state.config, null, [
    'gates.attention=[enc-self]',
    'train.trainOnly=[encoder, gates]',
    'train.maxSteps=120',
    'train.peakLr=2e-3',
    'train.warmupSteps=10',
    'gates.lrScale=25',
    'gates.logAlphaInit={kind: constant, value: 1}',
    ...sets,
  ]);
  const run = RunFolder.create(root, name);
  run.writeJson('config.json', cfg); // as the CLI's run folder has it (the gate figures read its rule there)
  const r = await runPruning({ config: cfg, run, parent, tokenizer, progress: quiet, devSentences: 10, ...(runtime ? { runtime } : {}) });
  expectGateFiguresAgreeWithMask(run.path);
  return { r, run, cfg };
}

/** What `heads plot gates` draws as closed at the end (by the run's own rule) is what mask.json removed. */
function expectGateFiguresAgreeWithMask(runPath: string): void {
  const closed = closingOrder(readGateTrajectory(runPath), keepRuleOf(readGateSettings(runPath)))
    .filter((c) => c.closedAtStep !== null)
    .map((c) => c.key);
  const mask = JSON.parse(readFileSync(join(runPath, 'mask.json'), 'utf8')) as { stacks: Record<string, { layers: Array<{ removed: number[] }> }> };
  const removed = Object.entries(mask.stacks).flatMap(([stack, st]) => st.layers.flatMap((l, layer) => l.removed.map((h) => `${stack}.${layer}.${h}`)));
  expect(closed.sort()).toEqual(removed.sort());
}

describe('pruning by fine-tuning', () => {
  it('a large lambda leaves fewer encoder heads open than a small one', async () => {
    const small = await prune('small', ['train.l0Lambda=0.001']);
    const large = await prune('large', ['train.l0Lambda=0.3']);
    const openSmall = small.r.extra!['pruning'] as { keptHeads: Record<string, number> };
    const summarySmall = (await import('node:fs')).readFileSync(join(small.run.path, 'results.json'), 'utf8');
    const summaryLarge = (await import('node:fs')).readFileSync(join(large.run.path, 'results.json'), 'utf8');
    const eSmall = JSON.parse(summarySmall).gates.summary.expectedOpenHeads as number;
    const eLarge = JSON.parse(summaryLarge).gates.summary.expectedOpenHeads as number;
    console.log(
      `E[open]: lambda 0.001 -> ${eSmall.toFixed(2)}, lambda 0.3 -> ${eLarge.toFixed(2)}; kept ${small.r.keptHeads['enc-self']} vs ${large.r.keptHeads['enc-self']}`,
    );
    expect(eLarge).toBeLessThan(eSmall - 1);
    expect(large.r.keptHeads['enc-self']).toBeLessThan(small.r.keptHeads['enc-self']);
    expect(openSmall.keptHeads['dec-self']).toBe(4); // ungated types keep every head
    // the mask file is written with original ids and agrees with the summary
    const mask = readHeadMask(large.r.maskPath, originalMaskShape(large.cfg.model));
    expect(countKept(mask, originalMaskShape(large.cfg.model), 'enc-self')).toBe(large.r.keptHeads['enc-self']);
    // the trajectory CSV has a header and one row per log step
    const csv = (await import('node:fs')).readFileSync(join(large.run.path, 'gate-trajectory.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('step,enc-self.0.0,enc-self.0.1,enc-self.0.2,enc-self.0.3,enc-self.1.0,enc-self.1.1,enc-self.1.2,enc-self.1.3');
    expect(csv).toHaveLength(1 + 3); // header + log steps 50, 100 and the last (120)
    expect(large.r.testBleuPruned).not.toBeNull();
  });

  it.each([3, 5])('--target-heads %p ends with exactly that many encoder heads', async (n) => {
    const { r, run } = await prune(`target-${n}`, [`gates.targetHeads=${n}`, 'gates.targetWarmupSteps=60', 'gates.lagrangianLr=0.5']);
    expect(r.keptHeads['enc-self']).toBe(n);
    const results = JSON.parse((await import('node:fs')).readFileSync(join(run.path, 'results.json'), 'utf8'));
    // the controller moved the expected count toward the target (from 8 open heads)
    expect(results.gates.summary.expectedOpenHeads).toBeLessThan(8 - (8 - n) / 2);
    expect(results.gates.summary['lambda1.all']).toBeGreaterThan(0);
    expect(existsSync(join(run.path, 'mask.json'))).toBe(true);
  });

  it('where kept gates are below 1, the run also scores the binarised model (kept heads at gate 1), equal to decoding with the mask as 0/1 gates', async () => {
    // 10 steps from log alpha 1: every gate is still near sigmoid(1) x 1.2 - 0.1 = 0.78, every head kept
    const { r, run, cfg } = await prune('binarised', ['train.l0Lambda=0.001', 'train.maxSteps=10', 'gates.lrScale=1']);
    const results = JSON.parse(readFileSync(join(run.path, 'results.json'), 'utf8')) as {
      pruning: { binarised: { foldedBelowOne: string[]; testBleu: number; hyp: string } | null };
    };
    expect(r.binarised).not.toBeNull();
    expect(results.pruning.binarised).toEqual(r.binarised);
    expect(r.binarised!.foldedBelowOne).toHaveLength(8);
    // the independent reference: the mask file as 0/1 gates on the run's model
    const loaded = loadModel(run.path);
    const values = maskToGateValues(readHeadMask(r.maskPath, originalMaskShape(cfg.model)), originalMaskShape(cfg.model));
    const gates = Object.fromEntries(ATTENTION_TYPES.map((t) => [t, values[t].map((l) => tf.tensor1d(l))]));
    const test = loadCorpora(cfg.data, cfg.seed).test;
    const ref = await scoreTranslations(loaded.model, loaded.tokenizer, test, cfg, gates);
    disposeGates(gates);
    loaded.model.dispose();
    loaded.gates?.dispose();
    expect(r.binarised!.testBleu).toBeCloseTo(ref.scores.bleu, 9);
    expect(readFileSync(join(run.path, 'test.binarised.hyp'), 'utf8')).toBe(ref.hyps.join('\n') + '\n');
    // and the folded score is the other model: the gates at 0.78 scale every head
    expect(readFileSync(join(run.path, 'test.pruned.hyp'), 'utf8')).not.toBe(ref.hyps.join('\n') + '\n');
  });

  it('on two cores the final translations decode in two worker threads, to the same text as in the main thread', async () => {
    // one training worker either way (the same model); 30 test sentences in batches of 3: 10 batches
    const sets = ['train.l0Lambda=0.001', 'train.maxSteps=10', 'gates.lrScale=1', 'train.workers=1', 'eval.batchSentences=3'];
    const runtime = { nativeBlas: true, fusedLoss: true };
    const start = jest.spyOn(DecodePool, 'start');
    const one = await prune('cores-1', sets, { ...runtime, cores: 1 });
    expect(start).not.toHaveBeenCalled();
    const two = await prune('cores-2', sets, { ...runtime, cores: 2 });
    // one pool for the dev, test and binarised translations
    expect(start.mock.calls.map((c) => c[1])).toEqual([2]);
    start.mockRestore();
    for (const f of ['test.pruned.hyp', 'test.binarised.hyp'])
      expect(readFileSync(join(two.run.path, f), 'utf8')).toBe(readFileSync(join(one.run.path, f), 'utf8'));
    expect([two.r.test?.bleu, two.r.devBleu, two.r.binarised?.testBleu]).toEqual([one.r.test?.bleu, one.r.devBleu, one.r.binarised?.testBleu]);
    expect(two.r.binarised).not.toBeNull();
  });

  it('with every kept gate at 1 the two scorings agree and no binarised score is written', async () => {
    // log alpha 5: deterministic gates clip to 1 (5 > 2.4), and 10 small steps do not move them below
    const { r, run } = await prune('all-open', [
      'train.l0Lambda=0.001',
      'train.maxSteps=10',
      'gates.lrScale=1',
      'gates.logAlphaInit={kind: constant, value: 5}',
    ]);
    expect(r.keptHeads['enc-self']).toBe(8);
    expect(r.binarised).toBeNull();
    expect(existsSync(join(run.path, 'test.binarised.hyp'))).toBe(false);
  });
});
