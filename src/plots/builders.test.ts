/** Figure builders on the fixture files: trace counts, axis titles, and values where they belong. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readHeadMask } from '../io/head-mask.js';
import { attentionMapFigure } from './attention.js';
import {
  bleuPointsFromPruningCurve,
  bleuPointsFromResults,
  bleuVsHeadsFigure,
  keptPerTypeFigure,
  prunedTypes,
  roleCategory,
  survivingRolesFigure,
} from './experiments.js';
import type { FigureSpec, Trace } from './figure.js';
import { closingOrder, closingOrderFigure, expectedOpenHeadsFigure, gateTrajectories, headLineStyle, keepRuleOf } from './gates.js';
import { hardConcrete, LOUIZOS_BETA } from '../gates/hard-concrete.js';
import { agreementHeatmap, headHeatmap, headHeatmapGrid, maskMap } from './heatmap.js';
import {
  headScoresOf,
  readAttentionMaps,
  readExperimentResults,
  readGateTrajectory,
  readHeadScores,
  readMetrics,
  readPruningCurve,
  selectScore,
} from './readers.js';
import { trainingCurves, trainingCurvesOverlay } from './training.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const fx = (name: string) => join(FIXTURES, name);

/** The title text of a layout axis (`xaxis`, `yaxis2`, ...). */
function axisTitle(fig: FigureSpec, key: string): string | undefined {
  const ax = (fig.layout as Record<string, unknown>)[key];
  if (typeof ax !== 'object' || ax === null) return undefined;
  const t = (ax as { title?: unknown }).title;
  return typeof t === 'string' ? t : typeof t === 'object' && t !== null ? String((t as { text?: unknown }).text) : undefined;
}

function field(t: Trace | undefined, key: string): unknown {
  return t ? (t as Record<string, unknown>)[key] : undefined;
}

function layoutTitle(fig: FigureSpec): string {
  const t = fig.layout.title;
  return typeof t === 'string' ? t : String(t?.text);
}

/** Every figure must survive JSON (it is written and shown as JSON). */
function roundTrips(fig: FigureSpec): boolean {
  return JSON.stringify(JSON.parse(JSON.stringify(fig))) === JSON.stringify(fig);
}

describe('training curves', () => {
  it('draws training loss, dev loss, dev BLEU and tokens/s on three stacked panels', () => {
    const fig = trainingCurves(readMetrics(FIXTURES));
    expect(fig.data.map((d) => d.name)).toEqual(['training loss (label-smoothed CE)', 'dev loss (NLL)', 'dev BLEU (greedy)', 'target tokens/s']);
    expect(fig.data.map((d) => field(d, 'yaxis'))).toEqual(['y', 'y', 'y2', 'y3']);
    expect(field(fig.data[0], 'x')).toEqual([10, 20, 30, 40]);
    expect(field(fig.data[0], 'y')).toEqual([6.5, 5, 4, 3.5]);
    expect(field(fig.data[2], 'y')).toEqual([3.5, 12.25]);
    expect(axisTitle(fig, 'yaxis')).toBe('loss (nats / token, log scale)');
    // log scale: the late curve (where a plateau is decided) is not flattened by the first steps' loss
    expect((fig.layout as { yaxis?: { type?: string } }).yaxis?.type).toBe('log');
    expect(axisTitle(fig, 'yaxis2')).toBe('dev BLEU');
    expect(axisTitle(fig, 'yaxis3')).toBe('target tokens / s');
    expect(axisTitle(fig, 'xaxis3')).toBe('training step');
    expect(roundTrips(fig)).toBe(true);
  });

  it('says so on a panel with nothing logged', () => {
    const fig = trainingCurves({ source: 'm', train: [{ step: 1, loss: 2, expectedOpen: {}, lambda1: {} }], eval: [] });
    expect(fig.data).toHaveLength(1);
    expect((fig.layout.annotations ?? []).map((a) => a.text)).toEqual(['no dev BLEU logged (train.evalEverySteps / devBleuSentences)', 'no throughput logged']);
  });
});

