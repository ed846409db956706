/**
 * Layer x head grids, one panel per attention type: a heatmap of any per-head score (gate P(open),
 * importance, confidence, ...) and the map of a head mask (kept / pruned). Rows are layers (0 at the
 * top), columns heads (original ids), so the cell at row 3, column 5 of the `enc-self` panel is head
 * `enc-self.3.5`; hovering shows that key and the value.
 */
import { ATTENTION_TYPES, type AttentionType, parseHeadKey } from '../config/head-id.js';
import { type HeadShape, shapeKeys } from '../config/head-layout.js';
import type { HeadMask } from '../io/head-mask.js';
import type { HeadScores } from './readers.js';
import {
  ATTENTION_LABELS,
  type FigureLayout,
  type FigureSpec,
  type Trace,
  axis,
  baseLayout,
  columnDomains,
  formatValue,
  MAX_PANELS,
  panelAxes,
  panelTitle,
  setAxis,
} from './figure.js';

/** Heads per layer of each type: the given shape, else the extent of the keys present. */
function gridShape(keys: readonly string[], shape: HeadShape | null | undefined): HeadShape {
  if (shape) return shape;
  const out: HeadShape = { 'enc-self': [], 'dec-self': [], 'dec-enc': [] };
  for (const k of keys) {
    const id = parseHeadKey(k);
    if (!id) continue;
    const layers = out[id.stack];
    while (layers.length <= id.layer) layers.push(0);
    layers[id.layer] = Math.max(layers[id.layer]!, id.head + 1);
  }
  const widest = Object.fromEntries(ATTENTION_TYPES.map((t) => [t, Math.max(0, ...out[t])])) as Record<AttentionType, number>;
  for (const t of ATTENTION_TYPES) out[t] = out[t].map(() => widest[t]);
  return out;
}

interface GridPanel {
  stack: AttentionType;
  z: Array<Array<number | null>>;
  text: string[][];
  keys: string[][];
  title: string;
}

/** Lay panels out side by side, each with its own layer/head axes; returns the layout. */
function gridLayout(title: string, panels: readonly GridPanel[], extraRight: number): FigureLayout {
  const maxHeads = Math.max(1, ...panels.map((p) => Math.max(0, ...p.z.map((r) => r.length))));
  const maxLayers = Math.max(1, ...panels.map((p) => p.z.length));
  const cell = Math.max(34, Math.min(56, 420 / maxHeads));
  const width = Math.max(480, Math.round(panels.length * (maxHeads * cell + 70) + 90 + extraRight));
  const height = Math.max(320, Math.round(maxLayers * cell + 190));
  const layout = baseLayout(title, width, height);
  layout.margin = { l: 60, r: 30 + extraRight, t: 90, b: 60 };
  layout.plot_bgcolor = '#f2f2f2';
  const domains = columnDomains(Math.max(1, panels.length), 0.25 / Math.max(1, panels.length));
  layout.annotations = [];
  panels.forEach((p, i) => {
    const ax = panelAxes(i);
    const heads = Math.max(0, ...p.z.map((r) => r.length));
    setAxis(
      layout,
      ax.xKey,
      axis('head', {
        domain: domains[i],
        anchor: ax.y,
        tickmode: 'array',
        tickvals: Array.from({ length: heads }, (_, h) => h),
        ticktext: Array.from({ length: heads }, (_, h) => String(h)),
        showgrid: false,
        zeroline: false,
        range: [-0.5, heads - 0.5],
      }),
    );
    setAxis(
      layout,
      ax.yKey,
      axis(i === 0 ? 'layer' : '', {
        anchor: ax.x,
        tickmode: 'array',
        tickvals: p.z.map((_, l) => l),
        ticktext: p.z.map((_, l) => String(l)),
        autorange: 'reversed',
        showgrid: false,
        zeroline: false,
      }),
    );
    layout.annotations!.push(panelTitle(p.title, ax, 1.02, 13));
  });
  return layout;
}

export interface HeadHeatmapOptions {
  title?: string;
  /** attention types to draw (default: those with at least one value) */
  stacks?: readonly AttentionType[];
  /** plotly colour scale name or stops (default: Viridis; RdBu centred on 0 for signed scores) */
  colorscale?: string | Array<[number, string]>;
  zmin?: number;
  zmax?: number;
  /** write the value in each cell (default true) */
  showValues?: boolean;
}

