/**
 * Faults from outside the process, each ending in one line naming the file with nothing saved lost:
 * a full disk (a real, tiny tmpfs), an unreadable checkpoint folder (a child without CAP_DAC_OVERRIDE, so
 * root meets file permissions), temp files left by kills, a resume of a finished run, an edited
 * state.json, a latest.json naming a missing step, a resume that would change the model, and a failed
 * command's run folder. The CLI tests run the built CLI (dist/); they skip when it is not built.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { findLatestValidCheckpoint } from '../io/checkpoint.js';

const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
const TINY = [
  'name=faults',
  'data.synthetic.task=reverse',
  'data.synthetic.trainPairs=300',
  'data.synthetic.validPairs=6',
  'data.synthetic.testPairs=4',
  'data.bpeMerges=20',
  'model.dModel=16',
  'model.dFF=32',
  'model.heads=2',
  'model.encoderLayers=1',
  'model.decoderLayers=1',
  'train.logEverySteps=1',
  'train.evalEverySteps=0',
  'train.devBleuSentences=2',
  'train.maxTokensPerBatch=150',
  'eval.beamSize=1',
];

function heads(args: string[], opts: { prefix?: string[] } = {}): { status: number | null; stderr: string; stdout: string } {
  const cmd = [...(opts.prefix ?? []), 'node', bin, ...args];
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

function train(runsDir: string, set: string[]): { status: number | null; stderr: string; run: string } {
  const r = heads(['train', '--runs-dir', runsDir, '--set', ...TINY, ...set]);
  const runs = existsSync(runsDir) ? readdirSync(runsDir) : [];
  return { ...r, run: runs.length ? join(runsDir, runs[0]!) : '' };
}

/** The error line of a failed command: exactly one line after the progress, no stack. */
function errorLine(stderr: string): string {
  expect(stderr).not.toMatch(/\n\s+at /);
  const lines = stderr.trim().split('\n');
  expect(lines.filter((l) => l.startsWith('error: '))).toHaveLength(1);
  return lines[lines.length - 1]!;
}

/** Every file under `dir` (relative path -> sha256). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

const tempFiles = (dir: string) => Object.keys(snapshot(dir)).filter((f) => /\.tmp$/.test(f));

/** step -> loss from metrics.jsonl (a step re-done after a resume keeps its last value). */
function losses(run: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of readFileSync(join(run, 'metrics.jsonl'), 'utf8').split('\n')) {
    try {
      const r = JSON.parse(line) as { step?: number; loss?: number };
      if (r.step !== undefined && r.loss !== undefined) out.set(r.step, r.loss);
    } catch {
      /* torn line */
    }
  }
  return out;
}

/** Mount a tmpfs of `size` at `dir` (root only); false when mounting is not permitted here. */
function mountTmpfs(dir: string, size: string): boolean {
  mkdirSync(dir, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]).status === 0;
}

const canMount = (() => {
  const d = mkdtempSync(join(tmpdir(), 'heads-mount-probe-'));
  const ok = mountTmpfs(d, '64k');
  if (ok) spawnSync('umount', [d]);
  return ok;
})();
/** root without the capabilities that bypass file permissions: chmod 000 then denies, as for a user */
const NO_DAC = ['setpriv', '--inh-caps=-dac_override,-dac_read_search', '--bounding-set=-dac_override,-dac_read_search'];
const canDropCaps = (() => {
  const d = mkdtempSync(join(tmpdir(), 'heads-caps-probe-'));
  writeFileSync(join(d, 'f'), 'x');
  chmodSync(join(d, 'f'), 0);
  const r = spawnSync(NO_DAC[0]!, [...NO_DAC.slice(1), 'cat', join(d, 'f')]);
  return r.status !== null && r.status !== 0 && !r.error;
})();

if (!canMount) console.warn('faults.test: skipping the full-disk test: mounting a tmpfs is not permitted here (needs root)');
if (!canDropCaps) console.warn('faults.test: skipping the EACCES test: setpriv cannot drop CAP_DAC_OVERRIDE here');