describe('training curves of several runs', () => {
  const ev = (step: number, devLoss: number, devBleu: number, bestStep: number, patienceLeft: number) => ({ step, devLoss, devBleu, bestStep, patienceLeft });
  // seed 1 stopped (no patience left at 600, best 400); seed 2 still running (best 600); seed 3 never evaluated
  const seed1 = { source: 'a', train: [], eval: [ev(200, 3, 10, 200, 2), ev(400, 2.5, 14, 400, 2), ev(600, 2.6, 13.5, 400, 0)] };
  const seed2 = { source: 'b', train: [], eval: [ev(200, 3.2, 9, 200, 2), ev(400, 2.8, 12, 400, 2), ev(600, 2.7, 12.5, 600, 2)] };
  const fig = trainingCurvesOverlay([
    { label: 'seed 1', log: seed1 },
    { label: 'seed 2', log: seed2 },
    { label: 'seed 3', log: { source: 'c', train: [], eval: [] } },
  ]);
  const lines = fig.data.filter((d) => d.mode === 'lines');
  const marks = fig.data.filter((d) => d.mode === 'markers');

  it('draws dev loss and dev BLEU per run in one colour, the legend naming its best step and whether it stopped', () => {
    expect(lines.map((d) => [d.name, field(d, 'yaxis')])).toEqual([
      ['seed 1 (best 400, stopped 600)', 'y'],
      ['seed 1 (best 400, stopped 600)', 'y2'],
      ['seed 2 (best 600, running)', 'y'],
      ['seed 2 (best 600, running)', 'y2'],
    ]);
    expect(lines.map((d) => d.showlegend)).toEqual([undefined, false, undefined, false]);
    expect(field(lines[0], 'y')).toEqual([3, 2.5, 2.6]);
    expect(field(lines[3], 'y')).toEqual([9, 12, 12.5]);
    const color = (d: (typeof fig.data)[number]) =>
      (d as { line?: { color?: string }; marker?: { color?: string } }).line?.color ?? (d as { marker?: { color?: string } }).marker?.color;
    expect(color(lines[0])).toBe(color(lines[1]));
    expect(color(lines[0])).not.toBe(color(lines[2]));
    expect(roundTrips(fig)).toBe(true);
  });

  it('stars each best evaluation and crosses each early stop on both panels, at their values', () => {
    const at = (d: (typeof marks)[number]) => [d.name, (d as { marker: { symbol: string } }).marker.symbol, field(d, 'x'), field(d, 'y'), field(d, 'yaxis')];
    expect(marks.map(at)).toEqual([
      ['seed 1', 'star', [400], [2.5], 'y'],
      ['seed 1', 'star', [400], [14], 'y2'],
      ['seed 1', 'x', [600], [2.6], 'y'],
      ['seed 1', 'x', [600], [13.5], 'y2'],
      ['seed 2', 'star', [600], [2.7], 'y'],
      ['seed 2', 'star', [600], [12.5], 'y2'],
    ]);
  });

  it('names the runs without an evaluation, and puts dev loss on a log axis', () => {
    expect((fig.layout.annotations ?? []).map((a) => a.text)).toEqual(['no evaluation logged: seed 3']);
    expect((fig.layout as { yaxis?: { type?: string } }).yaxis?.type).toBe('log');
    expect(axisTitle(fig, 'xaxis2')).toBe('training step');
    expect(trainingCurvesOverlay([]).layout.annotations?.map((a) => a.text)).toEqual(['no evaluation logged']);
  });

  it('reduce on plateau: each learning-rate cut is a triangle on the dev-loss panel and in the legend, once per cut however often a resumed run logged it', () => {
    const cut = (step: number, devLoss: number, lrCuts: number, patienceLeft: number) => ({ step, devLoss, bestStep: step, patienceLeft, lrCuts });
    // cuts after 400 and 800 (the line at 800 logged twice: a run resumed from a checkpoint before it), stop at 1000
    const log = {
      source: 'd',
      train: [],
      eval: [
        cut(200, 3, 0, 2),
        cut(400, 2.9, 1, 2),
        cut(600, 2.7, 1, 2),
        cut(800, 2.65, 2, 2),
        cut(800, 2.65, 2, 2),
        { ...cut(1000, 2.64, 2, 0), bestStep: 1000 },
      ],
    };
    const over = trainingCurvesOverlay([{ label: 'seed 1', log }]);
    expect(over.data.filter((d) => d.mode === 'lines').map((d) => d.name)).toEqual(['seed 1 (best 1000, lr cut 400/800, stopped 1000)']);
    const tri = over.data.filter((d) => (d as { marker?: { symbol?: string } }).marker?.symbol === 'triangle-down');
    expect(tri.map((d) => [field(d, 'x'), field(d, 'y'), field(d, 'yaxis')])).toEqual([
      [[400], [2.9], 'y'],
      [[800], [2.65], 'y'],
    ]);
    const one = trainingCurves(log);
    const mark = one.data.find((d) => (d as { marker?: { symbol?: string } }).marker?.symbol === 'triangle-down')!;
    expect([mark.name, field(mark, 'x'), field(mark, 'y')]).toEqual(['learning rate cut (reduce on plateau) after step 400, 800', [400, 800], [2.9, 2.65]]);
    // without lrDecay no cut is drawn
    expect(fig.data.some((d) => (d as { marker?: { symbol?: string } }).marker?.symbol === 'triangle-down')).toBe(false);
  });
});

