/**
 * `heads experiment run <spec> --emit sbatch`: a bash script that submits one Slurm job per stage still
 * to run, each held until its parent's job succeeded (`--dependency=afterok:<jobid>`), then one report
 * job after all of them. Every job runs its stage through the ordinary runner (`experiment run --only
 * <id> --no-report`) in the same runs folder, so a job whose parent is somehow not done runs or waits
 * for it under the stage locks, and a re-submitted script skips finished stages and resumes partial
 * ones. The script is meant to be run from the repository root (`bash <file>`), on a machine where
 * `sbatch` works, with `runs/` on a disk every node sees.
 */
import { join } from 'node:path';
import type { ResolvedStage } from './stage.js';
import { shellQuote } from './runner.js';

export interface SlurmOptions {
  specPath: string;
  preset?: string;
  /** the CLI's --seeds: every job (and the report) resolves the spec with them, as this run did */
  seeds?: readonly number[];
  runsDir: string;
  /** experiment folder (runs/experiments/<name>): job logs go to its slurm/ subfolder */
  root: string;
  /** null: the cluster's default partition */
  partition: string | null;
  /** Slurm time limit per job, e.g. `24:00:00` or `1-00:00:00` */
  time: string;
  /** cores per job: `--cpus-per-task`, also the stage's HEADS_CORES / HEADS_BLAS_THREADS */
  cpus: number;
  /** memory per job, e.g. `16G` */
  mem: string;
  /** how a job starts heads (run from the repository root) */
  heads?: string;
}

/** Defaults: the cluster's partition, a day per stage, 2 cores (two training workers) and 16 GB (two 4 GiB wasm heaps and headroom). */
export const SLURM_DEFAULTS = { time: '1-00:00:00', cpus: 2, mem: '16G' } as const;

const TIME_RE = /^(\d+-)?\d+(:\d\d){0,2}$/;
const MEM_RE = /^\d+[KMGT]?$/;

/** Checks the Slurm options (before anything is written); returns problems as `--option: expected ..., found ...`. */
export function slurmOptionProblems(o: Pick<SlurmOptions, 'time' | 'cpus' | 'mem' | 'partition'>): string[] {
  const p: string[] = [];
  if (!TIME_RE.test(o.time)) p.push(`--time: expected a Slurm time limit such as 24:00:00 or 1-00:00:00, found '${o.time}'`);
  if (!Number.isInteger(o.cpus) || o.cpus < 1) p.push(`--cpus: expected a positive integer, found ${o.cpus}`);
  if (!MEM_RE.test(o.mem)) p.push(`--mem: expected a Slurm memory size such as 16G or 8000M, found '${o.mem}'`);
  if (o.partition !== null && !/^[A-Za-z0-9_.,-]+$/.test(o.partition)) p.push(`--partition: expected a partition name, found '${o.partition}'`);
  return p;
}

/** A file-name-safe form of a stage id, for job names and log files. */
function jobLabel(id: string): string {
  return id.replace(/[^A-Za-z0-9_.=-]+/g, '_').slice(0, 60);
}

/**
 * The submission script for `todo`, the stages still to run in plan order (parents first). A parent not
 * in `todo` is done: its dependants get no dependency.
 */
export function sbatchScript(todo: readonly ResolvedStage[], o: SlurmOptions): string {
  const heads = o.heads ?? 'node bin/heads.js';
  const logDir = join(o.root, 'slurm');
  const common = [
    ...(o.partition ? [`--partition=${o.partition}`] : []),
    `--time=${o.time}`,
    `--cpus-per-task=${o.cpus}`,
    `--mem=${o.mem}`,
    '--chdir="$PWD"',
    '--kill-on-invalid-dep=yes',
  ];
  const preset = [...(o.preset ? ['--preset', o.preset] : []), ...(o.seeds?.length ? ['--seeds', o.seeds.join(',')] : [])];
  const lines = [
    '#!/usr/bin/env bash',
    `# Slurm jobs for ${o.specPath}${o.preset ? ` (preset ${o.preset})` : ''}${o.seeds?.length ? ` (seeds ${o.seeds.join(',')})` : ''}: one job per stage still to run (${todo.length}), each`,
    "# held until its parent stage's job succeeded (--dependency=afterok), then a report job.",
    '# Written by `heads experiment run ... --emit sbatch`. Submit from the repository root: bash <this file>',
    `# The runs folder (${o.runsDir}) must be on a disk every node sees. Job logs: ${logDir}/<stage>-<jobid>.out`,
    'set -euo pipefail',
    `[ -f bin/heads.js ] || { echo "run this from the heads repository root (no bin/heads.js in $PWD)" >&2; exit 2; }`,
    `mkdir -p ${shellQuote([logDir])}`,
    'submit() { local id; id=$(sbatch --parsable "$@"); echo "${id%%;*}"; }',
    `# every job: ${common.join(' ')}`,
    '',
  ];
  const jobVar = new Map<ResolvedStage, string>();
  todo.forEach((s, i) => {
    const v = `j${i + 1}`;
    jobVar.set(s, v);
    const parentVar = s.parent ? jobVar.get(s.parent) : undefined;
    const label = jobLabel(s.instance.id);
    const cmd = shellQuote([...heads.split(' '), 'experiment', 'run', o.specPath, '--only', s.instance.id, '--runs-dir', o.runsDir, ...preset, '--no-report']);
    lines.push(
      `${v}=$(submit --job-name=${shellQuote([`heads:${label}`])} ${common.join(' ')} --output=${shellQuote([join(logDir, `${label}-%j.out`)])}${parentVar ? ` --dependency=afterok:$${parentVar}` : ''} <<'JOB'`,
      '#!/usr/bin/env bash',
      'export HEADS_CORES=${HEADS_CORES:-$SLURM_CPUS_PER_TASK} HEADS_BLAS_THREADS=${HEADS_BLAS_THREADS:-$SLURM_CPUS_PER_TASK}',
      `exec ${cmd}`,
      'JOB',
      ')',
      `echo ${shellQuote([`${s.instance.id}: job`])} $${v}${parentVar ? ` "(after $${parentVar})"` : ''}`,
    );
  });
  const after = todo.map((s) => `$${jobVar.get(s)}`).join(':');
  const report = shellQuote([...heads.split(' '), 'experiment', 'report', o.specPath, '--runs-dir', o.runsDir, ...preset]);
  lines.push(
    `report=$(submit --job-name=heads:report ${common.filter((c) => !c.startsWith('--cpus') && !c.startsWith('--mem')).join(' ')} --cpus-per-task=1 --mem=2G --output=${shellQuote([join(logDir, 'report-%j.out')])}${todo.length ? ` --dependency=afterok:${after}` : ''} <<'JOB'`,
    '#!/usr/bin/env bash',
    `exec ${report}`,
    'JOB',
    ')',
    'echo "report: job $report"',
    '',
  );
  return lines.join('\n');
}
