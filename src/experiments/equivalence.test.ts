import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { expandStages, loadSpec } from './spec.js';
import { type ResolvedStage, resolveStages, stageState } from './stage.js';
import { runStage } from './run-stage.js';
import { adoptFinished, continueStoppedRun, knownHashes, matchFinished, matchInterrupted, readFinishedStage, readInterruptedStage } from './equivalence.js';
import { applyRestore, planRestore, writeStageRecords } from './records.js';
import { writeReport } from './report.js';
import { findModelCheckpoint } from '../io/checkpoint.js';
import { ProgressLine } from '../train/progress.js';
import { useTestBackend } from '../test-utils/backend.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-equiv-'));
const quiet = new ProgressLine(process.stderr, true);

/** A tiny study: a baseline with early stopping on dev loss (evaluated every 2 steps) and an L0 stage on it. */
function study(name: string, o: { cap: number; minDelta: number; patience: number; dFF?: number; lambda?: number; lrDecay?: string }): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(
    p,
    `name: eqv
set: { data.synthetic.task: reverse, data.synthetic.trainPairs: 300, data.synthetic.validPairs: 8, data.synthetic.testPairs: 8, data.bpeMerges: 20,
  model.dModel: 16, model.dFF: ${o.dFF ?? 32}, model.heads: 2, model.encoderLayers: 2, model.decoderLayers: 1, train.maxTokensPerBatch: 200,
  train.evalEverySteps: 2, train.checkpointEverySteps: 2, train.devBleuSentences: 0, train.logEverySteps: 5, eval.beamSize: 1,
  train.maxSteps: ${o.cap}, train.earlyStopping: { metric: devLoss, patience: ${o.patience}, minDelta: ${o.minDelta}${o.lrDecay ? `, lrDecay: ${o.lrDecay}` : ''} } }
stages:
  baseline: { kind: train }
  l0: { kind: prune, from: baseline, lambda: ${o.lambda ?? 0.1}, steps: 3, set: { train.evalEverySteps: 0 } }
`,
  );
  return p;
}

function resolve(specPath: string, runs: string): ResolvedStage[] {
  const s = loadSpec(specPath);
  return resolveStages(s, expandStages(s), runs);
}

async function run(s: ResolvedStage): Promise<void> {
  expect(await runStage(s, { progress: quiet, isStopRequested: () => false, argv: [] })).not.toBeNull();
}

/** The sha256 of the model a stage delivers (the checkpoint its children load). */
function modelDigest(folder: string): string {
  return createHash('sha256')
    .update(readFileSync(join(findModelCheckpoint(folder).path, 'model.safetensors')))
    .digest('hex');
}

const results = (folder: string) => JSON.parse(readFileSync(join(folder, 'results.json'), 'utf8')) as Record<string, unknown>;
const marker = (folder: string) => JSON.parse(readFileSync(join(folder, 'stage.json'), 'utf8')) as Record<string, unknown>;

