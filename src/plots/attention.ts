/**
 * Attention maps of one sentence: for each chosen head a heatmap of its weights, query tokens down the
 * side and key tokens along the top (both BPE pieces), white = 0 to dark blue = 1. Coordinates are token
 * positions, so repeated tokens stay apart; the tokens are the tick labels.
 */
import { parseHeadKey } from '../config/head-id.js';
import type { AttentionMapData } from './readers.js';
import { type FigureSpec, MAX_PANELS, type Trace, axis, baseLayout, columnDomains, panelAxes, panelTitle, setAxis } from './figure.js';

/** Which tokens a head's queries and keys are, for axis titles. */
function sides(key: string): { query: string; key: string } {
  switch (parseHeadKey(key)?.stack) {
    case 'enc-self':
      return { query: 'source token (query)', key: 'source token (key)' };
    case 'dec-self':
      return { query: 'target prefix token (query)', key: 'target prefix token (key)' };
    case 'dec-enc':
      return { query: 'target prefix token (query)', key: 'source token (key)' };
    default:
      return { query: 'query token', key: 'key token' };
  }
}

/** plotly.js reads labels as a small HTML subset: `</s>` would vanish as a tag. */
export function escapeLabel(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** White (0) to dark blue (1): the weight reads as ink on paper. */
const WEIGHT_COLORSCALE: Array<[number, string]> = [
  [0, '#ffffff'],
  [0.2, '#deebf7'],
  [0.4, '#9ecae1'],
  [0.6, '#4292c6'],
  [0.8, '#2171b5'],
  [1, '#08306b'],
];

export interface AttentionMapOptions {
  title?: string;
  /** write weights >= this into the cells (default: no numbers) */
  labelAbove?: number;
}

/** Side-by-side attention heatmaps, one per map (at most 9). */
export function attentionMapFigure(maps: AttentionMapData | readonly AttentionMapData[], opts: AttentionMapOptions = {}): FigureSpec {
  const list = (Array.isArray(maps) ? maps : [maps]) as readonly AttentionMapData[];
  if (list.length > MAX_PANELS) throw new RangeError(`attentionMapFigure: at most ${MAX_PANELS} maps per figure, got ${list.length}`);
  const longest = Math.max(2, ...list.map((m) => Math.max(m.keyTokens.length, m.queryTokens.length)));
  const cell = Math.max(16, Math.min(30, 520 / longest));
  const panelW = longest * cell + 150; // the cells, plus room for the next panel's token labels and title
  const width = Math.round(Math.max(520, list.length * panelW + 140));
  const domains = columnDomains(Math.max(1, list.length), list.length > 1 ? Math.min(0.3, 160 / width) : 0);
  const data: Trace[] = list.map((m, i) => {
    const ax = panelAxes(i);
    const threshold = opts.labelAbove;
    return {
      type: 'heatmap',
      z: m.weights,
      x: m.keyTokens.map((_, k) => k),
      y: m.queryTokens.map((_, q) => q),
      xaxis: ax.x,
      yaxis: ax.y,
      zmin: 0,
      zmax: 1,
      colorscale: WEIGHT_COLORSCALE,
      showscale: i === list.length - 1,
      colorbar: { title: { text: 'attention weight', side: 'right' }, thickness: 14 },
      xgap: 1,
      ygap: 1,
      customdata: m.queryTokens.map((q) => m.keyTokens.map((k) => `${escapeLabel(q)} → ${escapeLabel(k)}`)),
      hovertemplate: `${m.key}<br>%{customdata}: %{z:.3f}<extra></extra>`,
      ...(threshold !== undefined
        ? { text: m.weights.map((row) => row.map((w) => (w >= threshold ? w.toFixed(2) : ''))), texttemplate: '%{text}', textfont: { size: 9 } }
        : {}),
      name: m.key,
    };
  });
  const sentence = list[0]?.sentence;
  const about =
    typeof sentence === 'number'
      ? ` (sentence ${sentence})`
      : typeof sentence === 'string'
        ? ` of "${escapeLabel(sentence.length > 60 ? `${sentence.slice(0, 57)}...` : sentence)}"`
        : '';
  const layout = baseLayout(opts.title ?? `Attention${about}`, width, Math.round(Math.max(420, longest * cell + 230)));
  layout.margin = { l: 110, r: 40, t: 80, b: 130 };
  layout.annotations = [];
  list.forEach((m, i) => {
    const ax = panelAxes(i);
    const s = sides(m.key);
    setAxis(
      layout,
      ax.xKey,
      axis(s.key, {
        domain: domains[i],
        anchor: ax.y,
        tickmode: 'array',
        tickvals: m.keyTokens.map((_, k) => k),
        ticktext: m.keyTokens.map(escapeLabel),
        tickangle: -60,
        showgrid: false,
        zeroline: false,
        tickfont: { size: 11 },
      }),
    );
    setAxis(
      layout,
      ax.yKey,
      axis(s.query, {
        anchor: ax.x,
        tickmode: 'array',
        tickvals: m.queryTokens.map((_, q) => q),
        ticktext: m.queryTokens.map(escapeLabel),
        autorange: 'reversed',
        showgrid: false,
        zeroline: false,
        tickfont: { size: 11 },
      }),
    );
    layout.annotations!.push(panelTitle(`<b>${m.key}</b>`, ax, 1.01));
  });
  return { data, layout };
}
