/**
 * Figures of the head analysis as plotly.js specs (plain JSON `{ data, layout }`), and a tiny writer
 * that stores each as `<name>.json` plus a standalone `<name>.html` with plotly.js inlined (works offline;
 * about 4.8 MB each). The builders are pure (report in, spec out) so they can move to src/plots later:
 * - a layer x head heatmap of one score, one panel per attention type, and an overview of every score;
 * - the roles map: one panel per attention type, each cell coloured by role and labelled;
 * - attention maps of one sentence for chosen heads (query tokens down, key tokens across).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { AttentionType } from '../config/head-id.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import type { HeadReport, ScoreColumn } from './report.js';
import type { AttentionMap } from './attention-pass.js';

/** A plotly figure as plain JSON. */
export interface FigureSpec {
  data: Array<Record<string, unknown>>;
  layout: Record<string, unknown>;
}

const PANEL_GAP = 0.06;

/** Plotly reads label text as a small HTML subset: `<s>`, `</s>`, `<unk>` would vanish as tags. */
export function plotlyText(s: string): string {
  return s.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
}

/** x/y axis names and domains for n side-by-side panels. */
function panels(n: number): Array<{ x: string; y: string; xKey: string; yKey: string; domain: [number, number] }> {
  const width = (1 - PANEL_GAP * (n - 1)) / n;
  return Array.from({ length: n }, (_, i) => {
    const suffix = i === 0 ? '' : String(i + 1);
    const start = i * (width + PANEL_GAP);
    return { x: `x${suffix}`, y: `y${suffix}`, xKey: `xaxis${suffix}`, yKey: `yaxis${suffix}`, domain: [start, Math.min(1, start + width)] };
  });
}

/** Layers x original heads of one stack, null where the model has no such head. */
function grid(report: HeadReport, stack: AttentionType, value: (key: string) => number | null): Array<Array<number | null>> {
  return report.model.headsPerLayer[stack].map((h, l) => Array.from({ length: h }, (_, head) => {
    const key = `${stack}.${l}.${head}`;
    return report.heads[key] ? value(key) : null;
  }));
}

/** Layer x head heatmap of one score, one panel per analysed attention type. */
export function scoreHeatmap(report: HeadReport, score: ScoreColumn): FigureSpec {
  const ps = panels(report.stacks.length);
  const data: Array<Record<string, unknown>> = [];
  const layout: Record<string, unknown> = {
    title: { text: plotlyText(`${score.label} — ${report.data.split} (${report.data.sentences} sentences)`) },
    width: Math.max(500, 320 * report.stacks.length),
    height: 420,
    annotations: [] as unknown[],
  };
  report.stacks.forEach((stack, i) => {
    const p = ps[i]!;
    const z = grid(report, stack, (k) => score.get(report.heads[k]!));
    data.push({
      type: 'heatmap',
      z,
      x: z[0]?.map((_, h) => h) ?? [],
      y: z.map((_, l) => l),
      xaxis: p.x,
      yaxis: p.y,
      colorscale: 'Viridis',
      showscale: i === report.stacks.length - 1,
      hovertemplate: `${stack} layer %{y} head %{x}: %{z:.4g}<extra></extra>`,
      text: z.map((row) => row.map((v) => (v === null ? '' : v.toPrecision(3)))),
      texttemplate: '%{text}',
    });
    layout[p.xKey] = { domain: p.domain, title: { text: `${stack}: head` }, dtick: 1, anchor: p.y };
    layout[p.yKey] = { title: { text: i === 0 ? 'layer' : '' }, dtick: 1, autorange: 'reversed', anchor: p.x };
  });
  return { data, layout };
}

/**
 * Every score at a glance: one row of small layer x head heatmaps per score (its name above the row),
 * one column per attention type, each panel on its own colour range (values in the cells and on hover).
 * Panels of a score that does not apply to an attention type (e.g. positional share of dec-enc) are blank.
 */
