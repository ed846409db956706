/**
 * Experiment comparison figures: BLEU against the number of heads kept, one line per pruning method on
 * one plot (Voita et al. 2019, Figure 7: L0 gates against heuristic pruning), and the heads kept per
 * attention type against BLEU (their Figure 9, pruning all attention types). Points come from an
 * experiment's results.csv or from importance pruning's pruning-curve.csv. A row may carry its
 * `replicates` (the same setting trained with several seeds): it is then drawn at the replicates' mean
 * with error bars of one sample standard deviation.
 */
import { ATTENTION_TYPES, type AttentionType, isAttentionType } from '../config/head-id.js';
import type { ExperimentResultRow, PruningCurveRow } from './readers.js';
import { meanSd } from '../util/stats.js';
import { ATTENTION_COLORS, ATTENTION_LABELS, type FigureSpec, SERIES_COLORS, type Trace, axis, baseLayout } from './figure.js';

/** One pruned model: how many heads it keeps and its BLEU. */
export interface BleuPoint {
  method: string;
  headsKept: number;
  bleu: number;
  /** shown on hover, e.g. the stage or `lambda 0.05` */
  label?: string;
  keptByType?: Partial<Record<AttentionType, number>>;
  /** over seeds: sample standard deviations of bleu and headsKept, and how many replicates */
  bleuSd?: number;
  headsSd?: number;
  n?: number;
}

/** A results row, optionally with the per-seed rows it stands for (their mean is what it shows). */
export type ReplicatedRow = ExperimentResultRow & { replicates?: readonly ExperimentResultRow[] };

/** Error bars of one sd when any point has several replicates (undefined otherwise). */
function errorBars(
  sds: ReadonlyArray<number | undefined>,
  color: string,
): { type: 'data'; array: number[]; visible: true; color: string; thickness: number; width: number } | undefined {
  return sds.some((x) => x !== undefined && x > 0)
    ? { type: 'data', array: sds.map((x) => x ?? 0), visible: true, color, thickness: 1.2, width: 4 }
    : undefined;
}

/** Methods whose rows are the unpruned reference, drawn as a dashed line instead of a series. */
export const BASELINE_METHODS: readonly string[] = ['baseline', 'full', 'none'];

/** Stage kinds that re-report a model another stage made (left out of the comparison by default). */
export const REPORTING_KINDS: readonly string[] = ['analyze', 'export'];

function isComparable(r: ExperimentResultRow): boolean {
  return !REPORTING_KINDS.includes(r.kind ?? '') && !REPORTING_KINDS.includes(r.method);
}

function keptOf(r: ExperimentResultRow): Partial<Record<AttentionType, number>> {
  const out: Partial<Record<AttentionType, number>> = {};
  if (r.keptEnc !== null) out['enc-self'] = r.keptEnc;
  if (r.keptDecSelf !== null) out['dec-self'] = r.keptDecSelf;
  if (r.keptDecEnc !== null) out['dec-enc'] = r.keptDecEnc;
  return out;
}

/** Attention types named in the rows' `attention` column (`enc-self+dec-enc`, `enc-self,dec-self`). */
export function prunedTypes(rows: readonly ExperimentResultRow[]): AttentionType[] {
  const named = new Set(rows.flatMap((r) => r.attention.split(/[+,\s]+/).filter(isAttentionType)));
  return ATTENTION_TYPES.filter((t) => named.has(t));
}

export interface BleuPointOptions {
  /** which heads count as "kept" (default: the types the rows prune, else all three) */
  types?: readonly AttentionType[];
  /** `bleu` (sacreBLEU, default) or `bleuTokLc` (tokenized lower-cased, Voita et al.'s number) */
  metric?: 'bleu' | 'bleuTokLc';
}

/** Points of results.csv rows (rows without the BLEU or a needed kept count are left out). */
export function bleuPointsFromResults(rows: readonly ExperimentResultRow[], opts: BleuPointOptions = {}): BleuPoint[] {
  const named = prunedTypes(rows);
  const types = opts.types ?? (named.length ? named : ATTENTION_TYPES);
  const metric = opts.metric ?? 'bleu';
  const one = (r: ExperimentResultRow): BleuPoint | null => {
    const bleu = r[metric];
    const kept = keptOf(r);
    if (bleu === null || types.some((t) => kept[t] === undefined)) return null;
    const label = [r.id ?? r.stage, r.lambda !== null ? `λ ${r.lambda}` : '', r.targetHeads ? `budget ${r.targetHeads}` : ''].filter(Boolean).join(', ');
    return { method: r.method || 'unknown', headsKept: types.reduce((a, t) => a + kept[t]!, 0), bleu, label, keptByType: kept };
  };
  return (rows as readonly ReplicatedRow[]).filter(isComparable).flatMap((r): BleuPoint[] => {
    const p = one(r);
    if (!p || !r.replicates || r.replicates.length < 2) return p ? [p] : [];
    // the mean of the replicates' points (heads summed per replicate first), one sd each way
    const reps = r.replicates.map(one).filter((x): x is BleuPoint => x !== null);
    const b = meanSd(reps.map((x) => x.bleu))!;
    const h = meanSd(reps.map((x) => x.headsKept))!;
    return [{ ...p, bleu: b.mean, headsKept: h.mean, bleuSd: b.sd, headsSd: h.sd, n: reps.length, label: `${p.label} (mean of ${reps.length} seeds)` }];
  });
}