describe('gate figures', () => {
  const traj = readGateTrajectory(fx('gate-trajectory.csv'));

  /**
   * The P(open) at which P(g=1) = P(g=0), found by bisection on log α with the Hard Concrete
   * probabilities themselves (not with keepThresholdProbNonZero, which the figures use).
   */
  function pOpenWhereOneEqualsZero(beta: number): number {
    let [lo, hi] = [-10, 10];
    for (let i = 0; i < 100; i++) {
      const mid = (lo + hi) / 2;
      if (hardConcrete.probOne([mid], { beta })[0]! > hardConcrete.probZero([mid], { beta })[0]!) hi = mid;
      else lo = mid;
    }
    return hardConcrete.probNonZero([(lo + hi) / 2], { beta })[0]!;
  }

  it('one P(open) line per head, grouped by attention type, each its own colour and dash', () => {
    const fig = gateTrajectories(traj);
    expect(fig.data).toHaveLength(4);
    expect(fig.data.map((d) => d.legendgroup)).toEqual(['enc-self', 'enc-self', 'dec-enc', 'dec-enc']);
    expect(field(fig.data[1], 'y')).toEqual([0.9, 0.6, 0.4, 0.2]);
    expect(fig.data[0]!.name).toBe('enc-self.0.0');
    const styles = fig.data.map((d) => JSON.stringify(d.line));
    expect(new Set(styles).size).toBe(4);
    expect(fig.layout.showlegend).toBe(true);
    expect(axisTitle(fig, 'yaxis')).toBe('P(gate open) = P(g ≠ 0)');
    expect(axisTitle(fig, 'xaxis')).toBe('training step');
  });

  it("draws the rule the toolkit keeps heads by (P(g=1) > P(g=0)), at the run's beta, not P(open) = 0.5", () => {
    const line = (fig: FigureSpec) => (fig.layout.shapes as Array<{ y0: number }>).map((sh) => sh.y0);
    const [ref, louizos] = [pOpenWhereOneEqualsZero(0.33), pOpenWhereOneEqualsZero(LOUIZOS_BETA)];
    expect(ref).toBeCloseTo(0.688, 3);
    expect(line(gateTrajectories(traj))[0]).toBeCloseTo(ref, 9);
    expect(line(gateTrajectories(traj, { rule: keepRuleOf({ beta: LOUIZOS_BETA }) }))[0]).toBeCloseTo(louizos, 9);
    // a head budget keeps the top N, so there is no P(open) line to draw
    expect(line(gateTrajectories(traj, { rule: keepRuleOf({ targetHeads: 2 }) }))).toEqual([]);
  });

  it('48 lines of one plot all differ in colour or dash pattern', () => {
    expect(new Set(Array.from({ length: 48 }, (_, i) => JSON.stringify(headLineStyle(i)))).size).toBe(48);
    const many = { ...traj, heads: Array.from({ length: 48 }, (_, i) => ({ ...traj.heads[0]!, key: `enc-self.${Math.floor(i / 8)}.${i % 8}` })) };
    const fig = gateTrajectories(many);
    expect(new Set(fig.data.map((d) => JSON.stringify(d.line))).size).toBe(48);
    expect(fig.layout.legend?.orientation).toBe('h'); // the 48 legend entries in rows below the plot
  });

  it('closing order by the default rule: a head below P(g=1) = P(g=0) to the end is closed, as mask.json would remove it', () => {
    // dec-enc.0.0 ends at P(open) 0.55: above 0.5, but its gate is more likely 0 than 1
    const order = closingOrder(traj);
    expect(order.map((c) => [c.key, c.closedAtStep])).toEqual([
      ['enc-self.0.1', 20],
      ['dec-enc.0.1', 20],
      ['dec-enc.0.0', 40],
      ['enc-self.0.0', null],
    ]);
    expect(layoutTitle(closingOrderFigure(order))).toContain('3 closed, 1 kept');
  });

  it('closing order under a head budget: out of the top N by P(open) to the end, overall or per type', () => {
    const overall = closingOrder(traj, keepRuleOf({ targetHeads: 2 }));
    // top 2 at steps 10..40: (enc-self.0.0, enc-self.0.1), then (enc-self.0.0, dec-enc.0.0) from step 20
    expect(overall.map((c) => [c.key, c.closedAtStep])).toEqual([
      ['dec-enc.0.1', 10],
      ['enc-self.0.1', 20],
      ['dec-enc.0.0', null],
      ['enc-self.0.0', null],
    ]);
    // a budget for enc-self only: dec-enc by P(g=1) > P(g=0)
    const perType = closingOrder(traj, keepRuleOf({ targetHeads: { 'enc-self': 1 } }));
    expect(perType.map((c) => [c.key, c.closedAtStep])).toEqual([
      ['enc-self.0.1', 10],
      ['dec-enc.0.1', 20],
      ['dec-enc.0.0', 40],
      ['enc-self.0.0', null],
    ]);
  });

  it('many heads of several types: one panel per type, the same y range, the threshold on each', () => {
    const fig = gateTrajectories(traj, { arrangement: 'by-type' });
    expect(fig.data.map((d) => [d.name, field(d, 'xaxis')])).toEqual([
      ['enc-self.0.0', 'x'],
      ['enc-self.0.1', 'x'],
      ['dec-enc.0.0', 'x2'],
      ['dec-enc.0.1', 'x2'],
    ]);
    expect((fig.layout.yaxis2 as { range: number[] }).range).toEqual([0, 1.02]);
    expect(axisTitle(fig, 'xaxis2')).toBe('training step');
    expect(fig.layout.shapes).toHaveLength(2);
    const panelTitles = (fig.layout.annotations ?? []).map((a) => String(a.text)).filter((t) => t.includes('■'));
    expect(panelTitles.map((t) => t.replace(/<[^>]+>■<\/span> /, ''))).toEqual(['encoder self-attention (2 heads)', 'decoder-encoder attention (2 heads)']);
  });

  it('heads close in order; a head that reopens has not closed', () => {
    const order = closingOrder(traj, 0.5);
    // enc-self.0.1 is below 0.5 from step 30, dec-enc.0.1 from step 20 (0.45, 0.30, 0.35)
    expect(order.map((c) => [c.key, c.closedAtStep])).toEqual([
      ['dec-enc.0.1', 20],
      ['enc-self.0.1', 30],
      ['dec-enc.0.0', null],
      ['enc-self.0.0', null],
    ]);
    const fig = closingOrderFigure(order, { rule: { pOpen: 0.5, targetHeads: null } });
    expect(fig.data).toHaveLength(2); // one bar trace per attention type with a closed head
    expect(field(fig.data[0], 'y')).toEqual(['enc-self.0.1']);
    expect(field(fig.data[1], 'x')).toEqual([20]);
    expect(layoutTitle(fig)).toContain('2 closed, 2 kept');
    expect(layoutTitle(fig)).toContain('kept: P(g=1) > P(g=0), i.e. P(open) > 0.500');
  });

  it('expected open heads per type, kept heads and lambda1 on a second panel', () => {
    const fig = expectedOpenHeadsFigure(readMetrics(FIXTURES), { targetHeads: 2 });
    expect(fig.data.map((d) => d.name)).toEqual([
      'all gated heads',
      'encoder self-attention',
      'decoder-encoder attention',
      'heads kept (P(g=1) > P(g=0))',
      'λ1 (all)',
    ]);
    expect(field(fig.data[0], 'y')).toEqual([3.6, 3.1, 2.4, 2.1]);
    expect(field(fig.data[4], 'yaxis')).toBe('y2');
    expect(field(fig.data[4], 'y')).toEqual([0.01, 0.03, 0.05, 0.06]);
    expect(axisTitle(fig, 'yaxis2')).toBe('Lagrange multiplier λ1');
  });
});

