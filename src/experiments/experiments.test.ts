import { spawn, spawnSync, execSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { loadSpec, expandStages } from './spec.js';
import {
  resolveStages,
  stageState,
  adoptRun,
  selectStages,
  stageIdentity,
  FEATURE_KEYS_OFF_BY_DEFAULT,
  acquireStageLock,
  experimentRoot,
  markDone,
} from './stage.js';
import { planTable } from './runner.js';
import { survivorScores } from './report.js';
import type { HeadReport } from '../analysis/report.js';
import { runStage, stepsNearest } from './run-stage.js';
import { RESULT_COLUMNS, prunedVsScratchRows, prunedVsScratchTable, writeReport, writeReportFigures } from './report.js';
import { writeStageRecords } from './records.js';
import { EXPERIMENT_RESULT_COLUMNS } from '../plots/readers.js';
import { runTraining } from '../train/run-training.js';
import { RunFolder } from '../util/run-folder.js';
import { ProgressLine } from '../train/progress.js';
import { loadConfigOn } from '../config/load.js';
import { useTestBackend } from '../test-utils/backend.js';
import { ConfigError } from '../util/errors.js';
import { expectSpecRefused } from '../test-utils/spec-refused.js';
import { writeFileAtomic } from '../util/fs.js';
import { loadCorpora } from '../data/prepare.js';
import { pairedBootstrap } from '../eval/significance.js';
import { corpusBleu, tokenizedLowercaseBleu } from '../eval/bleu.js';
import { formatP } from './replicates.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-exp-'));
const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
function spec(name: string, text: string): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, text);
  return p;
}
const TINY_SET = `{ data.synthetic.task: reverse, data.synthetic.trainPairs: 300, data.synthetic.validPairs: 8, data.synthetic.testPairs: 8, data.bpeMerges: 20,
      model.dModel: 16, model.dFF: 32, model.heads: 2, model.encoderLayers: 2, model.decoderLayers: 1, train.maxTokensPerBatch: 200,
      train.evalEverySteps: 0, train.devBleuSentences: 0, train.logEverySteps: 5, eval.beamSize: 1 }`;

