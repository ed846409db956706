import { LEGEND_ENTRY_PX, type MethodRow, bleuVsCostFigure, figureHeight, methodSeries } from './methods.js';

function row(stage: string, method: string, bytes: number, bleu: number, engine = 'tfjs'): MethodRow {
  return {
    stage,
    method,
    engine,
    fineTuneSteps: 0,
    bleu,
    chrf: null,
    params: 1,
    nonZeroParams: 1,
    activeParams: 1,
    modelBytes: bytes,
    ffnFlopsPerToken: 0,
    attnFlopsPerToken: 0,
    attnProductShare: 1,
    decodeSeconds: bytes / 1e6,
    benchSeconds: null,
    benchCpuSeconds: null,
    outputTokens: null,
    vsFloat: null,
    pVsFloat: null,
    vsTuned: null,
    pVsTuned: null,
    moeMaxLoadRatio: null,
    moeDropped: null,
    description: '',
  };
}

describe('bleuVsCostFigure', () => {
  // the sparsity study's 18 rows make 17 series (two window sizes share one); session 9's figure cut the last three off its legend
  const methods = [
    'float',
    'heads',
    'magnitude',
    'ffn',
    'int8',
    'heads+int8',
    'tuned',
    'local(8)+sliding(8)',
    'local(16)+sliding(16)',
    'block(8)+block(8)',
    'moe-top1x4',
    'moe-top2x4',
    'magnitude-gradual',
    'ffn-tuned',
    'qat+int8',
    'float',
    'int8-dynamic',
    'heads+magnitude',
  ];
  const rows = methods.map((m, i) => row(`r${i}`, m, 1e6 * (i + 1), 20 + i / 10, i === 15 || i === 16 ? 'onnx' : 'tfjs'));

  it('gives every series its own legend entry, a distinct colour-and-symbol pair, and room for all of them', () => {
    const fig = bleuVsCostFigure(rows);
    const legend = fig.data.filter((t) => t.showlegend !== false);
    const names = new Set(rows.map(methodSeries));
    expect(names.size).toBe(17);
    expect(legend.map((t) => t.name)).toEqual([...names]);
    const pairs = new Set(legend.map((t) => `${(t.marker as { color: string }).color}/${(t.marker as { symbol: string }).symbol}`));
    expect(pairs.size).toBe(legend.length);
    const { height, margin } = fig.layout as { height: number; margin: { t: number; b: number } };
    expect(height - margin.t - margin.b).toBeGreaterThanOrEqual(LEGEND_ENTRY_PX * legend.length);
  });

  it('keeps the default height for a few series and grows by one entry per series beyond', () => {
    expect(figureHeight(3)).toBe(540);
    expect(figureHeight(30) - figureHeight(29)).toBe(LEGEND_ENTRY_PX);
    expect((bleuVsCostFigure(rows.slice(0, 3)).layout as { height: number }).height).toBe(540);
  });

  it('joins the rows of one method into one series, in order of bytes, on both panels', () => {
    const fig = bleuVsCostFigure([row('a', 'local(16)+sliding(16)', 3e6, 21), row('b', 'local(8)+sliding(8)', 2e6, 22), row('f', 'float', 1e6, 20)]);
    const local = fig.data.filter((t) => t.name === 'local(w)+sliding(w)');
    expect(local).toHaveLength(2);
    expect(local[0]!.x).toEqual([2, 3]);
    expect(local[0]!.y).toEqual([22, 21]);
    expect((fig.layout.shapes as Array<{ y0: number }>)[0]!.y0).toBe(20);
  });
});