describe('layer x head grids', () => {
  it('a score heatmap puts each value at [layer][head] of its attention type, with the head key on hover', () => {
    const fig = headHeatmap(selectScore(readHeadScores(FIXTURES), 'importance_per_token'));
    expect(fig.data).toHaveLength(2); // enc-self and dec-enc have values; dec-self none
    expect(fig.data.map((d) => d.name)).toEqual(['enc-self', 'dec-enc']);
    expect(field(fig.data[0], 'z')).toEqual([
      [0.12, 0.02],
      [0.33, 0.05],
    ]);
    expect(field(fig.data[1], 'z')).toEqual([[0.5, -0.01]]);
    expect(field(fig.data[0], 'customdata')).toEqual([
      ['enc-self.0.0', 'enc-self.0.1'],
      ['enc-self.1.0', 'enc-self.1.1'],
    ]);
    expect(field(fig.data[0], 'text')).toEqual([
      ['0.12', '0.02'],
      ['0.33', '0.05'],
    ]);
    // a signed score gets a diverging scale centred on 0
    expect(field(fig.data[0], 'zmin')).toBe(-0.5);
    expect(field(fig.data[0], 'zmax')).toBe(0.5);
    expect(field(fig.data[0], 'colorscale')).toBe('RdBu');
    expect(axisTitle(fig, 'xaxis')).toBe('head');
    expect(axisTitle(fig, 'yaxis')).toBe('layer');
    expect(axisTitle(fig, 'xaxis2')).toBe('head');
    expect(field(fig.data[1], 'showscale')).toBe(true);
    expect(field(fig.data[0], 'showscale')).toBe(false);
  });

  it('a probability keeps the [0, 1] range and empty cells stay null', () => {
    const fig = headHeatmap(selectScore(readHeadScores(FIXTURES), 'gate_p_open'));
    expect(field(fig.data[0], 'z')).toEqual([
      [0.9, 0.2],
      [0.7, null],
    ]);
    expect([field(fig.data[0], 'zmin'), field(fig.data[0], 'zmax'), field(fig.data[0], 'colorscale')]).toEqual([0, 1, 'Viridis']);
    expect((field(fig.data[0], 'colorbar') as { title: { text: string } }).title.text).toBe('P(gate open) = P(g ≠ 0)');
  });

  it('without a shape the grid spans the heads present', () => {
    const fig = headHeatmap({ name: 's', label: 's', values: { 'dec-self.1.2': 1 } });
    expect(field(fig.data[0], 'z')).toEqual([
      [null, null, null],
      [null, null, 1],
    ]);
  });

  it('a grid of scores: one row per score, one column per attention type, each row on its own range', () => {
    const heads = { 'enc-self.0.0': { a: 1, b: 0.5 }, 'enc-self.0.1': { a: 3, b: null }, 'dec-enc.0.0': { a: 2, b: 0.9 } };
    const cols = [
      { name: 'a', label: 'score A', get: (e: { a: number }) => e.a },
      { name: 'confidence', label: 'confidence', get: (e: { b: number | null }) => e.b },
    ];
    const fig = headHeatmapGrid(cols.map((c) => headScoresOf(heads, c)));
    expect(fig.data.map((d) => [d.name, field(d, 'xaxis'), field(d, 'yaxis')])).toEqual([
      ['a enc-self', 'x', 'y'],
      ['a dec-enc', 'x2', 'y2'],
      ['confidence enc-self', 'x3', 'y3'],
      ['confidence dec-enc', 'x4', 'y4'],
    ]);
    expect(field(fig.data[0], 'z')).toEqual([[1, 3]]);
    expect(field(fig.data[2], 'z')).toEqual([[0.5, null]]);
    expect([field(fig.data[0], 'zmin'), field(fig.data[0], 'zmax')]).toEqual([1, 3]);
    expect([field(fig.data[2], 'zmin'), field(fig.data[2], 'zmax')]).toEqual([0, 1]); // confidence is a probability
    expect(axisTitle(fig, 'xaxis3')).toBe('enc-self: head');
    expect(axisTitle(fig, 'xaxis')).toBe('');
    expect((fig.layout.annotations ?? []).map((a) => a.text)).toEqual(['<b>score A</b>', '<b>confidence</b>']);
  });

  it('the agreement matrix is square on [-1, 1] with the values in the cells', () => {
    const fig = agreementHeatmap(
      ['a', 'b'],
      [
        [1, -0.25],
        [-0.25, null],
      ],
    );
    expect(field(fig.data[0], 'z')).toEqual([
      [1, -0.25],
      [-0.25, null],
    ]);
    expect(field(fig.data[0], 'text')).toEqual([
      ['1.00', '-0.25'],
      ['-0.25', ''],
    ]);
    expect([field(fig.data[0], 'zmin'), field(fig.data[0], 'zmax'), field(fig.data[0], 'x'), field(fig.data[0], 'y')]).toEqual([-1, 1, ['a', 'b'], ['a', 'b']]);
  });

  it('the mask map marks kept (1) and pruned (0) heads; untouched types are all kept', () => {
    const fig = maskMap(readHeadMask(fx('mask.json')));
    expect(fig.data.map((d) => d.name)).toEqual(['enc-self', 'dec-self', 'dec-enc']);
    expect(field(fig.data[0], 'z')).toEqual([
      [1, 0],
      [1, 1],
    ]);
    expect(field(fig.data[1], 'z')).toEqual([[1, 1]]);
    expect(field(fig.data[2], 'z')).toEqual([[0, 0]]);
    expect(field(fig.data[0], 'text')).toEqual([
      ['0.0', '0.1'],
      ['1.0', '1.1'],
    ]);
    expect(layoutTitle(fig)).toBe('Head mask: 5 of 8 heads kept (gates (budget 2))');
    expect((fig.layout.annotations ?? []).map((a) => a.text)).toContain('dec-self: 2 of 2 kept (not pruned)');
  });
});

