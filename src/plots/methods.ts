/**
 * The sparsity-methods figure: test BLEU against the bytes of the weights file (left) and against the
 * decode time of the fixed batch (right: the decode bench's CPU seconds when every row has them, else the
 * wall seconds each export stage measured), one series per method (a method's rows joined in order of
 * bytes, e.g. two window sizes), and the unpruned baseline's BLEU as a dashed reference line on both
 * panels. Rows come from an experiment report's methods.csv (src/experiments/methods-table.ts).
 */
import { type FigureSpec, SERIES_COLORS, type Trace, axis, baseLayout, columnDomains, panelAxes, setAxis } from './figure.js';

/** One row of methods.csv. */
export interface MethodRow {
  stage: string;
  method: string;
  engine: string;
  fineTuneSteps: number;
  bleu: number;
  chrf: number | null;
  params: number;
  nonZeroParams: number;
  activeParams: number;
  modelBytes: number;
  ffnFlopsPerToken: number;
  attnFlopsPerToken: number;
  attnProductShare: number;
  decodeSeconds: number;
  /** the decode bench's best wall and CPU seconds for the same batch (experiments/methods-bench.ts), null without one */
  benchSeconds: number | null;
  benchCpuSeconds: number | null;
  outputTokens: number | null;
  /** test BLEU minus the float row's (the unchanged baseline) and minus the tuned control's (the same fine-tuning, nothing made sparse), with their paired-bootstrap p; null where that row or the translations are missing */
  vsFloat: number | null;
  pVsFloat: number | null;
  vsTuned: number | null;
  pVsTuned: number | null;
  moeMaxLoadRatio: number | null;
  moeDropped: number | null;
  description: string;
}

/** The series a row belongs to. */
export type SeriesOf = (r: MethodRow) => string;

/** The default series: the method with its window sizes left out (`local(8)+sliding(8)` and `local(16)+sliding(16)` are one), ORT rows apart. */
export function methodSeries(r: MethodRow): string {
  return `${r.method.replace(/\((\d+)\)/g, '(w)')}${r.engine === 'onnx' ? ' (ORT)' : ''}`;
}

/** Pixels a legend entry takes in this figure, and the figure's height for n series: its plot area (the height less baseLayout's top and bottom margins) holds every entry. */
export const LEGEND_ENTRY_PX = 30;
const MIN_HEIGHT = 540;
export function figureHeight(series: number): number {
  const { t = 0, b = 0 } = baseLayout('', 0, 0).margin ?? {};
  return Math.max(MIN_HEIGHT, t + b + LEGEND_ENTRY_PX * series);
}

/**
 * `reference`: the row whose BLEU is the reference line (default: the row of method `float`, engine tfjs).
 * `seriesOf`: how rows group into series (default: methodSeries).
 */
export function bleuVsCostFigure(rows: readonly MethodRow[], opts: { title?: string; reference?: MethodRow | null; seriesOf?: SeriesOf } = {}): FigureSpec {
  const seriesOf = opts.seriesOf ?? methodSeries;
  const reference = opts.reference === undefined ? (rows.find((r) => r.method === 'float' && r.engine !== 'onnx') ?? null) : opts.reference;
  const groups = new Map<string, MethodRow[]>();
  for (const r of rows) if (Number.isFinite(r.bleu)) groups.set(seriesOf(r), [...(groups.get(seriesOf(r)) ?? []), r]);
  const [left, right] = [panelAxes(0), panelAxes(1)];
  const fromBench = rows.length > 0 && rows.every((r) => typeof r.benchCpuSeconds === 'number');
  const time = (r: MethodRow) => (fromBench ? r.benchCpuSeconds! : r.decodeSeconds);
  const symbols = ['circle', 'square', 'diamond', 'triangle-up', 'x', 'cross', 'star', 'hexagon', 'pentagon', 'triangle-down', 'star-square', 'hourglass'];
  const data: Trace[] = [];
  let i = 0;
  for (const [name, rs] of groups) {
    const sorted = [...rs].sort((a, b) => a.modelBytes - b.modelBytes);
    const color = SERIES_COLORS[i % SERIES_COLORS.length]!;
    const marker = { size: 10, color, symbol: symbols[i % symbols.length] };
    const text = sorted.map((r) => `${r.stage} (${r.method}${r.engine === 'onnx' ? ', ORT' : ''}, ${r.fineTuneSteps} fine-tuning steps)`);
    const mode = sorted.length > 1 ? 'lines+markers' : 'markers';
    data.push({
      type: 'scatter',
      mode,
      name,
      legendgroup: name,
      x: sorted.map((r) => r.modelBytes / 1e6),
      y: sorted.map((r) => r.bleu),
      text,
      xaxis: left.x,
      yaxis: left.y,
      marker,
      line: { color, width: 1 },
      hovertemplate: '%{text}<br>%{x:.2f} MB: BLEU %{y:.2f}<extra></extra>',
    });
    const byTime = [...rs].sort((a, b) => time(a) - time(b));
    data.push({
      type: 'scatter',
      mode,
      name,
      legendgroup: name,
      showlegend: false,
      x: byTime.map(time),
      y: byTime.map((r) => r.bleu),
      text: byTime.map((r) => `${r.stage} (${r.method})`),
      xaxis: right.x,
      yaxis: right.y,
      marker,
      line: { color, width: 1 },
      hovertemplate: '%{text}<br>%{x:.2f} s: BLEU %{y:.2f}<extra></extra>',
    });
    i++;
  }
  // the legend lists one entry per series beside the panels (about 30 px each at this font and marker
  // size): the figure grows with the series so that none is cut off (18 rows make 17 series)
  const layout = baseLayout(opts.title ?? 'Test BLEU against size and decode time, one series per method', 1200, figureHeight(groups.size));
  const [d0, d1] = columnDomains(2, 0.08);
  setAxis(layout, left.xKey, axis('weights file (MB)', { domain: d0, rangemode: 'tozero' }));
  setAxis(layout, left.yKey, axis('test BLEU', { anchor: left.x }));
  setAxis(
    layout,
    right.xKey,
    axis(fromBench ? 'decode CPU time of the fixed batch, decode bench (s)' : 'decode time of the fixed batch, measured by each stage (s)', {
      domain: d1,
      rangemode: 'tozero',
      anchor: right.y,
    }),
  );
  setAxis(layout, right.yKey, axis('test BLEU', { anchor: right.x, matches: left.y }));
  if (reference) {
    const line = (ax: typeof left) => ({
      type: 'line' as const,
      xref: ax.xDomain,
      yref: ax.y,
      x0: 0,
      x1: 1,
      y0: reference.bleu,
      y1: reference.bleu,
      line: { dash: 'dash' as const, color: '#888888', width: 1.5 },
    });
    layout.shapes = [line(left), line(right)];
    layout.annotations = [
      {
        text: `unpruned baseline ${reference.bleu.toFixed(2)}`,
        showarrow: false,
        xref: left.xDomain,
        yref: left.y,
        x: 0.02,
        y: reference.bleu,
        xanchor: 'left',
        yanchor: 'bottom',
        font: { color: '#666666' },
      },
    ];
  }
  return { data, layout };
}