export function scoreOverview(report: HeadReport, scores: readonly ScoreColumn[]): FigureSpec {
  const nCols = report.stacks.length;
  const nRows = scores.length;
  const maxHeads = Math.max(1, ...report.stacks.map((s) => Math.max(0, ...report.model.headsPerLayer[s])));
  const maxLayers = Math.max(1, ...report.stacks.map((s) => report.model.headsPerLayer[s].length));
  const rowPx = 34 + 24 * maxLayers; // panel height + room for the row title
  const height = 110 + nRows * rowPx;
  const gapX = 0.04;
  const gapY = 30 / (nRows * rowPx); // the row title's share of the plot area
  const w = (1 - gapX * (nCols - 1)) / nCols;
  const h = (1 - gapY * nRows) / nRows;
  const data: Array<Record<string, unknown>> = [];
  const annotations: unknown[] = [];
  const layout: Record<string, unknown> = {
    title: { text: plotlyText(`Head scores — ${report.data.split} (${report.data.sentences} sentences): layer (down) x head (across)`) },
    width: Math.max(640, 60 + nCols * (40 + 52 * maxHeads)),
    height,
    annotations,
    margin: { t: 90, l: 40, r: 20, b: 30 },
  };
  report.stacks.forEach((stack, c) => annotations.push({ text: `<b>${stack}</b>`, showarrow: false, xref: 'paper', yref: 'paper', x: c * (w + gapX) + w / 2, y: 1, yshift: 4, xanchor: 'center', yanchor: 'bottom' }));
  scores.forEach((score, r) => {
    const yTop = 1 - r * (h + gapY) - gapY;
    annotations.push({ text: plotlyText(score.label), showarrow: false, xref: 'paper', yref: 'paper', x: 0, y: yTop, yshift: 2, xanchor: 'left', yanchor: 'bottom', font: { size: 12 } });
    report.stacks.forEach((stack, c) => {
      const i = r * nCols + c;
      const suffix = i === 0 ? '' : String(i + 1);
      const x0 = c * (w + gapX);
      const z = grid(report, stack, (k) => score.get(report.heads[k]!));
      const isEmpty = z.every((row) => row.every((v) => v === null));
      data.push({
        type: 'heatmap',
        z,
        x: z[0]?.map((_, hh) => hh) ?? [],
        y: z.map((_, l) => l),
        xaxis: `x${suffix}`,
        yaxis: `y${suffix}`,
        colorscale: 'Viridis',
        showscale: false,
        text: z.map((row) => row.map((v) => (v === null ? '' : v.toPrecision(2)))),
        texttemplate: '%{text}',
        textfont: { size: 9 },
        hovertemplate: `${plotlyText(score.name)}<br>${stack} layer %{y} head %{x}: %{z:.4g}<extra></extra>`,
      });
      layout[`xaxis${suffix}`] = { domain: [x0, Math.min(1, x0 + w)], dtick: 1, anchor: `y${suffix}`, showticklabels: r === nRows - 1, visible: !isEmpty };
      layout[`yaxis${suffix}`] = { domain: [Math.max(0, yTop - h), yTop], dtick: 1, autorange: 'reversed', anchor: `x${suffix}`, visible: !isEmpty };
      if (isEmpty) annotations.push({ text: 'n/a', showarrow: false, xref: 'paper', yref: 'paper', x: x0 + w / 2, y: yTop - h / 2, font: { color: '#999' } });
    });
  });
  return { data, layout };
}

const ROLE_CODES = { none: 0, positional: 1, rare: 2, syntactic: 3, several: 4 } as const;
const ROLE_COLORS = ['#eeeeee', '#7b3294', '#e66101', '#1a9641', '#404040'];

/** Roles map: each head coloured by its role (positional, rare, syntactic, several), labelled. */
export function rolesMap(report: HeadReport): FigureSpec {
  const ps = panels(report.stacks.length);
  const data: Array<Record<string, unknown>> = [];
  const layout: Record<string, unknown> = { title: { text: plotlyText(`Head roles — ${report.data.split}`) }, width: Math.max(500, 320 * report.stacks.length), height: 460, margin: { t: 110 } };
  const n = ROLE_COLORS.length;
  // a discrete colour scale: code c fills [c/n, (c+1)/n]
  const colorscale = ROLE_COLORS.flatMap((c, i) => [[i / n, c], [(i + 1) / n, c]]);
  report.stacks.forEach((stack, i) => {
    const p = ps[i]!;
    const code = (k: string) => {
      const r = report.heads[k]!.roles;
      const found = [r.positional?.isPositional && 'positional', r.rare?.isRare && 'rare', r.syntactic?.isSyntactic && 'syntactic'].filter(Boolean) as Array<keyof typeof ROLE_CODES>;
      return found.length > 1 ? ROLE_CODES.several : found.length === 1 ? ROLE_CODES[found[0]!] : ROLE_CODES.none;
    };
    const z = grid(report, stack, (k) => code(k) + 0.5);
    const text = grid(report, stack, () => 0).map((row, l) => row.map((_, h) => (report.heads[`${stack}.${l}.${h}`]?.roles.labels ?? []).map(plotlyText).join('<br>')));
    data.push({ type: 'heatmap', z, x: z[0]?.map((_, h) => h) ?? [], y: z.map((_, l) => l), xaxis: p.x, yaxis: p.y, zmin: 0, zmax: n, colorscale, showscale: false, xgap: 2, ygap: 2, text, texttemplate: '%{text}', hovertemplate: `${stack} layer %{y} head %{x}: %{text}<extra></extra>` });
    layout[p.xKey] = { domain: p.domain, title: { text: `${stack}: head` }, dtick: 1, anchor: p.y };
    layout[p.yKey] = { title: { text: i === 0 ? 'layer' : '' }, dtick: 1, autorange: 'reversed', anchor: p.x };
  });
  // the colour key, in one line under the title
  layout.annotations = Object.keys(ROLE_CODES).map((name, i) => ({ text: `<span style="color:${ROLE_COLORS[i]}">■</span> ${name}`, showarrow: false, xref: 'paper', yref: 'paper', x: i / 5, y: 1.04, xanchor: 'left', yanchor: 'bottom' }));
  return { data, layout };
}

