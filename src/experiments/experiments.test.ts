import { spawn, spawnSync, execSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSpec, expandStages } from './spec.js';
import { resolveStages, stageState, adoptRun, selectStages, withoutExecutionKeys, FEATURE_KEYS_OFF_BY_DEFAULT, acquireStageLock } from './stage.js';
import { planTable } from './runner.js';
import { stepsNearest } from './run-stage.js';
import { runTraining } from '../train/run-training.js';
import { RunFolder } from '../util/run-folder.js';
import { ProgressLine } from '../train/progress.js';
import { loadConfigOn } from '../config/load.js';
import { useTestBackend } from '../test-utils/backend.js';
import { ConfigError } from '../util/errors.js';

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
    ['bad attention', 'name: x\nstages:\n  b: { kind: train }\n  p: { kind: prune, from: b, lambda: 1, attention: [encoder] }\n', ['stages.p.attention[0]', '"encoder"']],
    ['cycle', 'name: x\nstages:\n  a: { kind: analyze, of: b }\n  b: { kind: export, of: a }\n', ['dependency cycle']],
    ['bad name', 'name: "a b"\nstages: {}\n', ['name']],
    ['missing base', 'name: x\nbase: configs/none.yaml\nstages: {}\n', ['base: config file configs/none.yaml not found']],
    ['testHeads on an l0 stage', 'name: x\nstages:\n  b: { kind: train }\n  p: { kind: prune, from: b, lambda: 1, testHeads: [4] }\n', ['stages.p.testHeads', 'only for importance']],
    ['testHeads not integers', 'name: x\nstages:\n  b: { kind: train }\n  p: { kind: prune, from: b, method: importance, testHeads: [2.5] }\n', ['stages.p.testHeads[0]']],
  ];
  it.each(bad)('%s is refused with the file and key', (_l, text, fragments) => {
    const p = spec(`bad-${fragments[0]!.replace(/\W/g, '')}`, text);
    let msg = '';
    try {
      loadSpec(p);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      msg = (e as Error).message;
    }
    expect(msg).toContain(p);
    for (const f of fragments) expect(msg).toContain(f);
  });

  it('--only keeps the named stages (every instance of a sweep, or one id) and their ancestors', () => {
    const p = spec('only', `name: only\nset: ${TINY_SET}\nstages:\n  base: { kind: train }\n  l0: { kind: prune, from: base, sweep: { lambda: [0.1, 0.2] } }\n  an: { kind: analyze, of: l0 }\n  imp: { kind: prune, from: base, method: importance }\n`);
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
      expect(withoutExecutionKeys(off)).toEqual(withoutExecutionKeys(cfg));
      expect((withoutExecutionKeys(on)['model'] as Record<string, unknown>)['laterFeature']).toEqual({ window: 3 });
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
    const p = spec('expand', `name: expand\nset: ${TINY_SET}\nstages:\n  base: { kind: train, sweep: { seed: [1, 2] } }\n  l0: { kind: prune, from: base, sweep: { lambda: [0.1, 0.2] } }\n`);
    const s = loadSpec(p);
    const inst = expandStages(s);
    expect(inst.map((i) => i.id)).toEqual(['base[seed=1]', 'base[seed=2]', 'l0[lambda=0.1]<base[seed=1]>', 'l0[lambda=0.2]<base[seed=1]>', 'l0[lambda=0.1]<base[seed=2]>', 'l0[lambda=0.2]<base[seed=2]>']);
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
    const p3 = spec('expand3', readFileSync(p, 'utf8').replace('set: {', 'set: { train.workers: 2, backend: cpu, train.keepCheckpoints: 1, train.checkpointEverySteps: 3,'));
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

(built ? describe : describe.skip)('experiment runner', () => {
  const runs = join(dir, 'runs');
  const two = () => spec('two', `name: two\nset: ${TINY_SET}\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 20, train.checkpointEverySteps: 10 } }\n  l0: { kind: prune, from: baseline, steps: 8, sweep: { lambda: [0.01, 0.5] }, set: { gates.lrScale: 20 } }\n  imp: { kind: prune, from: baseline, method: importance, stepPercent: 50, testHeads: [2, 0] }\n  an: { kind: analyze, of: baseline }\n`);

  it('runs a two-stage spec, skips done stages on a second run, and reports', () => {
    const p = two();
    const r1 = spawnSync('node', [bin, 'experiment', 'run', p, '--runs-dir', runs, '--jobs', '2'], { encoding: 'utf8' });
    expect(r1.status).toBe(0);
    expect(r1.stderr).toContain('[baseline] done');
    expect(r1.stderr).toContain('[l0[lambda=0.5]] done');
    const s = loadSpec(p);
    const stages = resolveStages(s, expandStages(s), runs);
    expect(stages.map(stageState)).toEqual(['done', 'done', 'done', 'done', 'done']);
    const csv = readFileSync(join(runs, 'experiments', 'two', 'results.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('stage,id,kind,method,attention,lambda,targetHeads,keptEnc,keptDecSelf,keptDecEnc,bleu,bleuTokLc,devBleu,run');
    // baseline, two l0 points, and the importance curve at its testHeads (4 encoder heads, 2 removed per step)
    expect(csv).toHaveLength(6);
    expect(csv.filter((l) => l.startsWith('imp,')).map((l) => l.split(',')[7])).toEqual(['2', '0']);
    // the figures: Figure 7 (l0, importance and the full model), Figure 8 (roles of the survivors); no all-types stage
    const figDir = join(runs, 'experiments', 'two', 'figures');
    const fig7 = JSON.parse(readFileSync(join(figDir, 'bleu-vs-encoder-heads.json'), 'utf8')) as { data: Array<{ name: string; x: number[] }> };
    expect(fig7.data.map((t) => t.name)).toEqual(['l0', 'importance', 'full model']);
    expect(fig7.data[1]!.x).toEqual([0, 2]);
    expect(existsSync(join(figDir, 'bleu-vs-encoder-heads.html'))).toBe(true);
    const fig8 = JSON.parse(readFileSync(join(figDir, 'surviving-head-roles.json'), 'utf8')) as { data: Array<{ x: string[]; y: number[] }> };
    expect(fig8.data[0]!.x[0]).toBe('4 heads (baseline)');
    expect(fig8.data[0]!.x).toHaveLength(3);
    expect(fig8.data.reduce((a, t) => a + t.y[0]!, 0)).toBe(4);
    expect(r1.stderr).toContain('figure skipped: heads-per-type-vs-bleu');
    expect(csv[1]).toMatch(/^baseline,baseline,train,baseline,-,,,4,2,2,/);
    expect(r1.stdout).toContain('| l0[lambda=0.5] | l0 | enc-self | 0.5 |');
    const r2 = spawnSync('node', [bin, 'experiment', 'run', p, '--runs-dir', runs], { encoding: 'utf8' });
    expect(r2.status).toBe(0);
    expect(r2.stderr).not.toContain('started');
  }, 240000);

  it('a runner killed mid-stage (with its child) resumes the stage from its last checkpoint', async () => {
    const p = spec('killed', `name: killed\nset: ${TINY_SET}\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 300, train.checkpointEverySteps: 10 } }\n`);
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
    const p = spec('emit', `name: emit\nset: ${TINY_SET}\nstages:\n  baseline: { kind: train, set: { train.maxSteps: 6 } }\n  l0: { kind: prune, from: baseline, steps: 3, lambda: 0.1 }\n`);
    const out = execSync(`node ${bin} experiment run ${p} --runs-dir ${runs} --emit-commands`, { encoding: 'utf8' }).trim().split('\n');
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^heads experiment run-stage .* --id baseline --runs-dir /);
    for (const cmd of out) execSync(cmd.replace(/^heads /, `node ${bin} `), { stdio: 'ignore' });
    const s = loadSpec(p);
    expect(resolveStages(s, expandStages(s), runs).map(stageState)).toEqual(['done', 'done']);
  }, 240000);
});