describe('experiment specs', () => {
  const bad: Array<[string, string, string[]]> = [
    ['unknown stage key', 'name: x\nstages:\n  a: { kind: train, sett: {} }\n', ['stages.a.sett', 'unknown key']],
    ['unknown kind', 'name: x\nstages:\n  a: { kind: fly }\n', ['stages.a.kind']],
    ['missing dependency', 'name: x\nstages:\n  p: { kind: prune, from: base, lambda: 0.1 }\n', ['stages.p', "'base', which is not a stage"]],
    ['l0 without lambda', 'name: x\nstages:\n  b: { kind: train }\n  p: { kind: prune, from: b }\n', ['stages.p', 'needs lambda or targetHeads']],
    [
      'bad attention',
      'name: x\nstages:\n  b: { kind: train }\n  p: { kind: prune, from: b, lambda: 1, attention: [encoder] }\n',
      ['stages.p.attention[0]', '"encoder"'],
    ],
    ['cycle', 'name: x\nstages:\n  a: { kind: analyze, of: b }\n  b: { kind: export, of: a }\n', ['dependency cycle']],
    ['bad name', 'name: "a b"\nstages: {}\n', ['name']],
    ['missing base', 'name: x\nbase: configs/none.yaml\nstages: {}\n', ['base: config file configs/none.yaml not found']],
    [
      'testHeads on an l0 stage',
      'name: x\nstages:\n  b: { kind: train }\n  p: { kind: prune, from: b, lambda: 1, testHeads: [4] }\n',
      ['stages.p.testHeads', 'only for importance'],
    ],
    [
      'testHeads not integers',
      'name: x\nstages:\n  b: { kind: train }\n  p: { kind: prune, from: b, method: importance, testHeads: [2.5] }\n',
      ['stages.p.testHeads[0]'],
    ],
  ];
  it.each(bad)('%s is refused with the file and key', (_l, text, fragments) => {
    const p = spec(`bad-${fragments[0]!.replace(/\W/g, '')}`, text);
    expectSpecRefused(p, fragments);
  });

  it('--only keeps the named stages (every instance of a sweep, or one id) and their ancestors', () => {
    const p = spec(
      'only',
      `name: only\nset: ${TINY_SET}\nstages:\n  base: { kind: train }\n  l0: { kind: prune, from: base, sweep: { lambda: [0.1, 0.2] } }\n  an: { kind: analyze, of: l0 }\n  imp: { kind: prune, from: base, method: importance }\n`,
    );
    const r = resolveStages(loadSpec(p), expandStages(loadSpec(p)), join(dir, 'runs'));
    expect(selectStages(r, ['l0'], p).map((s) => s.instance.id)).toEqual(['base', 'l0[lambda=0.1]', 'l0[lambda=0.2]']);
    expect(selectStages(r, ['an<l0[lambda=0.2]>'], p).map((s) => s.instance.id)).toEqual(['base', 'l0[lambda=0.2]', 'an<l0[lambda=0.2]>']);
    expect(selectStages(r, ['imp', 'base'], p).map((s) => s.instance.id)).toEqual(['base', 'imp']);
    expect(() => selectStages(r, ['l0', 'nope'], p)).toThrow(/--only nope: no such stage \(stages: base, l0, an, imp/);
  });

  it('a later feature key at its off value is not part of a stage identity; switched on, it is', () => {
    const keys = FEATURE_KEYS_OFF_BY_DEFAULT as Record<string, unknown>;
    keys['model.laterFeature'] = null;
    try {
      const p = spec('feature', `name: feature\nset: ${TINY_SET}\nstages:\n  base: { kind: train }\n`);
      const [st] = resolveStages(loadSpec(p), expandStages(loadSpec(p)), join(dir, 'runs'));
      const cfg = st!.config;
      const off = { ...cfg, model: { ...cfg.model, laterFeature: null } } as typeof cfg;
      const on = { ...cfg, model: { ...cfg.model, laterFeature: { window: 3 } } } as typeof cfg;
      expect(stageIdentity(off)).toEqual(stageIdentity(cfg));
      expect((stageIdentity(on)['model'] as Record<string, unknown>)['laterFeature']).toEqual({ window: 3 });
    } finally {
      delete keys['model.laterFeature'];
    }
  });

  it('status shows a stage locked by a live process as running, with its pid', () => {
    const p = spec('status', `name: status\nset: ${TINY_SET}\nstages:\n  base: { kind: train }\n`);
    const [st] = resolveStages(loadSpec(p), expandStages(loadSpec(p)), join(dir, 'runs-status'));
    expect(planTable([st!])).toMatch(/base\s+train\s+pending/);
    const release = acquireStageLock(st!);
    try {
      expect(planTable([st!])).toContain(`running (pid ${process.pid})`);
    } finally {
      release();
    }
    expect(planTable([st!])).toMatch(/base\s+train\s+pending/);
  });

  it('survivor scores average the baseline scores over kept and removed encoder heads', () => {
    const head = (stack: string, pos: number | null, rare: number | null, imp: number, conf: number, lrp: number | null) => ({
      stack,
      importance: { perToken: imp },
      attention: { confidence: conf },
      lrp,
      roles: { positional: pos === null ? null : { fraction: pos }, rare: rare === null ? null : { rate: rare }, labels: [] },
    });
    const report = {
      heads: {
        'enc-self.0.0': head('enc-self', 0.9, 0.1, 1, 0.5, 0.4),
        'enc-self.0.1': head('enc-self', 0.5, 0.3, 3, 0.7, null),
        'enc-self.1.0': head('enc-self', 0.1, 0.2, 0.5, 0.2, 0.1),
        'enc-self.1.1': head('enc-self', null, 0.0, 0.1, 0.4, 0.3),
        'dec-self.0.0': head('dec-self', 1, 1, 9, 1, 1),
      },
    } as unknown as HeadReport;
    const r = survivorScores(report, new Set(['enc-self.0.0', 'enc-self.0.1']), { stage: 's', run: 'r' });
    expect([r.kept, r.removed]).toEqual([2, 2]);
    expect(r.keptPositional).toBeCloseTo(0.7, 12);
    expect(r.removedPositional).toBeCloseTo(0.1, 12); // a head without the score is left out of the mean
    expect(r.keptRare).toBeCloseTo(0.2, 12);
    expect(r.removedImportance).toBeCloseTo(0.3, 12);
    expect(r.keptConfidence).toBeCloseTo(0.6, 12);
    expect(r.keptLrp).toBeCloseTo(0.4, 12);
    expect(survivorScores(report, new Set(), { stage: 's', run: 'r' }).keptImportance).toBeNull();
  });

  it('testHeads picks, for each count, the step leaving the nearest count (larger on a tie), each once', () => {
    const table = [48, 43, 38, 33, 28, 23, 18, 13, 8, 3].map((headsKept, step) => ({ step, headsKept }));
    const notes: string[] = [];
    const got = stepsNearest(table, [3, 48, 30, 40, 28, 100, 45.5], (m) => notes.push(m));
    expect(got.map((r) => r.headsKept)).toEqual([48, 38, 28, 3]);
    expect(notes.some((n) => n.includes('testHeads 30') && n.includes('28 heads'))).toBe(true);
    expect(notes.some((n) => n.includes('testHeads 40') && n.includes('38 heads'))).toBe(true);
    expect(notes.filter((n) => n.includes('testHeads 28'))).toEqual([]);
  });

  it('expands sweeps, repeats dependants per parent instance, and hashes resolved configs', () => {
    // a batch budget that holds a pair per micro-batch with 2 workers too (p3)
    const p = spec(
      'expand',
      `name: expand\nset: ${TINY_SET.replace('maxTokensPerBatch: 200', 'maxTokensPerBatch: 400')}\nstages:\n  base: { kind: train, sweep: { seed: [1, 2] } }\n  l0: { kind: prune, from: base, sweep: { lambda: [0.1, 0.2] } }\n`,
    );
    const s = loadSpec(p);
    const inst = expandStages(s);
    expect(inst.map((i) => i.id)).toEqual([
      'base[seed=1]',
      'base[seed=2]',
      'l0[lambda=0.1]<base[seed=1]>',
      'l0[lambda=0.2]<base[seed=1]>',
      'l0[lambda=0.1]<base[seed=2]>',
      'l0[lambda=0.2]<base[seed=2]>',
    ]);
    const r = resolveStages(s, inst, join(dir, 'runs'));
    expect(new Set(r.map((x) => x.hash)).size).toBe(6);
    expect(r[2]!.config.train.l0Lambda).toBe(0.1);
    expect(r[2]!.config.gates.attention).toEqual(['enc-self']);
    expect(r[2]!.config.train.trainOnly).toEqual(['encoder', 'gates']);
    // the same spec resolves to the same hashes; a changed value changes the stage and its dependants
    expect(resolveStages(loadSpec(p), expandStages(loadSpec(p)), join(dir, 'runs')).map((x) => x.hash)).toEqual(r.map((x) => x.hash));
    const p2 = spec('expand2', readFileSync(p, 'utf8').replace('seed: [1, 2]', 'seed: [1, 3]'));
    const r2 = resolveStages(loadSpec(p2), expandStages(loadSpec(p2)), join(dir, 'runs'));
    expect(r2[0]!.hash).toBe(r[0]!.hash);
    expect(r2[1]!.hash).not.toBe(r[1]!.hash);
    expect(r2[5]!.hash).not.toBe(r[5]!.hash);
    // execution settings (workers, backend, logging, checkpoint cadence) are not part of a stage's identity
    const p3 = spec(
      'expand3',
      readFileSync(p, 'utf8').replace('set: {', 'set: { train.workers: 2, backend: cpu, train.keepCheckpoints: 1, train.checkpointEverySteps: 3,'),
    );
    const r3 = resolveStages(loadSpec(p3), expandStages(loadSpec(p3)), join(dir, 'runs'));
    expect(r3[0]!.config.train.workers).toBe(2);
    expect(r3.map((x) => x.hash)).toEqual(r.map((x) => x.hash));
  });
});

describe('adopting an existing run', () => {
  it('adopts a finished run whose config matches the stage, and refuses one that differs, naming the key', async () => {
    await useTestBackend();
    const p = spec('adopt', `name: adopt\nset: ${TINY_SET}\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 4 } }\n`);
    const s = loadSpec(p);
    const [stage] = resolveStages(s, expandStages(s), join(dir, 'runs-adopt'));
    const quiet = new ProgressLine(process.stderr, true);
    const other = RunFolder.create(join(dir, 'outside'), 'other');
    const otherCfg = loadConfigOn(stage!.config, null, ['train.maxSteps=5']);
    other.writeProvenance({ config: otherCfg, argv: [], seed: otherCfg.seed, env: {} });
    await runTraining({ config: otherCfg, run: other, progress: quiet });
    expect(() => adoptRun(stage!, other.path)).toThrow(/config differs from stage baseline: train.maxSteps: stage 4, run 5/);
    const same = RunFolder.create(join(dir, 'outside'), 'same');
    // another name and another worker count: the same computation, so adoptable
    const sameCfg = loadConfigOn(stage!.config, null, ['name=renamed', 'train.workers=1']);
    same.writeProvenance({ config: sameCfg, argv: [], seed: sameCfg.seed, env: {} });
    await runTraining({ config: sameCfg, run: same, progress: quiet });
    adoptRun(stage!, same.path);
    expect(stageState(stage!)).toBe('done');
    expect(JSON.parse(readFileSync(join(stage!.folder, 'stage.json'), 'utf8')).adoptedFrom).toBe(same.path);
  }, 120000);
});

describe('export stage settings', () => {
  const bad: Array<[string, string, string[]]> = [
    [
      'magnitudeSparsity of 1',
      'name: x\nstages:\n  b: { kind: train }\n  c: { kind: export, of: b, magnitudeSparsity: 1 }\n',
      ['stages.c.magnitudeSparsity', 'expected a fraction in [0, 1)', 'got 1'],
    ],
    [
      'negative ffnPrune',
      'name: x\nstages:\n  b: { kind: train }\n  c: { kind: export, of: b, ffnPrune: -0.1 }\n',
      ['stages.c.ffnPrune', 'expected a fraction in [0, 1)', 'got -0.1'],
    ],
    [
      'magnitudeSparsity as text',
      'name: x\nstages:\n  b: { kind: train }\n  c: { kind: export, of: b, magnitudeSparsity: half }\n',
      ['stages.c.magnitudeSparsity', 'expected a fraction', '"half"'],
    ],
    [
      'perLayer alone',
      'name: x\nstages:\n  b: { kind: train }\n  c: { kind: export, of: b, perLayer: true }\n',
      ['stages.c.perLayer', 'only applies with magnitudeSparsity'],
    ],
    ['unknown mask', 'name: x\nstages:\n  b: { kind: train }\n  c: { kind: export, of: b, mask: heads }\n', ['stages.c.mask', '"heads"']],
    ['int8 not a boolean', 'name: x\nstages:\n  b: { kind: train }\n  c: { kind: export, of: b, int8: 8 }\n', ['stages.c.int8']],
    [
      'a misspelt setting',
      'name: x\nstages:\n  b: { kind: train }\n  c: { kind: export, of: b, magnitudeSparsty: 0.5 }\n',
      ['stages.c.magnitudeSparsty', 'unknown key'],
    ],
  ];
  it.each(bad)('%s is refused with the file and key', (_l, text, fragments) => {
    const p = spec(`bad-export-${fragments[0]!.replace(/\W/g, '')}-${_l.replace(/\W/g, '')}`, text);
    expectSpecRefused(p, fragments);
  });

  it('mask: gates on a parent without gates is refused when the stages resolve, naming the file and key', () => {
    const p = spec('export-gates', `name: export-gates\nset: ${TINY_SET}\nstages:\n  b: { kind: train }\n  c: { kind: export, of: b, mask: gates }\n`);
    expect(() => resolveStages(loadSpec(p), expandStages(loadSpec(p)), join(dir, 'runs'))).toThrow(`${p}: stages.c.mask: gates, but its parent b has no gates`);
  });

  it('settings left out do not enter the stage identity; each one given changes it', () => {
    const hashes = (extra: string) => {
      const p = spec(
        `export-hash-${extra.replace(/\W/g, '')}`,
        `name: export-hash\nset: ${TINY_SET}\nstages:\n  b: { kind: train }\n  c: { kind: export, of: b${extra} }\n`,
      );
      return resolveStages(loadSpec(p), expandStages(loadSpec(p)), join(dir, 'runs')).map((x) => x.hash);
    };
    const plain = hashes('');
    const all = ['', ', int8: true', ', magnitudeSparsity: 0.5', ', magnitudeSparsity: 0.5, perLayer: true', ', ffnPrune: 0.5', ', mask: none'].map(hashes);
    expect(all[0]).toEqual(plain);
    expect(new Set(all.map((h) => h[0])).size).toBe(1); // the train stage is untouched
    expect(new Set(all.map((h) => h[1])).size).toBe(all.length);
  });

  it('sparsity-methods.yaml shares its baseline and head-pruning stages with voita2019-ddtp-ende-devbleu.yaml (and its quick preset with voita2019-ddtp-ende.yaml)', () => {
    const hashes = (file: string, preset?: string) =>
      new Map(resolveStages(loadSpec(file, preset), expandStages(loadSpec(file, preset)), 'runs').map((x) => [x.instance.id, x.hash]));
    // the committed sparsity table was made on the baseline of the study's first stopping rule (its frozen spec)
    const voita = hashes('experiments/voita2019-ddtp-ende-devbleu.yaml');
    const sparsity = hashes('experiments/sparsity-methods.yaml');
    // voita's stages carry their seed; sparsity-methods has one replicate, seed 1
    expect(sparsity.get('baseline')).toBe(voita.get('baseline[seed=1]'));
    expect(sparsity.get('l0-enc-lambda[lambda=0.01]')).toBe(voita.get('l0-enc-lambda[lambda=0.01,seed=1]'));
    const quickVoita = hashes('experiments/voita2019-ddtp-ende.yaml', 'quick');
    const quick = hashes('experiments/sparsity-methods.yaml', 'quick');
    expect(quick.get('baseline')).toBe(quickVoita.get('baseline[seed=1]'));
    expect(quick.get('l0-enc-lambda[lambda=0.005]')).toBe(quickVoita.get('l0-enc-lambda[lambda=0.005,seed=1]'));
    expect([...sparsity.keys()].slice(0, 8)).toEqual(['baseline', 'float', 'l0-enc-lambda[lambda=0.01]', 'heads', 'magnitude', 'ffn', 'int8', 'heads-int8']);
    // every fine-tuned row starts from the shared baseline with head pruning's step cap (600; quick: 120)
    const resolved = resolveStages(loadSpec('experiments/sparsity-methods.yaml'), expandStages(loadSpec('experiments/sparsity-methods.yaml')), 'runs');
    const l0Steps = resolved.find((x) => x.instance.stage === 'l0-enc-lambda')!.config.train.maxSteps;
    const tuned = resolved.filter((x) => x.instance.spec.kind === 'finetune');
    expect(tuned.length).toBeGreaterThanOrEqual(8);
    for (const t of tuned) expect([t.parent!.instance.id, t.config.train.maxSteps]).toEqual(['baseline', l0Steps]);
  });
});

describe('a layout trained from scratch (Table 2)', () => {
  it("copies the pruned stage's surviving heads as a fixed mask, keeps its identity when the mask appears, and the report pairs it with the pruned model and both references", async () => {
    await useTestBackend();
    const runs = join(dir, 'runs-scratch');
    const p = spec(
      'scratch',
      `name: scratch\nset: ${TINY_SET}\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 60, train.peakLr: 0.01, train.warmupSteps: 10 } }\n  l0: { kind: prune, from: baseline, steps: 6, attention: [enc-self, dec-self, dec-enc], freezeDecoder: false, sweep: { lambda: [0, 0.5] }, set: { gates.lrScale: 200 } }\n  fromScratch: { kind: train, fixedMaskFrom: 'l0[lambda=0.5]', set: { train.maxSteps: 30, train.peakLr: 0.01, train.warmupSteps: 10 } }\n`,
    );
    const resolve = () => resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
    const before = resolve();
    expect(before.map((s) => s.instance.id)).toEqual(['baseline', 'l0[lambda=0]', 'l0[lambda=0.5]', 'fromScratch']);
    // before its parent has run there is no mask: the stage waits, with all heads in its config
    expect(before[3]!.config.model.keptHeads).toBeNull();
    const quiet = new ProgressLine(process.stderr, true);
    for (const s of before.slice(0, 3)) expect(await runStage(s, { progress: quiet, isStopRequested: () => false, argv: [] })).not.toBeNull();
    const stages = resolve();
    // the mask now exists and is in the config, but the stage is the same stage (same hash, same folder)
    expect(stages.map((s) => s.hash)).toEqual(before.map((s) => s.hash));
    const scratch = stages[3]!;
    const prunedMarker = JSON.parse(readFileSync(join(stages[2]!.folder, 'stage.json'), 'utf8')) as { keptHeads: Record<string, number>; bleu: number };
    const kept = scratch.config.model.keptHeads!;
    expect({ 'enc-self': kept['enc-self'].flat().length, 'dec-self': kept['dec-self'].flat().length, 'dec-enc': kept['dec-enc'].flat().length }).toEqual(
      prunedMarker.keptHeads,
    );
    const total = prunedMarker.keptHeads['enc-self'] + prunedMarker.keptHeads['dec-self'] + prunedMarker.keptHeads['dec-enc'];
    expect(total).toBeLessThan(8); // lambda 0.5 on 8 heads closes some
    expect(await runStage(scratch, { progress: quiet, isStopRequested: () => false, argv: [] })).not.toBeNull();
    const scratchMarker = JSON.parse(readFileSync(join(scratch.folder, 'stage.json'), 'utf8')) as { keptHeads: Record<string, number>; bleu: number };
    expect(scratchMarker.keptHeads).toEqual(prunedMarker.keptHeads);
    // the scratch model is built without the removed heads (from the run's own config)
    const runConfig = JSON.parse(readFileSync(join(scratch.folder, 'config.json'), 'utf8')) as { model: { keptHeads: unknown } };
    expect(runConfig.model.keptHeads).toEqual(kept);

    const root = experimentRoot(loadSpec(p), runs);
    const { rows, mdPath } = writeReport(stages, root);
    const pairs = prunedVsScratchRows(stages, rows);
    expect(pairs).toHaveLength(1);
    const [pair] = pairs;
    expect(pair!.pruned.id).toBe('l0[lambda=0.5]');
    expect(pair!.scratch.id).toBe('fromScratch');
    expect(pair!.baseline!.id).toBe('baseline');
    expect(pair!.control!.id).toBe('l0[lambda=0]');
    expect(pair!.scratch.method).toBe('scratch-fixed-mask');
    const md = readFileSync(mdPath, 'utf8');
    const section = md.slice(md.indexOf('## Pruned against the same layout trained from scratch'));
    expect(section).toContain(`| ${prunedMarker.keptHeads['enc-self']} / ${prunedMarker.keptHeads['dec-self']} / ${prunedMarker.keptHeads['dec-enc']} |`);
    const diff = prunedMarker.bleu - scratchMarker.bleu;
    expect(section).toContain(
      `| ${prunedMarker.bleu.toFixed(2)} | \`${pair!.scratch.run}\` | ${scratchMarker.bleu.toFixed(2)} | ${diff >= 0 ? '+' : ''}${diff.toFixed(2)} |`,
    );
    // a report without a scratch stage has no such section
    expect(
      prunedVsScratchTable(
        stages.slice(0, 3),
        rows.filter((r) => r.id !== 'fromScratch'),
      ),
    ).toBe('');
  }, 240000);
});

describe('export stages', () => {
  it('export stages (float, int8, magnitude sparsity) write BLEU, parameters, bytes and decode time; the report has the columns and the figure; another study adopts the finished stages', async () => {
    await useTestBackend();
    const runs = join(dir, 'runs-export');
    const p = spec(
      'compress',
      `name: compress\nset: ${TINY_SET}\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 120, train.peakLr: 0.01, train.warmupSteps: 20 } }\n  float: { kind: export, of: baseline }\n  int8: { kind: export, of: baseline, int8: true }\n  sparse: { kind: export, of: baseline, mask: none, magnitudeSparsity: 0.5 }\n  ffn: { kind: export, of: baseline, mask: none, ffnPrune: 0.5 }\n  l0: { kind: prune, from: baseline, steps: 8, targetHeads: 2, set: { gates.lrScale: 20 } }\n  heads: { kind: export, of: l0, mask: gates, int8: true }\n`,
    );
    const stages = resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
    const quiet = new ProgressLine(process.stderr, true);
    for (const s of stages) expect(await runStage(s, { progress: quiet, isStopRequested: () => false, argv: [] })).not.toBeNull();
    expect(stages.map(stageState)).toEqual(stages.map(() => 'done'));
    const marker = (id: string) =>
      JSON.parse(readFileSync(join(stages.find((s) => s.instance.id === id)!.folder, 'stage.json'), 'utf8')) as Record<string, unknown> & {
        decode: { sentences: number; samplesSeconds: number[] };
      };
    const float = marker('float');
    const int8 = marker('int8');
    const sparse = marker('sparse');
    const ffn = marker('ffn');
    const heads = marker('heads');
    for (const m of [float, int8, sparse, ffn, heads]) {
      expect(typeof m['bleu']).toBe('number');
      expect(typeof m['bleuTokLc']).toBe('number');
      expect(m['params']).toBeGreaterThan(1000);
      expect(m['modelBytes']).toBeGreaterThan(0);
      expect(m['decodeSeconds']).toBeGreaterThan(0);
      expect(m.decode.sentences).toBe(8);
      expect(m.decode.samplesSeconds).toHaveLength(3);
    }
    for (const m of [float, int8, sparse, ffn]) expect(m['keptHeads']).toEqual({ 'enc-self': 4, 'dec-self': 2, 'dec-enc': 2 });
    // FFN units removed: fewer parameters, a smaller file; heads: the pruned stage's heads, then int8
    expect(ffn['method']).toBe('ffn-0.5');
    expect(ffn['params'] as number).toBeLessThan(float['params'] as number);
    expect(ffn['modelBytes'] as number).toBeLessThan(float['modelBytes'] as number);
    const keptEnc = (marker('l0')['keptHeads'] as Record<string, number>)['enc-self']!;
    expect((heads['keptHeads'] as Record<string, number>)['enc-self']).toBe(keptEnc);
    expect(heads['method']).toBe(keptEnc < 4 ? 'heads+int8' : 'int8');
    expect(heads['modelBytes'] as number).toBeLessThan(float['modelBytes'] as number);
    expect(float['method']).toBe('float');
    expect(int8['method']).toBe('int8');
    expect(sparse['method']).toBe('magnitude-0.5');
    // the float export is the baseline unchanged: its test translations byte for byte (a toy model this small
    // may score BLEU 0, so the translations, not the score, carry the check), and so the baseline's BLEU;
    // int8 stores about a quarter of the bytes
    const folderOf = (id: string) => stages.find((s) => s.instance.id === id)!.folder;
    const baselineHyp = readFileSync(join(folderOf('baseline'), 'test.hyp'), 'utf8');
    expect(baselineHyp.split('\n').filter((l) => l.trim() !== '').length).toBeGreaterThan(0);
    expect(readFileSync(join(folderOf('float'), 'test.hyp'), 'utf8')).toBe(baselineHyp);
    expect(float['bleu']).toBeCloseTo(marker('baseline')['bleu'] as number, 6);
    expect(int8['params']).toBe(float['params']);
    expect(int8['modelBytes'] as number).toBeLessThan((float['modelBytes'] as number) * 0.5);
    // magnitude pruning zeroes half the prunable weights but stores them dense: same bytes, fewer non-zero
    expect(sparse['modelBytes']).toBe(float['modelBytes']);
    expect(sparse['nonZeroParams'] as number).toBeLessThan(float['params'] as number);
    expect(sparse['params']).toBe(float['params']);

    const root = experimentRoot(loadSpec(p), runs);
    const { rows, csvPath, mdPath } = writeReport(stages, root);
    const csv = readFileSync(csvPath, 'utf8').trim().split('\n');
    expect(csv[0]).toBe(RESULT_COLUMNS.join(','));
    expect(csv[0]).toMatch(/,run,params,nonZeroParams,modelBytes,decodeSeconds,devDecoding,seed,steps,fractionalGates,wallSeconds$/);
    // seven stages, and the l0 stage's binarised row where its kept gates are below 1
    const hasBinarised = marker('l0')['binarised'] !== undefined;
    expect(csv.some((l) => l.startsWith('l0,l0#binarised,'))).toBe(hasBinarised);
    expect(csv).toHaveLength(8 + (hasBinarised ? 1 : 0));
    const int8Row = csv.find((l) => l.startsWith('int8,'))!.split(',');
    expect(Number(int8Row[16])).toBe(int8['modelBytes']);
    expect(Number(int8Row[17])).toBe(int8['decodeSeconds']);
    expect(
      csv
        .find((l) => l.startsWith('baseline,'))!
        .split(',')
        .slice(14, 20),
    ).toEqual(['', '', '', '', '', '']);
    expect(readFileSync(mdPath, 'utf8')).toContain('| params | weights MB | decode s |');
    const figures = await writeReportFigures(stages, rows, root);
    expect(figures.written.map((f) => f.name)).toContain('bleu-vs-model-bytes');
    const fig = JSON.parse(readFileSync(join(root, 'figures', 'bleu-vs-model-bytes.json'), 'utf8')) as { data: Array<{ name: string; x: number[] }> };
    expect(fig.data.map((t) => t.name)).toEqual(['float', 'int8', 'magnitude-0.5', 'ffn-0.5', heads['method']]);
    expect(fig.data[1]!.x[0]).toBeLessThan(fig.data[0]!.x[0]!);

    // a second study with the same baseline (its config name pinned to the first study's, as in
    // sparsity-methods.yaml) has the same hashes and adopts the finished stages instead of running them again
    const p2 = spec(
      'compress2',
      readFileSync(p, 'utf8')
        .replace('name: compress\n', 'name: compress2\n')
        .replace('train.warmupSteps: 20 }', 'train.warmupSteps: 20, name: compress-baseline }'),
    );
    const other = resolveStages(loadSpec(p2), expandStages(loadSpec(p2)), runs);
    expect(other.map((s) => s.hash)).toEqual(stages.map((s) => s.hash));
    expect(() => adoptRun(other[1]!, stages[1]!.folder)).toThrow(/parent baseline is not done; adopt it first/);
    expect(() => adoptRun(other[0]!, stages[1]!.folder)).toThrow(/a finished stage \(float, hash \w+\) that is not stage baseline/);
    for (const [i, s] of other.entries()) adoptRun(s, stages[i]!.folder);
    expect(other.map(stageState)).toEqual(other.map(() => 'done'));
  }, 240000);
});

(built ? describe : describe.skip)('experiment runner', () => {
  const runs = join(dir, 'runs');
  const two = () =>
    spec(
      'two',
      `name: two\nset: ${TINY_SET}\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 20, train.checkpointEverySteps: 10 } }\n  l0: { kind: prune, from: baseline, steps: 8, sweep: { lambda: [0.01, 0.5] }, set: { gates.lrScale: 20 } }\n  imp: { kind: prune, from: baseline, method: importance, stepPercent: 50, testHeads: [2, 0] }\n  an: { kind: analyze, of: baseline }\n`,
    );

  it('runs a two-stage spec, skips done stages on a second run, and reports', () => {
    const p = two();
    const r1 = spawnSync('node', [bin, 'experiment', 'run', p, '--runs-dir', runs, '--jobs', '2'], { encoding: 'utf8' });
    expect(r1.status).toBe(0);
    expect(r1.stderr).toContain('[baseline] done');
    expect(r1.stderr).toContain('[l0[lambda=0.5]] done');
    const s = loadSpec(p);
    const stages = resolveStages(s, expandStages(s), runs);
    expect(stages.map(stageState)).toEqual(['done', 'done', 'done', 'done', 'done']);
    const csv = readFileSync(join(runs, 'experiments', 'two', 'results.csv'), 'utf8')
      .trim()
      .split('\n');
    expect(csv[0]).toBe(
      'stage,id,kind,method,attention,lambda,targetHeads,keptEnc,keptDecSelf,keptDecEnc,bleu,bleuTokLc,devBleu,run,params,nonZeroParams,modelBytes,decodeSeconds,devDecoding,seed,steps,fractionalGates,wallSeconds',
    );
    // baseline, two l0 points, and the importance curve at its testHeads (4 encoder heads, 2 removed per step);
    // an l0 point whose kept gates are below 1 adds its binarised row (l0-binarised) right after it
    const binarised = csv.filter((l) => l.split(',')[1]!.endsWith('#binarised'));
    expect(binarised.every((l) => l.split(',')[3] === 'l0-binarised' && Number(l.split(',')[21]) > 0)).toBe(true);
    expect(csv).toHaveLength(6 + binarised.length);
    expect(csv.filter((l) => l.startsWith('imp,')).map((l) => l.split(',')[7])).toEqual(['2', '0']);
    // a train stage's steps are where it stopped, from its results.json (here the cap, 20)
    const baselineRow = csv.find((l) => l.startsWith('baseline,'))!.split(',');
    expect(baselineRow[20]).toBe('20');
    // the figures: Figure 7 (l0, importance and the full model), Figure 8 (roles of the survivors); no all-types stage
    const figDir = join(runs, 'experiments', 'two', 'figures');
    const fig7 = JSON.parse(readFileSync(join(figDir, 'bleu-vs-encoder-heads.json'), 'utf8')) as { data: Array<{ name: string; x: number[] }> };
    expect(fig7.data.map((t) => t.name)).toEqual(['l0', ...(binarised.length ? ['l0-binarised'] : []), 'importance', 'full model']);
    expect(fig7.data.find((t) => t.name === 'importance')!.x).toEqual([0, 2]);
    expect(existsSync(join(figDir, 'bleu-vs-encoder-heads.html'))).toBe(true);
    const fig8 = JSON.parse(readFileSync(join(figDir, 'surviving-head-roles.json'), 'utf8')) as { data: Array<{ x: string[]; y: number[] }> };
    expect(fig8.data[0]!.x[0]).toBe('4 heads (baseline)');
    expect(fig8.data[0]!.x).toHaveLength(3);
    expect(fig8.data.reduce((a, t) => a + t.y[0]!, 0)).toBe(4);
    expect(r1.stderr).toContain('figure skipped: heads-per-type-vs-bleu');
    // the baseline's dev curve (the only stage trained from scratch), from its own metrics.jsonl
    const curves = JSON.parse(readFileSync(join(figDir, 'from-scratch-training.json'), 'utf8')) as {
      data: Array<{ name: string; mode: string; x: number[]; y: number[] }>;
    };
    const evals = readFileSync(join(stages.find((x) => x.instance.stage === 'baseline')!.folder, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; devLoss?: number })
      .filter((r) => r.devLoss !== undefined);
    expect(evals.length).toBeGreaterThan(0);
    const devLossLine = curves.data.find((t) => t.mode === 'lines')!;
    expect(devLossLine.name.startsWith('baseline')).toBe(true);
    expect(devLossLine.x).toEqual(evals.map((r) => r.step));
    expect(devLossLine.y).toEqual(evals.map((r) => r.devLoss));
    // claim (d): the baseline's encoder heads by role, from the analysis's own head report
    const md = readFileSync(join(runs, 'experiments', 'two', 'results.md'), 'utf8');
    const roleLine = md
      .slice(md.indexOf('## Head roles in the baseline'))
      .split('\n')
      .find((l) => l.startsWith('| - |'))!;
    const headReport = JSON.parse(readFileSync(join(stages.find((x) => x.instance.stage === 'an')!.folder, 'head-report.json'), 'utf8')) as HeadReport;
    const enc = Object.entries(headReport.heads).filter(([, h]) => h.stack === 'enc-self');
    const positional = enc.filter(([, h]) => (h.roles.positional?.fraction ?? 0) >= 0.9).length;
    const top = enc.reduce((a, b) => ((b[1].roles.positional?.fraction ?? -1) > (a[1].roles.positional?.fraction ?? -1) ? b : a));
    const cells = roleLine.split('|').map((c) => c.trim());
    expect(cells.slice(2, 5)).toEqual([
      '4',
      String(positional),
      `${top[0]} ${(100 * top[1].roles.positional!.fraction).toFixed(1)}% (offset ${top[1].roles.positional!.offset! > 0 ? '+' : ''}${top[1].roles.positional!.offset})`,
    ]);
    // the kept and removed encoder heads' baseline scores, one row per finished L0 stage
    const surv = readFileSync(join(runs, 'experiments', 'two', 'survivors.csv'), 'utf8')
      .trim()
      .split('\n');
    expect(surv[0]).toBe(
      'stage,kept,removed,keptPositional,removedPositional,keptRare,removedRare,keptImportance,removedImportance,keptConfidence,removedConfidence,keptLrp,removedLrp,run',
    );
    expect(surv).toHaveLength(3);
    const l0Kept = Object.fromEntries(
      csv.filter((l) => l.startsWith('l0,') && !l.includes('#binarised,')).map((l) => [l.split(',')[1], Number(l.split(',')[7])]),
    );
    for (const line of surv.slice(1)) {
      const [stage, kept, removed] = line.split(',');
      expect(Number(kept) + Number(removed)).toBe(4);
      expect(Number(kept)).toBe(l0Kept[stage!]);
    }
    expect(csv[1]).toMatch(/^baseline,baseline,train,baseline,-,,,4,2,2,/);
    expect(r1.stdout).toContain('| l0[lambda=0.5] | l0 | enc-self | 0.5 |');
    const r2 = spawnSync('node', [bin, 'experiment', 'run', p, '--runs-dir', runs], { encoding: 'utf8' });
    expect(r2.status).toBe(0);
    expect(r2.stderr).not.toContain('started');
    // the test translations of every row (the importance steps' too) beside the report; without run folders
    // (another runs dir) the report rebuilds from them by itself, to the same numbers
    const outDir = join(runs, 'experiments', 'two');
    const index = JSON.parse(readFileSync(join(outDir, 'hyps', 'index.json'), 'utf8')) as { stages: Array<{ id: string; hyp: string }> };
    expect(index.stages.map((x) => x.id)).toEqual(csv.slice(1).map((l) => l.split(',')[1]));
    expect(index.stages.filter((x) => x.id.startsWith('imp#')).map((x) => x.hyp)).toEqual(['imp.step-01.hyp', 'imp.step-02.hyp']);
    const before = readFileSync(join(outDir, 'results.csv'), 'utf8');
    const r3 = spawnSync('node', [bin, 'experiment', 'report', p, '--runs-dir', join(dir, 'no-runs'), '--out', outDir, '--no-html'], { encoding: 'utf8' });
    expect(r3.status).toBe(0);
    expect(r3.stderr).toContain(`rebuilding from ${join(outDir, 'hyps')}`);
    expect(r3.stderr).toMatch(new RegExp(`re-scored ${5 + binarised.length} committed rows .*largest change of a test BLEU against results.csv: 0\\.000000`));
    expect(readFileSync(join(outDir, 'results.csv'), 'utf8')).toBe(before);
  }, 240000);

  it('a runner killed mid-stage (with its child) resumes the stage from its last checkpoint', async () => {
    const p = spec(
      'killed',
      `name: killed\nset: ${TINY_SET}\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 300, train.checkpointEverySteps: 10 } }\n`,
    );
    const s = loadSpec(p);
    const [stage] = resolveStages(s, expandStages(s), runs);
    const runner = spawn('node', [bin, 'experiment', 'run', p, '--runs-dir', runs], { detached: true, stdio: 'ignore' });
    // wait for the second checkpoint, then kill the runner and its child at once (as a power cut would)
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        const ck = join(stage!.folder, 'checkpoints');
        if (existsSync(ck) && readdirSync(ck).filter((d) => d.startsWith('step-')).length >= 2) {
          clearInterval(t);
          resolve();
        }
      }, 200);
    });
    process.kill(-runner.pid!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    expect(stageState(stage!)).toBe('partial');
    const r = spawnSync('node', [bin, 'experiment', 'run', p, '--runs-dir', runs], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('[baseline] resuming');
    expect(stageState(stage!)).toBe('done');
    expect(readFileSync(join(stage!.folder, 'stage.log'), 'utf8')).toMatch(/resume: step [1-9]\d* from/);
  }, 240000);

  it('--emit-commands prints commands that run the remaining stages', () => {
    const p = spec(
      'emit',
      `name: emit\nset: ${TINY_SET}\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 6 } }\n  l0: { kind: prune, from: baseline, steps: 3, lambda: 0.1 }\n`,
    );
    const out = execSync(`node ${bin} experiment run ${p} --runs-dir ${runs} --emit-commands`, { encoding: 'utf8' }).trim().split('\n');
    expect(out).toHaveLength(2);
    // lines that run as printed from the repository root (heads itself is not on PATH)
    expect(out[0]).toMatch(/^node bin\/heads\.js experiment run-stage .* --id baseline --runs-dir /);
    for (const cmd of out) execSync(cmd, { stdio: 'ignore', cwd: process.cwd() });
    const s = loadSpec(p);
    expect(resolveStages(s, expandStages(s), runs).map(stageState)).toEqual(['done', 'done']);
  }, 240000);
});