/** Attention maps of one sentence: one panel per head. */
export function attentionMapFigure(maps: readonly AttentionMap[]): FigureSpec {
  const ps = panels(maps.length);
  const data: Array<Record<string, unknown>> = [];
  const longest = Math.max(1, ...maps.map((m) => Math.max(m.keyTokens.length, m.queryTokens.length)));
  const layout: Record<string, unknown> = {
    title: { text: `Attention, sentence ${maps[0]?.sentence ?? ''} (query tokens down, key tokens across)` },
    width: Math.max(500, maps.length * Math.max(300, longest * 22)),
    height: Math.max(400, longest * 22 + 200),
    margin: { t: 80, b: 140 },
  };
  maps.forEach((m, i) => {
    const p = ps[i]!;
    // indices as coordinates so repeated tokens stay apart; tokens as tick labels
    // Blues reversed: weight 1 dark, 0 white
    data.push({ type: 'heatmap', z: m.weights, x: m.keyTokens.map((_, k) => k), y: m.queryTokens.map((_, q) => q), xaxis: p.x, yaxis: p.y, colorscale: 'Blues', reversescale: true, zmin: 0, zmax: 1, showscale: i === maps.length - 1, hovertemplate: 'query %{y} -> key %{x}: %{z:.3f}<extra></extra>' });
    layout[p.xKey] = { domain: p.domain, title: { text: m.key }, tickvals: m.keyTokens.map((_, k) => k), ticktext: m.keyTokens.map(plotlyText), tickangle: -60, anchor: p.y };
    layout[p.yKey] = { tickvals: m.queryTokens.map((_, q) => q), ticktext: m.queryTokens.map(plotlyText), autorange: 'reversed', anchor: p.x };
  });
  return { data, layout };
}

let plotlyBundle: string | null = null;

function plotlySource(): string {
  plotlyBundle ??= readFileSync(createRequire(import.meta.url).resolve('plotly.js-dist-min'), 'utf8');
  return plotlyBundle;
}

/** The standalone HTML page of a figure (plotly inlined; the figure script in an IIFE). */
export function figureHtml(fig: FigureSpec, title: string): string {
  const json = JSON.stringify(fig).replace(/</g, '\\u003c');
  const w = typeof fig.layout.width === 'number' ? fig.layout.width : 900;
  const h = typeof fig.layout.height === 'number' ? fig.layout.height : 500;
  const safeTitle = title.replace(/[<&]/g, (c) => (c === '<' ? '&lt;' : '&amp;'));
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${safeTitle}</title></head><body>\n<script>${plotlySource()}</script>\n<div id="plot" style="width:${w}px;height:${h}px"></div>\n<script>(function(){var fig=${json};Plotly.newPlot('plot',fig.data,fig.layout||{},{responsive:false});})();</script>\n</body></html>\n`;
}

/** Write `<dir>/<name>.json` and (unless `isHtml` is false) `<dir>/<name>.html`; returns the paths. */
export function writeFigure(dir: string, name: string, fig: FigureSpec, opts: { isHtml?: boolean } = {}): { json: string; html: string | null } {
  const json = join(dir, `${name}.json`);
  writeJsonAtomic(json, fig);
  if (opts.isHtml === false) return { json, html: null };
  const html = join(dir, `${name}.html`);
  writeFileAtomic(html, figureHtml(fig, name));
  return { json, html };
}