/** Points of one importance-pruning run (heads kept in the pruned pool). */
export function bleuPointsFromPruningCurve(rows: readonly PruningCurveRow[], method: string): BleuPoint[] {
  return rows.map((r) => ({
    method,
    headsKept: r.headsKept,
    bleu: r.bleu,
    label: `step ${r.step}${r.removed.length ? `: removed ${r.removed.join(' ')}` : ''}`,
  }));
}

export interface BleuVsHeadsOptions {
  title?: string;
  /** x-axis title (default: "heads kept") */
  headsLabel?: string;
  /** BLEU of the full model, drawn dashed (default: the mean of any baseline-method points) */
  baselineBleu?: number | null;
  /** y-axis title (default: "BLEU") */
  bleuLabel?: string;
  /** sd of the full model's BLEU over seeds, drawn as a band around its line (default: from the baseline points) */
  baselineSd?: number | null;
}

/** BLEU against heads kept, one line per method, the full model as a dashed line. */
export function bleuVsHeadsFigure(points: readonly BleuPoint[], opts: BleuVsHeadsOptions = {}): FigureSpec {
  const isBase = (p: BleuPoint) => BASELINE_METHODS.includes(p.method.toLowerCase());
  const base = points.filter(isBase);
  const baseline = opts.baselineBleu !== undefined ? opts.baselineBleu : base.length ? base.reduce((a, p) => a + p.bleu, 0) / base.length : null;
  const baselineSd = opts.baselineSd !== undefined ? opts.baselineSd : base.length === 1 ? (base[0]!.bleuSd ?? null) : null;
  const methods = [...new Set(points.filter((p) => !isBase(p)).map((p) => p.method))];
  const data: Trace[] = methods.map((method, i) => {
    const mine = points.filter((p) => p.method === method).sort((a, b) => a.headsKept - b.headsKept);
    return {
      type: 'scatter',
      mode: 'lines+markers',
      name: method,
      x: mine.map((p) => p.headsKept),
      y: mine.map((p) => p.bleu),
      text: mine.map(
        (p) => `${p.label ?? ''}${p.n && p.n > 1 ? `<br>± ${(p.bleuSd ?? 0).toFixed(2)} BLEU, ± ${(p.headsSd ?? 0).toFixed(1)} heads (1 sd)` : ''}`,
      ),
      hovertemplate: `${method}<br>%{x} heads: BLEU %{y:.2f}<br>%{text}<extra></extra>`,
      error_y: errorBars(
        mine.map((p) => p.bleuSd),
        SERIES_COLORS[i % SERIES_COLORS.length]!,
      ),
      error_x: errorBars(
        mine.map((p) => p.headsSd),
        SERIES_COLORS[i % SERIES_COLORS.length]!,
      ),
      line: { color: SERIES_COLORS[i % SERIES_COLORS.length]!, width: 2 },
      marker: { size: 8, symbol: ['circle', 'square', 'diamond', 'triangle-up', 'x', 'cross'][i % 6] },
    };
  });
  const xs = points.map((p) => p.headsKept);
  const layout = baseLayout(opts.title ?? 'BLEU against heads kept', 900, 520);
  layout.xaxis = axis(opts.headsLabel ?? 'heads kept', { rangemode: 'tozero' });
  layout.yaxis = axis(opts.bleuLabel ?? 'BLEU');
  // bottom right: curves fall towards few heads (the left), so that corner is usually empty
  layout.legend = { x: 0.98, y: 0.02, xanchor: 'right', yanchor: 'bottom', bgcolor: 'rgba(255,255,255,0.8)' };
  if (baseline !== null && baselineSd && xs.length) {
    // the full model's ± 1 sd over seeds: a band between two invisible lines
    const xr = [0, Math.max(...xs)];
    data.push({
      type: 'scatter',
      mode: 'lines',
      x: xr,
      y: [baseline - baselineSd, baseline - baselineSd],
      line: { width: 0 },
      showlegend: false,
      hoverinfo: 'skip',
    });
    data.push({
      type: 'scatter',
      mode: 'lines',
      name: 'full model ± 1 sd',
      x: xr,
      y: [baseline + baselineSd, baseline + baselineSd],
      fill: 'tonexty',
      fillcolor: 'rgba(119,119,119,0.18)',
      line: { width: 0 },
      hoverinfo: 'skip',
    });
  }
  if (baseline !== null && xs.length) {
    data.push({
      type: 'scatter',
      mode: 'lines',
      name: 'full model',
      x: [0, Math.max(...xs)],
      y: [baseline, baseline],
      line: { color: '#777777', dash: 'dash', width: 1.5 },
      hovertemplate: `full model: BLEU ${baseline.toFixed(2)}<extra></extra>`,
    });
  }
  const ys = [
    ...points.flatMap((p) => [p.bleu - (p.bleuSd ?? 0), p.bleu + (p.bleuSd ?? 0)]),
    ...(baseline !== null ? [baseline - (baselineSd ?? 0), baseline + (baselineSd ?? 0)] : []),
  ];
  const range = bleuAxisRange(ys);
  if (range) layout.yaxis.range = range;
  return { data, layout };
}

