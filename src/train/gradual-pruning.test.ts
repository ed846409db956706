/**
 * Gradual magnitude pruning in training: the cubic schedule against hand-computed values, the target
 * sparsity reached exactly with pruned weights (and their Adam moments) exactly zero in the checkpoint,
 * zeros held between and after pruning steps, sparsity in metrics.jsonl, in-process = 2 workers, a
 * resumed run = the uninterrupted one, and bad configs naming the key.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config/load.js';
import { createTransformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { RunFolder } from '../util/run-folder.js';
import { useTestBackend } from '../test-utils/backend.js';
import { isPrunableWeight } from '../compress/magnitude-pruning.js';
import { FEATURE_KEYS_OFF_BY_DEFAULT, stageIdentity } from '../experiments/stage.js';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import { ConfigError } from '../util/errors.js';
import { Trainer } from './trainer.js';
import { findLatestValidCheckpoint } from '../io/checkpoint.js';
import { ProgressLine } from './progress.js';
import { isPruningStep, maskSparsity, scheduledSparsity } from './gradual-pruning.js';

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
  'train.peakLr=3e-3',
  'train.warmupSteps=3',
  'train.workers=1',
];
// 5120 prunable weights (tied embeddings): 12 attention matrices 16x16 and 4 FFN matrices 16x32
const PRUNABLE = 12 * 256 + 4 * 512;
const quiet = () => new ProgressLine(process.stderr, true);

beforeAll(() => useTestBackend());
afterAll(() => expect(tf.memory().numTensors).toBeLessThan(10));

describe('the cubic schedule (Zhu & Gupta 2017 with s_i = 0)', () => {
  const c = { sparsity: 0.5, startStep: 2, endStep: 8, everySteps: 2 };
  it('gives hand-computed sparsities', () => {
    expect(scheduledSparsity(0, c)).toBe(0);
    expect(scheduledSparsity(1, c)).toBe(0);
    expect(scheduledSparsity(2, c)).toBe(0); // t0: s_i
    // t = 4: 0.5 (1 - (1 - 2/6)^3) = 0.5 (1 - 8/27) = 19/54
    expect(scheduledSparsity(4, c)).toBeCloseTo(19 / 54, 12);
    // t = 6: 0.5 (1 - (1/3)^3) = 13/27
    expect(scheduledSparsity(6, c)).toBeCloseTo(13 / 27, 12);
    // t = 5: 0.5 (1 - (1/2)^3) = 7/16
    expect(scheduledSparsity(5, c)).toBeCloseTo(7 / 16, 12);
    expect(scheduledSparsity(8, c)).toBe(0.5);
    expect(scheduledSparsity(100, c)).toBe(0.5);
    expect(scheduledSparsity(3, { sparsity: 0.9, startStep: 3, endStep: 3 })).toBe(0.9); // one shot
  });

  it('prunes at t0 + k dt up to endStep, and at endStep', () => {
    const steps = (cfg: { startStep: number; endStep: number; everySteps: number }) =>
      Array.from({ length: 20 }, (_, t) => t).filter((t) => isPruningStep(t, cfg));
    expect(steps(c)).toEqual([2, 4, 6, 8]);
    expect(steps({ startStep: 2, endStep: 7, everySteps: 2 })).toEqual([2, 4, 6, 7]);
    expect(steps({ startStep: 0, endStep: 6, everySteps: 3 })).toEqual([3, 6]); // step 0 has no update
    expect(maskSparsity(null)).toBe(0);
    expect(maskSparsity({ a: Uint8Array.from([1, 0, 0, 1]) })).toBe(0.5);
  });
});

interface RunResult {
  losses: number[];
  masks: Record<string, Uint8Array> | null;
  params: Record<string, { shape: number[]; data: Float32Array }>;
  sparsity: number;
  workerCount: number;
}

async function trainRun(extra: string[], opts: { run?: RunFolder | null; stopAfter?: number; resumeFrom?: string; init?: number } = {}): Promise<RunResult> {
  const cfg = loadConfig(null, [...TINY, ...extra]);
  const model = createTransformer(cfg.model, V, new Rng(opts.init ?? 3));
  let t: Trainer | null = null;
  t = new Trainer({
    config: cfg,
    model,
    train: reversePairs(300, 1),
    valid: reversePairs(10, 2),
    run: opts.run ?? null,
    progress: quiet(),
    ...(opts.stopAfter !== undefined ? { isStopRequested: () => t!.step >= opts.stopAfter! } : {}),
  });
  if (opts.resumeFrom) t.restore(findLatestValidCheckpoint(opts.resumeFrom));
  await t.run();
  await t.syncModel();
  const out = {
    losses: t.history.map((h) => h.loss),
    masks: t.pruningMasks(),
    params: await model.params.toArrays(),
    sparsity: t.currentSparsity(),
    workerCount: t.workerCount,
  };
  t.dispose();
  model.dispose();
  return out;
}

const PRUNING = 'train.magnitudePruning={sparsity: 0.5, startStep: 2, endStep: 8, everySteps: 2}';

describe('gradual magnitude pruning in training', () => {
  it('reaches the target sparsity exactly; pruned weights and their moments are exactly zero in the checkpoint and stay zero', async () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-gmp-'));
    const run = RunFolder.create(root, 'gmp');
    const r = await trainRun([PRUNING, 'train.maxSteps=12', 'train.logEverySteps=2', 'train.checkpointEverySteps=8', 'train.keepCheckpoints=5'], { run });
    expect(r.losses.every(Number.isFinite)).toBe(true);
    expect(r.sparsity).toBe(0.5);
    const zeroed = Object.values(r.masks!).reduce((a, m) => a + m.filter((x) => x === 0).length, 0);
    expect(zeroed).toBe(Math.round(0.5 * PRUNABLE));
    expect(Object.keys(r.masks!).sort()).toEqual(
      Object.keys(r.params)
        .filter((n) => isPrunableWeight(n))
        .sort(),
    );

    // the checkpoint at step 8 (the last pruning step) and at step 12 (4 more updates): same masks, zeros
    const at8 = findLatestValidCheckpoint(join(run.path, 'checkpoints', 'step-0000008'));
    const at12 = findLatestValidCheckpoint(run.path);
    expect(at12.state.step).toBe(12);
    for (const ck of [at8, at12]) {
      expect(ck.masks).toBeDefined();
      for (const [name, m] of Object.entries(ck.masks!)) {
        expect(Array.from(m)).toEqual(Array.from(r.masks![name]!));
        const w = ck.params[name]!.data;
        const mo = ck.optimizer[`m.${name}`]!.data;
        const vo = ck.optimizer[`v.${name}`]!.data;
        for (let i = 0; i < m.length; i++) {
          if (m[i]) continue;
          expect(w[i]).toBe(0);
          expect(mo[i]).toBe(0);
          expect(vo[i]).toBe(0);
        }
      }
    }
    // the kept weights keep training after the last pruning step
    const name = 'enc.0.ffn.w1';
    const changed = at8.params[name]!.data.some((x, i) => at8.masks![name]![i] === 1 && x !== at12.params[name]!.data[i]);
    expect(changed).toBe(true);

    // metrics.jsonl: the masks' sparsity at log steps, following the schedule (k = round(s_t * n) global)
    const logged = new Map(
      run
        .readMetrics()
        .filter((m) => 'sparsity' in m)
        .map((m) => [m['step'] as number, m['sparsity'] as number]),
    );
    expect(logged.get(2)).toBe(0);
    expect(logged.get(4)).toBe(Math.round((19 / 54) * PRUNABLE) / PRUNABLE);
    expect(logged.get(6)).toBe(Math.round((13 / 27) * PRUNABLE) / PRUNABLE);
    expect(logged.get(8)).toBe(0.5);
    expect(logged.get(12)).toBe(0.5);
  });

  it('per-layer scope prunes every matrix to the target', async () => {
    const r = await trainRun(['train.magnitudePruning={sparsity: 0.25, scope: per-layer, startStep: 1, endStep: 3, everySteps: 1}', 'train.maxSteps=4']);
    for (const m of Object.values(r.masks!)) expect(m.filter((x) => x === 0).length).toBe(Math.round(0.25 * m.length));
  });

  it('a resumed run gives the same losses, masks and weights as an uninterrupted one', async () => {
    // pruning steps 1, 4, 7; the run is interrupted after step 5, so step 6 needs the checkpoint's masks
    const cfg = [
      'train.magnitudePruning={sparsity: 0.6, startStep: 1, endStep: 7, everySteps: 3}',
      'train.maxSteps=9',
      'train.checkpointEverySteps=100',
      'train.logEverySteps=100',
    ];
    const root = mkdtempSync(join(tmpdir(), 'heads-gmp-resume-'));
    const full = await trainRun(cfg, { run: RunFolder.create(root, 'full') });
    const runB = RunFolder.create(root, 'b');
    const first = await trainRun(cfg, { run: runB, stopAfter: 5 });
    expect(first.losses).toEqual(full.losses.slice(0, 5));
    expect(findLatestValidCheckpoint(runB.path).masks).toBeDefined();
    const rest = await trainRun(cfg, { run: runB, resumeFrom: runB.path, init: 99 });
    expect(rest.losses).toEqual(full.losses.slice(5));
    expect(rest.sparsity).toBe(full.sparsity);
    for (const [name, m] of Object.entries(full.masks!)) expect(Array.from(rest.masks![name]!)).toEqual(Array.from(m));
    for (const [name, p] of Object.entries(full.params)) expect(Array.from(rest.params[name]!.data)).toEqual(Array.from(p.data));
  });

  it('in-process and 2-worker runs give the same masks, with the pruned weights zero on both', async () => {
    const cfg = [
      'train.magnitudePruning={sparsity: 0.5, startStep: 1, endStep: 5, everySteps: 2}',
      'train.maxSteps=6',
      'train.accumulateSteps=2',
      'train.logEverySteps=100',
      'train.checkpointEverySteps=100',
    ];
    const a = await trainRun([...cfg, 'train.workers=1']);
    const b = await trainRun([...cfg, 'train.workers=2']);
    expect([a.workerCount, b.workerCount]).toEqual([1, 2]);
    for (let i = 0; i < a.losses.length; i++) expect(Math.abs(b.losses[i]! - a.losses[i]!)).toBeLessThan(1e-5 * a.losses[i]!);
    expect(b.sparsity).toBe(0.5);
    for (const [name, m] of Object.entries(a.masks!)) {
      expect(Array.from(b.masks![name]!)).toEqual(Array.from(m));
      for (const r of [a, b]) r.params[name]!.data.forEach((x, i) => m[i] === 0 && expect(x).toBe(0));
    }
  });
});

describe('train.magnitudePruning config', () => {
  const refused = (sets: string[]) => {
    try {
      loadConfig(null, sets);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error(`accepted ${sets.join(' ')}`);
  };

  it.each([
    ['train.magnitudePruning={sparsity: 1.5, endStep: 8, everySteps: 2}', /train\.magnitudePruning\.sparsity: expected a fraction in \[0, 1\).*1\.5/],
    ['train.magnitudePruning={sparsity: 0.5, endStep: 8}', /train\.magnitudePruning\.everySteps: expected an integer >= 1/],
    ['train.magnitudePruning={sparsity: 0.5, endStep: 8, everySteps: 0}', /train\.magnitudePruning\.everySteps: expected an integer >= 1/],
    ['train.magnitudePruning={sparsity: 0.5, endStep: 8, everySteps: 2, scope: local}', /train\.magnitudePruning\.scope: expected 'global' or 'per-layer'/],
    ['train.magnitudePruning={sparsity: 0.5, endStep: 8, everySteps: 2, spars: 1}', /train\.magnitudePruning\.spars: unknown key/],
    [
      'train.magnitudePruning={sparsity: 0.5, startStep: 9, endStep: 8, everySteps: 2}',
      /train\.magnitudePruning\.endStep: 8 is before train\.magnitudePruning\.startStep = 9/,
    ],
    ['train.magnitudePruning={sparsity: 0.5, endStep: 800, everySteps: 2}', /train\.magnitudePruning\.endStep: 800 is after train\.maxSteps = 700/],
    ['train.magnitudePruning=0.5', /train\.magnitudePruning: expected object/],
  ])('%s is refused naming the key', (set, want) => {
    expect(refused([set])).toMatch(want);
  });

  it('fills scope, startStep and includeEmbeddings; off (null) stays out of a stage identity', () => {
    const c = loadConfig(null, ['train.magnitudePruning={sparsity: 0.5, endStep: 8, everySteps: 2}']);
    expect(c.train.magnitudePruning).toEqual({ sparsity: 0.5, scope: 'global', startStep: 0, endStep: 8, everySteps: 2, includeEmbeddings: false });
    expect(FEATURE_KEYS_OFF_BY_DEFAULT['train.magnitudePruning']).toBe(DEFAULT_CONFIG.train.magnitudePruning);
    expect(FEATURE_KEYS_OFF_BY_DEFAULT['train.quantAware']).toBe(DEFAULT_CONFIG.train.quantAware);
    const id = stageIdentity(loadConfig(null)) as { train: Record<string, unknown> };
    expect('magnitudePruning' in id.train).toBe(false);
    expect('quantAware' in id.train).toBe(false);
    expect('magnitudePruning' in (stageIdentity(c) as { train: Record<string, unknown> }).train).toBe(true);
  });
});
