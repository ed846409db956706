/**
 * Figures of the Hard Concrete gates during pruning (Voita et al. 2019, section 6): P(gate open) of every
 * head over the training steps, coloured by attention type; the order in which heads close; and the
 * expected number of open heads (sum of P(open)) with the Lagrange multipliers of a head budget.
 */
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import type { GateTrajectory, MetricsLog } from './readers.js';
import { ATTENTION_COLORS, ATTENTION_LABELS, type FigureSpec, SERIES_COLORS, type Trace, axis, baseLayout, columnDomains, panelAxes, rowDomains, setAxis } from './figure.js';

/** Lighter and darker variants of a hex colour (at most 30% towards black or white), so heads of one type stay apart but keep their hue. */
export function shadeColor(hex: string, i: number, n: number): string {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m || n <= 1) return hex;
  const t = (i / (n - 1)) * 0.6 - 0.3; // -0.3 (darker) .. +0.3 (lighter)
  const c = [0, 2, 4].map((o) => parseInt(m[1]!.slice(o, o + 2), 16));
  const mixed = c.map((v) => Math.round(t < 0 ? v * (1 + t) : v + (255 - v) * t));
  return `#${mixed.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

export interface GateTrajectoryOptions {
  title?: string;
  /** draw a dashed line at this P(open) (default 0.5; null: none) */
  threshold?: number | null;
  /**
   * `overlay`: every head on one plot, one legend entry per head; `by-type`: one panel per attention
   * type side by side, heads named on hover (default: overlay up to 12 heads or with one type)
   */
  arrangement?: 'overlay' | 'by-type';
}

/**
 * One line per head: P(open) against the step, coloured by attention type (shaded per head). With many
 * heads the types get a panel each, so 48 lines stay readable.
 */
export function gateTrajectories(traj: GateTrajectory, opts: GateTrajectoryOptions = {}): FigureSpec {
  const stacks = ATTENTION_TYPES.filter((t) => traj.heads.some((h) => h.id.stack === t));
  const isByType = (opts.arrangement ?? (traj.heads.length > 12 && stacks.length > 1 ? 'by-type' : 'overlay')) === 'by-type';
  const domains = isByType ? columnDomains(stacks.length, 0.05) : [[0, 1] as [number, number]];
  const threshold = opts.threshold === undefined ? 0.5 : opts.threshold;
  const layout = baseLayout(opts.title ?? `Gate trajectories: P(open) of ${traj.heads.length} heads`, isByType ? Math.max(1000, 380 * stacks.length) : 1000, 560);
  const data: Trace[] = [];
  layout.annotations = [];
  layout.shapes = [];
  stacks.forEach((stack, si) => {
    const ax = panelAxes(isByType ? si : 0);
    const heads = traj.heads.filter((h) => h.id.stack === stack);
    heads.forEach((h, i) => {
      data.push({
        type: 'scatter',
        mode: 'lines',
        name: h.key,
        x: traj.steps,
        y: h.pOpen,
        xaxis: ax.x,
        yaxis: ax.y,
        legendgroup: stack,
        legendgrouptitle: !isByType && i === 0 ? { text: ATTENTION_LABELS[stack] } : undefined,
        showlegend: !isByType,
        line: { color: shadeColor(ATTENTION_COLORS[stack], i, heads.length), width: 1.6 },
        hovertemplate: `${h.key}<br>step %{x}<br>P(open) %{y:.3f}<extra></extra>`,
      });
    });
    if (!isByType && si > 0) return;
    setAxis(layout, ax.xKey, axis('training step', { domain: domains[isByType ? si : 0], anchor: ax.y }));
    setAxis(layout, ax.yKey, axis(si === 0 ? 'P(gate open) = P(g ≠ 0)' : '', { range: [0, 1.02], anchor: ax.x, showticklabels: si === 0 }));
    if (isByType)
      layout.annotations!.push({ text: `<span style="color:${ATTENTION_COLORS[stack]}">■</span> ${ATTENTION_LABELS[stack]} (${heads.length} heads)`, showarrow: false, xref: ax.xDomain, yref: ax.yDomain, x: 0.5, y: 1.01, xanchor: 'center', yanchor: 'bottom' });
    if (threshold !== null && traj.steps.length)
      layout.shapes!.push({ type: 'line', xref: ax.x, yref: ax.y, x0: traj.steps[0]!, x1: traj.steps[traj.steps.length - 1]!, y0: threshold, y1: threshold, line: { color: '#999999', dash: 'dash', width: 1 } });
  });
  layout.showlegend = !isByType;
  layout.legend = { groupclick: 'toggleitem', font: { size: 10 }, tracegroupgap: 8 };
  if (isByType) layout.margin = { l: 70, r: 30, t: 80, b: 60 };
  return { data, layout };
}

/** When a head closed: the first logged step from which P(open) stays below the threshold. */
export interface HeadClosing {
  key: string;
  stack: AttentionType;
  /** null: still open at the last logged step */
  closedAtStep: number | null;
  finalPOpen: number;
}

/** Heads in the order they close (earliest first), then the ones still open (lowest final P(open) first). */
export function closingOrder(traj: GateTrajectory, threshold = 0.5): HeadClosing[] {
  const out = traj.heads.map((h): HeadClosing => {
    let from = h.pOpen.length;
    while (from > 0 && h.pOpen[from - 1]! < threshold) from--;
    return { key: h.key, stack: h.id.stack, closedAtStep: from < h.pOpen.length ? traj.steps[from]! : null, finalPOpen: h.pOpen[h.pOpen.length - 1] ?? NaN };
  });
  return out.sort((a, b) => {
    if (a.closedAtStep !== null && b.closedAtStep !== null) return a.closedAtStep - b.closedAtStep || a.finalPOpen - b.finalPOpen;
    if (a.closedAtStep !== null) return -1;
    if (b.closedAtStep !== null) return 1;
    return a.finalPOpen - b.finalPOpen;
  });
}

/** Horizontal bars: the step at which each closed head went below the threshold, first to close on top. */
export function closingOrderFigure(closings: readonly HeadClosing[], opts: { title?: string; threshold?: number } = {}): FigureSpec {
  const closed = closings.filter((c) => c.closedAtStep !== null);
  const data: Trace[] = [];
  for (const stack of ATTENTION_TYPES) {
    const mine = closed.filter((c) => c.stack === stack);
    if (!mine.length) continue;
    data.push({
      type: 'bar',
      orientation: 'h',
      name: ATTENTION_LABELS[stack],
      y: mine.map((c) => c.key),
      x: mine.map((c) => c.closedAtStep!),
      marker: { color: ATTENTION_COLORS[stack] },
      hovertemplate: '%{y} closed at step %{x}<extra></extra>',
    });
  }
  const still = closings.length - closed.length;
  const layout = baseLayout(opts.title ?? `Order in which heads close (P(open) < ${opts.threshold ?? 0.5} to the end); ${closed.length} closed, ${still} open`, 900, Math.max(300, 120 + 22 * closed.length));
  layout.margin = { l: 110, r: 30, t: 60, b: 60 };
  layout.xaxis = axis('training step when the head closed', { rangemode: 'tozero' });
  layout.yaxis = axis('head', { type: 'category', categoryorder: 'array', categoryarray: closed.map((c) => c.key), autorange: 'reversed' });
  layout.barmode = 'overlay';
  if (!closed.length) layout.annotations = [{ text: 'no head has closed yet', showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5, font: { color: '#888888' } }];
  return { data, layout };
}

/**
 * Expected open heads (sum of P(open)), in total and per attention type, against the step; with a head
 * budget, the Lagrange multipliers lambda1 in a second panel.
 */
export function expectedOpenHeadsFigure(log: MetricsLog, opts: { title?: string; targetHeads?: number | null } = {}): FigureSpec {
  const rows = log.train.filter((r) => r.expectedOpenHeads !== undefined);
  const groups = [...new Set(rows.flatMap((r) => Object.keys(r.lambda1)))];
  const hasLambda = groups.length > 0;
  const [top, bottom] = [panelAxes(0), panelAxes(1)];
  const data: Trace[] = [];
  const steps = rows.map((r) => r.step);
  const gatedTypes = ATTENTION_TYPES.filter((t) => rows.some((r) => r.expectedOpen[t] !== undefined));
  data.push({ type: 'scatter', mode: 'lines', name: gatedTypes.length === 1 ? `all gated heads (${gatedTypes[0]})` : 'all gated heads', x: steps, y: rows.map((r) => r.expectedOpenHeads!), line: { color: '#000000', width: 2.5 }, xaxis: top.x, yaxis: top.y });
  // one line per type only when several are gated (with one, it is the total line)
  for (const stack of gatedTypes.length > 1 ? gatedTypes : []) {
    const sub = rows.filter((r) => r.expectedOpen[stack] !== undefined);
    data.push({ type: 'scatter', mode: 'lines', name: ATTENTION_LABELS[stack], x: sub.map((r) => r.step), y: sub.map((r) => r.expectedOpen[stack]!), line: { color: ATTENTION_COLORS[stack], width: 1.8 }, xaxis: top.x, yaxis: top.y });
  }
  const kept = rows.filter((r) => r.keptHeads !== undefined);
  if (kept.length) data.push({ type: 'scatter', mode: 'lines', name: 'heads kept (P(g=1) > P(g=0))', x: kept.map((r) => r.step), y: kept.map((r) => r.keptHeads!), line: { color: '#888888', dash: 'dot', width: 1.5, shape: 'hv' }, xaxis: top.x, yaxis: top.y });
  groups.forEach((g, i) => {
    const sub = rows.filter((r) => r.lambda1[g] !== undefined);
    data.push({ type: 'scatter', mode: 'lines', name: `λ1 (${g})`, x: sub.map((r) => r.step), y: sub.map((r) => r.lambda1[g]!), line: { color: SERIES_COLORS[(i + 1) % SERIES_COLORS.length]!, width: 1.5 }, xaxis: bottom.x, yaxis: bottom.y });
  });
  const layout = baseLayout(opts.title ?? 'Expected open heads during pruning', 900, hasLambda ? 640 : 460);
  const domains = hasLambda ? rowDomains(2, 0.12) : [[0, 1] as [number, number]];
  setAxis(layout, top.xKey, axis(hasLambda ? '' : 'training step', { anchor: top.y, ...(hasLambda ? { matches: 'x2', showticklabels: false } : {}) }));
  setAxis(layout, top.yKey, axis('expected open heads (Σ P(open))', { domain: domains[0], anchor: top.x, rangemode: 'tozero' }));
  if (hasLambda) {
    setAxis(layout, bottom.xKey, axis('training step', { anchor: bottom.y }));
    setAxis(layout, bottom.yKey, axis('Lagrange multiplier λ1', { domain: domains[1], anchor: bottom.x }));
  }
  if (typeof opts.targetHeads === 'number' && steps.length)
    layout.shapes = [{ type: 'line', xref: top.x, yref: top.y, x0: steps[0]!, x1: steps[steps.length - 1]!, y0: opts.targetHeads, y1: opts.targetHeads, line: { color: '#999999', dash: 'dash', width: 1 } }];
  return { data, layout };
}
