/**
 * The experiment runner: runs every stage instance that is not done, parents first, up to `jobs` at a
 * time, each as a child `heads experiment run-stage` process whose output goes to its folder's
 * stage.log. A killed runner loses at most the work since each stage's last checkpoint: the next run
 * skips done stages (same config hash) and resumes interrupted ones. `--emit-commands` prints the same
 * child commands, for a batch scheduler.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type ResolvedStage, type StageState, stageState, lockHolder } from './stage.js';
import { formatDuration } from '../train/progress.js';
import { continueStoppedRun } from './equivalence.js';

export interface RunnerOptions {
  specPath: string;
  preset?: string;
  /** the CLI's --seeds (the children must resolve the same instances) */
  seeds?: readonly number[];
  runsDir: string;
  jobs: number;
  log: (line: string) => void;
  /** where `heads` lives (default: this package's bin/heads.js) */
  binPath?: string;
  /** seconds between status lines while stages run */
  statusEverySec?: number;
  /** the command line, recorded in a stopped run's folder when the runner continues it under a new hash */
  argv?: readonly string[];
  /** the environment the stages start from (the CLI passes its own; each child also gets its core share) */
  env: NodeJS.ProcessEnv;
  /**
   * Subscribes the runner to SIGINT/SIGTERM and returns the unsubscribe (the CLI's process signals; a second
   * signal ends the process there). The runner asks its stages to checkpoint and stop on the first one.
   */
  onStopSignal?: (handler: (sig: NodeJS.Signals) => void) => () => void;
}

export function headsBin(): string {
  return fileURLToPath(new URL('../../bin/heads.js', import.meta.url));
}

/** The command that runs one stage (also what --emit-commands prints). */
export function stageCommand(s: ResolvedStage, o: Pick<RunnerOptions, 'specPath' | 'preset' | 'runsDir' | 'seeds'>, bin = 'heads'): string[] {
  return [
    bin,
    'experiment',
    'run-stage',
    o.specPath,
    '--id',
    s.instance.id,
    '--runs-dir',
    o.runsDir,
    ...(o.preset ? ['--preset', o.preset] : []),
    ...(o.seeds?.length ? ['--seeds', o.seeds.join(',')] : []),
  ];
}