/** Smallest BLEU span the y-axis shows: differences of a few hundredths are noise, not a slope to draw. */
export const MIN_BLEU_SPAN = 2;

/**
 * The y range of a BLEU axis: plotly's own (null) when the values span at least `minSpan`; otherwise
 * `minSpan` centred on them (kept above 0), so near-equal scores stay flat instead of filling the plot.
 */
export function bleuAxisRange(values: readonly number[], minSpan = MIN_BLEU_SPAN): [number, number] | null {
  const v = values.filter(Number.isFinite);
  if (!v.length) return null;
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  if (hi - lo >= minSpan) return null;
  const bottom = Math.max(0, (lo + hi) / 2 - minSpan / 2);
  return [bottom, bottom + minSpan];
}

/** Heads kept of each attention type against BLEU, one line per type (and per method when several). */
export function keptPerTypeFigure(rows: readonly ExperimentResultRow[], opts: { title?: string; metric?: 'bleu' | 'bleuTokLc' } = {}): FigureSpec {
  const metric = opts.metric ?? 'bleu';
  const usable = rows.filter((r) => isComparable(r) && r[metric] !== null && !BASELINE_METHODS.includes(r.method.toLowerCase()));
  const methods = [...new Set(usable.map((r) => r.method))];
  const dashes = ['solid', 'dash', 'dot', 'dashdot'] as const;
  const data: Trace[] = [];
  methods.forEach((method, mi) => {
    for (const t of ATTENTION_TYPES) {
      // a row with replicates stands at their mean, with one sd each way
      const pts = usable
        .filter((r) => r.method === method && keptOf(r)[t] !== undefined)
        .map((r) => {
          const reps = (r as ReplicatedRow).replicates ?? [r];
          const b = meanSd(reps.map((x) => x[metric]))!;
          const k = meanSd(reps.map((x) => keptOf(x)[t]))!;
          return { r, b, k };
        })
        .sort((a, b) => a.b.mean - b.b.mean);
      if (!pts.length) continue;
      data.push({
        type: 'scatter',
        mode: 'lines+markers',
        name: methods.length > 1 ? `${ATTENTION_LABELS[t]} (${method})` : ATTENTION_LABELS[t],
        x: pts.map((p) => p.b.mean),
        y: pts.map((p) => p.k.mean),
        error_x: errorBars(
          pts.map((p) => p.b.sd),
          ATTENTION_COLORS[t],
        ),
        error_y: errorBars(
          pts.map((p) => p.k.sd),
          ATTENTION_COLORS[t],
        ),
        text: pts.map((p) => `${p.r.id ?? p.r.stage}${p.b.n > 1 ? ` (mean of ${p.b.n} seeds)` : ''}`),
        hovertemplate: `${t} (${method})<br>BLEU %{x:.2f}: %{y} heads<br>%{text}<extra></extra>`,
        line: { color: ATTENTION_COLORS[t], width: 2, dash: dashes[mi % dashes.length] },
        marker: { size: 7 },
      });
    }
  });
  const layout = baseLayout(opts.title ?? 'Heads kept per attention type against BLEU', 900, 520);
  layout.xaxis = axis(metric === 'bleu' ? 'BLEU' : 'BLEU (tokenized, lower-cased)');
  layout.yaxis = axis('heads kept', { rangemode: 'tozero' });
  return { data, layout };
}

