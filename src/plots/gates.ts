/**
 * Figures of the Hard Concrete gates during pruning (Voita et al. 2019, section 6): P(gate open) of every
 * head over the training steps, coloured by attention type; the order in which heads close; and the
 * expected number of open heads (sum of P(open)) with the Lagrange multipliers of a head budget.
 */
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import { keepThresholdProbNonZero } from '../gates/hard-concrete.js';
import { selectTopHeads } from '../gates/lagrangian.js';
import type { GateTrajectory, MetricsLog } from './readers.js';
import {
  ATTENTION_COLORS,
  ATTENTION_LABELS,
  type FigureSpec,
  SERIES_COLORS,
  type Trace,
  axis,
  baseLayout,
  columnDomains,
  panelAxes,
  panelTitle,
  rowDomains,
  setAxis,
} from './figure.js';

/** Lighter and darker variants of a hex colour (at most 30% towards black or white), so heads of one type stay apart but keep their hue. */
export function shadeColor(hex: string, i: number, n: number): string {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m || n <= 1) return hex;
  const t = (i / (n - 1)) * 0.6 - 0.3; // -0.3 (darker) .. +0.3 (lighter)
  const c = [0, 2, 4].map((o) => parseInt(m[1]!.slice(o, o + 2), 16));
  const mixed = c.map((v) => Math.round(t < 0 ? v * (1 + t) : v + (255 - v) * t));
  return `#${mixed.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * The rule a pruning run keeps heads by (`HeadGates.keptPositions`), in the terms the trajectory records:
 * with a budget (`gates.targetHeads`), the top N by P(open), over all gated heads or per attention type;
 * otherwise (and for the types a per-type budget leaves out) P(g=1) > P(g=0), i.e. P(open) above `pOpen`.
 */
export interface KeepRule {
  pOpen: number;
  targetHeads: number | Partial<Record<AttentionType, number>> | null;
}

/** The rule of a run with these gate settings (its config.json `gates`; missing keys: the defaults). */
export function keepRuleOf(gates: { beta?: number; targetHeads?: KeepRule['targetHeads'] } = {}): KeepRule {
  return { pOpen: keepThresholdProbNonZero(gates.beta === undefined ? {} : { beta: gates.beta }), targetHeads: gates.targetHeads ?? null };
}

/** Which heads of the trajectory the rule keeps at logged step `at` (an index into `traj.steps`). */
export function keptAtStep(traj: GateTrajectory, rule: KeepRule, at: number): boolean[] {
  const p = traj.heads.map((h) => h.pOpen[at]!);
  const kept = p.map((x) => x > rule.pOpen);
  const t = rule.targetHeads;
  const groups: Array<{ members: number[]; target: number }> = [];
  if (typeof t === 'number') groups.push({ members: traj.heads.map((_, i) => i), target: t });
  else if (t)
    for (const [stack, n] of Object.entries(t))
      if (n !== undefined) groups.push({ members: traj.heads.flatMap((h, i) => (h.id.stack === stack ? [i] : [])), target: n });
  for (const g of groups) {
    for (const i of g.members) kept[i] = false;
    for (const j of selectTopHeads(
      g.members.map((i) => p[i]!),
      Math.min(g.target, g.members.length),
    ))
      kept[g.members[j]!] = true;
  }
  return kept;
}

/** In words, for titles and legends. */
export function describeKeepRule(rule: KeepRule): string {
  const t = rule.targetHeads;
  if (typeof t === 'number') return `the top ${t} by P(open)`;
  if (t)
    return `the top ${Object.entries(t)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')} by P(open)`;
  return `P(g=1) > P(g=0), i.e. P(open) > ${rule.pOpen.toFixed(3)}`;
}

/** Line colours of single heads (Okabe-Ito), cycled; each further cycle takes the next dash pattern, so 48 heads are told apart. */
export const HEAD_LINE_COLORS: readonly string[] = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#999999'];
export const HEAD_LINE_DASHES = ['solid', 'dash', 'dot', 'dashdot', 'longdash', 'longdashdot'] as const;

/** The colour and dash pattern of the i-th line of a plot. */
export function headLineStyle(i: number): { color: string; dash: (typeof HEAD_LINE_DASHES)[number] } {
  return { color: HEAD_LINE_COLORS[i % HEAD_LINE_COLORS.length]!, dash: HEAD_LINE_DASHES[Math.floor(i / HEAD_LINE_COLORS.length) % HEAD_LINE_DASHES.length]! };
}

export interface GateTrajectoryOptions {
  title?: string;
  /** the run's rule (default: `keepRuleOf()`, the defaults'); without a budget its P(open) threshold is drawn */
  rule?: KeepRule;
  /** draw the line at this P(open) instead (null: none) */
  threshold?: number | null;
  /**
   * `overlay`: every head on one plot, one legend entry per head; `by-type`: one panel per attention
   * type side by side, heads named on hover (default: overlay up to 12 heads or with one type)
   */
  arrangement?: 'overlay' | 'by-type';
}

