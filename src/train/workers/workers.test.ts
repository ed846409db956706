/**
 * Data-parallel training on worker threads against in-process training on the same global batch (same
 * micro-batches, same seeds, gates with per-sentence noise and the L0 penalty, dropout on), and
 * checkpoint / resume with workers (exact), across worker counts (within float tolerance); a worker that
 * cannot start reports its own error.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../config/load.js';
import { createTransformer } from '../../model/transformer.js';
import { HeadGates } from '../../gates/head-gates.js';
import { Rng } from '../../util/random.js';
import { RunFolder } from '../../util/run-folder.js';
import { useTestBackend } from '../../test-utils/backend.js';
import { Trainer } from '../trainer.js';
import { findLatestValidCheckpoint } from '../../io/checkpoint.js';
import { ProgressLine } from '../progress.js';
import { availableParallelism } from 'node:os';
import { coresForThisProcess, resolveWorkerCount, reviveWorkerError, WorkerPool } from './pool.js';
import { makeLayout } from './shared-state.js';
import { Worker } from 'node:worker_threads';
import { shareCores } from '../../experiments/runner.js';
import { HeadsError, OutOfMemoryError } from '../../util/errors.js';

import { reversePairs } from '../../test-utils/pairs.js';

const V = 24;

const TINY = [
  'model.dModel=32',
  'model.dFF=64',
  'model.heads=2',
  'model.encoderLayers=2',
  'model.decoderLayers=2',
  'model.dropout=0.1',
  'train.maxTokensPerBatch=400',
  'train.accumulateSteps=2',
  'train.evalEverySteps=0',
  'train.logEverySteps=100',
  'train.peakLr=3e-3',
  'train.warmupSteps=5',
];
const GATED = ['gates.attention=[enc-self,dec-enc]', 'gates.noise=sentence', 'train.l0Lambda=0.05'];
const quiet = () => new ProgressLine(process.stderr, true);

beforeAll(() => useTestBackend());
afterAll(() => expect(tf.memory().numTensors).toBeLessThan(10));

async function train(workers: number, steps: number, extra: string[] = []) {
  const cfg = loadConfig(null, [...TINY, ...GATED, `train.maxSteps=${steps}`, `train.workers=${workers}`, ...extra]);
  const model = createTransformer(cfg.model, V, new Rng(3));
  const gates = new HeadGates(cfg.gates, model.shape, cfg.seed, { maxSteps: steps });
  const t = new Trainer({ config: cfg, model, gates, train: reversePairs(400, 1), valid: reversePairs(20, 2), run: null, progress: quiet() });
  expect(t.workerCount).toBe(workers);
  for (let i = 0; i < steps; i++) await t.trainStep();
  await t.syncModel();
  const out = {
    history: t.history.map((h) => ({ ...h })),
    params: await model.params.toArrays(),
    logAlpha: gates.states().map((s) => s.logAlpha),
    adamStep: t.adam.step,
  };
  t.dispose();
  model.dispose();
  gates.dispose();
  return out;
}

describe('training workers', () => {
  it('resolves train.workers: auto = cores on wasm/cpu, 1 elsewhere', () => {
    expect(resolveWorkerCount('auto', 'wasm', 4)).toBe(4);
    expect(resolveWorkerCount('auto', 'cpu', 2)).toBe(2);
    expect(resolveWorkerCount('auto', 'tensorflow', 8)).toBe(1);
    expect(resolveWorkerCount(3, 'wasm', 2)).toBe(3);
    expect(resolveWorkerCount(3, 'tensorflow', 2)).toBe(1);
    // HEADS_CORES (the experiment runner's share of the machine per stage) bounds 'auto'
    expect(coresForThisProcess({ HEADS_CORES: '1' })).toBe(1);
    expect(coresForThisProcess({ HEADS_CORES: 'x' })).toBe(availableParallelism());
    expect(coresForThisProcess({})).toBe(availableParallelism());
    expect(shareCores(2, {}, 2)).toEqual({ HEADS_CORES: '1', HEADS_BLAS_THREADS: '1' });
    expect(shareCores(3, {}, 8)).toEqual({ HEADS_CORES: '2', HEADS_BLAS_THREADS: '2' });
    expect(shareCores(2, { HEADS_BLAS_THREADS: '2' }, 2)).toEqual({ HEADS_CORES: '1' });
    expect(shareCores(1, {}, 8)).toEqual({});
  });

  it("a worker's out-of-memory error reaches the main thread as OutOfMemoryError", () => {
    const oom = reviveWorkerError({ name: 'OutOfMemoryError', message: 'out of memory in the wasm heap on a micro-batch of 80 sentences x 25 tokens' });
    expect(oom).toBeInstanceOf(OutOfMemoryError);
    expect(oom).toBeInstanceOf(HeadsError);
    expect(oom.message).toMatch(/80 sentences/);
    const bug = reviveWorkerError({ name: 'TypeError', message: 'x is undefined', stack: 'TypeError: x is undefined\n    at f' });
    expect(bug).not.toBeInstanceOf(HeadsError);
    expect(bug.stack).toMatch(/\(worker\) TypeError/);
  });

  it("a worker that cannot start: start rejects with the worker's own error and stack and terminates every thread it started", async () => {
    const cfg = loadConfig(null, TINY);
    const model = createTransformer(cfg.model, V, new Rng(3));
    const entries = model.params.names().map((name) => ({ name, shape: model.params.get(name).shape, trainable: true, isGate: false }));
    // a parameter the worker's model does not have
    const layout = makeLayout([...entries, { name: 'enc.99.no-such-weight', shape: [4], trainable: true, isGate: false }]);
    const terminate = jest.spyOn(Worker.prototype, 'terminate');
    const e = await WorkerPool.start(
      {
        workers: 2,
        backend: tf.getBackend(),
        nativeBlas: false,
        kernels: { sharedIdentity: false, fusedLoss: false, rowGather: false, nativeSum: false, fusedDropout: false },
        modelConfig: cfg.model,
        vocabSize: V,
        gates: null,
        layout,
        seed: 1,
        labelSmoothing: 0,
        adam: { beta1: 0.9, beta2: 0.98, eps: 1e-9 },
        quantAware: false,
      },
      () => {},
    ).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).toBe('training worker: worker: no variable for parameter enc.99.no-such-weight');
    expect((e as Error).stack).toContain('(worker) Error: worker: no variable for parameter enc.99.no-such-weight');
    expect(terminate).toHaveBeenCalledTimes(2);
    terminate.mockRestore();
    model.dispose();
  }, 60_000);

  it('2 workers equal 1 worker on the same global batch over 20 steps (gates, penalty, dropout)', async () => {
    const a = await train(1, 20);
    const b = await train(2, 20);
    expect(b.adamStep).toBe(20);
    for (let i = 0; i < 20; i++) {
      expect(Math.abs(b.history[i]!.loss - a.history[i]!.loss)).toBeLessThan(1e-5 * Math.abs(a.history[i]!.loss));
      expect(Math.abs(b.history[i]!.gradNorm - a.history[i]!.gradNorm)).toBeLessThan(1e-4 * a.history[i]!.gradNorm);
      expect(b.history[i]!.penalty).toBeCloseTo(a.history[i]!.penalty, 6);
      expect(b.history[i]!.tgtTokens).toBe(a.history[i]!.tgtTokens);
    }
    expect(a.history[19]!.loss).toBeLessThan(a.history[0]!.loss); // it learns
    let worst = 0;
    for (const [name, { data }] of Object.entries(a.params)) {
      // key biases have an exactly-zero true gradient (softmax is shift invariant): Adam turns their float
      // noise into +-lr steps, so they differ between any two summation orders
      if (name.endsWith('.bk')) continue;
      data.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - b.params[name]!.data[i]!))));
    }
    expect(worst).toBeLessThan(1e-4);
    a.logAlpha.forEach((x, i) => expect(Math.abs(x - b.logAlpha[i]!)).toBeLessThan(1e-5));
  });

  it('checkpoints and resumes: exactly with workers, within tolerance across worker counts', async () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-workers-'));
    const mk = (steps: number, workers: number, run: RunFolder) => {
      const cfg = loadConfig(null, [...TINY, `train.maxSteps=${steps}`, `train.workers=${workers}`, 'train.checkpointEverySteps=4']);
      const model = createTransformer(cfg.model, V, new Rng(steps * 10 + workers)); // init must come from the checkpoint when resuming
      return { model, t: new Trainer({ config: cfg, model, train: reversePairs(300, 5), valid: reversePairs(20, 6), run, progress: quiet() }) };
    };
    const full = (() => {
      const cfg = loadConfig(null, [...TINY, 'train.maxSteps=8', 'train.workers=2', 'train.checkpointEverySteps=4']);
      const model = createTransformer(cfg.model, V, new Rng(1));
      return {
        model,
        t: new Trainer({ config: cfg, model, train: reversePairs(300, 5), valid: reversePairs(20, 6), run: RunFolder.create(root, 'full'), progress: quiet() }),
      };
    })();
    await full.t.run();
    const lossesFull = full.t.history.map((h) => h.loss);
    // first half in a run of its own, with the same initial weights
    const runB = RunFolder.create(root, 'b');
    const cfg4 = loadConfig(null, [...TINY, 'train.maxSteps=4', 'train.workers=2', 'train.checkpointEverySteps=4']);
    const m4 = createTransformer(cfg4.model, V, new Rng(1));
    const t4 = new Trainer({ config: cfg4, model: m4, train: reversePairs(300, 5), valid: reversePairs(20, 6), run: runB, progress: quiet() });
    await t4.run();
    t4.dispose();
    m4.dispose();
    const ckpt = findLatestValidCheckpoint(runB.path);
    expect(ckpt.state.step).toBe(4);
    expect(Object.keys(ckpt.optimizer).filter((k) => k.startsWith('m.')).length).toBe(full.model.params.names().length);

    const withWorkers = mk(8, 2, runB);
    withWorkers.t.restore(ckpt);
    await withWorkers.t.run();
    expect(withWorkers.t.history.map((h) => h.loss)).toEqual(lossesFull.slice(4));

    const inProcess = mk(8, 1, RunFolder.create(root, 'c'));
    inProcess.t.restore(ckpt);
    for (let i = 0; i < 4; i++) await inProcess.t.trainStep();
    inProcess.t.history.forEach((h, i) => expect(Math.abs(h.loss - lossesFull[4 + i]!)).toBeLessThan(1e-5 * lossesFull[4 + i]!));
    for (const x of [full, withWorkers, inProcess]) {
      x.t.dispose();
      x.model.dispose();
    }
  });
});
