/**
 * A tiny study run through real schedulers: Slurm (`--emit sbatch` on a single-node cluster this test
 * starts: munge, slurmctld, slurmd; skipped where Debian's packages are not installed) and GNU parallel
 * (the `--emit-commands --ready` loop of experiments/README.md). Both need the compiled CLI (dist/).
 */
import { execFileSync, execSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSpec, expandStages } from './spec.js';
import { resolveStages, stageState } from './stage.js';
import { sbatchScript, slurmOptionProblems } from './sbatch.js';

const repo = process.cwd();
const bin = join(repo, 'bin', 'heads.js');
const built = existsSync(join(repo, 'dist', 'cli', 'main.js'));
const dir = mkdtempSync(join(tmpdir(), 'heads-sched-'));

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** A base model, then two pruning runs from it (a sweep): two levels of the stage graph, two stages side by side. */
function tinySpec(name: string): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(
    p,
    `name: ${name}
set: { data.synthetic.task: reverse, data.synthetic.trainPairs: 200, data.synthetic.validPairs: 4, data.synthetic.testPairs: 4, data.bpeMerges: 20,
  model.dModel: 16, model.dFF: 32, model.heads: 2, model.encoderLayers: 1, model.decoderLayers: 1, train.maxTokensPerBatch: 200,
  train.evalEverySteps: 0, train.devBleuSentences: 0, train.logEverySteps: 2, train.workers: 1, eval.beamSize: 1 }
stages:
  base: { kind: train, set: { train.maxSteps: 4 } }
  l0: { kind: prune, from: base, steps: 2, sweep: { lambda: [0.1, 0.2] } }
`,
  );
  return p;
}

/** When a stage finished (its marker) and began (its run folder's config.json), in ms. */
function finishedAt(folder: string): number {
  return Date.parse((JSON.parse(readFileSync(join(folder, 'stage.json'), 'utf8')) as { finishedAt: string }).finishedAt);
}
function startedAt(folder: string): number {
  return statSync(join(folder, 'config.json')).mtimeMs;
}

function stagesOf(p: string, runs: string) {
  return resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
}