(built && canMount ? describe : describe.skip)('a full disk (a 400 KB tmpfs)', () => {
  it('ends training in one line naming the file, keeps the last checkpoint valid and no temp file; resume on the still-full disk fails the same way; after freeing space it ends as the uninterrupted run, weights byte for byte', () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-enospc-'));
    const SET = ['train.maxSteps=8', 'train.checkpointEverySteps=1', 'train.keepCheckpoints=100'];
    const ref = train(join(root, 'ref'), SET);
    expect(ref.status).toBe(0);
    const disk = join(root, 'disk');
    expect(mountTmpfs(disk, '400k')).toBe(true);
    try {
      const full = train(disk, SET);
      expect(full.status).toBe(2);
      const line = errorLine(full.stderr);
      const m = /^error: (\S+): cannot write: no space left on device \(ENOSPC\); the last checkpoint \(step (\d+)\) is intact$/.exec(line);
      expect(m).not.toBeNull();
      expect(m![1]!.startsWith(full.run)).toBe(true);
      const last = Number(m![2]);
      expect(last).toBeGreaterThan(0);
      expect(last).toBeLessThan(8);
      expect(findLatestValidCheckpoint(full.run).state.step).toBe(last);
      // no temp file, no half-written checkpoint folder
      expect(tempFiles(full.run)).toEqual([]);
      for (const d of readdirSync(join(full.run, 'checkpoints')).filter((n) => n.startsWith('step-')))
        expect(existsSync(join(full.run, 'checkpoints', d, 'state.json'))).toBe(true);

      const again = heads(['train', '--resume', full.run]);
      expect(again.status).toBe(2);
      expect(errorLine(again.stderr)).toMatch(/^error: \S+: cannot write: no space left on device \(ENOSPC\); the last checkpoint \(step \d+\) is intact$/);
      expect(findLatestValidCheckpoint(full.run).state.step).toBeGreaterThanOrEqual(last);
      expect(tempFiles(full.run)).toEqual([]);

      expect(spawnSync('mount', ['-o', 'remount,size=4m', disk]).status).toBe(0);
      const done = heads(['train', '--resume', full.run]);
      expect(done.status).toBe(0);
      const a = losses(ref.run);
      const b = losses(full.run);
      for (let s = 1; s <= 8; s++) expect([s, b.get(s)]).toEqual([s, a.get(s)]);
      const weights = (run: string) => readFileSync(join(run, 'checkpoints', 'step-0000008', 'model.safetensors'));
      expect(weights(full.run).equals(weights(ref.run))).toBe(true);
    } finally {
      spawnSync('umount', [disk]);
    }
  }, 120000);
});