export function shellQuote(args: readonly string[]): string {
  return args.map((a) => (/^[A-Za-z0-9_./=:,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export function planTable(stages: readonly ResolvedStage[]): string {
  const stateOf = (s: ResolvedStage): string => {
    const st = stageState(s);
    const pid = st === 'done' ? null : lockHolder(s);
    return pid === null ? st : `running (pid ${pid})`;
  };
  const rows = stages.map((s) => [s.instance.id, s.instance.spec.kind, stateOf(s), s.parent?.instance.id ?? '-', s.folder]);
  const head = ['stage', 'kind', 'state', 'from', 'folder'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i]!)).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

function lastLine(path: string): string {
  if (!existsSync(path)) return '';
  const text = readFileSync(path, 'utf8').trimEnd();
  return text.slice(text.lastIndexOf('\n') + 1).slice(0, 160);
}

/**
 * With several stages side by side, each child gets its share of the cores: HEADS_CORES (what
 * `train.workers: auto` resolves to) and HEADS_BLAS_THREADS, unless the user set them.
 */
export function shareCores(jobs: number, env: NodeJS.ProcessEnv, cores = availableParallelism()): Record<string, string> {
  if (jobs <= 1) return {};
  const share = String(Math.max(1, Math.floor(cores / jobs)));
  return { ...(env['HEADS_CORES'] ? {} : { HEADS_CORES: share }), ...(env['HEADS_BLAS_THREADS'] ? {} : { HEADS_BLAS_THREADS: share }) };
}

/** Run every stage that is not done. Resolves to the number of stages that failed. */
export async function runExperiment(stages: readonly ResolvedStage[], o: RunnerOptions): Promise<number> {
  const bin = o.binPath ?? headsBin();
  const running = new Map<string, { child: ChildProcess; startedAt: number; stage: ResolvedStage }>();
  const failed = new Set<string>();
  let stopping = false;
  let waitingNoted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    o.log(`${sig}: asking ${running.size} running stage(s) to checkpoint and stop (again to exit at once)`);
    for (const r of running.values()) r.child.kill(sig);
  };
  const unsubscribe = o.onStopSignal?.(onSignal) ?? (() => {});
  const isBlockedByFailure = (s: ResolvedStage): boolean => (s.parent ? failed.has(s.parent.instance.id) || isBlockedByFailure(s.parent) : false);
  const status = setInterval(
    () => {
      for (const [id, r] of running) o.log(`[${id}] ${formatDuration((Date.now() - r.startedAt) / 1000)}: ${lastLine(join(r.stage.folder, 'stage.log'))}`);
    },
    (o.statusEverySec ?? 60) * 1000,
  );
  try {
    for (;;) {
      const states = new Map<string, StageState>(stages.map((s) => [s.instance.id, stageState(s)]));
      const isRunnable = (s: ResolvedStage) => states.get(s.instance.id) === 'pending' || states.get(s.instance.id) === 'partial';
      // a stage locked by a live process (an earlier runner's orphan finishing its step) is left alone
      const ready = stages.filter(
        (s) => !running.has(s.instance.id) && !failed.has(s.instance.id) && lockHolder(s) === null && isRunnable(s) && !isBlockedByFailure(s),
      );
      while (!stopping && running.size < o.jobs && ready.length) {
        const s = ready.shift()!;
        // a stopped run of this stage under another hash that is this stage's computation (only its cap or
        // stopping rule changed, and the new rule replayed on it would not have stopped it): continue it
        if (states.get(s.instance.id) === 'pending') {
          const line = continueStoppedRun(s, o.argv ?? []);
          if (line) {
            o.log(`[${s.instance.id}] ${line}`);
            states.set(s.instance.id, 'partial');
          }
        }
        mkdirSync(s.folder, { recursive: true });
        const out = createWriteStream(join(s.folder, 'stage.log'), { flags: 'a' });
        const args = stageCommand(s, o, bin).slice(1);
        // HEADS_PARENT_PID: the child checkpoints and stops if this runner dies (it would be orphaned)
        const child = spawn(process.execPath, [bin, ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...o.env, ...shareCores(o.jobs, o.env), HEADS_PARENT_PID: String(process.pid) },
        });
        child.stdout!.pipe(out);
        child.stderr!.pipe(out);
        running.set(s.instance.id, { child, startedAt: Date.now(), stage: s });
        o.log(`[${s.instance.id}] ${states.get(s.instance.id) === 'partial' ? 'resuming' : 'started'} (log: ${join(s.folder, 'stage.log')})`);
      }
      if (!running.size) {
        // a stage still locked by another live process (an orphan of a killed runner finishing its step):
        // wait for it to checkpoint and exit, then resume it, rather than ending with it undone
        const locked = stages.filter((s) => !failed.has(s.instance.id) && isRunnable(s) && lockHolder(s) !== null);
        if (!locked.length || stopping) break;
        if (!waitingNoted) o.log(`[${locked[0]!.instance.id}] held by process ${lockHolder(locked[0]!)}; waiting for it to stop`);
        waitingNoted = true;
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      const [id, code] = await Promise.race(
        [...running].map(([id, r]) => new Promise<[string, number | null]>((res) => r.child.once('exit', (c) => res([id, c])))),
      );
      const r = running.get(id)!;
      running.delete(id);
      const took = formatDuration((Date.now() - r.startedAt) / 1000);
      if (code === 0 && stageState(r.stage) === 'done') o.log(`[${id}] done in ${took}`);
      else if (stopping) o.log(`[${id}] stopped after ${took} (resumes on the next run)`);
      else {
        failed.add(id);
        o.log(`[${id}] FAILED (exit ${code}) after ${took}: ${lastLine(join(r.stage.folder, 'stage.log'))}`);
      }
    }
  } finally {
    clearInterval(status);
    unsubscribe();
  }
  return failed.size;
}