describe('--emit sbatch script', () => {
  it('submits one job per stage still to run, each after its parent, then a report after all', () => {
    const p = tinySpec('script');
    const stages = stagesOf(p, join(dir, 'runs-script'));
    const text = sbatchScript(stages, { specPath: p, runsDir: 'runs', root: 'runs/experiments/script', partition: 'cpu', time: '2:00:00', cpus: 3, mem: '5G' });
    const submits = text.split('\n').filter((l) => /^\w+=\$\(submit /.test(l));
    expect(submits).toHaveLength(4);
    expect(submits[0]).not.toContain('--dependency');
    expect(submits[1]).toContain('--dependency=afterok:$j1 ');
    expect(submits[2]).toContain('--dependency=afterok:$j1 ');
    expect(submits[3]).toMatch(/^report=.*--dependency=afterok:\$j1:\$j2:\$j3 /);
    for (const s of submits.slice(0, 3)) expect(s).toContain('--partition=cpu --time=2:00:00 --cpus-per-task=3 --mem=5G');
    expect(text).toContain(`exec node bin/heads.js experiment run ${p} --only 'l0[lambda=0.2]' --runs-dir runs --no-report`);
    // a done parent gets no job, and its children no dependency
    const later = sbatchScript(stages.slice(1), { specPath: p, runsDir: 'runs', root: 'r', partition: null, time: '1:00', cpus: 1, mem: '1G' });
    expect(later).not.toContain('--dependency=afterok:$j1 ');
    expect(later).not.toContain('--partition');
    expect(spawnSync('bash', ['-n'], { input: text }).status).toBe(0);
    // --seeds: every job and the report resolve the spec with the same seeds as the run that wrote the script
    const seeded = sbatchScript(stages, { specPath: p, runsDir: 'runs', root: 'r', partition: null, time: '1:00', cpus: 1, mem: '1G', seeds: [2, 3] });
    const execs = seeded.split('\n').filter((l) => l.startsWith('exec '));
    expect(execs).toHaveLength(4);
    for (const e of execs) expect(e).toMatch(/ --seeds 2,3( |$)/);
    expect(seeded).toContain('(seeds 2,3)');
  });

  it('refuses malformed Slurm options, naming the option', () => {
    expect(slurmOptionProblems({ time: '1 day', cpus: 0, mem: '16GB', partition: null })).toEqual([
      "--time: expected a Slurm time limit such as 24:00:00 or 1-00:00:00, found '1 day'",
      '--cpus: expected a positive integer, found 0',
      "--mem: expected a Slurm memory size such as 16G or 8000M, found '16GB'",
    ]);
    if (!built) return;
    const r = spawnSync('node', [bin, 'experiment', 'run', tinySpec('bad'), '--emit', 'sbatch', '--time', 'soon'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--time: expected a Slurm time limit');
    expect(r.stdout).toBe('');
  });
});

const slurmTools = ['slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'sinfo', 'munged', 'munge', 'unmunge'];
const missingSlurm = slurmTools.filter((t) => !onPath(t));
const slurmSkip = !built
  ? 'dist/ is not built (npm run build)'
  : missingSlurm.length
    ? `not installed: ${missingSlurm.join(', ')} (apt-get install slurmctld slurmd slurm-client munge)`
    : process.getuid?.() !== 0
      ? 'needs root to start slurmd'
      : null;
if (slurmSkip) console.warn(`Slurm test skipped: ${slurmSkip}`);

(slurmSkip ? describe.skip : describe)('a real single-node Slurm', () => {
  const conf = join(dir, 'slurm');
  const env = { ...process.env, SLURM_CONF: join(conf, 'slurm.conf') };
  const started: string[] = []; // pid files of the daemons this test started
  const host = hostname().split('.')[0]!;

  beforeAll(() => {
    mkdirSync(join(conf, 'spool'), { recursive: true });
    mkdirSync(join(conf, 'state'), { recursive: true });
    if (spawnSync('sh', ['-c', 'munge -n | unmunge'], { stdio: 'ignore' }).status !== 0) {
      // Debian's munge lacks its socket folder here; it runs as its own user
      execSync('mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge');
      execSync('su -s /bin/sh munge -c munged');
      started.push('/run/munge/munged.pid');
    }
    writeFileSync(
      env.SLURM_CONF,
      [
        'ClusterName=headstest',
        `SlurmctldHost=${host}`,
        'AuthType=auth/munge',
        'CredType=cred/munge',
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'SlurmUser=root',
        'ReturnToService=2',
        `SlurmctldPidFile=${conf}/slurmctld.pid`,
        `SlurmdPidFile=${conf}/slurmd.pid`,
        `SlurmdSpoolDir=${conf}/spool`,
        `StateSaveLocation=${conf}/state`,
        `SlurmctldLogFile=${conf}/slurmctld.log`,
        `SlurmdLogFile=${conf}/slurmd.log`,
        'SchedulerType=sched/backfill',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_Core',
        'MinJobAge=600',
        `NodeName=${host} CPUs=2 RealMemory=8000 State=UNKNOWN`,
        `PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP`,
        '',
      ].join('\n'),
    );
    execFileSync('slurmctld', ['-f', env.SLURM_CONF], { env });
    started.push(join(conf, 'slurmctld.pid'));
    execFileSync('slurmd', ['-f', env.SLURM_CONF], { env });
    started.push(join(conf, 'slurmd.pid'));
    for (let i = 0; i < 60; i++) {
      const r = spawnSync('sinfo', ['-h', '-o', '%t'], { env, encoding: 'utf8' });
      if (r.stdout.trim() === 'idle') return;
      execSync('sleep 0.5');
    }
    throw new Error(`slurmd did not come up (sinfo: ${spawnSync('sinfo', { env, encoding: 'utf8' }).stdout}); see ${conf}`);
  }, 60000);

  afterAll(() => {
    for (const f of started.reverse()) {
      if (!existsSync(f)) continue;
      const pid = Number(readFileSync(f, 'utf8').trim());
      try {
        if (pid > 0) process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  });

  it('runs every stage as a job, children after their parent, then the report', () => {
    const p = tinySpec('slurm');
    const runs = join(dir, 'runs-slurm');
    const script = join(dir, 'submit.sh');
    writeFileSync(
      script,
      execFileSync('node', [bin, 'experiment', 'run', p, '--runs-dir', runs, '--emit', 'sbatch', '--cpus', '1', '--mem', '1G', '--time', '10:00'], {
        encoding: 'utf8',
      }),
    );
    // as documented: from the repository root
    const out = execFileSync('bash', [script], { cwd: repo, env, encoding: 'utf8' });
    const jobs = new Map(
      out
        .trim()
        .split('\n')
        .map((l) => l.match(/^(.*): job (\d+)/)!.slice(1, 3) as [string, string]),
    );
    expect([...jobs.keys()]).toEqual(['base', 'l0[lambda=0.1]', 'l0[lambda=0.2]', 'report']);
    const ids = [...jobs.values()];
    for (let i = 0; i < 240 && spawnSync('squeue', ['-h', '-j', ids.join(',')], { env, encoding: 'utf8' }).stdout.trim(); i++) execSync('sleep 0.5');
    const show = (id: string) => {
      const text = execFileSync('scontrol', ['show', 'job', id], { env, encoding: 'utf8' });
      const field = (k: string) => text.match(new RegExp(`\\b${k}=(\\S+)`))?.[1] ?? '';
      return { state: field('JobState'), start: Date.parse(field('StartTime')), end: Date.parse(field('EndTime')) };
    };
    const info = new Map([...jobs].map(([k, id]) => [k, show(id)]));
    const logs = readdirSync(join(runs, 'experiments', 'slurm', 'slurm'));
    expect([[...info.values()].map((j) => j.state), logs.length]).toEqual([['COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED'], 4]);
    const base = info.get('base')!;
    for (const k of ['l0[lambda=0.1]', 'l0[lambda=0.2]']) expect(info.get(k)!.start).toBeGreaterThanOrEqual(base.end);
    for (const k of ['base', 'l0[lambda=0.1]', 'l0[lambda=0.2]']) expect(info.get('report')!.start).toBeGreaterThanOrEqual(info.get(k)!.end);
    // the stages are done in the shared runs folder, and the report job collected them
    const stages = stagesOf(p, runs);
    expect(stages.map(stageState)).toEqual(['done', 'done', 'done']);
    const csv = readFileSync(join(runs, 'experiments', 'slurm', 'results.csv'), 'utf8')
      .trim()
      .split('\n');
    // one row a stage (an l0 stage whose kept gates are below 1 adds its #binarised row)
    expect(
      csv
        .slice(1)
        .filter((l) => !l.split(',')[1]!.endsWith('#binarised'))
        .map((l) => l.split(',')[0])
        .sort(),
    ).toEqual(['base', 'l0', 'l0']);
    // the pruned stages began after the base stage had finished
    for (const s of stages.slice(1)) expect(startedAt(s.folder)).toBeGreaterThanOrEqual(finishedAt(stages[0]!.folder));
    // submitting again: nothing left but the report
    const again = execFileSync('node', [bin, 'experiment', 'run', p, '--runs-dir', runs, '--emit', 'sbatch'], { encoding: 'utf8' });
    expect(again.split('\n').filter((l) => /=\$\(submit /.test(l))).toHaveLength(1);
  }, 180000);
});

const parallelSkip = !built ? 'dist/ is not built (npm run build)' : !onPath('parallel') ? 'GNU parallel is not installed (apt-get install parallel)' : null;
if (parallelSkip) console.warn(`GNU parallel test skipped: ${parallelSkip}`);

(parallelSkip ? describe.skip : describe)('GNU parallel, as experiments/README.md shows', () => {
  it('runs the stages round by round, parents before children, two at a time', () => {
    const p = tinySpec('par');
    const runs = join(dir, 'runs-par');
    // the README's loop, with this test's spec and runs folder
    const loop = `export HEADS_CORES=1 HEADS_BLAS_THREADS=1
while cmds=$(node bin/heads.js experiment run ${p} --runs-dir ${runs} --emit-commands --ready) && [ -n "$cmds" ]; do
  echo "$cmds" | parallel -j 2 --halt soon,fail=1 || break
done
node bin/heads.js experiment report ${p} --runs-dir ${runs}`;
    const r = spawnSync('bash', ['-c', loop], { cwd: repo, encoding: 'utf8' });
    expect([r.status, r.stderr.match(/FAILED|Error.*/g)]).toEqual([0, null]);
    const stages = stagesOf(p, runs);
    expect(stages.map(stageState)).toEqual(['done', 'done', 'done']);
    for (const s of stages.slice(1)) expect(startedAt(s.folder)).toBeGreaterThanOrEqual(finishedAt(stages[0]!.folder));
    const rows = readFileSync(join(runs, 'experiments', 'par', 'results.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    expect(rows.filter((l) => !l.split(',')[1]!.endsWith('#binarised')).map((l) => l.split(',')[1])).toEqual(['base', 'l0[lambda=0.1]', 'l0[lambda=0.2]']);
  }, 120000);
});