(built ? describe : describe.skip)('a finished run', () => {
  let root = '';
  let run = '';
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'heads-finished-'));
    const r = train(join(root, 'runs'), ['train.maxSteps=4', 'train.checkpointEverySteps=2', 'train.keepCheckpoints=3']);
    expect(r.status).toBe(0);
    run = r.run;
  });

  /** a copy of the finished run, for a test that changes it */
  const copyOfRun = (): string => {
    const copy = mkdtempSync(join(tmpdir(), 'heads-copy-'));
    expect(spawnSync('cp', ['-a', `${run}/.`, copy]).status).toBe(0);
    return copy;
  };

  it('refuses a resume that changes the model in one line and writes nothing; a plain resume still works and keeps the dev scores', () => {
    const run = copyOfRun();
    const before = snapshot(run);
    const results = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
    expect(results.devLoss).toEqual(expect.any(Number));
    expect(results.devBleu).toEqual(expect.any(Number));
    const bad = heads(['train', '--resume', run, '--set', 'model.dModel=32']);
    expect(bad.status).toBe(2);
    expect(errorLine(bad.stderr)).toBe(
      `error: ${join(run, 'config.json')}: a resumed run keeps its model, but --set changes model.dModel 16 -> 32; start a new run instead (heads train, or heads prune --from ${run} to fine-tune from it)`,
    );
    const gated = heads(['train', '--resume', run, '--set', 'gates.attention=[enc-self]']);
    expect(gated.status).toBe(2);
    expect(errorLine(gated.stderr)).toContain('--set changes gates.attention [] -> ["enc-self"]');
    expect(snapshot(run)).toEqual(before);

    // a resume with nothing left to train: dev scores kept (not null), the test translated again, the same
    const ok = heads(['train', '--resume', run]);
    expect(ok.status).toBe(0);
    expect(ok.stderr).not.toMatch(/step \d+\/4 \|/);
    const after = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
    expect(after.devLoss).toBe(results.devLoss);
    expect(after.devBleu).toBe(results.devBleu);
    expect(after.test.bleu).toBe(results.test.bleu);
    expect(readFileSync(join(run, 'command.txt'), 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('removes temp files of dead writers on load, never one a live process is writing', async () => {
    const run = copyOfRun();
    const ckpt = join(run, 'checkpoints', 'step-0000004');
    // a pid that has ended: a child that exited
    const dead = spawnSync('node', ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    const live = spawn('sleep', ['30']);
    try {
      const planted = {
        deadInCheckpoint: join(ckpt, `.model.safetensors.${deadPid}.0.tmp`),
        deadInRun: join(run, `.results.json.${deadPid}.7.tmp`),
        deadInRoot: join(run, 'checkpoints', `.latest.json.${deadPid}.3.tmp`),
        liveFresh: join(ckpt, `.optimizer.safetensors.${live.pid}.1.tmp`),
        liveOld: join(run, `.metrics.json.${live.pid}.2.tmp`),
        notOurs: join(run, '.notes.tmp'),
      };
      for (const p of Object.values(planted)) writeFileSync(p, Buffer.alloc(1000, 1));
      const old = (Date.now() - 2 * 3600 * 1000) / 1000;
      utimesSync(planted.liveOld, old, old); // a live pid on a two-hour-old temp file: a reused pid
      const r = heads(['train', '--resume', run]);
      expect(r.status).toBe(0);
      expect([planted.deadInCheckpoint, planted.deadInRun, planted.deadInRoot, planted.liveOld].filter(existsSync)).toEqual([]);
      expect(existsSync(planted.liveFresh)).toBe(true);
      expect(existsSync(planted.notOurs)).toBe(true);
      rmSync(planted.liveFresh);
      rmSync(planted.notOurs);
    } finally {
      live.kill('SIGKILL');
    }
  });

  it('an edited state.json (data position) is refused by name and loading falls back to the previous checkpoint', () => {
    const copy = copyOfRun();
    const statePath = join(copy, 'checkpoints', 'step-0000004', 'state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8'));
    state.dataPosition.batch += 1;
    writeFileSync(statePath, JSON.stringify(state, null, 2) + '\n');
    const warnings: string[] = [];
    const c = findLatestValidCheckpoint(copy, (m) => warnings.push(m));
    expect(c.state.step).toBe(2);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`${statePath}: damaged or changed since heads wrote it`);
    expect(warnings[0]).toContain(`using ${join(copy, 'checkpoints', 'step-0000002')}`);
  });

  it('a latest.json naming a missing step is reported, and the newest valid checkpoint used', () => {
    const copy = copyOfRun();
    rmSync(join(copy, 'checkpoints', 'step-0000004'), { recursive: true });
    const warnings: string[] = [];
    expect(findLatestValidCheckpoint(copy, (m) => warnings.push(m)).state.step).toBe(2);
    expect(warnings.join('\n')).toContain(
      `${join(copy, 'checkpoints', 'latest.json')} names step 4, but ${join(copy, 'checkpoints', 'step-0000004')} is missing`,
    );
  });

  it('an L0 prune run of it resumes with heads prune --resume and ends as a prune run: mask and pruned scores', () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-prune-resume-'));
    const pr = heads(['prune', '--from', run, '--runs-dir', join(root, 'pruned'), '--lambda', '0.01', '--steps', '2', '--dev-sentences', '3']);
    expect(pr.status).toBe(0);
    const pruned = join(root, 'pruned', readdirSync(join(root, 'pruned'))[0]!);
    const results = () => JSON.parse(readFileSync(join(pruned, 'results.json'), 'utf8'));
    expect(results().pruning.devScores.sentences).toBe(3);
    // (heads train --resume on it takes the same path: cli/resume.ts)
    const r = heads(['prune', '--resume', pruned, '--set', 'train.maxSteps=3']);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('resume: step 2 from');
    expect(r.stderr).toMatch(/pruned: kept enc-self \d/);
    const res = results();
    expect(res.steps).toBe(3);
    expect(res.pruning.keptHeads['enc-self']).toEqual(expect.any(Number));
    expect(res.pruning.devScores.sentences).toBe(3); // --dev-sentences of the original command
    expect(JSON.parse(readFileSync(join(pruned, 'mask.json'), 'utf8'))).toBeTruthy();
    const neither = heads(['prune', '--lambda', '0.01']);
    expect(neither.status).toBe(2);
    expect(errorLine(neither.stderr)).toContain('--from: expected the converged model to prune');
  }, 90000);
});

