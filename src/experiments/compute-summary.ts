/**
 * What a study cost: the wall time of its stages (each over its attempts, `compute.json`), per stage kind
 * and per seed, and in all. Rows that share a stage (an L0 stage's #binarised row, an importance stage's
 * steps) count it once. With `--jobs 2` two stages run side by side, so the elapsed time of a session is
 * less than these sums (at best half); each stage's own figure is its row's `wall min`. The study's own
 * wall time is the busy time: the union of every attempt's interval (its end and length in compute.json),
 * the time during which at least one of its stages ran, without the gaps between sessions.
 */
import { readJsonFile } from '../util/fs.js';
import { stageFile } from './records.js';
import { type ResolvedStage, instanceIdOf } from './stage.js';

/** One attempt of one stage, in ms since the epoch. */
export interface Attempt {
  seed: number | null;
  start: number;
  end: number;
}

/**
 * Every finished stage's attempts, from its run folder's compute.json, else from its committed record
 * (`<outDir>/stages/<folder>/compute.json`), so the figure rebuilds without the run folders; with
 * `recordsOnly`, from the records alone (a report rebuilt from hyps/ describes the committed stages).
 */
export function stageAttempts(stages: readonly ResolvedStage[], outDir: string, opts: { recordsOnly?: boolean } = {}): Attempt[] {
  const out: Attempt[] = [];
  for (const s of stages) {
    const path = stageFile(s, outDir, 'compute.json', opts);
    if (!path) continue;
    const { attempts } = readJsonFile<{ attempts?: Array<{ endedAt?: unknown; seconds?: unknown }> }>(path, 'stage compute record');
    for (const a of attempts ?? []) {
      const end = typeof a.endedAt === 'string' ? Date.parse(a.endedAt) : NaN;
      const seconds = typeof a.seconds === 'number' ? a.seconds : NaN;
      if (Number.isFinite(end) && Number.isFinite(seconds) && seconds >= 0) out.push({ seed: s.instance.seed, start: end - seconds * 1000, end });
    }
  }
  return out;
}

/** Hours during which at least one of the attempts ran (the union of their intervals). */
export function busyHours(attempts: readonly Attempt[]): number {
  const sorted = [...attempts].sort((a, b) => a.start - b.start);
  let total = 0;
  let from = -Infinity;
  let to = -Infinity;
  for (const a of sorted) {
    if (a.start > to) {
      if (to > from) total += to - from;
      from = a.start;
      to = a.end;
    } else to = Math.max(to, a.end);
  }
  if (to > from) total += to - from;
  return total / 3_600_000;
}

export interface ComputeRow {
  id: string;
  seed: number | null;
  kind: string;
  wallSeconds: number | null;
}

const hours = (s: number) => (s / 3600).toFixed(2);

/** A markdown section, or null when no row has a wall time; `attempts` adds the busy wall time per seed and in all. */
export function computeSection(rows: readonly ComputeRow[], attempts: readonly Attempt[] = []): string | null {
  const stages = new Map<string, ComputeRow & { wallSeconds: number }>();
  for (const r of rows) {
    const key = instanceIdOf(r.id);
    if (r.wallSeconds === null || r.wallSeconds === undefined || !Number.isFinite(r.wallSeconds) || stages.has(key)) continue;
    stages.set(key, { ...r, wallSeconds: r.wallSeconds });
  }
  if (!stages.size) return null;
  const list = [...stages.values()];
  const seeds = [...new Set(list.map((s) => s.seed))].sort((a, b) => (a ?? -1) - (b ?? -1));
  const kinds = [...new Set(list.map((s) => s.kind))];
  const sum = (xs: ReadonlyArray<{ wallSeconds: number }>) => xs.reduce((a, x) => a + x.wallSeconds, 0);
  const label = (seed: number | null) => (seed === null ? '-' : String(seed));
  const busy = attempts.length > 0;
  const busyCell = (of: readonly Attempt[]) => (busy ? ` ${of.length ? busyHours(of).toFixed(2) : '-'} |` : '');
  const head = `| seed | stages | ${kinds.map((k) => `${k} h`).join(' | ')} | all h |${busy ? ' busy wall h |' : ''}\n|---|---|${kinds.map(() => '---|').join('')}---|${busy ? '---|' : ''}`;
  const body = seeds.map((seed) => {
    const of = list.filter((s) => s.seed === seed);
    return `| ${label(seed)} | ${of.length} | ${kinds.map((k) => hours(sum(of.filter((s) => s.kind === k)))).join(' | ')} | ${hours(sum(of))} |${busyCell(attempts.filter((a) => a.seed === seed))}`;
  });
  if (seeds.length > 1)
    body.push(
      `| all | ${list.length} | ${kinds.map((k) => hours(sum(list.filter((s) => s.kind === k)))).join(' | ')} | ${hours(sum(list))} |${busyCell(attempts)}`,
    );
  return [
    '## Compute',
    '',
    `Wall time of the stages done (each over its attempts; a killed attempt is not counted), summed per seed and stage kind. Stages run side by side with \`--jobs 2\`, so a session takes less elapsed time than these sums.${busy ? " Busy wall: the time during which at least one of the stages ran (the union of the attempts, from each attempt's end and length in compute.json): the study's own wall time, without the gaps between sessions; seeds run side by side share it, so the seeds' figures may add up to more than all." : ''}`,
    '',
    head,
    ...body,
    '',
  ].join('\n');
}
