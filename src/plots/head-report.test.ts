/**
 * The head report's figures (plots/head-report.ts, plots/roles.ts), as `heads analyze` writes them: per
 * score a layer x ORIGINAL head grid, the overview, the roles map, attention maps; which files are written.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCORE_COLUMNS, scoreColumn } from '../analysis/report.js';
import { sampleReport } from '../analysis/test-fixtures.js';
import { headReportFigures, writeHeadReportFigures } from './head-report.js';
import { roleOf, rolesMapFigure } from './roles.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-report-figs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const figureOf = (figs: ReturnType<typeof headReportFigures>, name: string) => figs.find((f) => f.name === name)!.fig;

describe('head report figures', () => {
  it('a score heatmap is layers x ORIGINAL heads, empty where the model has no head', () => {
    const r = sampleReport();
    delete r.heads['enc-self.0.0']; // as in a pruned model
    const fig = figureOf(headReportFigures(r, [scoreColumn('importance_per_token')]), 'heads-importance_per_token');
    expect(fig.data).toHaveLength(1);
    expect((fig.data[0] as { z: unknown }).z).toEqual([[null, 0.5]]);
    expect((fig.data[0] as { customdata: unknown }).customdata).toEqual([['enc-self.0.0', 'enc-self.0.1']]);
  });

  it('the overview has one panel per score and attention type; scores without values are left out', () => {
    const r = sampleReport();
    const scores = ['importance_per_token', 'importance_per_token_l2', 'importance_per_batch'].map(scoreColumn);
    const figs = headReportFigures(r, [...scores, ...SCORE_COLUMNS.filter((s) => Object.values(r.heads).every((e) => s.get(e) === null)).slice(0, 1)]);
    const fig = figureOf(figs, 'heads-overview');
    expect(fig.data.map((d) => (d as { yaxis: string }).yaxis)).toEqual(['y', 'y2', 'y3']);
    expect((fig.data[2] as { z: unknown }).z).toEqual([[0.05, 0.25]]); // per-batch = per-token / 2 in the sample
    expect(figs.filter((f) => f.isScore).map((f) => f.name)).toEqual(scores.map((s) => `heads-${s.name}`));
  });

  it('the roles map colours each head by its role and labels it', () => {
    const r = sampleReport();
    expect(Object.values(r.heads).map(roleOf)).toEqual(['positional', 'positional']);
    const fig = rolesMapFigure(r.heads, r.model.headsPerLayer, r.stacks);
    expect((fig.data[0] as { z: unknown }).z).toEqual([[1.5, 1.5]]); // role index 1 (positional) + 0.5
    expect((fig.data[0] as { text: unknown }).text).toEqual([['positional -1', 'positional -1']]);
    const several = { roles: { labels: ['a', 'b'], positional: { isPositional: true }, rare: { isRare: true }, syntactic: null } };
    expect(roleOf(several)).toBe('several');
    expect(roleOf({ roles: { labels: [] } })).toBe('none');
  });

  it('writes JSON for every figure, standalone HTML for all but the per-score heatmaps unless asked', async () => {
    const r = sampleReport();
    const maps = [
      {
        sentence: 3,
        key: 'enc-self.0.1',
        queryTokens: ['▁a', '</s>'],
        keyTokens: ['▁a', '</s>'],
        weights: [
          [0.2, 0.8],
          [0.5, 0.5],
        ],
      },
    ];
    await writeHeadReportFigures(join(dir, 'a'), r, [scoreColumn('importance_per_token')], maps);
    for (const f of [
      'heads-importance_per_token.json',
      'heads-overview.json',
      'heads-overview.html',
      'roles.json',
      'roles.html',
      'attention-sentence-3.json',
      'attention-sentence-3.html',
    ])
      expect({ f, exists: existsSync(join(dir, 'a', f)) }).toEqual({ f, exists: true });
    expect(existsSync(join(dir, 'a', 'heads-importance_per_token.html'))).toBe(false);
    const att = JSON.parse(readFileSync(join(dir, 'a', 'attention-sentence-3.json'), 'utf8')) as { layout: { xaxis: { ticktext: string[] } } };
    expect(att.layout.xaxis.ticktext).toEqual(['▁a', '&lt;/s&gt;']); // escaped: plotly reads labels as HTML
    await writeHeadReportFigures(join(dir, 'b'), r, [scoreColumn('importance_per_token')], [], { htmlPerScore: true });
    expect(existsSync(join(dir, 'b', 'heads-importance_per_token.html'))).toBe(true);
  });
});