/** A layer x head heatmap of one score, one panel per attention type, one shared colour scale. */
export function headHeatmap(scores: HeadScores, opts: HeadHeatmapOptions = {}): FigureSpec {
  const keys = Object.keys(scores.values);
  const shape = gridShape(keys, scores.shape);
  const hasValue = (t: AttentionType) => keys.some((k) => k.startsWith(`${t}.`) && scores.values[k] !== null);
  const stacks = (opts.stacks ?? ATTENTION_TYPES.filter(hasValue)).filter((t) => shape[t].length > 0);
  const all = keys.map((k) => scores.values[k]).filter((v): v is number => v !== null && v !== undefined && Number.isFinite(v));
  const lo = opts.zmin ?? scores.range?.[0] ?? (all.length ? Math.min(...all) : 0);
  const hi = opts.zmax ?? scores.range?.[1] ?? (all.length ? Math.max(...all) : 1);
  const isSigned = lo < 0 && hi > 0;
  const bound = Math.max(Math.abs(lo), Math.abs(hi));
  const isFixed = opts.zmin !== undefined || opts.zmax !== undefined || scores.range !== undefined;
  const [zmin, zmax] = isSigned && !isFixed ? [-bound, bound] : [lo, hi === lo ? lo + 1 : hi];
  const colorscale = opts.colorscale ?? (isSigned ? 'RdBu' : 'Viridis');
  const showValues = opts.showValues ?? true;

  const panels: GridPanel[] = stacks.map((stack) => {
    const keysGrid = shapeKeys(shape, stack);
    const z = keysGrid.map((row) =>
      row.map((k) => {
        const v = scores.values[k];
        return v === undefined || v === null || !Number.isFinite(v) ? null : v;
      }),
    );
    return {
      stack,
      z,
      keys: keysGrid,
      text: z.map((row) => row.map((v) => (v === null || !showValues ? '' : formatValue(v)))),
      title: `${ATTENTION_LABELS[stack]} (${stack}.<i>layer</i>.<i>head</i>)`,
    };
  });
  const data: Trace[] = panels.map((p, i) => {
    const ax = panelAxes(i);
    return {
      type: 'heatmap',
      z: p.z,
      x: p.z[0]?.map((_, h) => h) ?? [],
      y: p.z.map((_, l) => l),
      xaxis: ax.x,
      yaxis: ax.y,
      zmin,
      zmax,
      colorscale,
      reversescale: isSigned && opts.colorscale === undefined, // reversed RdBu: red for negative, blue for positive
      showscale: i === panels.length - 1,
      colorbar: { title: { text: scores.label, side: 'right' }, thickness: 14 },
      xgap: 2,
      ygap: 2,
      text: p.text,
      texttemplate: '%{text}',
      textfont: { size: 11 },
      customdata: p.keys,
      hovertemplate: `%{customdata}<br>${scores.label}: %{z:.4g}<extra></extra>`,
      name: p.stack,
    };
  });
  const layout = gridLayout(opts.title ?? scores.label, panels, 70);
  if (!panels.length) layout.annotations = [{ text: `no values of ${scores.name}`, showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5 }];
  return { data, layout };
}

export interface HeatmapGridOptions {
  title?: string;
  /** attention types (columns; default: those with a value in any score) */
  stacks?: readonly AttentionType[];
}

/**
 * Several scores side by side: one row of small layer x head heatmaps per score, one column per
 * attention type, each row on its own colour range (Viridis; values written in the cells).
 */
