import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attentionMapFigure, figureHtml, rolesMap, scoreHeatmap, scoreOverview, writeFigure } from './figures.js';
import { scoreColumn } from './report.js';
import { sampleReport } from './test-fixtures.js';

describe('figure builders', () => {
  it('a score heatmap is layers x ORIGINAL heads, empty where the model has no head', () => {
    const r = sampleReport();
    delete r.heads['enc-self.0.0']; // as in a pruned model
    const fig = scoreHeatmap(r, scoreColumn('importance_per_token'));
    expect(fig.data).toHaveLength(1);
    expect(fig.data[0]!.z).toEqual([[null, 0.5]]);
    expect(fig.data[0]!.x).toEqual([0, 1]);
    expect((fig.layout.xaxis as { title: { text: string } }).title.text).toBe('enc-self: head');
  });

  it('the overview has one panel per score and attention type', () => {
    const r = sampleReport();
    const scores = ['importance_per_token', 'importance_per_token_l2', 'importance_per_batch'].map(scoreColumn);
    const fig = scoreOverview(r, scores);
    expect(fig.data).toHaveLength(3);
    expect(fig.data.map((d) => d.yaxis)).toEqual(['y', 'y2', 'y3']);
    expect(fig.data[2]!.z).toEqual([[0.05, 0.25]]); // per-batch = per-token / 2 in the sample
  });

  it('the roles map colours each head by its role and labels it', () => {
    const fig = rolesMap(sampleReport());
    expect(fig.data[0]!.z).toEqual([[1.5, 1.5]]); // both sample heads are positional
    expect(fig.data[0]!.text).toEqual([['positional -1', 'positional -1']]);
  });

  it('an attention map has the tokens as tick labels', () => {
    const fig = attentionMapFigure([{ sentence: 3, key: 'enc-self.0.1', queryTokens: ['▁a', '</s>'], keyTokens: ['▁a', '</s>'], weights: [[0.2, 0.8], [0.5, 0.5]] }]);
    expect(fig.data[0]!.z).toEqual([[0.2, 0.8], [0.5, 0.5]]);
    expect((fig.layout.xaxis as { ticktext: string[] }).ticktext).toEqual(['▁a', '&lt;/s&gt;']); // escaped: plotly reads labels as HTML
  });

  it('the standalone page inlines plotly once and cannot be closed early by a token like </script>', () => {
    const fig = attentionMapFigure([{ sentence: 0, key: 'enc-self.0.0', queryTokens: ['</script>'], keyTokens: ['</s>'], weights: [[1]] }]);
    const html = figureHtml(fig, 'x');
    // booleans, not toContain: a failure would print the 4.8 MB page
    expect(html.split('</script>')).toHaveLength(3); // the plotly bundle and the figure script
    expect(html.includes('\\u003cextra>')).toBe(true); // every '<' inside the figure JSON is escaped
    expect(html.includes('&lt;/script&gt;')).toBe(true);
    expect(html.includes('(function(){var fig=')).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'heads-fig-'));
    const paths = writeFigure(dir, 'a', fig);
    expect(JSON.parse(readFileSync(paths.json, 'utf8'))).toEqual(fig);
    expect(existsSync(paths.html!)).toBe(true);
    expect(writeFigure(dir, 'b', fig, { isHtml: false }).html).toBeNull();
    expect(existsSync(join(dir, 'b.html'))).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });
});