/** The one function a head is drawn with in the roles figure (Voita et al., Figure 8), by priority. */
export type RoleCategory = 'positional' | 'syntactic' | 'rare' | 'none';
export const ROLE_CATEGORIES: readonly RoleCategory[] = ['positional', 'syntactic', 'rare', 'none'];
const ROLE_COLORS: Readonly<Record<RoleCategory, string>> = { positional: '#0072B2', syntactic: '#009E73', rare: '#D55E00', none: '#BBBBBB' };

/**
 * A head's category from its role labels (src/analysis/roles.ts: "positional -1", "syntactic nsubj:…",
 * "rare"): positional first, then syntactic, then rare; no label is `none`.
 */
export function roleCategory(labels: readonly string[]): RoleCategory {
  for (const c of ['positional', 'syntactic', 'rare'] as const) if (labels.some((l) => l === c || l.startsWith(`${c} `))) return c;
  return 'none';
}

/** One pruned layout of the roles figure: which heads survive, and a label. */
export interface SurvivingLayout {
  label: string;
  headsKept: number;
  /** role category of each surviving head */
  roles: readonly RoleCategory[];
}

/** Heads that survive each pruning level, stacked by their role in the unpruned model (Figure 8). */
export function survivingRolesFigure(layouts: readonly SurvivingLayout[], opts: { title?: string; xLabel?: string } = {}): FigureSpec {
  const sorted = [...layouts].sort((a, b) => b.headsKept - a.headsKept);
  const x = sorted.map((l) => l.label);
  const data: Trace[] = ROLE_CATEGORIES.map((c) => ({
    type: 'bar',
    name: c === 'none' ? 'no role found' : c,
    x,
    y: sorted.map((l) => l.roles.filter((r) => r === c).length),
    marker: { color: ROLE_COLORS[c] },
    hovertemplate: `%{x}<br>${c}: %{y} heads<extra></extra>`,
  }));
  // wide enough for every bar's label (several seeds put 9 bars each)
  const layout = baseLayout(opts.title ?? 'Roles of the heads that survive pruning', Math.max(900, 48 * x.length), 520);
  layout.barmode = 'stack';
  layout.xaxis = axis(opts.xLabel ?? 'pruned model (heads kept)', { type: 'category' });
  layout.yaxis = axis('heads kept', { rangemode: 'tozero' });
  return { data, layout };
}

/**
 * Test BLEU against the bytes of each compressed model's weights file, one point (and legend entry) per
 * method: the sparsity-methods comparison (experiments/sparsity-methods.yaml). Rows without a BLEU or
 * a weights size (train, prune and analyze stages) are left out; hover shows parameters (non-zero ones
 * when fewer) and decode time.
 */
export function bleuVsModelBytesFigure(rows: readonly ExperimentResultRow[], opts: { title?: string; metric?: 'bleu' | 'bleuTokLc' } = {}): FigureSpec {
  const metric = opts.metric ?? 'bleu';
  const usable = rows.filter((r) => r[metric] !== null && r.modelBytes !== null && r.modelBytes !== undefined);
  const symbols = ['circle', 'square', 'diamond', 'triangle-up', 'x', 'cross', 'star', 'hexagon'];
  const data: Trace[] = usable.map((r, i) => {
    const params =
      r.params === null || r.params === undefined
        ? 'params ?'
        : `${(r.params / 1e6).toFixed(2)}M params${r.nonZeroParams !== null && r.nonZeroParams !== undefined && r.nonZeroParams < r.params ? ` (${(r.nonZeroParams / 1e6).toFixed(2)}M non-zero)` : ''}`;
    const decode = r.decodeSeconds === null || r.decodeSeconds === undefined ? '' : `<br>decode ${r.decodeSeconds.toFixed(2)} s`;
    return {
      type: 'scatter',
      mode: 'markers',
      name: r.method || r.stage,
      x: [r.modelBytes! / 1e6],
      y: [meanSd(((r as ReplicatedRow).replicates ?? [r]).map((x) => x[metric]))!.mean],
      error_y: errorBars([meanSd(((r as ReplicatedRow).replicates ?? [r]).map((x) => x[metric]))!.sd], SERIES_COLORS[i % SERIES_COLORS.length]!),
      text: [`${r.id ?? r.stage}: ${params}${decode}`],
      hovertemplate: `${r.method || r.stage}<br>%{x:.2f} MB: BLEU %{y:.2f}<br>%{text}<extra></extra>`,
      marker: { size: 11, color: SERIES_COLORS[i % SERIES_COLORS.length]!, symbol: symbols[i % symbols.length] },
    };
  });
  const layout = baseLayout(opts.title ?? 'Test BLEU against model size', 900, 520);
  layout.xaxis = axis('weights file (MB)', { rangemode: 'tozero' });
  layout.yaxis = axis(metric === 'bleu' ? 'BLEU' : 'BLEU (tokenized, lower-cased)');
  return { data, layout };
}
