/**
 * The training step (step.ts): one in-process step against the equations written out by hand (loss =
 * CE / T + lambda * penalty, its gradient by the tape, then bias-corrected Adam in float64 on plain
 * arrays), lambda selection, and the reproducibility the refactor of the step was checked with: a
 * fixed-seed run writes byte-identical checkpoint files when repeated, in-process and on 2 workers.
 * Native BLAS is off here: its multithreaded kernels do not sum in a fixed order.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../backend/select.js';
import { loadConfig } from '../config/load.js';
import { makeBatch, planBatches } from '../data/batches.js';
import { HeadGates } from '../gates/head-gates.js';
import { createTransformer } from '../model/transformer.js';
import { reversePairs } from '../test-utils/pairs.js';
import { Rng, deriveSeed } from '../util/random.js';
import { RunFolder } from '../util/run-folder.js';
import { labelSmoothedCrossEntropySumOps, setLossImplementation, targetWeights } from './objective.js';
import { ProgressLine } from './progress.js';
import { learningRate, penaltyWeight } from './step.js';
import { Trainer } from './trainer.js';

const V = 24;
const TINY = [
  'model.dModel=16',
  'model.dFF=32',
  'model.heads=2',
  'model.encoderLayers=1',
  'model.decoderLayers=1',
  'model.dropout=0',
  'train.maxTokensPerBatch=200',
  'data.maxLen=20',
  'train.accumulateSteps=1',
  'train.evalEverySteps=0',
  'train.logEverySteps=100',
  'train.peakLr=3e-3',
  'train.warmupSteps=2',
];
const GATED = ['gates.attention=[enc-self]', 'gates.noise=sentence', 'train.l0Lambda=0.2', 'gates.lrScale=3'];
const quiet = () => new ProgressLine(process.stderr, true);

beforeAll(async () => {
  tf.env().set('PROD', true);
  await initBackend('wasm', { nativeBlas: false });
  setLossImplementation('ops');
});
afterAll(() => {
  setLossImplementation('fused');
  expect(tf.memory().numTensors).toBeLessThan(10);
});

describe('penaltyWeight', () => {
  it('is train.l0Lambda with lambda gates and 1 for an exact budget (the Lagrangian carries its multipliers)', () => {
    const pen = () => tf.scalar(0);
    expect(penaltyWeight({ penalty: pen }, 0.05)).toBe(0.05);
    expect(penaltyWeight({ penalty: pen, isBudgeted: true }, 0.05)).toBe(1);
    expect(penaltyWeight(null, 0.05)).toBe(0.05);
  });
});

describe('one training step', () => {
  it('equals CE / T + lambda * E[L0] differentiated and one Adam update written out by hand', async () => {
    const cfg = loadConfig(null, [...TINY, ...GATED, 'train.maxSteps=1', 'train.workers=1', 'train.clipNorm=0.5']);
    const model = createTransformer(cfg.model, V, new Rng(3));
    const gates = new HeadGates(cfg.gates, model.shape, cfg.seed, { maxSteps: 1 });
    const data = reversePairs(60, 1);
    const before = new Map<string, Float32Array>();
    const vars = new Map<string, tf.Variable>([...model.params.vars, ...gates.variables]);
    for (const [name, v] of vars) before.set(name, v.dataSync().slice() as Float32Array);

    // the reference: the first batch of the seeded epoch-0 order, loss and gradient by the tape
    const idx = planBatches(data, { maxTokensPerBatch: cfg.train.maxTokensPerBatch, rng: new Rng(deriveSeed(cfg.seed, 'data', 0)) })[0]!;
    const b = makeBatch(data, idx);
    const { value, grads } = tf.variableGrads(() => {
      const src = tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32');
      const tgtIn = tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32');
      const tgtOut = tf.tensor2d(b.tgtOut, [b.batchSize, b.tgtLen], 'int32');
      const g = gates.sampleGates(deriveSeed(cfg.seed, 'gates', 1000), b.batchSize);
      const logits = model.forward(src, tgtIn, { isTraining: true, seed: deriveSeed(cfg.seed, 'step', 1000), gates: g });
      const ce = labelSmoothedCrossEntropySumOps(logits, tgtOut.reshape([-1]) as tf.Tensor1D, targetWeights(tgtOut), cfg.train.labelSmoothing);
      return ce.div(b.tgtTokens).add(gates.penalty(1).mul(cfg.train.l0Lambda)) as tf.Scalar;
    }, [...vars.values()]);
    const lossRef = value.dataSync()[0]!;
    const g = new Map<string, Float32Array>();
    for (const [name, v] of vars) g.set(name, grads[v.name]!.dataSync() as Float32Array);
    tf.dispose([value, ...Object.values(grads)]);
    let sq = 0;
    for (const a of g.values()) for (const x of a) sq += x * x;
    const norm = Math.sqrt(sq);
    const clip = norm > 0.5 ? 0.5 / (norm + 1e-6) : 1;
    const lr = learningRate(1, cfg.train);
    const { adamBeta1: b1, adamBeta2: b2, adamEps: eps } = cfg.train;

    const t = new Trainer({ config: cfg, model, gates, train: data, valid: data.slice(0, 4), run: null, progress: quiet() });
    const r = await t.trainStep();
    expect(r.penalty).toBeGreaterThan(0);
    expect(Math.abs(r.loss + r.penalty - lossRef)).toBeLessThan(1e-5);
    expect(Math.abs(r.gradNorm - norm) / norm).toBeLessThan(1e-4);
    let worst = 0;
    for (const [name, v] of vars) {
      const scale = name.startsWith('gate.') ? cfg.gates.lrScale : 1;
      const now = v.dataSync();
      before.get(name)!.forEach((p, i) => {
        const gi = g.get(name)![i]! * clip;
        const m = (1 - b1) * gi;
        const s = (1 - b2) * gi * gi;
        const expected = p - (lr * scale * (m / (1 - b1))) / (Math.sqrt(s / (1 - b2)) + eps);
        // key biases have a zero true gradient: their float noise is amplified by Adam to +-lr
        if (!name.endsWith('.bk')) worst = Math.max(worst, Math.abs(now[i]! - expected));
      });
    }
    expect(worst).toBeLessThan(2e-5);
    t.dispose();
    model.dispose();
    gates.dispose();
  });
});

/** The checkpoint files of a fixed-seed run, state.json without its creation time. */
async function checkpointFiles(root: string, name: string, workers: number): Promise<Map<string, Buffer>> {
  const cfg = loadConfig(null, [
    ...TINY,
    ...GATED,
    'model.dropout=0.1',
    'train.accumulateSteps=2',
    'train.maxSteps=3',
    'train.checkpointEverySteps=2',
    `train.workers=${workers}`,
  ]);
  const model = createTransformer(cfg.model, V, new Rng(5));
  const gates = new HeadGates(cfg.gates, model.shape, cfg.seed, { maxSteps: 3 });
  const run = RunFolder.create(root, name);
  const t = new Trainer({ config: cfg, model, gates, train: reversePairs(120, 1), valid: reversePairs(8, 2), run, progress: quiet() });
  expect(t.workerCount).toBe(workers);
  await t.run();
  t.dispose();
  model.dispose();
  gates.dispose();
  const out = new Map<string, Buffer>();
  const dir = join(run.path, 'checkpoints');
  for (const step of readdirSync(dir).filter((d) => d.startsWith('step-')))
    for (const f of readdirSync(join(dir, step)).filter((f) => f.endsWith('.safetensors') || f === 'state.json')) {
      const bytes = readFileSync(join(dir, step, f));
      out.set(`${step}/${f}`, f === 'state.json' ? Buffer.from(bytes.toString('utf8').replace(/"createdAt": *"[^"]*"/, '')) : bytes);
    }
  return out;
}

describe('reproducibility', () => {
  it.each([1, 2])(
    'a fixed-seed run with %i worker(s) writes byte-identical checkpoints when repeated',
    async (workers) => {
      const root = mkdtempSync(join(tmpdir(), 'heads-step-'));
      const a = await checkpointFiles(root, 'a', workers);
      const b = await checkpointFiles(root, 'b', workers);
      expect([...a.keys()].sort()).toEqual([
        'step-0000002/model.safetensors',
        'step-0000002/optimizer.safetensors',
        'step-0000002/state.json',
        'step-0000003/model.safetensors',
        'step-0000003/optimizer.safetensors',
        'step-0000003/state.json',
      ]);
      for (const [k, bytes] of a) expect({ k, same: bytes.equals(b.get(k)!) }).toEqual({ k, same: true });
    },
    60_000,
  );
});
