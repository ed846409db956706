/**
 * Claim (d)'s section: counts of the baseline's encoder heads past each role threshold (the thresholds
 * the analysis recorded, inclusive for positional, strict for rare-token as roles.ts decides them), the
 * closest head of each role, decoder heads ignored, mean ± sd over seeds, and head reports read from the
 * run folder or, without it, from the committed stage record.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEAD_REPORT_FORMAT, HEAD_REPORT_VERSION, type HeadReport } from '../analysis/report.js';
import { DEFAULT_ROLE_OPTIONS } from '../analysis/roles.js';
import { baselineRoleReports, rolesSection, seedRoleRow } from './roles-summary.js';
import type { ResolvedStage } from './stage.js';

type Head = { stack: string; positional: number; offset: number; rare: number };

function report(heads: Record<string, Head>, sentences = 300): HeadReport {
  return {
    format: HEAD_REPORT_FORMAT,
    version: HEAD_REPORT_VERSION,
    data: { sentences },
    settings: { roles: { ...DEFAULT_ROLE_OPTIONS } },
    heads: Object.fromEntries(
      Object.entries(heads).map(([key, h]) => [
        key,
        {
          stack: h.stack,
          layer: Number(key.split('.')[1]),
          head: Number(key.split('.')[2]),
          attention: { queries: 100 },
          roles: {
            positional: { isPositional: h.positional >= 0.9, offset: h.offset, fraction: h.positional },
            rare: h.stack === 'enc-self' ? { isRare: h.rare > 0.5, rate: h.rare, top2Rate: h.rare, chanceRate: 0.1, queries: 100 } : null,
            syntactic: null,
            labels: [],
          },
        },
      ]),
    ),
  } as unknown as HeadReport;
}

const seed1 = report({
  'enc-self.0.0': { stack: 'enc-self', positional: 0.95, offset: -1, rare: 0.3 },
  'enc-self.0.1': { stack: 'enc-self', positional: 0.2, offset: 1, rare: 0.51 },
  'enc-self.1.0': { stack: 'enc-self', positional: 0.9, offset: 1, rare: 0.5 },
  'enc-self.1.1': { stack: 'enc-self', positional: 0.899, offset: -1, rare: 0.1 },
  // a decoder head past every threshold: not an encoder head, not counted
  'dec-self.0.0': { stack: 'dec-self', positional: 0.99, offset: -1, rare: 0.9 },
});
const seed2 = report({
  'enc-self.0.0': { stack: 'enc-self', positional: 0.6, offset: 1, rare: 0.2 },
  'enc-self.0.1': { stack: 'enc-self', positional: 0.7, offset: -1, rare: 0.45 },
  'enc-self.1.0': { stack: 'enc-self', positional: 0.1, offset: 1, rare: 0.05 },
  'enc-self.1.1': { stack: 'enc-self', positional: 0.3, offset: 1, rare: 0.4 },
});

describe('head roles in the baseline (claim d)', () => {
  it('counts encoder heads past the recorded thresholds and names the closest head of each role', () => {
    const a = seedRoleRow({ seed: 1, stage: 'an[seed=1]', stageName: 'an', source: 'x', report: seed1 });
    expect(a).toMatchObject({ heads: 4, positional: 2, rare: 1, syntactic: null });
    expect(a.bestPositional).toEqual({ key: 'enc-self.0.0', value: 0.95, detail: 'offset -1' });
    expect(a.bestRare).toEqual({ key: 'enc-self.0.1', value: 0.51, detail: 'chance 10.0%' });
    // no head reaches a role: the counts are 0 and the closest heads are still named
    const b = seedRoleRow({ seed: 2, stage: 'an[seed=2]', stageName: 'an', source: 'y', report: seed2 });
    expect(b).toMatchObject({ heads: 4, positional: 0, rare: 0 });
    expect(b.bestPositional!.key).toBe('enc-self.0.1');
    expect(b.bestRare!.value).toBe(0.45);

    const md = rolesSection([
      { seed: 1, stage: 'an[seed=1]', stageName: 'an', source: 'x', report: seed1 },
      { seed: 2, stage: 'an[seed=2]', stageName: 'an', source: 'y', report: seed2 },
    ])!;
    const lines = md.split('\n').filter((l) => /^\| (\d|mean)/.test(l));
    expect(lines[0]).toBe('| 1 | 4 | 2 | enc-self.0.0 95.0% (offset -1) | 1 | enc-self.0.1 51.0% (chance 10.0%) | not tested | 300 | `x` |');
    expect(lines[1]).toBe('| 2 | 4 | 0 | enc-self.0.1 70.0% (offset -1) | 0 | enc-self.0.1 45.0% (chance 10.0%) | not tested | 300 | `y` |');
    // mean ± sd over the two seeds: positional counts 2, 0 -> 1.0 ± 1.4; best shares 95, 70 -> 82.5 ± 17.7
    const sd = (x: number, y: number) => Math.abs(x - y) / Math.SQRT2;
    expect(lines[2]).toBe(
      `| mean ± sd | 4.0 ± 0.0 (n=2) | 1.0 ± ${sd(2, 0).toFixed(1)} (n=2) | best 82.5 ± ${sd(95, 70).toFixed(1)} (n=2) % | 0.5 ± ${sd(1, 0).toFixed(1)} (n=2) | best 48.0 ± ${sd(51, 45).toFixed(1)} (n=2) % | not tested | - | - |`,
    );
    expect(md).toMatch(/Syntactic heads are not tested: the analysis had no CoNLL-U parses/);
    expect(md).toMatch(/at least 90\.0% of the queries; rare-token .* more than 50\.0%/);
    expect(rolesSection([])).toBeNull();
  });

  it('reads each baseline analysis from its run folder, else from the committed record, and skips analyses of pruned models', () => {
    const dir = mkdtempSync(join(tmpdir(), 'heads-roles-'));
    const out = join(dir, 'results');
    const base = { instance: { spec: { kind: 'train' }, id: 'base' }, parent: null, folder: join(dir, 'runs', 'base'), hash: 'b' } as unknown as ResolvedStage;
    const pruned = { instance: { spec: { kind: 'prune' }, id: 'l0' }, parent: base, folder: join(dir, 'runs', 'l0'), hash: 'p' } as unknown as ResolvedStage;
    const analyze = (id: string, seed: number, parent: ResolvedStage, folder: string) =>
      ({ instance: { spec: { kind: 'analyze' }, id, seed }, parent, folder, hash: 'h' }) as unknown as ResolvedStage;
    // seed 2's analysis is not in the runs folder: only its record (written by an earlier report) has it
    const rec = join(out, 'stages', 'an_seed=2_-abc');
    mkdirSync(rec, { recursive: true });
    writeFileSync(join(rec, 'head-report.json'), JSON.stringify(seed2));
    // seed 3's analysis has neither: left out (the section covers the analyses there are)
    const stages = [
      base,
      pruned,
      analyze('an[seed=2]', 2, base, join(dir, 'runs', 'an_seed=2_-abc')),
      analyze('an[seed=3]', 3, base, join(dir, 'runs', 'an_seed=3_-def')),
      analyze('an-l0', 1, pruned, join(dir, 'runs', 'an-l0')),
    ];
    // the pruned model's analysis has a record too: not a baseline's, never taken
    mkdirSync(join(out, 'stages', 'an-l0'), { recursive: true });
    writeFileSync(join(out, 'stages', 'an-l0', 'head-report.json'), JSON.stringify(seed1));
    let found = baselineRoleReports(stages, out);
    expect(found.map((f) => [f.stage, f.seed, f.source])).toEqual([['an[seed=2]', 2, join('stages', 'an_seed=2_-abc', 'head-report.json')]]);
    // seed 3 done in the runs folder (its marker carries the stage's hash): read from there, named by the
    // record the report writes for it (results.md reads the same on any machine)
    const run3 = join(dir, 'runs', 'an_seed=3_-def');
    mkdirSync(run3, { recursive: true });
    writeFileSync(join(run3, 'head-report.json'), JSON.stringify(seed1));
    writeFileSync(join(run3, 'stage.json'), JSON.stringify({ hash: 'h' }));
    found = baselineRoleReports(stages, out);
    expect(found.map((f) => [f.stage, f.source])).toEqual([
      ['an[seed=2]', join('stages', 'an_seed=2_-abc', 'head-report.json')],
      ['an[seed=3]', join('stages', 'an_seed=3_-def', 'head-report.json')],
    ]);
    expect(found[1]!.report.heads).toEqual(seed1.heads);
    expect(seedRoleRow(found[0]!)).toEqual(seedRoleRow({ seed: 2, stage: 'an[seed=2]', stageName: 'an', source: 'y', report: seed2 }));
    // a damaged record is an error naming the file, not a silently missing seed
    writeFileSync(join(rec, 'head-report.json'), JSON.stringify({ ...seed2, version: 99 }));
    expect(() => baselineRoleReports(stages, out)).toThrow(/an_seed=2_-abc\/head-report\.json: version: expected/);
  });
});
