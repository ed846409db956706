import { computeSection } from './compute-summary.js';

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
});