describe('a finished stage under another train.maxSteps', () => {
  beforeAll(async () => {
    await useTestBackend();
  });

  it('a run early stopping ended before both caps is the run of the higher cap: adopted, not retrained, and its child too', async () => {
    // minDelta 100: only the first evaluation (step 2) is a gain, so patience 1 stops the run at step 4
    const low = resolve(study('low', { cap: 30, minDelta: 100, patience: 1 }), join(dir, 'runs-low'));
    for (const s of low) await run(s);
    expect(results(low[0]!.folder)).toMatchObject({ steps: 4, stoppedBy: 'early-stopping' });

    const high = resolve(study('high', { cap: 40, minDelta: 100, patience: 1 }), join(dir, 'runs-high'));
    expect(high[0]!.hash).not.toBe(low[0]!.hash);
    // the child's config is the same (its own steps set the cap), but its parent's hash changed
    expect(high[1]!.hash).not.toBe(low[1]!.hash);
    expect(high[1]!.config.train.maxSteps).toBe(low[1]!.config.train.maxSteps);

    const m = matchFinished(high[0]!, readFinishedStage(low[0]!.folder), new Set());
    expect(m.kind).toBe('equivalent');
    if (m.kind !== 'equivalent') return;
    expect(m.note.differs).toEqual({ 'train.maxSteps': { stage: 40, record: 30 } });
    expect(m.note.because).toMatch(/early-stopping rule stopped it at step 4, before both caps \(30 then, 40 now\)/);
    // the child matches only once its parent is known by the old hash
    expect(matchFinished(high[1]!, readFinishedStage(low[1]!.folder), knownHashes(high[0]!)).kind).toBe('different');

    expect(adoptFinished(high[0]!, low[0]!.folder, [])).toMatch(/as the same computation \(hash \w+ -> \w+\)/);
    expect(stageState(high[0]!)).toBe('done');
    expect(marker(high[0]!.folder)).toMatchObject({ hash: high[0]!.hash, equivalentTo: { hash: low[0]!.hash } });
    expect(knownHashes(high[0]!)).toEqual(new Set([high[0]!.hash, low[0]!.hash]));
    const child = matchFinished(high[1]!, readFinishedStage(low[1]!.folder), knownHashes(high[0]!));
    expect(child).toMatchObject({ kind: 'equivalent', note: { differs: {} } });
    adoptFinished(high[1]!, low[1]!.folder, []);
    expect(stageState(high[1]!)).toBe('done');

    // the claim itself: training under the higher cap from scratch gives the same model, bit for bit
    const fresh = resolve(study('high', { cap: 40, minDelta: 100, patience: 1 }), join(dir, 'runs-high-fresh'));
    await run(fresh[0]!);
    expect(results(fresh[0]!.folder)).toMatchObject({ steps: 4, stoppedBy: 'early-stopping' });
    expect(modelDigest(fresh[0]!.folder)).toBe(modelDigest(low[0]!.folder));
    expect(readFileSync(join(fresh[0]!.folder, 'test.hyp'), 'utf8')).toBe(readFileSync(join(low[0]!.folder, 'test.hyp'), 'utf8'));
  }, 240000);

  it('a run that reached the lower cap continues from its checkpoint to the run of the higher cap, bit for bit, leaving the original untouched', async () => {
    // minDelta 0 and patience 50: the cap ends the run
    const low = resolve(study('cap6', { cap: 6, minDelta: 0, patience: 50 }), join(dir, 'runs-cap6'));
    await run(low[0]!);
    expect(results(low[0]!.folder)).toMatchObject({ steps: 6, stoppedBy: null });
    const before = readdirSync(low[0]!.folder).sort();
    const lowDigest = modelDigest(low[0]!.folder);

    const high = resolve(study('cap10', { cap: 10, minDelta: 0, patience: 50 }), join(dir, 'runs-cap10'));
    const m = matchFinished(high[0]!, readFinishedStage(low[0]!.folder), new Set());
    expect(m).toMatchObject({ kind: 'continue', note: { fromStep: 6, cap: { then: 6, now: 10 } } });
    expect(adoptFinished(high[0]!, low[0]!.folder, ['heads', 'experiment', 'adopt'])).toMatch(/continues from its checkpoint at step 6 to the cap of 10/);
    expect(stageState(high[0]!)).toBe('partial');
    expect(existsSync(join(high[0]!.folder, 'results.json'))).toBe(false);
    expect(JSON.parse(readFileSync(join(high[0]!.folder, 'config.json'), 'utf8')).train.maxSteps).toBe(10);
    await run(high[0]!);
    expect(results(high[0]!.folder)).toMatchObject({ steps: 10 });
    expect(marker(high[0]!.folder)).toMatchObject({ hash: high[0]!.hash, continuedFrom: { hash: low[0]!.hash, fromStep: 6 } });

    const fresh = resolve(study('cap10', { cap: 10, minDelta: 0, patience: 50 }), join(dir, 'runs-cap10-fresh'));
    await run(fresh[0]!);
    expect(modelDigest(high[0]!.folder)).toBe(modelDigest(fresh[0]!.folder));
    expect(readFileSync(join(high[0]!.folder, 'test.hyp'), 'utf8')).toBe(readFileSync(join(fresh[0]!.folder, 'test.hyp'), 'utf8'));
    const devLosses = (f: string) =>
      readFileSync(join(f, 'metrics.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('devLoss'))
        .map((l) => JSON.parse(l).devLoss as number);
    expect(devLosses(high[0]!.folder)).toEqual(devLosses(fresh[0]!.folder));
    // the capped run is left as it was
    expect(readdirSync(low[0]!.folder).sort()).toEqual(before);
    expect(modelDigest(low[0]!.folder)).toBe(lowDigest);
  }, 240000);

  it('refuses, naming why: another key, other stage settings, a cap it ran past, a cap off the evaluation schedule', async () => {
    const runs = join(dir, 'runs-refuse');
    const done = resolve(study('r-low', { cap: 30, minDelta: 100, patience: 1 }), runs);
    await run(done[0]!);
    const theirs = readFinishedStage(done[0]!.folder);
    const other = (name: string, o: Parameters<typeof study>[1]) => resolve(study(name, o), join(dir, `runs-${name}`))[0]!;
    const reason = (s: ResolvedStage) => {
      const m = matchFinished(s, theirs, new Set());
      return m.kind === 'different' ? m.reason : m.kind;
    };
    expect(reason(other('r-dff', { cap: 40, minDelta: 100, patience: 1, dFF: 48 }))).toMatch(/config differs in model.dFF \(stage 48, record 32\)/);
    // a cap below the step the run stopped at
    expect(reason(other('r-3', { cap: 3, minDelta: 100, patience: 1 }))).toMatch(/trained to step 4, past this stage's cap of 3/);
    // the record's settings are not the spec's: its config.json does not reproduce its hash
    const child = resolve(study('r-low', { cap: 30, minDelta: 100, patience: 1 }), runs)[1]!;
    await run(child);
    const otherLambda = resolve(study('r-lambda', { cap: 30, minDelta: 100, patience: 1, lambda: 0.2 }), join(dir, 'runs-r-lambda'))[1]!;
    const m = matchFinished(otherLambda, readFinishedStage(child.folder), new Set([done[0]!.hash]));
    expect(m.kind === 'different' && m.reason).toMatch(/do not give its hash under this stage's kind and settings/);
    expect(() => adoptFinished(otherLambda, child.folder, [])).toThrow(/is not stage l0/);
    // a capped run whose cap is not an evaluation step: its last evaluation is one a longer run does not make
    const capped = resolve(study('r-cap5', { cap: 5, minDelta: 0, patience: 50 }), join(dir, 'runs-r-cap5'))[0]!;
    await run(capped);
    const m5 = matchFinished(other('r-cap9', { cap: 9, minDelta: 0, patience: 50 }), readFinishedStage(capped.folder), new Set());
    expect(m5.kind === 'different' && m5.reason).toMatch(/its cap \(step 5\) is not an evaluation step of train.evalEverySteps = 2/);
  }, 240000);

  it('--restore takes committed records of the same computation under their old hashes, and the report re-files them under the new ones', async () => {
    const runs = join(dir, 'runs-rec');
    const out = join(dir, 'results-rec');
    const low = resolve(study('rec-low', { cap: 30, minDelta: 100, patience: 1 }), runs);
    for (const s of low) await run(s);
    writeReport(low, out);
    writeStageRecords(low, out);
    const oldNames = low.map((s) => basename(s.folder));
    const oldWeights = readFileSync(join(out, 'stages', oldNames[0]!, 'weights.json'), 'utf8');

    // a fresh machine: no run folders, the spec's cap raised
    const high = resolve(study('rec-high', { cap: 40, minDelta: 100, patience: 1 }), join(dir, 'runs-rec-fresh'));
    const plan = planRestore(high, out);
    expect(plan.restore.map((r) => r.stage.instance.id)).toEqual(['baseline', 'l0']);
    expect(plan.restore.map((r) => basename(r.from))).toEqual(oldNames);
    const lines: string[] = [];
    applyRestore(plan, (l) => lines.push(l));
    expect(lines[0]).toMatch(/restored from .* as the same computation: its early-stopping rule stopped it at step 4/);
    expect(lines[1]).toMatch(/only its parent's hash changed/);
    for (const s of high) expect(stageState(s)).toBe('done');
    expect(marker(high[1]!.folder)).toMatchObject({ hash: high[1]!.hash, parent: high[0]!.folder, equivalentTo: { hash: low[1]!.hash } });

    const rec = writeStageRecords(high, out);
    expect(rec.superseded).toEqual(oldNames.map((n, i) => `${n} -> ${basename(high[i]!.folder)}`));
    expect(readdirSync(join(out, 'stages')).sort()).toEqual(high.map((s) => basename(s.folder)).sort());
    expect(readFileSync(join(out, 'stages', basename(high[0]!.folder), 'weights.json'), 'utf8')).toBe(oldWeights);
    // and the re-filed records restore again, now by their own hash
    const again = resolve(study('rec-high', { cap: 40, minDelta: 100, patience: 1 }), join(dir, 'runs-rec-again'));
    expect(planRestore(again, out).restore.map((r) => r.marker)).toEqual([undefined, undefined]);

    // a record that is not the same computation is not restored, and the plan says why
    const dff = resolve(study('rec-dff', { cap: 40, minDelta: 100, patience: 1, dFF: 48 }), join(dir, 'runs-rec-dff'));
    const p2 = planRestore(dff, out);
    expect(p2.restore).toEqual([]);
    expect(p2.notes[0]).toMatch(/\[baseline\] runs again: .*model.dFF \(stage 48, record 32\)/);
  }, 240000);
});

/** The dev evaluations a run's metrics.jsonl logged, in the order logged. */
const evaluations = (f: string) =>
  readFileSync(join(f, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('devLoss'))
    .map((l) => JSON.parse(l) as { step: number; devLoss: number });

describe('a finished run under another stopping rule (train.earlyStopping)', () => {
  beforeAll(async () => {
    await useTestBackend();
  });
  const devLosses = (f: string) => evaluations(f).map((e) => e.devLoss);

  it('a run the new rule would not have stopped yet continues from its last checkpoint with the rule replayed on its evaluations, bit for bit the run under the new rule', async () => {
    // the old rule never stops it (patience 50; minDelta 100: its anchor stays step 2): the cap at 6 ends it;
    // the new rule (minDelta 0, patience 1) would train on, its best step 6: the state it continues with is not the old one
    const old = resolve(study('rule-old', { cap: 6, minDelta: 100, patience: 50 }), join(dir, 'runs-rule-old'));
    await run(old[0]!);
    expect(results(old[0]!.folder)).toMatchObject({ steps: 6, stoppedBy: null });
    const losses = devLosses(old[0]!.folder);
    // the replay is only a test of the rule if dev loss fell at every evaluation (patience 1 has not stopped it)
    expect(losses.every((x, i) => i === 0 || x < losses[i - 1]!)).toBe(true);
    const before = modelDigest(old[0]!.folder);

    const spec = () => resolve(study('rule-new', { cap: 12, minDelta: 0, patience: 1 }), join(dir, 'runs-rule-new'));
    const now = spec();
    const m = matchFinished(now[0]!, readFinishedStage(old[0]!.folder), new Set());
    expect(m).toMatchObject({
      kind: 'continue',
      note: { fromStep: 6, rule: { bestStep: 6, state: { 'earlyStopping.evaluations': 3, 'earlyStopping.sinceBest': 0 } } },
    });
    // an adopt killed while copying leaves its half-built copy beside the stage folder, never in it: the
    // stage is still pending (a run would not resume a checkpoint without its replayed state) and adopt starts again
    mkdirSync(join(`${now[0]!.folder}.adopting`, 'checkpoints', 'step-0000006'), { recursive: true });
    writeFileSync(join(`${now[0]!.folder}.adopting`, 'checkpoints', 'step-0000006', 'state.json'), '{"step": 6');
    expect(stageState(now[0]!)).toBe('pending');
    expect(adoptFinished(now[0]!, old[0]!.folder, [])).toMatch(
      /continues from its checkpoint at step 6 to the cap of 12 .*its stopping rule changed, and the new one \(devLoss, patience 1, minDelta 0\), replayed on its evaluations, would not have stopped it yet \(best step 6\)/,
    );
    expect(existsSync(join(now[0]!.folder, 'checkpoints', 'best.json'))).toBe(false);
    expect(existsSync(`${now[0]!.folder}.adopting`)).toBe(false);
    await run(now[0]!);

    const fresh = resolve(study('rule-new', { cap: 12, minDelta: 0, patience: 1 }), join(dir, 'runs-rule-fresh'));
    await run(fresh[0]!);
    const es = (f: string) => (results(f) as { earlyStopping: unknown }).earlyStopping;
    expect(results(now[0]!.folder)).toMatchObject({
      steps: (results(fresh[0]!.folder) as { steps: number }).steps,
      stoppedBy: results(fresh[0]!.folder)['stoppedBy'],
    });
    expect(es(now[0]!.folder)).toEqual(es(fresh[0]!.folder));
    expect(devLosses(now[0]!.folder)).toEqual(devLosses(fresh[0]!.folder));
    expect(modelDigest(now[0]!.folder)).toBe(modelDigest(fresh[0]!.folder));
    expect(readFileSync(join(now[0]!.folder, 'test.hyp'), 'utf8')).toBe(readFileSync(join(fresh[0]!.folder, 'test.hyp'), 'utf8'));
    expect(modelDigest(old[0]!.folder)).toBe(before);
  }, 240000);

  it('a new rule that ends it alike is the same computation; one that would have stopped it sooner, or evaluations that do not reproduce its end, are not', async () => {
    // minDelta 100: only the first evaluation is a gain; patience 1 stops the run at step 4, whose dev loss
    // is the lowest (the best step)
    const stopped = resolve(study('rule-stop', { cap: 30, minDelta: 100, patience: 1 }), join(dir, 'runs-rule-stop'));
    await run(stopped[0]!);
    expect(results(stopped[0]!.folder)).toMatchObject({ steps: 4, stoppedBy: 'early-stopping' });
    const theirs = readFinishedStage(stopped[0]!.folder);
    const other = (name: string, o: Parameters<typeof study>[1]) => resolve(study(name, o), join(dir, `runs-${name}`))[0]!;
    const m = matchFinished(other('rule-alike', { cap: 30, minDelta: 50, patience: 1 }), theirs, new Set());
    expect(m.kind).toBe('equivalent');
    if (m.kind === 'equivalent') {
      expect(m.note.differs).toEqual({ 'train.earlyStopping.minDelta': { stage: 50, record: 100 } });
      expect(m.note.because).toMatch(/replayed on its evaluations, ends it at the same step 4 with the same best step 4/);
    }

    // capped at 6 (patience 50; dev loss falling, so its best step is 6): patience 1 would have stopped it at 4
    const capped = resolve(study('rule-capped', { cap: 6, minDelta: 100, patience: 50 }), join(dir, 'runs-rule-capped'))[0]!;
    await run(capped);
    const sooner = matchFinished(other('rule-sooner', { cap: 6, minDelta: 100, patience: 1 }), readFinishedStage(capped.folder), new Set());
    expect(sooner.kind === 'different' && sooner.reason).toMatch(/would have stopped it at step 4 \(best step 4\); it ran to step 6 \(best 6\)/);
    // reduce-on-plateau: a rule that would have cut the learning rate after step 4 trained steps 5-6 at
    // another rate; one whose patience never ran out changes nothing
    const cuts = matchFinished(
      other('rule-cut', { cap: 6, minDelta: 100, patience: 1, lrDecay: '{ factor: 0.5, times: 5 }' }),
      readFinishedStage(capped.folder),
      new Set(),
    );
    expect(cuts.kind === 'different' && cuts.reason).toMatch(
      /its learning rate was cut after no step and the new stopping rule .* cuts it after step 4, so the steps after/,
    );
    const noCut = matchFinished(
      other('rule-nocut', { cap: 6, minDelta: 100, patience: 50, lrDecay: '{ factor: 0.5, times: 5 }' }),
      readFinishedStage(capped.folder),
      new Set(),
    );
    expect(noCut.kind).toBe('equivalent');

    // an evaluation missing from metrics.jsonl: the old rule's replay no longer gives the recorded end
    const metrics = join(stopped[0]!.folder, 'metrics.jsonl');
    const lines = readFileSync(metrics, 'utf8').split('\n');
    const firstEval = lines.findIndex((l) => l.includes('devLoss'));
    writeFileSync(metrics, lines.filter((_, i) => i !== firstEval).join('\n'));
    const broken = matchFinished(other('rule-alike', { cap: 30, minDelta: 50, patience: 1 }), readFinishedStage(stopped[0]!.folder), new Set());
    expect(broken.kind === 'different' && broken.reason).toMatch(
      /metrics.jsonl \(1 evaluations\) does not reproduce how its rule \(devLoss, patience 1, minDelta 100\) ended it/,
    );
    // a line that does not parse: one error naming the file and line, not a stack trace
    writeFileSync(metrics, readFileSync(metrics, 'utf8') + '\n{"step": 6, "devLoss": 1.5,');
    const lineNo = readFileSync(metrics, 'utf8').split('\n').length;
    expect(() => matchFinished(other('rule-alike', { cap: 30, minDelta: 50, patience: 1 }), readFinishedStage(stopped[0]!.folder), new Set())).toThrow(
      new RegExp(`metrics\\.jsonl:${lineNo}: expected a JSON object per line, found text that does not parse`),
    );
  }, 240000);
});

describe('a run stopped before its end (a signal, a kill) under another stopping rule', () => {
  beforeAll(async () => {
    await useTestBackend();
  });
  // a resumed run logs again the steps after its checkpoint: the last line of a step counts
  const devLosses = (f: string) => evaluations(f).reduce((m, e) => m.set(e.step, e.devLoss), new Map<number, number>());
  /** run stage `s` until its trainer asks `polls` times whether to stop (then it checkpoints and returns null) */
  async function runStopped(s: ResolvedStage, polls: number): Promise<void> {
    let n = 0;
    expect(await runStage(s, { progress: quiet, isStopRequested: () => ++n > polls, argv: [] })).toBeNull();
  }

  it('continues from its newest readable checkpoint with the new rule replayed, bit for bit the run under the new rule; refuses a live run, a rule that cuts elsewhere, another config', async () => {
    // the old rule (patience 50, minDelta 0) would train to the cap of 12; stopped by a request part-way
    const old = resolve(study('stop-old', { cap: 12, minDelta: 0, patience: 50 }), join(dir, 'runs-stop-old'))[0]!;
    await runStopped(old, 6);
    const stopped = readInterruptedStage(old.folder)!;
    expect(stopped).not.toBeNull();
    expect(stopped.lastStep).toBeGreaterThan(2);
    expect(stopped.lastStep).toBeLessThan(12);
    // the new rule (minDelta 0, patience 1) trains on while dev loss falls at every evaluation
    const losses = [...devLosses(old.folder).values()];
    expect(losses.every((x, i) => i === 0 || x < losses[i - 1]!)).toBe(true);
    const now = resolve(study('stop-new', { cap: 12, minDelta: 0, patience: 1 }), join(dir, 'runs-stop-old'))[0]!;
    expect(now.hash).not.toBe(old.hash);
    expect(stageState(now)).toBe('pending');
    expect(matchInterrupted(now, stopped, new Set()).kind).toBe('continue');

    // refused, one line each: a run still training there; a rule that would have cut the learning rate after
    // its first evaluations (minDelta 100: no gain after step 2); another key; the stage's own folder
    writeFileSync(join(old.folder, 'stage.lock'), String(process.pid));
    expect(() => adoptFinished(now, old.folder, [])).toThrow(
      new RegExp(`a run is still training there \\(process ${process.pid}, its stage.lock\\); stop it first`),
    );
    rmSync(join(old.folder, 'stage.lock'));
    const other = (name: string, o: Parameters<typeof study>[1]) => resolve(study(name, o), join(dir, `runs-${name}`))[0]!;
    const cut = matchInterrupted(other('stop-cut', { cap: 12, minDelta: 100, patience: 1, lrDecay: '{ factor: 0.5, times: 5 }' }), stopped, new Set());
    expect(cut.kind === 'different' && cut.reason).toMatch(
      /its learning rate was cut after no step and the new stopping rule .* cuts it after step 4, so the steps after/,
    );
    const dff = matchInterrupted(other('stop-dff', { cap: 12, minDelta: 0, patience: 1, dFF: 48 }), stopped, new Set());
    expect(dff.kind === 'different' && dff.reason).toMatch(/stopped at step \d+\) is not stage baseline: its config differs in model.dFF \(stage 48, run 32\)/);
    const sooner = matchInterrupted(other('stop-sooner', { cap: 12, minDelta: 100, patience: 1 }), stopped, new Set());
    expect(sooner.kind === 'different' && sooner.reason).toMatch(/would have stopped it at step 4 \(best step 4\); it trained to step \d+/);
    expect(() => adoptFinished(old, old.folder, [])).toThrow(/own folder under its own hash; 'heads experiment run' resumes it from step/);

    // its newest checkpoint damaged (a kill while it was written, a bad disk): it goes on from the one before
    const steps = readdirSync(join(old.folder, 'checkpoints'))
      .filter((n) => n.startsWith('step-'))
      .sort();
    const newest = join(old.folder, 'checkpoints', steps.at(-1)!, 'model.safetensors');
    const intact = readFileSync(newest);
    writeFileSync(newest, intact.subarray(0, 100));
    const fallback = readInterruptedStage(old.folder)!.lastStep;
    expect(fallback).toBeLessThan(stopped.lastStep);
    expect(adoptFinished(now, old.folder, [])).toMatch(
      new RegExp(
        `continues from its checkpoint at step ${fallback} to the cap of 12 .*it stopped before its end, its stopping rule changed, and the new one \\(devLoss, patience 1, minDelta 0\\), replayed on its evaluations, would not have stopped it yet`,
      ),
    );
    writeFileSync(newest, intact);
    expect(readdirSync(join(now.folder, 'checkpoints')).filter((n) => n.startsWith('step-'))).not.toContain(steps.at(-1));
    await run(now);

    const fresh = resolve(study('stop-new', { cap: 12, minDelta: 0, patience: 1 }), join(dir, 'runs-stop-fresh'))[0]!;
    await run(fresh);
    expect(results(now.folder)).toMatchObject({ steps: results(fresh.folder)['steps'], stoppedBy: results(fresh.folder)['stoppedBy'] });
    expect(results(now.folder)['earlyStopping']).toEqual(results(fresh.folder)['earlyStopping']);
    expect([...devLosses(now.folder)]).toEqual([...devLosses(fresh.folder)]);
    expect(modelDigest(now.folder)).toBe(modelDigest(fresh.folder));
    expect(readFileSync(join(now.folder, 'test.hyp'), 'utf8')).toBe(readFileSync(join(fresh.folder, 'test.hyp'), 'utf8'));
    expect(marker(now.folder)['continuedFrom']).toMatchObject({ hash: old.hash, fromStep: fallback });
    // the stopped run's folder is as it was
    expect(existsSync(join(old.folder, 'stage.json'))).toBe(false);
    expect(readInterruptedStage(old.folder)!.lastStep).toBe(stopped.lastStep);
  }, 240000);

  it('experiment run continues such a run by itself where the stage would start from step 0, and leaves a different one alone', async () => {
    const runs = join(dir, 'runs-stop-auto');
    const old = resolve(study('auto-old', { cap: 12, minDelta: 0, patience: 50 }), runs)[0]!;
    await runStopped(old, 6);
    const at = readInterruptedStage(old.folder)!.lastStep;
    // another key (model.dFF): another computation, so it starts afresh and the stopped run stays
    const dff = resolve(study('auto-dff', { cap: 12, minDelta: 0, patience: 1, dFF: 48 }), runs)[0]!;
    expect(continueStoppedRun(dff, [])).toBeNull();
    // a live lock in the stopped run's folder: not touched
    const now = resolve(study('auto-new', { cap: 12, minDelta: 0, patience: 1 }), runs)[0]!;
    writeFileSync(join(old.folder, 'stage.lock'), String(process.pid));
    expect(continueStoppedRun(now, [])).toBeNull();
    rmSync(join(old.folder, 'stage.lock'));
    expect(continueStoppedRun(now, [])).toMatch(
      new RegExp(`copied .*${basename(old.folder)} to .*${basename(now.folder)}; it continues from its checkpoint at step ${at}`),
    );
    expect(stageState(now)).toBe('partial');
    // its own folder is no longer empty: a second call does nothing
    expect(continueStoppedRun(now, [])).toBeNull();
    await run(now);
    expect(marker(now.folder)['continuedFrom']).toMatchObject({ hash: old.hash, fromStep: at });
  }, 240000);
});
