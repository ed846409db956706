/**
 * The figure type every builder returns: a plotly.js spec `{ data, layout }` that is plain JSON (written
 * as `<name>.json`, drawn by the standalone HTML page, shown in notebooks), plus the shared styling: one
 * colour per attention type, axis titles with units, side-by-side and stacked panels.
 * Types come from @types/plotly.js; plotly.js itself is never imported in Node (it needs a DOM).
 */
import type { Layout, LayoutAxis, PlotData, XAxisName, YAxisName } from 'plotly.js';
import type { AttentionType } from '../config/head-id.js';

/**
 * One trace of a figure (scatter, heatmap, bar). Heatmap cell text is a 2-D array in plotly.js, which
 * @types/plotly.js (text: string | string[]) does not declare.
 */
export type Trace = Partial<PlotData> | (Omit<Partial<PlotData>, 'text'> & { type: 'heatmap'; text?: string[][] });
export type FigureLayout = Partial<Layout>;
export type AxisLayout = Partial<LayoutAxis>;

/** A plotly.js figure as plain JSON. */
export interface FigureSpec {
  data: Trace[];
  layout: FigureLayout;
}

/** Colours per attention type (colour-blind-safe Okabe-Ito blue, green, vermillion). */
export const ATTENTION_COLORS: Readonly<Record<AttentionType, string>> = {
  'enc-self': '#0072B2',
  'dec-self': '#009E73',
  'dec-enc': '#D55E00',
};

export const ATTENTION_LABELS: Readonly<Record<AttentionType, string>> = {
  'enc-self': 'encoder self-attention',
  'dec-self': 'decoder self-attention',
  'dec-enc': 'decoder-encoder attention',
};

/** Colours for several series (methods) on one plot: Okabe-Ito without the attention-type colours first. */
export const SERIES_COLORS: readonly string[] = ['#000000', '#E69F00', '#56B4E9', '#CC79A7', '#0072B2', '#D55E00', '#009E73', '#F0E442', '#999999'];

/** Default size of a single-panel figure in CSS pixels (also the PNG size at scale 1). */
export const DEFAULT_WIDTH = 900;
export const DEFAULT_HEIGHT = 500;

/** Layout fields every figure shares: white background, light grid, a readable font. */
export function baseLayout(title: string, width = DEFAULT_WIDTH, height = DEFAULT_HEIGHT): FigureLayout {
  return {
    title: { text: title, x: 0.02, xanchor: 'left' },
    width,
    height,
    font: { family: 'Helvetica, Arial, sans-serif', size: 13, color: '#222222' },
    paper_bgcolor: '#ffffff',
    plot_bgcolor: '#ffffff',
    margin: { l: 70, r: 30, t: 60, b: 60 },
  };
}

/** An axis with a title and a light grid. */
export function axis(title: string, extra: AxisLayout = {}): AxisLayout {
  return { title: { text: title }, gridcolor: '#e6e6e6', zerolinecolor: '#bbbbbb', linecolor: '#444444', showline: true, ticks: 'outside', ...extra };
}

/** Axis names of the i-th subplot (0-based): trace refs (`x2`) and layout keys (`xaxis2`). */
export interface PanelAxes {
  x: XAxisName;
  y: YAxisName;
  /** annotation / shape refs relative to the panel (`x2 domain`: 0..1 across the panel) */
  xDomain: XAxisName;
  yDomain: YAxisName;
  xKey: string;
  yKey: string;
}

/** plotly.js axis names go up to `x99`. */
export const MAX_PANELS = 99;

export function panelAxes(i: number): PanelAxes {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_PANELS) throw new RangeError(`panel ${i}: a figure has at most ${MAX_PANELS} panels`);
  const s = i === 0 ? '' : String(i + 1);
  // `x${2..99}` is an XAxisName; TypeScript cannot see that through String()
  return {
    x: `x${s}` as XAxisName,
    y: `y${s}` as YAxisName,
    xDomain: `x${s} domain` as XAxisName,
    yDomain: `y${s} domain` as YAxisName,
    xKey: `xaxis${s}`,
    yKey: `yaxis${s}`,
  };
}

/**
 * Set a layout axis by key (`xaxis12`): @types/plotly.js names only `xaxis`..`xaxis9` on Layout, while
 * plotly.js takes up to 99.
 */
export function setAxis(layout: FigureLayout, key: string, value: AxisLayout): void {
  (layout as Record<string, unknown>)[key] = value;
}

/** Domains of n side-by-side panels with a gap (fraction of the width) between them. */
export function columnDomains(n: number, gap = 0.08): Array<[number, number]> {
  const w = (1 - gap * (n - 1)) / n;
  return Array.from({ length: n }, (_, i) => [i * (w + gap), Math.min(1, i * (w + gap) + w)]);
}

/** Domains of n stacked panels, top first. */
export function rowDomains(n: number, gap = 0.1): Array<[number, number]> {
  const h = (1 - gap * (n - 1)) / n;
  return Array.from({ length: n }, (_, i) => {
    const top = 1 - i * (h + gap);
    return [Math.max(0, top - h), top];
  });
}

/** Width and height a figure asks for (the defaults when the layout names none). */
export function figureSize(fig: { layout?: unknown }): { width: number; height: number } {
  const l = fig.layout;
  const get = (k: string, d: number): number => {
    if (typeof l !== 'object' || l === null) return d;
    const v = (l as Record<string, unknown>)[k];
    return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : d;
  };
  return { width: get('width', DEFAULT_WIDTH), height: get('height', DEFAULT_HEIGHT) };
}

/** A paper-anchored note (e.g. "no dev BLEU logged") centred on a panel. */
export function panelNote(text: string, axes: PanelAxes): NonNullable<FigureLayout['annotations']>[number] {
  return { text, showarrow: false, xref: axes.xDomain, yref: axes.yDomain, x: 0.5, y: 0.5, font: { color: '#888888' } };
}

/** A panel's title, centred above it (`y` in the panel's domain; a font size where given). */
export function panelTitle(text: string, axes: PanelAxes, y = 1.02, size?: number): NonNullable<FigureLayout['annotations']>[number] {
  return {
    text,
    showarrow: false,
    xref: axes.xDomain,
    yref: axes.yDomain,
    x: 0.5,
    y,
    xanchor: 'center',
    yanchor: 'bottom',
    ...(size ? { font: { size } } : {}),
  };
}

/** Shorten a number for cell labels: 3 significant digits, no exponent for ordinary magnitudes. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}