describe('attention maps', () => {
  it('tokens on both axes (escaped for plotly), weights as z, one panel per head', () => {
    const fig = attentionMapFigure(readAttentionMaps(fx('attention-maps.json')));
    expect(fig.data).toHaveLength(2);
    expect(field(fig.data[0], 'z')).toEqual([
      [0.7, 0.2, 0.1],
      [0.9, 0.05, 0.05],
      [0.1, 0.85, 0.05],
    ]);
    const layout = fig.layout as Record<string, { ticktext?: string[] }>;
    expect(layout.xaxis!.ticktext).toEqual(['▁the', '▁house', '&lt;/s&gt;']);
    expect(layout.yaxis!.ticktext).toEqual(['&lt;s&gt;', '▁Das', '▁Haus']);
    expect(axisTitle(fig, 'xaxis')).toBe('source token (key)');
    expect(axisTitle(fig, 'yaxis')).toBe('target prefix token (query)');
    expect(axisTitle(fig, 'yaxis2')).toBe('source token (query)');
    expect([field(fig.data[0], 'zmin'), field(fig.data[0], 'zmax')]).toEqual([0, 1]);
    expect(layoutTitle(fig)).toBe('Attention (sentence 3)');
  });
});

describe('experiment figures', () => {
  const rows = readExperimentResults(fx('results.csv'));

  it('BLEU against heads kept: near-equal scores get at least a 2-BLEU y range (not 0.06 stretched over the plot)', () => {
    const yRange = (bleus: number[], base?: number) =>
      (
        bleuVsHeadsFigure([
          ...bleus.map((b, i) => ({ method: 'l0', headsKept: 10 - i, bleu: b })),
          ...(base === undefined ? [] : [{ method: 'baseline', headsKept: 12, bleu: base }]),
        ]).layout.yaxis as { range?: number[] }
      ).range;
    const r = yRange([19.03, 19.07, 19.09], 19.05)!;
    expect(r[1]! - r[0]!).toBeCloseTo(2, 9);
    expect(r[0]!).toBeLessThan(19.03);
    expect(r[1]!).toBeGreaterThan(19.09);
    expect(yRange([0.1, 0.3])).toEqual([0, 2]); // never below 0
    expect(yRange([10, 19])).toBeUndefined(); // a real spread: plotly's own range
  });

  it('BLEU against heads kept: one line per method, the baseline dashed, reporting stages left out', () => {
    expect(prunedTypes(rows)).toEqual(['enc-self', 'dec-self', 'dec-enc']);
    const points = bleuPointsFromResults(rows, { types: ['enc-self'] });
    expect(points.map((p) => p.method)).not.toContain('analyze');
    const fig = bleuVsHeadsFigure([...points, ...bleuPointsFromPruningCurve(readPruningCurve(fx('pruning-curve.csv')), 'importance (curve)')]);
    expect(fig.data.map((d) => d.name)).toEqual(['l0', 'importance', 'importance (curve)', 'full model']);
    expect(field(fig.data[0], 'x')).toEqual([3, 4, 6]); // sorted by heads kept
    expect(field(fig.data[0], 'y')).toEqual([28.9, 27.5, 30.1]);
    expect(field(fig.data[2], 'x')).toEqual([5, 6, 7, 8]);
    expect(field(fig.data[3], 'y')).toEqual([30.5, 30.5]);
    expect((fig.data[3]!.line as { dash: string }).dash).toBe('dash');
    expect(axisTitle(fig, 'xaxis')).toBe('heads kept');
    expect(axisTitle(fig, 'yaxis')).toBe('BLEU');
  });

  it('counts the heads of the pruned types by default and can use the tokenized BLEU', () => {
    const encOnly = rows.filter((r) => r.attention === 'enc-self' || r.method === 'baseline');
    const points = bleuPointsFromResults(encOnly, { metric: 'bleuTokLc' });
    expect(points.find((p) => p.label?.startsWith('l0@lambda=0.05'))).toMatchObject({ headsKept: 3, bleu: 29.5 });
  });

  it('heads kept per attention type against BLEU: one line per type', () => {
    const fig = keptPerTypeFigure(rows);
    expect(fig.data.map((d) => d.name)).toEqual([
      'encoder self-attention (l0)',
      'decoder self-attention (l0)',
      'decoder-encoder attention (l0)',
      'encoder self-attention (importance)',
      'decoder self-attention (importance)',
      'decoder-encoder attention (importance)',
    ]);
    expect(field(fig.data[0], 'x')).toEqual([27.5, 28.9, 30.1]); // sorted by BLEU
    expect(field(fig.data[0], 'y')).toEqual([4, 3, 6]);
    expect(axisTitle(fig, 'xaxis')).toBe('BLEU');
    expect(axisTitle(fig, 'yaxis')).toBe('heads kept');
  });
});