/**
 * One line per head: P(open) against the step, each head its own colour and dash pattern (grouped by
 * attention type in the legend), and the line of the keep rule the run applies. With many heads of
 * several types the types get a panel each, so 48 lines stay readable.
 */
export function gateTrajectories(traj: GateTrajectory, opts: GateTrajectoryOptions = {}): FigureSpec {
  const stacks = ATTENTION_TYPES.filter((t) => traj.heads.some((h) => h.id.stack === t));
  const isByType = (opts.arrangement ?? (traj.heads.length > 12 && stacks.length > 1 ? 'by-type' : 'overlay')) === 'by-type';
  const domains = isByType ? columnDomains(stacks.length, 0.05) : [[0, 1] as [number, number]];
  const rule = opts.rule ?? keepRuleOf();
  const threshold = opts.threshold !== undefined ? opts.threshold : rule.targetHeads === null ? rule.pOpen : null;
  const width = isByType ? Math.max(1000, 380 * stacks.length) : 1000;
  // many heads: the legend goes below the plot in rows, and the figure grows by those rows
  const isWideLegend = traj.heads.length > 16;
  const legendRows = isWideLegend ? Math.ceil(traj.heads.length / Math.floor(width / 125)) + stacks.length : 0;
  const layout = baseLayout(
    opts.title ??
      `Gate trajectories: P(open) of ${traj.heads.length} heads; kept: ${threshold === null && rule.targetHeads !== null ? describeKeepRule(rule) : `P(open) > ${(threshold ?? rule.pOpen).toFixed(3)}${opts.threshold === undefined ? ' (P(g=1) > P(g=0))' : ''}`}`,
    width,
    560 + 19 * legendRows,
  );
  const data: Trace[] = [];
  layout.annotations = [];
  layout.shapes = [];
  let line = 0;
  stacks.forEach((stack, si) => {
    const ax = panelAxes(isByType ? si : 0);
    const heads = traj.heads.filter((h) => h.id.stack === stack);
    if (isByType) line = 0; // a panel names the type: its heads start the palette again
    heads.forEach((h, i) => {
      const style = headLineStyle(line++);
      data.push({
        type: 'scatter',
        mode: 'lines',
        name: h.key,
        x: traj.steps,
        y: h.pOpen,
        xaxis: ax.x,
        yaxis: ax.y,
        // a short legend groups the heads under their type; a long one flows in rows (plotly stacks a group in one column)
        legendgroup: isWideLegend ? undefined : stack,
        legendgrouptitle: !isWideLegend && i === 0 ? { text: ATTENTION_LABELS[stack] } : undefined,
        line: { color: style.color, dash: style.dash, width: 1.6 },
        hovertemplate: `${h.key}<br>step %{x}<br>P(open) %{y:.3f}<extra></extra>`,
      });
    });
    if (!isByType && si > 0) return;
    setAxis(layout, ax.xKey, axis('training step', { domain: domains[isByType ? si : 0], anchor: ax.y }));
    setAxis(layout, ax.yKey, axis(si === 0 ? 'P(gate open) = P(g ≠ 0)' : '', { range: [0, 1.02], anchor: ax.x, showticklabels: si === 0 }));
    if (isByType)
      layout.annotations!.push(
        panelTitle(`<span style="color:${ATTENTION_COLORS[stack]}">■</span> ${ATTENTION_LABELS[stack]} (${heads.length} heads)`, ax, 1.01),
      );
    if (threshold !== null && traj.steps.length) {
      layout.shapes!.push({
        type: 'line',
        xref: ax.x,
        yref: ax.y,
        x0: traj.steps[0]!,
        x1: traj.steps[traj.steps.length - 1]!,
        y0: threshold,
        y1: threshold,
        line: { color: '#555555', dash: 'dash', width: 1.2 },
      });
      if (si === 0)
        layout.annotations!.push({
          text: opts.threshold === undefined ? 'kept above: P(g=1) > P(g=0)' : `P(open) = ${threshold}`,
          showarrow: false,
          xref: ax.x,
          yref: ax.y,
          x: traj.steps[traj.steps.length - 1]!,
          y: threshold,
          xanchor: 'right',
          yanchor: 'bottom',
          bgcolor: 'rgba(255,255,255,0.8)',
          font: { size: 10, color: '#555555' },
        });
    }
  });
  layout.showlegend = true;
  layout.legend = isWideLegend
    ? { orientation: 'h', x: 0, y: -60 / 420, xanchor: 'left', yanchor: 'top', traceorder: 'normal', font: { size: 10 } } // 60 px below the 420 px plot area
    : { groupclick: 'toggleitem', font: { size: 10 }, tracegroupgap: 8 };
  layout.margin = { l: 70, r: 30, t: 80, b: isWideLegend ? 60 + 19 * legendRows : 60 };
  return { data, layout };
}

