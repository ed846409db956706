/**
 * What a study cost: the wall time of its stages (each over its attempts, `compute.json`), per stage kind
 * and per seed, and in all. Rows that share a stage (an L0 stage's #binarised row, an importance stage's
 * steps) count it once. With `--jobs 2` two stages run side by side, so the elapsed time of a session is
 * less than these sums (at best half); each stage's own figure is its row's `wall min`.
 */
import { instanceIdOf } from './stage.js';

export interface ComputeRow {
  id: string;
  seed: number | null;
  kind: string;
  wallSeconds: number | null;
}

const hours = (s: number) => (s / 3600).toFixed(2);

/** A markdown section, or null when no row has a wall time. */
export function computeSection(rows: readonly ComputeRow[]): string | null {
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
  const head = `| seed | stages | ${kinds.map((k) => `${k} h`).join(' | ')} | all h |\n|---|---|${kinds.map(() => '---|').join('')}---|`;
  const body = seeds.map((seed) => {
    const of = list.filter((s) => s.seed === seed);
    return `| ${label(seed)} | ${of.length} | ${kinds.map((k) => hours(sum(of.filter((s) => s.kind === k)))).join(' | ')} | ${hours(sum(of))} |`;
  });
  if (seeds.length > 1)
    body.push(`| all | ${list.length} | ${kinds.map((k) => hours(sum(list.filter((s) => s.kind === k)))).join(' | ')} | ${hours(sum(list))} |`);
  return [
    '## Compute',
    '',
    'Wall time of the stages done (each over its attempts; a killed attempt is not counted), summed per seed and stage kind. Stages run side by side with `--jobs 2`, so a session takes less elapsed time than these sums.',
    '',
    head,
    ...body,
    '',
  ].join('\n');
}