describe('surviving head roles (Figure 8)', () => {
  it('puts each head in one category by priority: positional, syntactic, rare, none', () => {
    expect(roleCategory(['rare', 'positional -1'])).toBe('positional');
    expect(roleCategory(['rare', 'syntactic nsubj:dep->head'])).toBe('syntactic');
    expect(roleCategory(['rare'])).toBe('rare');
    expect(roleCategory([])).toBe('none');
    expect(roleCategory(['positionality'])).toBe('none');
  });

  it('stacks the survivors of each layout by category, largest layout first, counts summing to heads kept', () => {
    const fig = survivingRolesFigure([
      { label: 'small', headsKept: 2, roles: ['positional', 'rare'] },
      { label: 'full', headsKept: 5, roles: ['positional', 'positional', 'none', 'rare', 'syntactic'] },
    ]);
    expect(fig.layout!.barmode).toBe('stack');
    expect(fig.data.map((t) => t.name)).toEqual(['positional', 'syntactic', 'rare', 'no role found']);
    expect(fig.data[0]!.x).toEqual(['full', 'small']);
    expect(fig.data.map((t) => (t.y as number[])[0])).toEqual([2, 1, 1, 1]);
    expect(fig.data.map((t) => (t.y as number[])[1])).toEqual([1, 0, 1, 0]);
  });
});