(built && canDropCaps ? describe : describe.skip)('an unreadable checkpoint folder (EACCES, as a user without CAP_DAC_OVERRIDE)', () => {
  it('the fallback names the permission problem; a resume that would write into it is refused in one line before training; nothing is lost', () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-eacces-'));
    const r = train(join(root, 'runs'), ['train.maxSteps=4', 'train.checkpointEverySteps=2', 'train.keepCheckpoints=3']);
    expect(r.status).toBe(0);
    const locked = join(r.run, 'checkpoints', 'step-0000004');
    chmodSync(locked, 0);
    try {
      const res = heads(['train', '--resume', r.run, '--set', 'train.maxSteps=6'], { prefix: NO_DAC });
      expect(res.stderr).toContain(
        `warning: skipped invalid checkpoint(s): ${join(locked, 'state.json')}: cannot read: permission denied (EACCES); using ${join(r.run, 'checkpoints', 'step-0000002')}`,
      );
      expect(res.stderr).not.toContain('no state.json');
      expect(res.status).toBe(2);
      // refused before training a step, not when the run reaches step 4
      expect(errorLine(res.stderr)).toBe(
        `error: ${locked}: cannot write the checkpoint into: permission denied (EACCES); resuming from step 2 would write step 4 there: fix its permissions or move it out of ${join(r.run, 'checkpoints')}, then resume`,
      );
      expect(res.stderr).not.toMatch(/step \d+\/6 \|/);
      expect(readFileSync(join(r.run, 'command.txt'), 'utf8').trim().split('\n')).toHaveLength(1);
    } finally {
      chmodSync(locked, 0o755);
    }
    // nothing was lost: with its permission back, the locked checkpoint is the newest valid one
    expect(findLatestValidCheckpoint(r.run).state.step).toBe(4);
    const done = heads(['train', '--resume', r.run, '--set', 'train.maxSteps=6'], { prefix: NO_DAC });
    expect(done.status).toBe(0);
    expect(findLatestValidCheckpoint(r.run).state.step).toBe(6);
  }, 60000);
});

(built ? describe : describe.skip)('a failed command', () => {
  it('leaves no half-made run folder', () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-halfmade-'));
    const runs = join(root, 'runs');
    const missing = join(root, 'no-such-corpus');
    const r = heads(['train', '--runs-dir', runs, '--set', ...TINY, `data.train=${missing}`, `data.valid=${missing}`, `data.test=${missing}`]);
    expect(r.status).toBe(2);
    expect(errorLine(r.stderr)).toContain(missing);
    expect(existsSync(runs) ? readdirSync(runs) : []).toEqual([]);
  });
});