export function headHeatmapGrid(scoresList: readonly HeadScores[], opts: HeatmapGridOptions = {}): FigureSpec {
  const keys = [...new Set(scoresList.flatMap((s) => Object.keys(s.values)))];
  const shape = gridShape(keys, scoresList.find((s) => s.shape)?.shape);
  const stacks = (
    opts.stacks ?? ATTENTION_TYPES.filter((t) => scoresList.some((sc) => Object.entries(sc.values).some(([k, v]) => k.startsWith(`${t}.`) && v !== null)))
  ).filter((t) => shape[t].length > 0);
  const nRows = scoresList.length;
  const nCols = Math.max(1, stacks.length);
  if (nRows * nCols > MAX_PANELS) throw new RangeError(`headHeatmapGrid: ${nRows} scores x ${nCols} attention types is more than ${MAX_PANELS} panels`);
  const maxHeads = Math.max(1, ...stacks.map((t) => Math.max(0, ...shape[t])));
  const maxLayers = Math.max(1, ...stacks.map((t) => shape[t].length));
  const cell = 34;
  const rowH = maxLayers * cell + 56;
  const layout = baseLayout(opts.title ?? 'Head scores', Math.max(560, nCols * (maxHeads * cell + 60) + 110), nRows * rowH + 110);
  layout.margin = { l: 60, r: 20, t: 70, b: 40 };
  layout.plot_bgcolor = '#f2f2f2';
  layout.annotations = [];
  const xDomains = columnDomains(nCols, 0.06);
  const gapY = 56 / (nRows * rowH);
  const h = (1 - gapY * (nRows - 1)) / nRows;
  const data: Trace[] = [];
  scoresList.forEach((sc, r) => {
    const all = Object.values(sc.values).filter((v): v is number => v !== null && Number.isFinite(v));
    const zmin = sc.range?.[0] ?? (all.length ? Math.min(...all) : 0);
    const zmax = sc.range?.[1] ?? (all.length ? Math.max(...all) : 1);
    const top = 1 - r * (h + gapY);
    stacks.forEach((stack, c) => {
      const ax = panelAxes(r * nCols + c);
      const keysGrid = shapeKeys(shape, stack);
      const z = keysGrid.map((row) =>
        row.map((k) => {
          const v = sc.values[k];
          return v === undefined || v === null || !Number.isFinite(v) ? null : v;
        }),
      );
      data.push({
        type: 'heatmap',
        z,
        x: z[0]?.map((_, hh) => hh) ?? [],
        y: z.map((_, l) => l),
        xaxis: ax.x,
        yaxis: ax.y,
        zmin,
        zmax: zmax === zmin ? zmin + 1 : zmax,
        colorscale: 'Viridis',
        showscale: false,
        xgap: 2,
        ygap: 2,
        text: z.map((row) => row.map((v) => (v === null ? '' : formatValue(v)))),
        texttemplate: '%{text}',
        textfont: { size: 10 },
        customdata: keysGrid,
        hovertemplate: `%{customdata}<br>${sc.label}: %{z:.4g}<extra></extra>`,
        name: `${sc.name} ${stack}`,
      });
      setAxis(
        layout,
        ax.xKey,
        axis(r === nRows - 1 ? `${stack}: head` : '', {
          domain: xDomains[c],
          anchor: ax.y,
          dtick: 1,
          showgrid: false,
          zeroline: false,
          showticklabels: r === nRows - 1,
        }),
      );
      setAxis(
        layout,
        ax.yKey,
        axis(c === 0 ? 'layer' : '', { domain: [Math.max(0, top - h), top], anchor: ax.x, dtick: 1, autorange: 'reversed', showgrid: false, zeroline: false }),
      );
      if (c === 0)
        layout.annotations!.push({
          text: `<b>${sc.label}</b>`,
          showarrow: false,
          xref: 'paper',
          yref: ax.yDomain,
          x: 0,
          y: 1.03,
          xanchor: 'left',
          yanchor: 'bottom',
          font: { size: 12 },
        });
    });
  });
  return { data, layout };
}

/**
 * A square matrix of rank correlations between scores (e.g. Spearman over heads), -1 red to +1 blue,
 * values in the cells, null cells left empty.
 */