/** When a head closed: the first logged step from which the keep rule removes it at every later logged step. */
export interface HeadClosing {
  key: string;
  stack: AttentionType;
  /** null: kept at the last logged step (so kept in mask.json) */
  closedAtStep: number | null;
  finalPOpen: number;
}

/**
 * Heads in the order they close (earliest first), then the ones still open (lowest final P(open) first),
 * by the run's keep rule (a number: keep when P(open) is above it, no budget). At the last logged step
 * (the end of the run) the closed heads are the ones the run removed.
 */
export function closingOrder(traj: GateTrajectory, rule: KeepRule | number = keepRuleOf()): HeadClosing[] {
  const r: KeepRule = typeof rule === 'number' ? { pOpen: rule, targetHeads: null } : rule;
  const kept = traj.steps.map((_, at) => keptAtStep(traj, r, at));
  const out = traj.heads.map((h, i): HeadClosing => {
    let from = traj.steps.length;
    while (from > 0 && !kept[from - 1]![i]) from--;
    return { key: h.key, stack: h.id.stack, closedAtStep: from < traj.steps.length ? traj.steps[from]! : null, finalPOpen: h.pOpen[h.pOpen.length - 1] ?? NaN };
  });
  return out.sort((a, b) => {
    if (a.closedAtStep !== null && b.closedAtStep !== null) return a.closedAtStep - b.closedAtStep || a.finalPOpen - b.finalPOpen;
    if (a.closedAtStep !== null) return -1;
    if (b.closedAtStep !== null) return 1;
    return a.finalPOpen - b.finalPOpen;
  });
}

/** Horizontal bars: the step from which the keep rule removed each closed head, first to close on top. */
export function closingOrderFigure(closings: readonly HeadClosing[], opts: { title?: string; rule?: KeepRule } = {}): FigureSpec {
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
  const rule = describeKeepRule(opts.rule ?? keepRuleOf());
  const layout = baseLayout(
    opts.title ??
      `Order in which heads close: ${closed.length} closed, ${still} kept<br><sub>closed at: the logged step from which the run's rule removes the head at every later step; kept: ${rule}</sub>`,
    900,
    Math.max(300, 140 + 22 * closed.length),
  );
  layout.margin = { l: 110, r: 30, t: 80, b: 60 };
  layout.xaxis = axis('training step when the head closed', { rangemode: 'tozero' });
  layout.yaxis = axis('head', { type: 'category', categoryorder: 'array', categoryarray: closed.map((c) => c.key), autorange: 'reversed' });
  layout.barmode = 'overlay';
  if (!closed.length)
    layout.annotations = [{ text: 'no head has closed yet', showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5, font: { color: '#888888' } }];
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
  data.push({
    type: 'scatter',
    mode: 'lines',
    name: gatedTypes.length === 1 ? `all gated heads (${gatedTypes[0]})` : 'all gated heads',
    x: steps,
    y: rows.map((r) => r.expectedOpenHeads!),
    line: { color: '#000000', width: 2.5 },
    xaxis: top.x,
    yaxis: top.y,
  });
  // one line per type only when several are gated (with one, it is the total line)
  for (const stack of gatedTypes.length > 1 ? gatedTypes : []) {
    const sub = rows.filter((r) => r.expectedOpen[stack] !== undefined);
    data.push({
      type: 'scatter',
      mode: 'lines',
      name: ATTENTION_LABELS[stack],
      x: sub.map((r) => r.step),
      y: sub.map((r) => r.expectedOpen[stack]!),
      line: { color: ATTENTION_COLORS[stack], width: 1.8 },
      xaxis: top.x,
      yaxis: top.y,
    });
  }
  const kept = rows.filter((r) => r.keptHeads !== undefined);
  if (kept.length)
    data.push({
      type: 'scatter',
      mode: 'lines',
      name: 'heads kept (P(g=1) > P(g=0))',
      x: kept.map((r) => r.step),
      y: kept.map((r) => r.keptHeads!),
      line: { color: '#888888', dash: 'dot', width: 1.5, shape: 'hv' },
      xaxis: top.x,
      yaxis: top.y,
    });
  groups.forEach((g, i) => {
    const sub = rows.filter((r) => r.lambda1[g] !== undefined);
    data.push({
      type: 'scatter',
      mode: 'lines',
      name: `λ1 (${g})`,
      x: sub.map((r) => r.step),
      y: sub.map((r) => r.lambda1[g]!),
      line: { color: SERIES_COLORS[(i + 1) % SERIES_COLORS.length]!, width: 1.5 },
      xaxis: bottom.x,
      yaxis: bottom.y,
    });
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
    layout.shapes = [
      {
        type: 'line',
        xref: top.x,
        yref: top.y,
        x0: steps[0]!,
        x1: steps[steps.length - 1]!,
        y0: opts.targetHeads,
        y1: opts.targetHeads,
        line: { color: '#999999', dash: 'dash', width: 1 },
      },
    ];
  return { data, layout };
}
