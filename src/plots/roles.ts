/**
 * The roles map of a head report: one layer x head panel per analysed attention type, each cell
 * coloured by the head's role (positional, rare, syntactic, several, none) and labelled with the
 * report's role labels. Rows are layers (0 at the top), columns original head ids, empty where the
 * model has no such head (pruned).
 */
import type { AttentionType } from '../config/head-id.js';
import { type HeadShape, shapeKeys } from '../config/head-layout.js';
import { ATTENTION_LABELS, type FigureSpec, type Trace, axis, baseLayout, columnDomains, panelAxes, panelTitle, setAxis } from './figure.js';
import { escapeLabel } from './attention.js';

/** What the roles map reads of a head report's entry (analysis/report.ts HeadReportEntry has these fields). */
export interface HeadRoles {
  roles: {
    labels: readonly string[];
    positional?: { isPositional: boolean } | null;
    rare?: { isRare: boolean } | null;
    syntactic?: { isSyntactic: boolean } | null;
  };
}

export const ROLE_NAMES = ['none', 'positional', 'rare', 'syntactic', 'several'] as const;
export type RoleName = (typeof ROLE_NAMES)[number];
const ROLE_COLORS: Readonly<Record<RoleName, string>> = { none: '#eeeeee', positional: '#7b3294', rare: '#e66101', syntactic: '#1a9641', several: '#404040' };

/** A head's role for the map: the one role it has, `several`, or `none`. */
export function roleOf(e: HeadRoles): RoleName {
  const r = e.roles;
  const found: RoleName[] = [];
  if (r.positional?.isPositional) found.push('positional');
  if (r.rare?.isRare) found.push('rare');
  if (r.syntactic?.isSyntactic) found.push('syntactic');
  return found.length > 1 ? 'several' : (found[0] ?? 'none');
}

export interface RolesMapOptions {
  title?: string;
}

/**
 * The roles map: `heads` by key (`enc-self.3.5`), `shape` the original heads per layer, `stacks` the
 * attention types to draw. Cell z is the role's index + 0.5 on a discrete colour scale.
 */
export function rolesMapFigure(
  heads: Readonly<Record<string, HeadRoles>>,
  shape: HeadShape,
  stacks: readonly AttentionType[],
  opts: RolesMapOptions = {},
): FigureSpec {
  const n = ROLE_NAMES.length;
  // a discrete colour scale: role i fills [i/n, (i+1)/n]
  const colorscale = ROLE_NAMES.flatMap((name, i): Array<[number, string]> => [
    [i / n, ROLE_COLORS[name]],
    [(i + 1) / n, ROLE_COLORS[name]],
  ]);
  const maxHeads = Math.max(1, ...stacks.map((s) => Math.max(0, ...shape[s])));
  const maxLayers = Math.max(1, ...stacks.map((s) => shape[s].length));
  const cell = Math.max(44, Math.min(80, 480 / maxHeads));
  const layout = baseLayout(
    opts.title ?? 'Head roles',
    Math.max(520, Math.round(stacks.length * (maxHeads * cell + 70) + 90)),
    Math.max(360, Math.round(maxLayers * cell + 220)),
  );
  layout.margin = { l: 60, r: 30, t: 120, b: 60 };
  layout.plot_bgcolor = '#f2f2f2';
  const domains = columnDomains(Math.max(1, stacks.length), 0.25 / Math.max(1, stacks.length));
  // the colour key in one line under the title, then one title per panel
  layout.annotations = ROLE_NAMES.map((name, i) => ({
    text: `<span style="color:${ROLE_COLORS[name]}">■</span> ${name}`,
    showarrow: false,
    xref: 'paper' as const,
    yref: 'paper' as const,
    x: i / n,
    y: 1.1,
    xanchor: 'left' as const,
    yanchor: 'bottom' as const,
  }));
  const data: Trace[] = stacks.map((stack, i) => {
    const ax = panelAxes(i);
    const keys = shapeKeys(shape, stack);
    const z = keys.map((row) => row.map((k) => (heads[k] ? ROLE_NAMES.indexOf(roleOf(heads[k])) + 0.5 : null)));
    const text = keys.map((row) => row.map((k) => (heads[k]?.roles.labels ?? []).map(escapeLabel).join('<br>')));
    const width = Math.max(0, ...shape[stack]);
    setAxis(layout, ax.xKey, axis('head', { domain: domains[i], anchor: ax.y, dtick: 1, showgrid: false, zeroline: false, range: [-0.5, width - 0.5] }));
    setAxis(layout, ax.yKey, axis(i === 0 ? 'layer' : '', { anchor: ax.x, dtick: 1, autorange: 'reversed', showgrid: false, zeroline: false }));
    layout.annotations!.push(panelTitle(`${ATTENTION_LABELS[stack]} (${stack})`, ax, 1.02, 13));
    return {
      type: 'heatmap',
      z,
      x: Array.from({ length: width }, (_, h) => h),
      y: keys.map((_, l) => l),
      xaxis: ax.x,
      yaxis: ax.y,
      zmin: 0,
      zmax: n,
      colorscale,
      showscale: false,
      xgap: 2,
      ygap: 2,
      text,
      texttemplate: '%{text}',
      customdata: keys,
      hovertemplate: '%{customdata}: %{text}<extra></extra>',
      name: stack,
    };
  });
  return { data, layout };
}