describe('seeds: replicates of a study', () => {
  const chain = (top: string, extra = '') =>
    `name: seeds\nset: ${TINY_SET}\n${top}stages:\n  baseline: { kind: train }\n  l0: { kind: prune, from: baseline, sweep: { lambda: [0, 0.5] } }\n  an: { kind: analyze, of: l0${extra} }\n  scratch: { kind: train, fixedMaskFrom: 'l0[lambda=0.5]' }\n`;

  it("a spec-level seed list repeats every chain; children follow their parent's seed; a stage can follow a subset", () => {
    const p = spec('seeds-expand', chain('seed: [1, 2]\n', ', seed: 2'));
    const plain = spec('seeds-expand-plain', chain('seed: [1, 2]\n'));
    const r = resolveStages(loadSpec(p), expandStages(loadSpec(p)), join(dir, 'runs'));
    expect(r.map((s) => s.instance.id)).toEqual([
      'baseline[seed=1]',
      'baseline[seed=2]',
      'l0[lambda=0,seed=1]',
      'l0[lambda=0.5,seed=1]',
      'l0[lambda=0,seed=2]',
      'l0[lambda=0.5,seed=2]',
      'an[seed=2]<l0[lambda=0]>',
      'an[seed=2]<l0[lambda=0.5]>',
      'scratch[seed=1]',
      'scratch[seed=2]',
    ]);
    for (const s of r) {
      expect(s.config.seed).toBe(s.instance.seed);
      if (s.parent) expect(s.parent.instance.seed).toBe(s.instance.seed);
    }
    expect(r.find((s) => s.instance.id === 'scratch[seed=2]')!.parent!.instance.id).toBe('l0[lambda=0.5,seed=2]');
    expect(r.find((s) => s.instance.id === 'l0[lambda=0.5,seed=2]')!.instance.baseId).toBe('l0[lambda=0.5]');
    // --seeds replaces the spec's list
    expect(
      expandStages(loadSpec(plain, undefined, { seeds: [7] }))
        .filter((i) => i.stage === 'baseline')
        .map((i) => i.id),
    ).toEqual(['baseline[seed=7]']);
    expect(() => loadSpec(p, undefined, { seeds: [1, 1] })).toThrow(/--seeds: expected distinct non-negative integers/);
  });

  it('--seeds narrows stages pinned to a seed: a stage (and its children) without a seed of the run has no instance; --only naming it says why', () => {
    // l0 follows only seed 2 of the baselines; scratch trains l0's layout, so it follows seed 2 too
    const p = spec(
      'seeds-narrow',
      `name: seeds-narrow\nset: ${TINY_SET}\nseed: [1, 2]\nstages:\n  baseline: { kind: train }\n  l0: { kind: prune, from: baseline, lambda: 0.5, seed: 2 }\n  an: { kind: analyze, of: l0 }\n  scratch: { kind: train, fixedMaskFrom: l0 }\n  imp: { kind: prune, from: baseline, method: importance }\n`,
    );
    const full = resolveStages(loadSpec(p), expandStages(loadSpec(p)), join(dir, 'runs-narrow'));
    const idsOf = (seeds: number[]) => expandStages(loadSpec(p, undefined, { seeds })).map((i) => i.id);
    // before the fix, --seeds 1 was refused: "stages.l0.seed: 2 not among its parent's seeds (1)"
    expect(idsOf([1])).toEqual(['baseline[seed=1]', 'imp[seed=1]']);
    expect(idsOf([2])).toEqual(['baseline[seed=2]', 'l0[seed=2]', 'an[seed=2]', 'scratch[seed=2]', 'imp[seed=2]']);
    // the same instances as in the full run: same hashes, so a narrowed run resumes the full study's folders
    const one = loadSpec(p, undefined, { seeds: [1] });
    const narrowed = resolveStages(one, expandStages(one), join(dir, 'runs-narrow'));
    for (const s of narrowed) expect(s.hash).toBe(full.find((f) => f.instance.id === s.instance.id)!.hash);
    expect(() => selectStages(narrowed, ['l0'], p, one)).toThrow(/--only l0: no instance at --seeds 1 \(l0 runs at seed 2\); add its seeds to --seeds/);
    expect(() => selectStages(narrowed, ['scratch'], p, one)).toThrow(/--only scratch: no instance at --seeds 1 \(the stage scratch follows has none\)/);
    expect(() => selectStages(narrowed, ['nope'], p, one)).toThrow(/--only nope: no such stage/);
    // without --seeds a seed the parent lacks stays an error (a typo, not a narrowed run)
    const typo = spec('seeds-narrow-typo', readFileSync(p, 'utf8').replace('seed: 2 }', 'seed: 3 }'));
    expect(() => expandStages(loadSpec(typo))).toThrow(/stages\.l0\.seed: 3 not among its parent's seeds \(1, 2\)/);
  });

  it('without seeds ids and hashes are unchanged; the seed enters a stage only through its config', () => {
    const hashes = (top: string) =>
      resolveStages(
        loadSpec(spec(`seeds-hash-${top.replace(/\W/g, '')}`, chain(top))),
        expandStages(loadSpec(spec(`seeds-hash-${top.replace(/\W/g, '')}`, chain(top)))),
        join(dir, 'runs'),
      );
    const plain = hashes('');
    expect(plain.map((s) => s.instance.id)).toEqual(['baseline', 'l0[lambda=0]', 'l0[lambda=0.5]', 'an<l0[lambda=0]>', 'an<l0[lambda=0.5]>', 'scratch']);
    expect(plain.every((s) => s.instance.seed === null && s.instance.baseId === s.instance.id)).toBe(true);
    // seed 1 is the default seed: the same computation, so the same hashes (another folder name)
    const one = hashes('seed: 1\n');
    expect(one.map((s) => s.instance.id)[0]).toBe('baseline[seed=1]');
    expect(one.map((s) => s.hash)).toEqual(plain.map((s) => s.hash));
    const two = hashes('seed: [2]\n');
    expect(two.map((s) => s.hash).filter((h, i) => h === plain[i]!.hash)).toEqual([]);
  });

  const refused: Array<[string, string, RegExp]> = [
    ['a seed twice', chain('seed: [1, 1]\n'), /seed: a seed is listed twice/],
    ['a stage seed its parent does not have', chain('seed: [1, 2]\n', ', seed: 3'), /stages\.an\.seed: 3 not among its parent's seeds \(1, 2\)/],
    ['an analyze stage with seeds of its own', chain('', ', seed: [1, 2]'), /stages\.an\.seed: an analyze stage has no seed of its own/],
    [
      'seed: and a sweep over seed',
      chain('seed: [1, 2]\n').replace('baseline: { kind: train }', 'baseline: { kind: train, sweep: { seed: [3] } }'),
      /stages\.baseline\.sweep\.seed: seeds are given by seed:/,
    ],
  ];
  it.each(refused)('%s is refused, naming the file and key', (_l, text, re) => {
    const p = spec(`seeds-bad-${_l.replace(/\W/g, '')}`, text);
    let msg = '';
    try {
      expandStages(loadSpec(p));
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      msg = (e as Error).message;
    }
    expect(msg).toContain(p);
    expect(msg).toMatch(re);
  });

  /**
   * Finished stages written as a stage would write them (stage.json through markDone, the test translations
   * in the kind's file), with translations made from the references by dropping words: the more words a
   * stage drops, the lower its BLEU, so the ordering of the stages is known without training any model.
   */
  function fakeFinishedStages(runs: string, drops: Record<string, (seed: number) => number>) {
    const p = spec(
      'seeds-fixture',
      `name: seeds-fixture\nset: ${TINY_SET.replace('testPairs: 8', 'testPairs: 120')}\nseed: [1, 2, 3]\nstages:\n  baseline: { kind: train }\n  l0: { kind: prune, from: baseline, sweep: { lambda: [0, 0.5] } }\n`,
    );
    const stages = resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
    const refs = new Map<number, string[]>();
    for (const s of stages) {
      const seed = s.instance.seed!;
      if (!refs.has(seed))
        refs.set(
          seed,
          loadCorpora(s.config.data, seed).test.map((x) => x.tgt),
        );
      const every = drops[s.instance.baseId]!(seed);
      // drop the last word of every `every`-th sentence (every 0: none)
      const hyps = refs.get(seed)!.map((r, i) => (every && i % every === 0 ? r.split(' ').slice(0, -1).join(' ') : r));
      mkdirSync(s.folder, { recursive: true });
      writeFileSync(join(s.folder, s.instance.spec.kind === 'train' ? 'test.hyp' : 'test.pruned.hyp'), hyps.join('\n') + '\n');
      const kept = s.instance.point['lambda'] === 0.5 ? 1 + seed : 4;
      markDone(s, {
        bleu: corpusBleu(hyps, [refs.get(seed)!]).score,
        bleuTokLc: tokenizedLowercaseBleu(hyps, [refs.get(seed)!]).score,
        devBleu: 10 + seed,
        keptHeads: { 'enc-self': kept, 'dec-self': 2, 'dec-enc': 2 },
      });
    }
    return { p, stages, refs };
  }

  it('the report shows mean ± sd (n), paired-bootstrap p-values per seed and pooled, and error bars; hyps/ rebuilds it without the run folders', async () => {
    const runs = join(dir, 'runs-seeds-fixture');
    const out = join(dir, 'seeds-fixture-results');
    // the control drops little, the pruned stage drops a word in most sentences (more in seed 3)
    const { p, stages, refs } = fakeFinishedStages(runs, { baseline: () => 7, 'l0[lambda=0]': () => 9, 'l0[lambda=0.5]': (seed) => (seed === 3 ? 1 : 2) });
    const byId = new Map(stages.map((s) => [s.instance.id, s]));
    const marker = (id: string) => JSON.parse(readFileSync(join(byId.get(id)!.folder, 'stage.json'), 'utf8')) as { bleu: number };
    const lines = (path: string) => readFileSync(path, 'utf8').replace(/\n$/, '').split('\n');
    const hypOf = (id: string) => lines(join(byId.get(id)!.folder, id.startsWith('baseline') ? 'test.hyp' : 'test.pruned.hyp'));
    const { rows, csvPath, mdPath } = writeReport(stages, out);
    const csv = readFileSync(csvPath, 'utf8');
    const md = readFileSync(mdPath, 'utf8');

    // mean ± sample sd over the three seeds, with n, and the heads kept likewise
    const bleus = [1, 2, 3].map((seed) => marker(`l0[lambda=0.5,seed=${seed}]`).bleu);
    const mean = bleus.reduce((x, y) => x + y, 0) / 3;
    const sd = Math.sqrt(bleus.reduce((x, y) => x + (y - mean) ** 2, 0) / 2);
    expect(sd).toBeGreaterThan(0.5);
    const groupLine = md.split('\n').find((l) => l.startsWith('| l0[lambda=0.5] | l0 |'))!;
    expect(groupLine).toContain(`| 3.0 ± 1.0 / 2 / 2 | ${mean.toFixed(2)} ± ${sd.toFixed(2)} (n=3) |`);
    expect(groupLine).toContain('| 12.00 ± 1.00 (greedy) | - | - | 1, 2, 3 |');
    expect(md).toContain('## Per seed');
    expect(md.split('\n').filter((l) => l.startsWith('| l0[lambda=0.5,seed='))).toHaveLength(3);

    // p-values: sacreBLEU's paired bootstrap on the run folders' translations, per seed and on all seeds' sentences at once
    const pOf = (base: string[], sys: string[], r: string[]) =>
      pairedBootstrap({ metric: 'bleu', baseline: base, systems: [sys], refs: [r] }).systems[0]!.pValue!;
    const perSeed = (ref: string) =>
      [1, 2, 3].map((seed) =>
        pOf(hypOf(`${ref}[${ref === 'baseline' ? '' : 'lambda=0,'}seed=${seed}]`), hypOf(`l0[lambda=0.5,seed=${seed}]`), refs.get(seed)!),
      );
    const pooled = (ref: string) =>
      pOf(
        [1, 2, 3].flatMap((seed) => hypOf(`${ref}[${ref === 'baseline' ? '' : 'lambda=0,'}seed=${seed}]`)),
        [1, 2, 3].flatMap((seed) => hypOf(`l0[lambda=0.5,seed=${seed}]`)),
        [1, 2, 3].flatMap((seed) => refs.get(seed)!),
      );
    const vsBase = perSeed('baseline');
    const vsControl = perSeed('l0');
    // the pruned stage drops a word in half the sentences or more: clearly worse in every seed
    expect(Math.max(...vsBase, ...vsControl)).toBeLessThan(0.05);
    const diffs = [1, 2, 3].map((seed) => marker(`l0[lambda=0.5,seed=${seed}]`).bleu - marker(`baseline[seed=${seed}]`).bleu);
    const dm = diffs.reduce((x, y) => x + y, 0) / 3;
    const dsd = Math.sqrt(diffs.reduce((x, y) => x + (y - dm) ** 2, 0) / 2);
    const sig = md.slice(md.indexOf('## Paired significance on the test set'));
    const sigLine = sig.split('\n').find((l) => l.startsWith('| l0[lambda=0.5] |'))!;
    expect(sigLine).toContain(`| ${dm.toFixed(2)} ± ${dsd.toFixed(2)} (n=3) | ${vsBase.map(formatP).join(', ')} | ${formatP(pooled('baseline'))} |`);
    expect(sigLine).toContain(`| ${vsControl.map(formatP).join(', ')} | ${formatP(pooled('l0'))} |`);
    // the control against the baseline (it drops fewer words: better), and not against itself
    expect(sig.split('\n').find((l) => l.startsWith('| l0[lambda=0] |'))).toMatch(/\| \+\d+\.\d\d ± \d+\.\d\d \(n=3\) \|.*\| - \| - \| - \|$/);

    // the committed translations: one file per row, the references once per distinct test set (each seed generates its own)
    const index = JSON.parse(readFileSync(join(out, 'hyps', 'index.json'), 'utf8')) as {
      references: Array<{ file: string }>;
      stages: Array<{ id: string; hyp: string; ref: string }>;
    };
    expect(index.stages.map((x) => x.id)).toEqual(rows.map((r) => r.id));
    expect(index.references).toHaveLength(3);
    const entry = index.stages.find((x) => x.id === 'l0[lambda=0.5,seed=2]')!;
    expect(entry.hyp).toBe('l0_lambda=0.5,seed=2_.hyp');
    expect(lines(join(out, 'hyps', entry.hyp))).toEqual(hypOf('l0[lambda=0.5,seed=2]'));
    expect(lines(join(out, 'hyps', entry.ref))).toEqual(refs.get(2));

    // figures: the seeds' mean with one-sd error bars (BLEU and heads kept), the full model's band
    await writeReportFigures(stages, rows, out, { html: false });
    const fig = JSON.parse(readFileSync(join(out, 'figures', 'bleu-vs-encoder-heads.json'), 'utf8')) as {
      data: Array<{ name: string; x: number[]; y: number[]; error_y?: { array: number[] }; error_x?: { array: number[] } }>;
    };
    const l0Trace = fig.data.find((t) => t.name === 'l0')!;
    const at = l0Trace.y.findIndex((y) => Math.abs(y - mean) < 1e-9);
    expect(l0Trace.x[at]).toBeCloseTo(3, 12);
    expect(l0Trace.error_y!.array[at]).toBeCloseTo(sd, 9);
    expect(l0Trace.error_x!.array[at]).toBeCloseTo(1, 12);
    expect(fig.data.map((t) => t.name)).toContain('full model ± 1 sd');

    // without the run folders: the same report from hyps/ and results.csv, every score re-scored
    renameSync(runs, `${runs}-moved`);
    const gone = resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
    expect(gone.some((x) => stageState(x) === 'done')).toBe(false);
    const rebuilt = writeReport(gone, out, { fromHyps: true });
    expect(rebuilt.rescored).toEqual({ rows: rows.length, maxBleuChange: 0 });
    expect(readFileSync(csvPath, 'utf8')).toBe(csv);
    expect(readFileSync(mdPath, 'utf8')).toBe(md);
    // it does re-score: the baseline's translations in the pruned stage's file give the baseline's score
    // (written through heads' own writer: a file changed behind its back fails its integrity record)
    writeFileAtomic(join(out, 'hyps', entry.hyp), readFileSync(join(out, 'hyps', index.stages.find((x) => x.id === 'baseline[seed=2]')!.hyp)));
    const tampered = writeReport(gone, out, { fromHyps: true });
    const movedBaseline = JSON.parse(readFileSync(join(`${runs}-moved`, relative(runs, byId.get('baseline[seed=2]')!.folder), 'stage.json'), 'utf8')) as {
      bleu: number;
    };
    expect(tampered.rows.find((r) => r.id === 'l0[lambda=0.5,seed=2]')!.bleu).toBe(movedBaseline.bleu);
    expect(() => writeReport(gone, join(dir, 'nowhere'), { fromHyps: true })).toThrow(/results\.csv: not found/);
  });

  it("the survivors table and the roles figure cover every seed's baseline analysis, each L0 stage read against its own seed's", async () => {
    const runs = join(dir, 'runs-seeds-survivors');
    const out = join(dir, 'seeds-survivors-results');
    const p = spec(
      'seeds-survivors',
      `name: seeds-survivors\nset: ${TINY_SET}\nseed: [1, 2]\nstages:\n  baseline: { kind: train }\n  l0: { kind: prune, from: baseline, lambda: 0.5 }\n  an: { kind: analyze, of: baseline }\n`,
    );
    const stages = resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
    const encKeys = ['enc-self.0.0', 'enc-self.0.1', 'enc-self.1.0', 'enc-self.1.1'];
    // each seed's baseline has its own positional head and its own scores; each seed's L0 keeps other heads
    const positionalHead: Record<number, string> = { 1: 'enc-self.0.0', 2: 'enc-self.1.1' };
    const keptBy: Record<number, string[]> = { 1: ['enc-self.0.0', 'enc-self.0.1'], 2: ['enc-self.1.1'] };
    const fraction = (seed: number, key: string) => 0.1 * seed + 0.01 * encKeys.indexOf(key);
    for (const s of stages) {
      const seed = s.instance.seed!;
      mkdirSync(s.folder, { recursive: true });
      if (s.instance.spec.kind === 'analyze') {
        const heads = Object.fromEntries(
          encKeys.map((key) => {
            const [, layer, head] = key.split('.').map(Number);
            const positional = key === positionalHead[seed];
            return [
              key,
              {
                stack: 'enc-self',
                layer,
                head,
                importance: { score: seed + encKeys.indexOf(key) },
                attention: { confidence: 0.5 },
                lrp: null,
                roles: {
                  positional: { isPositional: positional, offset: -1, fraction: fraction(seed, key) },
                  rare: null,
                  syntactic: null,
                  labels: positional ? ['positional -1'] : [],
                },
              },
            ];
          }),
        );
        writeFileSync(join(s.folder, 'head-report.json'), JSON.stringify({ format: 'heads.head-report', version: 1, heads }));
      }
      if (s.instance.stage === 'l0') {
        const layers = [0, 1].map((layer) => {
          const kept = [0, 1].filter((head) => keptBy[seed]!.includes(`enc-self.${layer}.${head}`));
          return { kept, removed: [0, 1].filter((h) => !kept.includes(h)) };
        });
        writeFileSync(
          join(s.folder, 'mask.json'),
          JSON.stringify({ format: 'heads.head-mask', version: 1, source: 'gates', stacks: { 'enc-self': { layers } } }),
        );
      }
      markDone(s, {});
    }
    const figures = await writeReportFigures(stages, [], out, { html: false });
    expect(figures.written.map((f) => f.name)).toContain('surviving-head-roles');
    const surv = readFileSync(join(out, 'survivors.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','));
    expect(surv.map((c) => [c[0], Number(c[1]), Number(c[2])])).toEqual([
      ['l0[seed=1]', 2, 2],
      ['l0[seed=2]', 1, 3],
    ]);
    // each stage's kept-head mean is its own seed's scores (seed 2's read against seed 1's analysis would be 0.13)
    const meanOf = (seed: number, keys: string[]) => keys.reduce((a, k) => a + fraction(seed, k), 0) / keys.length;
    expect(Number(surv[0]![3])).toBeCloseTo(meanOf(1, keptBy[1]!), 12);
    expect(Number(surv[1]![3])).toBeCloseTo(meanOf(2, keptBy[2]!), 12);
    const fig = JSON.parse(readFileSync(join(out, 'figures', 'surviving-head-roles.json'), 'utf8')) as {
      data: Array<{ name: string; x: string[]; y: number[] }>;
      layout: { title: { text: string } | string };
    };
    const positional = fig.data.find((t) => t.name === 'positional')!;
    const bar = (label: string) => positional.y[positional.x.indexOf(label)];
    expect(positional.x).toEqual(['seed 1: 4 heads (baseline)', 'seed 2: 4 heads (baseline)', 'seed 1: 2 heads (λ 0.5)', 'seed 2: 1 heads (λ 0.5)']);
    expect([bar('seed 1: 4 heads (baseline)'), bar('seed 2: 4 heads (baseline)'), bar('seed 1: 2 heads (λ 0.5)'), bar('seed 2: 1 heads (λ 0.5)')]).toEqual([
      1, 1, 1, 1,
    ]);
    expect(JSON.stringify(fig.layout.title)).toContain('2 seeds');
    // without the run folders (a later session, --from-hyps), the records alone draw the same figure and table
    writeStageRecords(stages, out);
    const drawn = readFileSync(join(out, 'figures', 'surviving-head-roles.json'), 'utf8');
    const table = readFileSync(join(out, 'survivors.csv'), 'utf8');
    renameSync(runs, `${runs}.gone`);
    rmSync(join(out, 'figures'), { recursive: true });
    rmSync(join(out, 'survivors.csv'));
    const again = await writeReportFigures(stages, [], out, { html: false });
    expect(again.written.map((f) => f.name)).toContain('surviving-head-roles');
    expect(readFileSync(join(out, 'figures', 'surviving-head-roles.json'), 'utf8')).toBe(drawn);
    expect(readFileSync(join(out, 'survivors.csv'), 'utf8')).toBe(table);
  });

  it('an L0 stage whose kept gates are below 1 gets a binarised row beside the folded one, compared with the same references; steps, settled gates and wall time per stage', () => {
    const runs = join(dir, 'runs-binarised-fixture');
    const out = join(dir, 'binarised-fixture-results');
    const { stages, refs } = fakeFinishedStages(runs, { baseline: () => 7, 'l0[lambda=0]': () => 9, 'l0[lambda=0.5]': () => 2 });
    // seed 1's pruned stage: folded it drops a word every 2nd sentence; binarised (kept heads at gate 1) only every 5th
    const s = stages.find((x) => x.instance.id === 'l0[lambda=0.5,seed=1]')!;
    const folded = JSON.parse(readFileSync(join(s.folder, 'stage.json'), 'utf8')) as Record<string, unknown>;
    const ref = refs.get(1)!;
    const binHyps = ref.map((r, i) => (i % 5 === 0 ? r.split(' ').slice(0, -1).join(' ') : r));
    writeFileSync(join(s.folder, 'test.binarised.hyp'), binHyps.join('\n') + '\n');
    const binBleu = corpusBleu(binHyps, [ref]).score;
    markDone(s, {
      ...folded,
      steps: 600,
      fractionalGates: 2,
      wallSeconds: 300,
      binarised: {
        foldedBelowOne: ['enc-self.0.1'],
        devBleu: 9,
        testBleu: binBleu,
        testBleuTokLc: tokenizedLowercaseBleu(binHyps, [ref]).score,
        hyp: 'test.binarised.hyp',
      },
    });
    const settled = stages.find((x) => x.instance.id === 'l0[lambda=0.5,seed=2]')!;
    markDone(settled, {
      ...(JSON.parse(readFileSync(join(settled.folder, 'stage.json'), 'utf8')) as Record<string, unknown>),
      steps: 250,
      fractionalGates: 0,
      wallSeconds: 120,
    });
    const { rows, mdPath } = writeReport(stages, out);
    const bin = rows.find((r) => r.id === 'l0[lambda=0.5,seed=1]#binarised')!;
    expect(bin.method).toBe('l0-binarised');
    expect(bin.bleu).toBeCloseTo(binBleu, 9);
    expect(bin.bleu!).toBeGreaterThan(rows.find((r) => r.id === 'l0[lambda=0.5,seed=1]')!.bleu!);
    // only seed 1's stage differs; the others have no binarised row
    expect(rows.filter((r) => r.id.endsWith('#binarised'))).toHaveLength(1);
    const md = readFileSync(mdPath, 'utf8');
    // its own line in the paired tests, against seed 1's baseline, with the bootstrap p of its own translations
    const baseHyps = readFileSync(join(stages.find((x) => x.instance.id === 'baseline[seed=1]')!.folder, 'test.hyp'), 'utf8')
      .replace(/\n$/, '')
      .split('\n');
    const p = pairedBootstrap({ metric: 'bleu', baseline: baseHyps, systems: [binHyps], refs: [ref] }).systems[0]!.pValue!;
    const sigLine = md
      .slice(md.indexOf('## Paired significance'))
      .split('\n')
      .find((l) => l.startsWith('| l0[lambda=0.5]#binarised |'))!;
    expect(sigLine).toContain(`| ${formatP(p)} |`);
    // per seed: steps and whether the gates settled, wall minutes; over seeds: settled in k of n
    expect(md).toMatch(/\| l0\[lambda=0\.5,seed=1\] \| 1 \| l0 \|.*\| 600 \(2 fractional\) \| 5\.0 \|/);
    expect(md).toMatch(/\| l0\[lambda=0\.5,seed=2\] \| 2 \| l0 \|.*\| 250 \(settled\) \| 2\.0 \|/);
    expect(md.split('\n').find((l) => l.startsWith('| l0[lambda=0.5] | l0 |'))).toContain('| 1 of 2 | 3.5 ± 2.1 | 1, 2, 3 |');
    // and the csv carries them, so the report rebuilt from hyps/ keeps them
    const rebuilt = writeReport(stages, out, { fromHyps: true });
    expect(rebuilt.rows.find((r) => r.id === 'l0[lambda=0.5,seed=1]#binarised')!.bleu).toBeCloseTo(binBleu, 9);
    expect(rebuilt.rows.find((r) => r.id === 'l0[lambda=0.5,seed=1]')!.fractionalGates).toBe(2);
    expect(readFileSync(mdPath, 'utf8')).toBe(md);
  });

  it('--merge: seeds run in different sessions give the report all of them at once; a row done here replaces the committed one', () => {
    const runs = join(dir, 'runs-merge-fixture');
    const { stages } = fakeFinishedStages(runs, { baseline: () => 7, 'l0[lambda=0]': () => 9, 'l0[lambda=0.5]': (seed) => (seed === 3 ? 1 : 2) });
    const full = writeReport(stages, join(dir, 'merge-full'));
    const [csvFull, mdFull] = [readFileSync(full.csvPath, 'utf8'), readFileSync(full.mdPath, 'utf8')];
    const hide = (keep: (seed: number) => boolean) => {
      for (const s of stages) if (!keep(s.instance.seed!) && existsSync(s.folder)) renameSync(s.folder, `${s.folder}.away`);
      for (const s of stages) if (keep(s.instance.seed!) && existsSync(`${s.folder}.away`)) renameSync(`${s.folder}.away`, s.folder);
    };
    const out = join(dir, 'merge-sessions');
    hide((seed) => seed !== 3); // session 1: seeds 1 and 2
    writeReport(stages, out);
    hide((seed) => seed === 3); // session 2, a new machine: seed 3 only, and the committed results of the first
    const merged = writeReport(stages, out, { merge: true });
    expect(merged.rescored).toEqual({ rows: 6, maxBleuChange: 0 });
    expect(readFileSync(merged.csvPath, 'utf8')).toBe(csvFull);
    expect(readFileSync(merged.mdPath, 'utf8')).toBe(mdFull);
    // without --merge the committed seeds are dropped
    const alone = writeReport(stages, join(dir, 'merge-alone'));
    expect(alone.rows.map((r) => r.seed)).toEqual([3, 3, 3]);
    // a stage done here again replaces its committed row (here: seed 3's pruned stage now drops more words)
    const s3 = stages.find((x) => x.instance.id === 'l0[lambda=0.5,seed=3]')!;
    const worse = readFileSync(join(s3.folder, 'test.pruned.hyp'), 'utf8')
      .split('\n')
      .map((l) => l.split(' ').slice(0, 1).join(' '));
    writeFileSync(join(s3.folder, 'test.pruned.hyp'), worse.join('\n'));
    const marker = JSON.parse(readFileSync(join(s3.folder, 'stage.json'), 'utf8')) as Record<string, unknown>;
    markDone(s3, { ...marker, bleu: 1.5 });
    const again = writeReport(stages, out, { merge: true });
    expect(again.rows.find((r) => r.id === 'l0[lambda=0.5,seed=3]')!.bleu).toBe(1.5);
    expect(again.rows).toHaveLength(9);
    hide(() => true);
  });

  it('at each exact budget the report sets L0 against importance pruning and the fine-tuned importance mask, with per-seed differences and paired p-values', () => {
    const runs = join(dir, 'runs-criterion-fixture');
    const out = join(dir, 'criterion-fixture-results');
    const p = spec(
      'criterion-fixture',
      `name: criterion-fixture\nset: ${TINY_SET.replace('testPairs: 8', 'testPairs: 120')}\nseed: [1, 2]\nstages:\n  baseline: { kind: train }\n  imp: { kind: prune, from: baseline, method: importance, attention: [enc-self], testHeads: [2] }\n  ft: { kind: prune, method: fixed-mask, from: imp, attention: [enc-self], sweep: { maskHeads: [2] } }\n  budget: { kind: prune, from: baseline, attention: [enc-self], sweep: { targetHeads: [2] } }\n`,
    );
    const stages = resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
    // every stage drops the last word of every k-th test sentence: plain importance the most, L0 the least
    const every: Record<string, number> = { baseline: 9, imp: 2, 'ft[maskHeads=2]': 3, 'budget[targetHeads=2]': 5 };
    const hyps = new Map<string, string[]>();
    const refs = new Map<number, string[]>();
    for (const s of stages) {
      const seed = s.instance.seed!;
      if (!refs.has(seed))
        refs.set(
          seed,
          loadCorpora(s.config.data, seed).test.map((x) => x.tgt),
        );
      const k = every[s.instance.baseId]! + seed - 1;
      const h = refs.get(seed)!.map((r, i) => (i % k === 0 ? r.split(' ').slice(0, -1).join(' ') : r));
      hyps.set(s.instance.id, h);
      mkdirSync(s.folder, { recursive: true });
      const score = { bleu: corpusBleu(h, [refs.get(seed)!]).score, bleuTokLc: tokenizedLowercaseBleu(h, [refs.get(seed)!]).score };
      const kept = { 'enc-self': s.instance.baseId === 'baseline' ? 4 : 2, 'dec-self': 2, 'dec-enc': 2 };
      if (s.instance.baseId === 'imp') {
        mkdirSync(join(s.folder, 'test-hyps'), { recursive: true });
        writeFileSync(join(s.folder, 'test-hyps', 'step-01.hyp'), h.join('\n') + '\n');
        markDone(s, { curve: [{ keptHeads: kept, ...score, maskFile: 'masks/step-01.json', hyp: 'test-hyps/step-01.hyp' }] });
      } else {
        writeFileSync(join(s.folder, s.instance.baseId.startsWith('budget') ? 'test.pruned.hyp' : 'test.hyp'), h.join('\n') + '\n');
        if (!s.instance.baseId.startsWith('budget')) markDone(s, { ...score, devBleu: 10, keptHeads: kept });
        else {
          // the budget runs end unsettled: also scored binarised (its own translations, every 4th sentence short)
          const hb = refs.get(seed)!.map((r, i) => (i % (4 + seed - 1) === 0 ? r.split(' ').slice(0, -1).join(' ') : r));
          hyps.set(`${s.instance.id}#binarised`, hb);
          writeFileSync(join(s.folder, 'test.binarised.hyp'), hb.join('\n') + '\n');
          const bScore = { testBleu: corpusBleu(hb, [refs.get(seed)!]).score, testBleuTokLc: tokenizedLowercaseBleu(hb, [refs.get(seed)!]).score };
          markDone(s, { ...score, devBleu: 10, keptHeads: kept, fractionalGates: 3, binarised: { devBleu: 9, ...bScore, hyp: 'test.binarised.hyp' } });
        }
      }
    }
    const { mdPath } = writeReport(stages, out);
    const md = readFileSync(mdPath, 'utf8');
    const section = md.slice(md.indexOf('## The criterion at equal budgets'));
    const budgetLines = section.split('\n').filter((l) => l.startsWith('| 2 |'));
    expect(budgetLines).toHaveLength(2);
    const line = budgetLines[0]!;
    const bleuOf = (id: string) => corpusBleu(hyps.get(id)!, [refs.get(Number(id.match(/seed=(\d)/)![1]))!]).score;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = (xs: number[]) => Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1));
    const ids = (base: string) => [1, 2].map((seed) => (base === 'imp' ? `imp[seed=${seed}]#masks/step-01.json` : base.replace(']', `,seed=${seed}]`)));
    const hypId = (id: string) => id.split('#')[0]!;
    const diffs = (a: string, b: string) => [0, 1].map((i) => bleuOf(hypId(ids(a)[i]!)) - bleuOf(hypId(ids(b)[i]!)));
    const cells = line
      .split('|')
      .map((c) => c.trim())
      .filter((_, i) => i !== 2);
    expect(line.split('|')[2]!.trim()).toBe('folded (gates settled 0 of 2)');
    expect(cells[2]).toBe(
      `${mean(ids('budget[targetHeads=2]').map((i) => bleuOf(hypId(i)))).toFixed(2)} ± ${sd(ids('budget[targetHeads=2]').map((i) => bleuOf(hypId(i)))).toFixed(2)} (n=2)`,
    );
    const d = diffs('budget[targetHeads=2]', 'ft[maskHeads=2]');
    expect(cells[5]).toBe(`+${mean(d).toFixed(2)} ± ${sd(d).toFixed(2)} (n=2)`);
    // the per-seed p of L0 against the fine-tuned importance mask: sacreBLEU's paired bootstrap on those translations
    const pSeed1 = pairedBootstrap({
      metric: 'bleu',
      baseline: hyps.get('ft[maskHeads=2,seed=1]')!,
      systems: [hyps.get('budget[targetHeads=2,seed=1]')!],
      refs: [refs.get(1)!],
    }).systems[0]!.pValue!;
    expect(cells[6]!.startsWith(`${formatP(pSeed1)}, `)).toBe(true);
    expect(cells[6]).toContain('pooled');
    // fine-tuning helps the importance mask, and L0 beats plain importance by the sum of both
    const dFt = diffs('ft[maskHeads=2]', 'imp');
    expect(cells[7]).toBe(`+${mean(dFt).toFixed(2)} ± ${sd(dFt).toFixed(2)} (n=2)`);
    const dAll = diffs('budget[targetHeads=2]', 'imp');
    expect(cells[9]).toBe(`+${mean(dAll).toFixed(2)} ± ${sd(dAll).toFixed(2)} (n=2)`);
    // the binarised line: the same budget scored with the kept heads at 1, against the same references
    const bin = budgetLines[1]!.split('|').map((c) => c.trim());
    expect(bin[2]).toBe('binarised (kept heads at 1; 2 of 2 seeds unsettled)');
    const binIds = [1, 2].map((seed) => `budget[targetHeads=2,seed=${seed}]#binarised`);
    const binBleu = binIds.map((id) => corpusBleu(hyps.get(id)!, [refs.get(Number(id.match(/seed=(\d)/)![1]))!]).score);
    expect(bin[3]).toBe(`${mean(binBleu).toFixed(2)} ± ${sd(binBleu).toFixed(2)} (n=2)`);
    const dBin = [0, 1].map((i) => binBleu[i]! - bleuOf(`ft[maskHeads=2,seed=${i + 1}]`));
    expect(bin[6]).toBe(`${mean(dBin) >= 0 ? '+' : ''}${mean(dBin).toFixed(2)} ± ${sd(dBin).toFixed(2)} (n=2)`);
    const pBin1 = pairedBootstrap({
      metric: 'bleu',
      baseline: hyps.get('ft[maskHeads=2,seed=1]')!,
      systems: [hyps.get(binIds[0]!)!],
      refs: [refs.get(1)!],
    }).systems[0]!.pValue!;
    expect(bin[7]!.startsWith(`${formatP(pBin1)}, `)).toBe(true);
    // the importance columns are the same on both lines
    expect(bin[4]).toBe(cells[3]);
  });

  it("a real two-seed chain: stages follow their baseline's seed, stage.json says how dev BLEU was decoded, and the report rebuilt from hyps/ matches", async () => {
    await useTestBackend();
    const runs = join(dir, 'runs-seeds');
    const out = join(dir, 'seeds-results');
    const p = spec(
      'seeds-run',
      `name: seeds-run\nset: ${TINY_SET}\nseed: [1, 2]\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 4, train.evalEverySteps: 2, train.devBleuSentences: 2 } }\n  l0: { kind: prune, from: baseline, steps: 2, lambda: 0.5, seed: 2, set: { eval.beamSize: 2, train.evalEverySteps: 0 } }\n`,
    );
    const stages = resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
    // l0 follows only seed 2 of its parent's seeds
    expect(stages.map((s) => s.instance.id)).toEqual(['baseline[seed=1]', 'baseline[seed=2]', 'l0[seed=2]']);
    const quiet = new ProgressLine(process.stderr, true);
    for (const s of stages) expect(await runStage(s, { progress: quiet, isStopRequested: () => false, argv: [] })).not.toBeNull();
    const marker = (s: (typeof stages)[number]) =>
      JSON.parse(readFileSync(join(s.folder, 'stage.json'), 'utf8')) as { seed: number; devDecoding: string; devBleu: number; binarised?: unknown };
    const runConfig = (s: (typeof stages)[number]) => JSON.parse(readFileSync(join(s.folder, 'config.json'), 'utf8')) as { seed: number };
    expect(stages.map((s) => [marker(s).seed, runConfig(s).seed])).toEqual([
      [1, 1],
      [2, 2],
      [2, 2],
    ]);
    expect(stages.map((s) => marker(s).devDecoding)).toEqual(['greedy', 'greedy', 'beam 2']);
    const { rows, csvPath } = writeReport(stages, out);
    // the l0 stage's binarised row (if its kept gates are below 1) is decoded and seeded as the l0 row
    const plain = rows.filter((r) => !r.id.endsWith('#binarised'));
    expect(plain.map((r) => [r.devDecoding, r.seed])).toEqual([
      ['greedy', 1],
      ['greedy', 2],
      ['beam 2', 2],
    ]);
    expect(rows.filter((r) => r.id.endsWith('#binarised')).map((r) => [r.devDecoding, r.seed])).toEqual(marker(stages[2]!).binarised ? [['beam 2', 2]] : []);
    expect(readFileSync(join(out, 'hyps', 'l0_seed=2_.hyp'), 'utf8')).toBe(readFileSync(join(stages[2]!.folder, 'test.pruned.hyp'), 'utf8'));
    const csv = readFileSync(csvPath, 'utf8');
    renameSync(runs, `${runs}-moved`);
    expect(writeReport(stages, out, { fromHyps: true }).rescored).toEqual({ rows: rows.length, maxBleuChange: 0 });
    expect(readFileSync(csvPath, 'utf8')).toBe(csv);
  }, 120000);
});
