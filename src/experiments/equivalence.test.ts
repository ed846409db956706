import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { expandStages, loadSpec } from './spec.js';
import { type ResolvedStage, resolveStages, stageState } from './stage.js';
import { runStage } from './run-stage.js';
import { adoptFinished, knownHashes, matchFinished, readFinishedStage } from './equivalence.js';
import { applyRestore, planRestore, writeStageRecords } from './records.js';
import { writeReport } from './report.js';
import { findModelCheckpoint } from '../io/checkpoint.js';
import { ProgressLine } from '../train/progress.js';
import { useTestBackend } from '../test-utils/backend.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-equiv-'));
const quiet = new ProgressLine(process.stderr, true);

/** A tiny study: a baseline with early stopping on dev loss (evaluated every 2 steps) and an L0 stage on it. */
function study(name: string, o: { cap: number; minDelta: number; patience: number; dFF?: number; lambda?: number }): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(
    p,
    `name: eqv
set: { data.synthetic.task: reverse, data.synthetic.trainPairs: 300, data.synthetic.validPairs: 8, data.synthetic.testPairs: 8, data.bpeMerges: 20,
  model.dModel: 16, model.dFF: ${o.dFF ?? 32}, model.heads: 2, model.encoderLayers: 2, model.decoderLayers: 1, train.maxTokensPerBatch: 200,
  train.evalEverySteps: 2, train.checkpointEverySteps: 2, train.devBleuSentences: 0, train.logEverySteps: 5, eval.beamSize: 1,
  train.maxSteps: ${o.cap}, train.earlyStopping: { metric: devLoss, patience: ${o.patience}, minDelta: ${o.minDelta} } }
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
    // minDelta 100: only the first evaluation (step 2) improves, so patience 1 stops the run at step 4
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
