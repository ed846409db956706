import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Attempt, busyHours, computeSection, stageAttempts } from './compute-summary.js';
import type { ResolvedStage } from './stage.js';

describe('computeSection', () => {
  const rows = [
    { id: 'baseline[seed=1]', seed: 1, kind: 'train', wallSeconds: 3600 },
    { id: 'l0[lambda=0.5,seed=1]', seed: 1, kind: 'prune', wallSeconds: 900 },
    // the binarised row and the importance steps share their stage's time: counted once
    { id: 'l0[lambda=0.5,seed=1]#binarised', seed: 1, kind: 'prune', wallSeconds: 900 },
    { id: 'imp[seed=1]#step-01', seed: 1, kind: 'prune', wallSeconds: 360 },
    { id: 'imp[seed=1]#step-02', seed: 1, kind: 'prune', wallSeconds: 360 },
    { id: 'baseline[seed=2]', seed: 2, kind: 'train', wallSeconds: 5400 },
    { id: 'an[seed=2]', seed: 2, kind: 'analyze', wallSeconds: 720 },
    // a stage measured before wall times were recorded
    { id: 'old[seed=2]', seed: 2, kind: 'prune', wallSeconds: null },
  ];

  it('sums each stage once per seed and kind, and in all', () => {
    const md = computeSection(rows)!;
    const lines = md.split('\n').filter((l) => l.startsWith('| '));
    expect(lines[0]).toBe('| seed | stages | train h | prune h | analyze h | all h |');
    // seed 1: 1 h train, (900 + 360) s prune; seed 2: 1.5 h train, 0.2 h analyze
    expect(lines[1]).toBe(`| 1 | 3 | 1.00 | ${((900 + 360) / 3600).toFixed(2)} | 0.00 | ${((3600 + 900 + 360) / 3600).toFixed(2)} |`);
    expect(lines[2]).toBe('| 2 | 2 | 1.50 | 0.00 | 0.20 | 1.70 |');
    expect(lines[3]).toBe(`| all | 5 | 2.50 | ${((900 + 360) / 3600).toFixed(2)} | 0.20 | ${((3600 + 900 + 360 + 5400 + 720) / 3600).toFixed(2)} |`);
  });

  it('is null without wall times, and has no "all" row for one seed', () => {
    expect(computeSection(rows.map((r) => ({ ...r, wallSeconds: null })))).toBeNull();
    const one = computeSection(rows.filter((r) => r.seed === 1))!;
    expect(one).not.toContain('| all |');
  });

  const h = 3_600_000;
  const at = (seed: number, startH: number, endH: number): Attempt => ({ seed, start: startH * h, end: endH * h });

  it('busy wall time is the union of the attempts: overlaps once, gaps between sessions not at all', () => {
    // seed 1: 0-2 h and 1-3 h overlap (3 h busy), then a session later 10-11 h; seed 2 inside 2.5-4 h
    const attempts = [at(1, 0, 2), at(1, 1, 3), at(1, 10, 11), at(2, 2.5, 4)];
    expect(busyHours(attempts.filter((a) => a.seed === 1))).toBeCloseTo(4, 12);
    expect(busyHours(attempts.filter((a) => a.seed === 2))).toBeCloseTo(1.5, 12);
    expect(busyHours(attempts)).toBeCloseTo(5, 12); // 0-4 and 10-11
    expect(busyHours([])).toBe(0);
    // nested and touching intervals
    expect(busyHours([at(1, 0, 5), at(1, 1, 2), at(1, 5, 6)])).toBeCloseTo(6, 12);
    const md = computeSection(rows, attempts)!;
    const lines = md.split('\n').filter((l) => l.startsWith('| '));
    expect(lines[0]).toBe('| seed | stages | train h | prune h | analyze h | all h | busy wall h |');
    expect(lines[1]!.endsWith('| 4.00 |')).toBe(true);
    expect(lines[2]!.endsWith('| 1.50 |')).toBe(true);
    expect(lines[3]!.endsWith('| 5.00 |')).toBe(true);
    expect(md).toContain("the study's own wall time");
  });

  it("reads each stage's attempts from its run folder when it is done there, else from its committed record", () => {
    const dir = mkdtempSync(join(tmpdir(), 'heads-compute-'));
    const out = join(dir, 'results');
    const stage = (id: string, seed: number, name: string) =>
      ({ instance: { id, seed, spec: { kind: 'prune' } }, parent: null, folder: join(dir, 'runs', name), hash: `h-${name}` }) as unknown as ResolvedStage;
    const a = stage('a[seed=1]', 1, 'a');
    const b = stage('b[seed=1]', 1, 'b');
    const c = stage('c[seed=1]', 1, 'c');
    // a: done here; b: only its record; c: neither (not counted)
    mkdirSync(a.folder, { recursive: true });
    writeFileSync(join(a.folder, 'stage.json'), JSON.stringify({ hash: 'h-a' }));
    writeFileSync(join(a.folder, 'compute.json'), JSON.stringify({ attempts: [{ endedAt: '2026-12-02T10:00:00.000Z', seconds: 1800 }] }));
    mkdirSync(join(out, 'stages', 'b'), { recursive: true });
    writeFileSync(
      join(out, 'stages', 'b', 'compute.json'),
      JSON.stringify({
        attempts: [
          { endedAt: '2026-12-02T10:15:00.000Z', seconds: 1800 },
          { endedAt: 'garbage', seconds: 5 },
        ],
      }),
    );
    const attempts = stageAttempts([a, b, c], out);
    expect(attempts).toEqual([
      { seed: 1, start: Date.parse('2026-12-02T09:30:00.000Z'), end: Date.parse('2026-12-02T10:00:00.000Z') },
      { seed: 1, start: Date.parse('2026-12-02T09:45:00.000Z'), end: Date.parse('2026-12-02T10:15:00.000Z') },
    ]);
    expect(busyHours(attempts)).toBeCloseTo(0.75, 12);
  });
});