export function agreementHeatmap(
  labels: readonly string[],
  matrix: ReadonlyArray<ReadonlyArray<number | null>>,
  opts: { title?: string; what?: string } = {},
): FigureSpec {
  const n = labels.length;
  const longest = Math.max(0, ...labels.map((l) => l.length));
  const margin = Math.min(320, 30 + 7 * longest);
  const size = Math.max(300, 60 * n);
  const layout = baseLayout(
    opts.title ?? 'Agreement between head scores (Spearman rank correlation over heads)',
    Math.max(700, size + margin + 150),
    size + margin + 80,
  );
  layout.margin = { l: margin, r: 40, t: 70, b: Math.round(margin * 0.8) };
  layout.xaxis = axis('', { tickangle: -40, showgrid: false, zeroline: false, type: 'category' });
  layout.yaxis = axis('', { autorange: 'reversed', showgrid: false, zeroline: false, type: 'category' });
  const z = matrix.map((row) => row.map((v) => (v === null || !Number.isFinite(v) ? null : v)));
  return {
    data: [
      {
        // reversed RdBu as in headHeatmap: blue for positive (agreement), red for negative
        type: 'heatmap',
        z,
        x: [...labels],
        y: [...labels],
        zmin: -1,
        zmax: 1,
        colorscale: 'RdBu',
        reversescale: true,
        xgap: 2,
        ygap: 2,
        colorbar: { title: { text: opts.what ?? 'Spearman ρ', side: 'right' }, thickness: 14 },
        text: z.map((row) => row.map((v) => (v === null ? '' : v.toFixed(2)))),
        texttemplate: '%{text}',
        textfont: { size: 11 },
        hovertemplate: '%{y} vs %{x}: %{z:.3f}<extra></extra>',
      },
    ],
    layout,
  };
}

const KEPT_COLOR = '#0072B2';
const PRUNED_COLOR = '#e3e3e3';

export interface MaskMapOptions {
  title?: string;
  /** original heads per layer when the mask file does not carry `model.headsPerLayer` */
  shape?: HeadShape;
}

/** The heads a mask keeps (blue) and prunes (grey), one panel per attention type, cells labelled layer.head. */
export function maskMap(mask: HeadMask, opts: MaskMapOptions = {}): FigureSpec {
  const shape: HeadShape =
    mask.model?.headsPerLayer ??
    opts.shape ??
    (Object.fromEntries(ATTENTION_TYPES.map((t) => [t, (mask.stacks[t]?.layers ?? []).map((l) => l.kept.length + l.removed.length)])) as HeadShape);
  const stacks = ATTENTION_TYPES.filter((t) => shape[t].length > 0);
  let keptTotal = 0;
  let total = 0;
  const panels: GridPanel[] = stacks.map((stack) => {
    const layers = mask.stacks[stack]?.layers;
    const keysGrid = shapeKeys(shape, stack);
    const z = shape[stack].map((h, l) => Array.from({ length: h }, (_, head) => (layers?.[l] ? (layers[l].kept.includes(head) ? 1 : 0) : 1)));
    const kept = z.flat().filter((v) => v === 1).length;
    keptTotal += kept;
    total += z.flat().length;
    return {
      stack,
      z,
      keys: keysGrid,
      text: z.map((row, l) => row.map((_, h) => `${l}.${h}`)),
      title: `${stack}: ${kept} of ${z.flat().length} kept${mask.stacks[stack] ? '' : ' (not pruned)'}`,
    };
  });
  const data: Trace[] = panels.map((p, i) => {
    const ax = panelAxes(i);
    return {
      type: 'heatmap',
      z: p.z,
      x: p.z[0]?.map((_, h) => h) ?? [],
      y: p.z.map((_, l) => l),
      xaxis: ax.x,
      yaxis: ax.y,
      zmin: 0,
      zmax: 1,
      colorscale: [
        [0, PRUNED_COLOR],
        [0.5, PRUNED_COLOR],
        [0.5, KEPT_COLOR],
        [1, KEPT_COLOR],
      ],
      showscale: false,
      xgap: 3,
      ygap: 3,
      text: p.text,
      texttemplate: '%{text}',
      textfont: { size: 11 },
      customdata: p.keys.map((row, l) => row.map((k, h) => `${k}: ${p.z[l]![h] ? 'kept' : 'pruned'}`)),
      hovertemplate: '%{customdata}<extra></extra>',
      name: p.stack,
    };
  });
  const layout = gridLayout(opts.title ?? `Head mask: ${keptTotal} of ${total} heads kept (${mask.source})`, panels, 0);
  layout.annotations!.push({
    text: `<span style="color:${KEPT_COLOR}">■</span> kept   <span style="color:#b0b0b0">■</span> pruned`,
    showarrow: false,
    xref: 'paper',
    yref: 'paper',
    x: 1,
    y: 1.0,
    yshift: 50,
    xanchor: 'right',
    yanchor: 'bottom',
  });
  return { data, layout };
}
