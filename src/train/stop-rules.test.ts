/**
 * The rules that end training before train.maxSteps: early stopping on a dev metric (its bookkeeping on
 * synthetic metric sequences, then in the trainer with a synthetic dev BLEU per step: the stop step, the
 * kept best checkpoint, the restored best weights, and a killed-and-resumed run making the same stop),
 * the same through runTraining (results.json, best.json, loadModel), and gates.settle.
 */
import { mkdtempSync, mkdirSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config/load.js';
import { CheckpointError, ConfigError } from '../util/errors.js';
import { createTransformer } from '../model/transformer.js';
import { HeadGates } from '../gates/head-gates.js';
import { Rng } from '../util/random.js';
import { RunFolder } from '../util/run-folder.js';
import { EarlyStopping, earliestStopStep } from './early-stopping.js';
import { Trainer } from './trainer.js';
import { findLatestValidCheckpoint, findModelCheckpoint, readCheckpoint } from '../io/checkpoint.js';
import { loadModel } from '../io/load-model.js';
import { runTraining } from './run-training.js';
import { ProgressLine } from './progress.js';
import { reversePairs } from '../test-utils/pairs.js';
import { trainingCurves } from '../plots/training.js';
import { readMetrics } from '../plots/readers.js';
import { useTestBackend } from '../test-utils/backend.js';

const V = 24;
const quiet = new ProgressLine(process.stderr, true);
const root = mkdtempSync(join(tmpdir(), 'heads-stop-'));
const TINY = [
  'model.dModel=16',
  'model.dFF=32',
  'model.heads=2',
  'model.encoderLayers=1',
  'model.decoderLayers=1',
  'train.maxTokensPerBatch=200',
  'train.logEverySteps=100',
  'train.workers=1',
  'train.warmupSteps=4',
];

beforeAll(() => useTestBackend());

/** Feed a dev BLEU sequence; the index of the evaluation after which the rule says stop (-1: never). */
function stopIndex(es: EarlyStopping, bleus: number[]): number {
  for (let i = 0; i < bleus.length; i++) {
    es.observe((i + 1) * 10, { devLoss: 1, devBleu: bleus[i]! });
    if (es.shouldStop) return i;
  }
  return -1;
}

describe('EarlyStopping', () => {
  it('stops after `patience` evaluations without an improvement larger than minDelta, keeping the best', () => {
    // 12.05 is not an improvement over 12 with minDelta 0.1, so evaluations 3, 4 and 5 all fail; but it is
    // the best evaluation, so it is the model the run keeps
    const es = new EarlyStopping({ metric: 'devBleu', patience: 3, minDelta: 0.1 });
    expect(stopIndex(es, [10, 12, 11.9, 12.05, 11, 13])).toBe(4);
    expect(es.bestEval).toEqual({ step: 40, value: 12.05, devLoss: 1, devBleu: 12.05 });
    expect(es.report().anchor).toEqual({ step: 20, value: 12 });
    expect(es.patienceLeft).toBe(0);
    // an improvement resets the count: 10, 11, 10, 12, 10, 10 never has 3 failures in a row
    expect(stopIndex(new EarlyStopping({ metric: 'devBleu', patience: 3, minDelta: 0 }), [10, 11, 10, 12, 10, 10])).toBe(-1);
  });

  it('gains each below minDelta: the patience counts from the last larger gain, the kept model is the lowest loss', () => {
    // dev loss falling by 0.004 per evaluation, minDelta 0.01: a gain of more than 0.01 over the anchor
    // comes every third evaluation, so patience 3 never runs out; patience 2 does, two evaluations after
    // the anchor, and the best is then the last (lowest) evaluation, not the anchor
    const falling = (n: number) => Array.from({ length: n }, (_, i) => 3 - 0.004 * i);
    const run = (patience: number) => {
      const es = new EarlyStopping({ metric: 'devLoss', patience, minDelta: 0.01 });
      let stop = -1;
      falling(30).forEach((devLoss, i) => {
        if (stop >= 0) return;
        const { improved } = es.observe(i + 1, { devLoss });
        expect(improved).toBe(true);
        if (es.shouldStop) stop = i + 1;
      });
      return { stop, es };
    };
    expect(run(3).stop).toBe(-1);
    const { stop, es } = run(2);
    // anchors at evaluations 1 (3.000); 2 and 3 gain 0.004 and 0.008: no more than 0.01, so patience 2 is out at 3
    expect(stop).toBe(3);
    expect(es.bestEval?.step).toBe(3);
    expect(es.report().anchor).toEqual({ step: 1, value: 3 });
    // the anchor is checkpoint state: a restored rule makes the same next decision
    const back = new EarlyStopping(es.rule);
    back.restore(es.toExtra());
    expect(back.toExtra()).toEqual(es.toExtra());
    expect(back.report()).toEqual(es.report());
  });

  it('a cut starts the patience again from the best, not from the old anchor', () => {
    const rule = { metric: 'devLoss' as const, patience: 2, minDelta: 0.01, lrDecay: { factor: 0.5, times: 1 } };
    const es = new EarlyStopping(rule);
    // anchor 3.000 @1; 2.995 @2 and 2.991 @3 gain too little: cut after 3, anchor now the best (2.991 @3)
    expect([3, 2.995, 2.991].map((devLoss, i) => es.observe(i + 1, { devLoss }).cut)).toEqual([false, false, true]);
    // 2.985 would beat the old anchor (3.000) by more than 0.01, not the best (2.991): no gain, and then
    // 2.983 neither, so the run stops after evaluation 5 with the best at 5
    es.observe(4, { devLoss: 2.985 });
    expect(es.shouldStop).toBe(false);
    es.observe(5, { devLoss: 2.983 });
    expect(es.shouldStop).toBe(true);
    expect(es.bestEval?.step).toBe(5);
    expect(es.lrScale).toBe(0.5);
  });

  it('dev loss improves downwards; a non-finite value never counts as an improvement', () => {
    const es = new EarlyStopping({ metric: 'devLoss', patience: 2, minDelta: 0 });
    expect(es.observe(1, { devLoss: NaN }).improved).toBe(false);
    expect(es.observe(2, { devLoss: 3 }).improved).toBe(true);
    expect(es.observe(3, { devLoss: 2.5 }).improved).toBe(true);
    expect(es.observe(4, { devLoss: 2.6 }).improved).toBe(false);
    expect(es.shouldStop).toBe(false);
    expect(es.observe(5, { devLoss: Infinity }).improved).toBe(false);
    expect(es.shouldStop).toBe(true);
    expect(es.bestEval?.step).toBe(3);
    expect(es.describe()).toBe('best dev loss 2.500 @3 | patience 0/2');
  });

  it('its state survives the checkpoint numbers exactly', () => {
    const a = new EarlyStopping({ metric: 'devBleu', patience: 4, minDelta: 0 });
    for (const [step, b] of [
      [5, 1],
      [10, 3.25],
      [15, 2],
    ] as const)
      a.observe(step, { devLoss: 10 - b, devBleu: b });
    const b = new EarlyStopping(a.rule);
    b.restore(a.toExtra());
    expect(b.report()).toEqual(a.report());
    // both then decide the same on the same future
    for (const x of [3, 3.1, 2, 2, 2, 2]) {
      a.observe(99, { devLoss: 1, devBleu: x });
      b.observe(99, { devLoss: 1, devBleu: x });
      expect(b.shouldStop).toBe(a.shouldStop);
    }
    expect(a.shouldStop).toBe(true);
  });

  it('lrDecay: an exhausted patience cuts the learning rate and starts it again, `times` times, then stops', () => {
    const es = new EarlyStopping({ metric: 'devLoss', patience: 2, minDelta: 0, lrDecay: { factor: 0.5, times: 2 } });
    const seen: Array<[number, boolean, number, boolean]> = [];
    const toStop: number[] = [];
    // best at 1; 2, 3 fail -> cut 1; 4 improves; 5, 6 fail -> cut 2; 7, 8 fail -> stop
    for (const [step, loss] of [
      [1, 3],
      [2, 3.1],
      [3, 3.2],
      [4, 2.9],
      [5, 3],
      [6, 3],
      [7, 3],
      [8, 3],
    ] as const) {
      const { cut } = es.observe(step, { devLoss: loss });
      seen.push([step, cut, es.lrScale, es.shouldStop]);
      toStop.push(es.evaluationsToStop);
    }
    // the fewest evaluations left before a stop: the patience left plus a full patience per cut to come
    // (after the first: 2, 3 cut; 4, 5 cut; 6, 7 stop: 6), and 0 exactly when the rule says stop
    expect(toStop).toEqual([6, 5, 4, 4, 3, 2, 1, 0]);
    expect(seen).toEqual([
      [1, false, 1, false],
      [2, false, 1, false],
      [3, true, 0.5, false],
      [4, false, 0.5, false],
      [5, false, 0.5, false],
      [6, true, 0.25, false],
      [7, false, 0.25, false],
      [8, false, 0.25, true],
    ]);
    expect(es.bestEval?.step).toBe(4);
    expect(es.describe()).toBe('best dev loss 2.900 @4 | patience 0/2 | lr cuts 2/2');
    expect(es.report().lrDecay).toEqual({ factor: 0.5, times: 2, cuts: 2 });
    // the cuts are checkpoint state: a restored rule goes on at the same rate
    const back = new EarlyStopping(es.rule);
    back.restore(es.toExtra());
    expect([back.lrScale, back.lrCuts, back.shouldStop]).toEqual([0.25, 2, true]);
    // without lrDecay the state has no key for it (checkpoints and replays of older runs are unchanged)
    const plain = new EarlyStopping({ metric: 'devLoss', patience: 1, minDelta: 0 });
    plain.observe(1, { devLoss: 1 });
    plain.observe(2, { devLoss: 2 });
    expect([plain.lrScale, plain.shouldStop, Object.keys(plain.toExtra()).some((k) => k.includes('lrCuts'))]).toEqual([1, true, false]);
  });

  it('lrDecay in the config: validated with its key named; absent, the resolved rule has no such key', () => {
    expect(loadConfig(null, ['train.earlyStopping={metric: devLoss, patience: 2, lrDecay: {factor: 0.5, times: 3}}']).train.earlyStopping).toEqual({
      metric: 'devLoss',
      patience: 2,
      minDelta: 0,
      lrDecay: { factor: 0.5, times: 3 },
    });
    expect(() => loadConfig(null, ['train.earlyStopping={metric: devLoss, patience: 2, lrDecay: {factor: 1.5, times: 3}}'])).toThrow(
      /train\.earlyStopping\.lrDecay\.factor: expected a number between 0 and 1/,
    );
    expect(() => loadConfig(null, ['train.earlyStopping={metric: devLoss, patience: 2, lrDecay: {factor: 0.5, times: 0}}'])).toThrow(
      /train\.earlyStopping\.lrDecay\.times: expected an integer >= 1/,
    );
    expect(() => loadConfig(null, ['train.earlyStopping={metric: devLoss, patience: 2, lrDecay: {factor: 0.5}}'])).toThrow(
      /train\.earlyStopping\.lrDecay\.times/,
    );
    expect('lrDecay' in loadConfig(null, ['train.earlyStopping={metric: devLoss, patience: 2}']).train.earlyStopping!).toBe(false);
    // null switches a spec's lrDecay off (a preset over a study's rule) and resolves to the same rule as absent
    const off = loadConfig(null, ['train.earlyStopping={metric: devLoss, patience: 2, lrDecay: {factor: 0.5, times: 3}}', 'train.earlyStopping.lrDecay=null']);
    expect(off.train.earlyStopping).toEqual({ metric: 'devLoss', patience: 2, minDelta: 0 });
    expect('lrDecay' in off.train.earlyStopping!).toBe(false);
  });

  it('the config needs evaluations, and dev BLEU for the devBleu metric; names the key on bad input', () => {
    expect(() => loadConfig(null, ['train.earlyStopping={metric: devBleu, patience: 3}', 'train.evalEverySteps=0'])).toThrow(
      /train\.earlyStopping: set, but train\.evalEverySteps is 0/,
    );
    expect(() => loadConfig(null, ['train.earlyStopping={metric: devBleu, patience: 3}', 'train.devBleuSentences=0'])).toThrow(
      /train\.earlyStopping\.metric: devBleu, but train\.devBleuSentences is 0/,
    );
    expect(() => loadConfig(null, ['train.earlyStopping={metric: bleu, patience: 3}'])).toThrow(ConfigError);
    expect(() => loadConfig(null, ['train.earlyStopping={metric: devLoss, patience: 0}'])).toThrow(/train\.earlyStopping\.patience/);
    expect(loadConfig(null, ['train.earlyStopping={metric: devLoss, patience: 2}']).train.earlyStopping).toEqual({
      metric: 'devLoss',
      patience: 2,
      minDelta: 0,
    });
  });
});

describe('early stopping in the trainer', () => {
  // dev BLEU by step (evaluations every 2 steps): best at step 8, then 3 evaluations without improvement
  const BLEU: Record<number, number> = { 2: 5, 4: 7, 6: 6, 8: 9, 10: 8.5, 12: 8.9, 14: 9, 16: 20 };
  const SETS = [
    ...TINY,
    'train.maxSteps=40',
    'train.evalEverySteps=2',
    'train.devBleuSentences=5',
    'train.checkpointEverySteps=6',
    'train.keepCheckpoints=1',
    'train.earlyStopping={metric: devBleu, patience: 3}',
  ];
  const train = reversePairs(200, 11);
  const valid = reversePairs(10, 12);
  const runs = new Map<string, string>();

  /** A trainer on SETS (or `sets`) whose dev BLEU at step s is BLEU[s] (or `bleu[s]`), in run folder `runName`. */
  function trainer(runName: string, opts: { init: number; stopAt?: number; sets?: string[]; bleu?: Record<number, number>; progress?: ProgressLine }) {
    const cfg = loadConfig(null, opts.sets ?? SETS);
    const model = createTransformer(cfg.model, V, new Rng(opts.init));
    const path = runs.get(runName);
    const run = path ? RunFolder.open(path) : RunFolder.create(root, runName);
    runs.set(runName, run.path);
    let t: Trainer;
    const devBleu = async () => (opts.bleu ?? BLEU)[t.step]!;
    t = new Trainer({
      config: cfg,
      model,
      train,
      valid,
      run,
      progress: opts.progress ?? quiet,
      devBleu,
      isStopRequested: () => opts.stopAt !== undefined && t.step >= opts.stopAt,
    });
    return { t, model, run, cfg };
  }

  it('stops `patience` evaluations after the best, keeps its checkpoint, restores its weights; a killed and resumed run stops the same', async () => {
    const a = trainer('es-a', { init: 1 });
    const ra = await a.t.run();
    expect(ra.stoppedBy).toBe('early-stopping');
    expect(a.t.step).toBe(14);
    expect(a.t.earlyStopping!.bestEval).toMatchObject({ step: 8, value: 9 });
    // keepCheckpoints 1 keeps the newest (14) and the protected best (8)
    expect(
      readdirSync(join(a.run.path, 'checkpoints'))
        .filter((d) => d.startsWith('step-'))
        .sort(),
    ).toEqual(['step-0000008', 'step-0000014']);
    const last = await a.model.params.toArrays();
    expect(a.t.restoreBestWeights()).toBe(8);
    const best = readCheckpoint(join(a.run.path, 'checkpoints', 'step-0000008'));
    const restored = await a.model.params.toArrays();
    for (const [name, { data }] of Object.entries(best.params)) expect(Array.from(restored[name]!.data)).toEqual(Array.from(data));
    expect(Object.keys(last).some((n) => last[n]!.data.some((x, i) => x !== restored[n]!.data[i]))).toBe(true);
    // the eval records carry the best step and the patience left
    const evals = readFileSync(join(a.run.path, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => 'devBleu' in r);
    expect(evals.map((r) => [r['step'], r['bestStep'], r['patienceLeft']])).toEqual([
      [2, 2, 3],
      [4, 4, 3],
      [6, 4, 2],
      [8, 8, 3],
      [10, 8, 2],
      [12, 8, 1],
      [14, 8, 0],
    ]);
    a.t.dispose();
    a.model.dispose();

    // killed at step 10 (between the best and the stop), resumed in a fresh trainer with another init
    const b = trainer('es-b', { init: 1, stopAt: 10 });
    const rb = await b.t.run();
    expect(rb.stoppedEarly).toBe(true);
    b.t.dispose();
    b.model.dispose();
    const c = trainer('es-b', { init: 77 });
    c.t.restore(findLatestValidCheckpoint(c.run.path));
    expect(c.t.step).toBe(10);
    const rc = await c.t.run();
    expect(rc.stoppedBy).toBe('early-stopping');
    expect(c.t.step).toBe(14);
    expect(c.t.earlyStopping!.report()).toEqual(a.t.earlyStopping!.report());
    expect(c.t.history.map((h) => h.loss)).toEqual(a.t.history.slice(10).map((h) => h.loss));
    c.t.restoreBestWeights();
    const resumedBest = await c.model.params.toArrays();
    for (const [name, { data }] of Object.entries(restored)) expect(Array.from(resumedBest[name]!.data)).toEqual(Array.from(data));
    c.t.dispose();
    c.model.dispose();

    // resumed from the stop step's checkpoint, the run is already over
    const d = trainer('es-b', { init: 5 });
    d.t.restore(findLatestValidCheckpoint(d.run.path));
    const rd = await d.t.run();
    expect([rd.steps, rd.stoppedBy]).toEqual([0, 'early-stopping']);
    d.t.dispose();
    d.model.dispose();
  }, 60_000);

  it("the progress line's ETA runs from the earliest early stop to the cap", async () => {
    // dev BLEU 5, 7, 6, 9, 8.5, 8.9, 9 at steps 2..14 (patience 3, an evaluation every 2 steps); the line
    // of a step comes before its evaluation, so steps 1-2 could end at 6 (2, 4, 6 failing), 3-4 at 8 (2
    // the best), 5-6 at 10 (4 the best), 7-8 at 10 (6 failed), 9-14 at 14 (8 the best: 10, 12, 14)
    const earliest = [6, 6, 8, 8, 10, 10, 10, 10, 14, 14, 14, 14, 14, 14];
    const es = new EarlyStopping({ metric: 'devBleu', patience: 3, minDelta: 0 });
    const replay: number[] = [];
    for (let step = 1; step <= 14; step++) {
      replay.push(earliestStopStep(step, 2, es.evaluationsToStop));
      if (step % 2 === 0) es.observe(step, { devLoss: 1, devBleu: BLEU[step]! });
    }
    expect(replay).toEqual(earliest);
    // the trainer's lines: a range on every step of that run (it stops at 14, long before the cap of 40)
    const lines: string[] = [];
    const progress = new ProgressLine({ write: (t: string) => lines.push(t) !== 0, isTTY: false });
    const a = trainer('es-eta', { init: 1, sets: [...SETS, 'train.logEverySteps=1'], progress });
    await a.t.run();
    a.t.dispose();
    a.model.dispose();
    const steps = lines.flatMap((l) => {
      const m = /^step (\d+)\/40 .*\| ETA ([0-9hms?]+)-([0-9hms?]+)$/.exec(l.trim());
      return m ? [Number(m[1])] : [];
    });
    expect(steps).toEqual(earliest.map((_, i) => i + 1));
    // without early stopping: the time to the cap alone
    const b = trainer('es-eta-cap', {
      init: 1,
      sets: [...SETS.filter((x) => !x.startsWith('train.earlyStopping')), 'train.maxSteps=3', 'train.logEverySteps=1'],
      progress,
    });
    lines.length = 0;
    await b.t.run();
    b.t.dispose();
    b.model.dispose();
    expect(lines.filter((l) => /^step \d+\/3 .*\| ETA [0-9hms?]+$/.test(l.trim())).length).toBe(3);
  }, 60_000);

  it('lrDecay: the learning rate is cut after the exhausted patience, the run stops at the next, and a resumed run does the same', async () => {
    // best at 8; 10, 12, 14 fail -> cut (patience again); 16 is the new best; 18, 20, 22 fail -> stop at 22
    const bleu: Record<number, number> = { ...BLEU, 16: 20, 18: 19, 20: 19, 22: 19, 24: 30 };
    const sets = SETS.map((x) =>
      x.startsWith('train.earlyStopping=') ? 'train.earlyStopping={metric: devBleu, patience: 3, lrDecay: {factor: 0.5, times: 1}}' : x,
    );
    const make = (runName: string, init: number, stopAt?: number) => trainer(runName, { init, ...(stopAt !== undefined ? { stopAt } : {}), sets, bleu });
    const a = make('lrdecay-a', 1);
    const ra = await a.t.run();
    expect([ra.stoppedBy, a.t.step, a.t.earlyStopping!.bestEval?.step, a.t.earlyStopping!.lrCuts]).toEqual(['early-stopping', 22, 16, 1]);
    // steps 1-14 at the schedule's rate, 15-22 at half of it
    const { peakLr, warmupSteps } = a.cfg.train;
    const schedule = (step: number) => peakLr * Math.min(step / warmupSteps, Math.sqrt(warmupSteps / step));
    for (const h of a.t.history) expect(h.lr).toBeCloseTo(schedule(h.step) * (h.step > 14 ? 0.5 : 1), 12);
    const cuts = readFileSync(join(a.run.path, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => 'devBleu' in r)
      .map((r) => [r['step'], r['lrCuts'], r['patienceLeft']]);
    expect(cuts.slice(5)).toEqual([
      [12, 0, 1],
      [14, 1, 3],
      [16, 1, 3],
      [18, 1, 2],
      [20, 1, 1],
      [22, 1, 0],
    ]);
    a.t.dispose();
    a.model.dispose();
    // killed at step 18 (after the cut), resumed in a fresh trainer: the same rate, losses and stop
    const b = make('lrdecay-b', 1, 18);
    await b.t.run();
    b.t.dispose();
    b.model.dispose();
    const c = make('lrdecay-b', 9);
    c.t.restore(findLatestValidCheckpoint(c.run.path));
    expect(c.t.step).toBe(18);
    const rc = await c.t.run();
    expect([rc.stoppedBy, c.t.step]).toEqual(['early-stopping', 22]);
    expect(c.t.history.map((h) => [h.lr, h.loss])).toEqual(a.t.history.slice(18).map((h) => [h.lr, h.loss]));
    c.t.dispose();
    c.model.dispose();
  }, 60_000);

  it('runTraining scores test with the best step, says which in results.json, and loadModel delivers it', async () => {
    // minDelta 100: only the first evaluation (step 3) is ever a gain, so patience 2 stops at step 9; the
    // learning rate of 3 makes dev loss jump after step 3 (the test checks it), so step 3 is also the best (the lowest)
    const cfg = loadConfig(null, [
      ...TINY,
      'train.peakLr=3',
      'data.synthetic.task=reverse',
      'data.synthetic.trainPairs=300',
      'data.synthetic.validPairs=8',
      'data.synthetic.testPairs=6',
      'data.bpeMerges=20',
      'eval.beamSize=1',
      'train.maxSteps=30',
      'train.evalEverySteps=3',
      'train.devBleuSentences=0',
      'train.checkpointEverySteps=100',
      'train.keepCheckpoints=1',
      'train.earlyStopping={metric: devLoss, patience: 2, minDelta: 100}',
    ]);
    const run = RunFolder.create(root, 'es-run');
    const r = await runTraining({ config: cfg, run, progress: quiet });
    const devLoss = readFileSync(run.file('metrics.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"devLoss"'))
      .map((l) => JSON.parse(l) as { step: number; devLoss: number });
    expect(devLoss.map((e) => e.step)).toEqual([3, 6, 9]);
    expect(Math.min(...devLoss.map((e) => e.devLoss))).toBe(devLoss[0]!.devLoss);
    expect([r.steps, r.modelStep, r.stoppedBy]).toEqual([9, 3, 'early-stopping']);
    const results = JSON.parse(readFileSync(run.file('results.json'), 'utf8'));
    expect(results.earlyStopping).toMatchObject({ metric: 'devLoss', patience: 2, evaluations: 3, stoppedAtStep: 9, stoppedBy: 'patience', best: { step: 3 } });
    expect(results.modelStep).toBe(3);
    expect(results.devLoss).toBe(results.earlyStopping.best.devLoss);
    expect(existsSync(run.file('test.hyp'))).toBe(true);
    expect(JSON.parse(readFileSync(join(run.path, 'checkpoints', 'best.json'), 'utf8'))).toEqual({ step: 3, dir: 'step-0000003' });
    const loaded = loadModel(run.path);
    expect(loaded.checkpoint.state.step).toBe(3);
    loaded.model.dispose();
    // resuming the finished run resumes from the newest checkpoint, not the best one
    expect(findLatestValidCheckpoint(run.path).state.step).toBe(9);
    // the training curves star the best evaluation and mark where patience ran out
    const fig = trainingCurves(readMetrics(run.path));
    expect(fig.data.filter((t) => t.name?.startsWith('best checkpoint')).map((t) => [t.name, t.x])).toEqual([['best checkpoint (step 3)', [3]]]);
    expect(fig.data.filter((t) => t.name?.startsWith('early stop')).map((t) => t.x)).toEqual([[9]]);
    expect(fig.layout.title).toMatchObject({ text: expect.stringContaining('best step 3, early stop at 9') });
  }, 60_000);
});

describe('checkpoints/best.json', () => {
  it('a damaged pointer is refused with its path, never silently replaced by the newest checkpoint', () => {
    const run = mkdtempSync(join(root, 'pointer-'));
    mkdirSync(join(run, 'checkpoints'));
    writeFileSync(join(run, 'checkpoints', 'best.json'), '{"step": 3, "dir": "step-000');
    expect(() => findModelCheckpoint(run)).toThrow(new RegExp(`${join(run, 'checkpoints', 'best.json')}: corrupt`));
    writeFileSync(join(run, 'checkpoints', 'best.json'), '{"step": 3, "dir": "../elsewhere"}');
    expect(() => findModelCheckpoint(run)).toThrow(/best\.json: expected \{ "dir": "step-N" \}, found "\.\.\/elsewhere"/);
    writeFileSync(join(run, 'checkpoints', 'best.json'), '{"step": 3, "dir": "step-0000003"}');
    expect(() => findModelCheckpoint(run)).toThrow(CheckpointError);
  });
});

describe('gates.settle', () => {
  const train = reversePairs(200, 21);
  const valid = reversePairs(10, 22);
  async function gatedRun(sets: string[]) {
    const cfg = loadConfig(null, [
      ...TINY,
      'train.evalEverySteps=0',
      'train.devBleuSentences=0',
      'train.checkpointEverySteps=100',
      'gates.attention=[enc-self]',
      'model.heads=4',
      ...sets,
    ]);
    const model = createTransformer(cfg.model, V, new Rng(3));
    const gates = new HeadGates(cfg.gates, model.shape, cfg.seed, { maxSteps: cfg.train.maxSteps });
    const t = new Trainer({ config: cfg, model, train, valid, run: null, gates, progress: quiet });
    const r = await t.run();
    const out = { steps: t.step, settledAtStep: t.settledAtStep, stoppedBy: r.stoppedBy, fractional: gates.fractionalGates().length };
    t.dispose();
    gates.dispose();
    model.dispose();
    return out;
  }

  it('ends at the first check with every deterministic gate at 0 or 1, and never before a budget is annealed', async () => {
    // log alpha 8: every deterministic gate is clipped to 1 from the start
    expect(await gatedRun(['train.maxSteps=20', 'gates.logAlphaInit={kind: constant, value: 8}', 'gates.settle={checkEvery: 3}'])).toEqual({
      steps: 3,
      settledAtStep: 3,
      stoppedBy: 'settled',
      fractional: 0,
    });
    expect(await gatedRun(['train.maxSteps=20', 'gates.logAlphaInit={kind: constant, value: 8}', 'gates.settle={checkEvery: 3, minSteps: 7}'])).toMatchObject({
      steps: 9,
      settledAtStep: 9,
    });
    expect(
      await gatedRun([
        'train.maxSteps=20',
        'gates.logAlphaInit={kind: constant, value: 8}',
        'gates.settle={checkEvery: 2}',
        'gates.targetHeads=2',
        'gates.targetWarmupSteps=8',
      ]),
    ).toMatchObject({ steps: 8, settledAtStep: 8 });
  });

  it('runs to the cap when gates stay fractional, and says how many are', async () => {
    // log alpha 0: deterministic gate 0.5, far from settling in 6 steps
    expect(await gatedRun(['train.maxSteps=6', 'gates.logAlphaInit={kind: constant, value: 0}', 'gates.settle={checkEvery: 2}'])).toEqual({
      steps: 6,
      settledAtStep: null,
      stoppedBy: null,
      fractional: 4,
    });
    expect(() => loadConfig(null, ['gates.settle={checkEvery: 2}'])).toThrow(/gates\.settle: set, but gates\.attention is empty/);
  });
});
