/**
 * Training curves from metrics.jsonl: three stacked panels sharing the step axis: loss (training
 * label-smoothed cross-entropy and dev NLL, nats per target token), dev BLEU, and training throughput
 * (target tokens per second). A panel with nothing logged says so instead of staying blank. With early
 * stopping (eval records carry `bestStep`), the best evaluation is starred on the dev panels and the step
 * where patience ran out is marked, so the plateau between them is visible.
 */
import type { MetricsLog } from './readers.js';
import { type FigureSpec, SERIES_COLORS, type Trace, axis, baseLayout, panelAxes, panelNote, rowDomains, setAxis } from './figure.js';

function points<T extends { step: number }>(records: readonly T[], value: (r: T) => number | undefined): { x: number[]; y: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  for (const r of records) {
    const v = value(r);
    if (v === undefined) continue;
    x.push(r.step);
    y.push(v);
  }
  return { x, y };
}

/**
 * Early stopping in a log: the best step as of the last evaluation, and the step where the run stopped for
 * lack of improvement (its last evaluation with no patience left; null while it had patience). Null
 * without early stopping.
 */
export function earlyStoppingMarks(log: MetricsLog): { bestStep: number; stoppedAt: number | null; cutAt: number[] } | null {
  const last = [...log.eval].reverse().find((r) => r.bestStep !== undefined);
  if (!last) return null;
  return { bestStep: last.bestStep!, stoppedAt: last.patienceLeft === 0 ? last.step : null, cutAt: lrCutSteps(log) };
}

/**
 * The evaluations after which reduce-on-plateau cut the learning rate (train.earlyStopping.lrDecay: the
 * first evaluation logging each higher `lrCuts`; a resumed run's repeated lines count once), in step order.
 */
export function lrCutSteps(log: MetricsLog): number[] {
  const out: number[] = [];
  let cuts = 0;
  for (const r of [...log.eval].sort((a, b) => a.step - b.step))
    if (r.lrCuts !== undefined && r.lrCuts > cuts) {
      cuts = r.lrCuts;
      out.push(r.step);
    }
  return out;
}

/** The marker of a learning-rate cut: a downward triangle (the rate steps down after it). */
const CUT_MARKER = { symbol: 'triangle-down', size: 12 };

export interface TrainingCurvesOptions {
  title?: string;
}

/** Loss, dev BLEU and tokens/s against the training step (3 panels, up to 4 traces). */
export function trainingCurves(log: MetricsLog, opts: TrainingCurvesOptions = {}): FigureSpec {
  const [lossAx, bleuAx, rateAx] = [panelAxes(0), panelAxes(1), panelAxes(2)];
  const domains = rowDomains(3, 0.09);
  const data: Trace[] = [];
  const notes: NonNullable<FigureSpec['layout']['annotations']> = [];

  const trainLoss = points(log.train, (r) => r.loss);
  const devLoss = points(log.eval, (r) => r.devLoss);
  const devBleu = points(log.eval, (r) => r.devBleu);
  const rate = points(log.train, (r) => r.tgtTokensPerSec);

  if (trainLoss.x.length)
    data.push({
      type: 'scatter',
      mode: 'lines',
      name: 'training loss (label-smoothed CE)',
      ...trainLoss,
      xaxis: lossAx.x,
      yaxis: lossAx.y,
      line: { color: '#0072B2', width: 2 },
    });
  if (devLoss.x.length)
    data.push({
      type: 'scatter',
      mode: 'lines+markers',
      name: 'dev loss (NLL)',
      ...devLoss,
      xaxis: lossAx.x,
      yaxis: lossAx.y,
      line: { color: '#D55E00', width: 2 },
      marker: { size: 7 },
    });
  if (!trainLoss.x.length && !devLoss.x.length) notes.push(panelNote('no loss logged', lossAx));
  if (devBleu.x.length)
    data.push({
      type: 'scatter',
      mode: 'lines+markers',
      name: 'dev BLEU (greedy)',
      ...devBleu,
      xaxis: bleuAx.x,
      yaxis: bleuAx.y,
      line: { color: '#009E73', width: 2 },
      marker: { size: 7 },
    });
  else notes.push(panelNote('no dev BLEU logged (train.evalEverySteps / devBleuSentences)', bleuAx));
  if (rate.x.length)
    data.push({ type: 'scatter', mode: 'lines', name: 'target tokens/s', ...rate, xaxis: rateAx.x, yaxis: rateAx.y, line: { color: '#666666', width: 1.5 } });
  else notes.push(panelNote('no throughput logged', rateAx));

  const stopping = earlyStoppingMarks(log);
  if (stopping) {
    const best = log.eval.find((r) => r.step === stopping.bestStep);
    const star = { symbol: 'star', size: 16, color: '#000000' };
    const name = `best checkpoint (step ${stopping.bestStep})`;
    if (best?.devBleu !== undefined)
      data.push({ type: 'scatter', mode: 'markers', name, x: [best.step], y: [best.devBleu], xaxis: bleuAx.x, yaxis: bleuAx.y, marker: star });
    if (best?.devLoss !== undefined)
      data.push({
        type: 'scatter',
        mode: 'markers',
        name,
        showlegend: best.devBleu === undefined,
        x: [best.step],
        y: [best.devLoss],
        xaxis: lossAx.x,
        yaxis: lossAx.y,
        marker: star,
      });
    const cutEvals = stopping.cutAt
      .map((step) => log.eval.find((r) => r.step === step && r.devLoss !== undefined))
      .filter((r): r is NonNullable<typeof r> => r !== undefined);
    if (cutEvals.length)
      data.push({
        type: 'scatter',
        mode: 'markers',
        name: `learning rate cut (reduce on plateau) after step ${cutEvals.map((r) => r.step).join(', ')}`,
        x: cutEvals.map((r) => r.step),
        y: cutEvals.map((r) => r.devLoss!),
        xaxis: lossAx.x,
        yaxis: lossAx.y,
        marker: { ...CUT_MARKER, color: '#E69F00' },
      });
    if (stopping.stoppedAt !== null) {
      const at = log.eval.find((r) => r.step === stopping.stoppedAt)!;
      const [ax, y] = at.devBleu !== undefined ? [bleuAx, at.devBleu] : [lossAx, at.devLoss];
      if (y !== undefined)
        data.push({
          type: 'scatter',
          mode: 'markers',
          name: `early stop: patience ran out (step ${at.step}; best step ${stopping.bestStep})`,
          x: [at.step],
          y: [y],
          xaxis: ax.x,
          yaxis: ax.y,
          marker: { symbol: 'x', size: 14, color: '#CC79A7' },
        });
    }
  }
  const lastStep = Math.max(0, ...log.train.map((r) => r.step), ...log.eval.map((r) => r.step));
  const stopText = stopping ? `; best step ${stopping.bestStep}${stopping.stoppedAt !== null ? `, early stop at ${stopping.stoppedAt}` : ''}` : '';
  const layout = baseLayout(opts.title ?? `Training curves (${lastStep} steps${stopText})`, 900, 760);
  layout.margin = { l: 80, r: 30, t: 60, b: 110 };
  layout.legend = { orientation: 'h', x: 0, y: -0.11, yanchor: 'top' };
  layout.annotations = notes;
  setAxis(layout, lossAx.xKey, axis('', { anchor: lossAx.y, matches: 'x3', showticklabels: false }));
  // log scale: the first steps' loss (about ln V) would otherwise flatten the late curve, where a plateau
  // (or its absence) is decided
  setAxis(layout, lossAx.yKey, axis('loss (nats / token, log scale)', { domain: domains[0], anchor: lossAx.x, type: 'log' }));
  setAxis(layout, bleuAx.xKey, axis('', { anchor: bleuAx.y, matches: 'x3', showticklabels: false }));
  setAxis(layout, bleuAx.yKey, axis('dev BLEU', { domain: domains[1], anchor: bleuAx.x, rangemode: 'tozero' }));
  setAxis(layout, rateAx.xKey, axis('training step', { anchor: rateAx.y }));
  setAxis(layout, rateAx.yKey, axis('target tokens / s', { domain: domains[2], anchor: rateAx.x, rangemode: 'tozero' }));
  return { data, layout };
}

/** One run of an overlay: its label (a stage id, a seed) and its log. */
export interface LabelledLog {
  label: string;
  log: MetricsLog;
}

/**
 * Dev loss (log scale) and dev BLEU against the step for several runs on one figure, one colour per run:
 * the seeds of a baseline side by side, so that each one's plateau (or its absence) and the spread between
 * seeds can be read at once. Each run's best evaluation is starred and its early stop (if any) crossed,
 * in its own colour. Runs with no evaluation are left out and named in a note.
 */
export function trainingCurvesOverlay(runs: readonly LabelledLog[], opts: TrainingCurvesOptions = {}): FigureSpec {
  const [lossAx, bleuAx] = [panelAxes(0), panelAxes(1)];
  const domains = rowDomains(2, 0.1);
  const data: Trace[] = [];
  const notes: NonNullable<FigureSpec['layout']['annotations']> = [];
  const empty: string[] = [];
  let drawn = 0;
  for (const { label, log } of runs) {
    const devLoss = points(log.eval, (r) => r.devLoss);
    const devBleu = points(log.eval, (r) => r.devBleu);
    if (!devLoss.x.length && !devBleu.x.length) {
      empty.push(label);
      continue;
    }
    const color = SERIES_COLORS[drawn++ % SERIES_COLORS.length]!;
    const stopping = earlyStoppingMarks(log);
    const cutText = stopping?.cutAt.length ? `, lr cut ${stopping.cutAt.join('/')}` : '';
    const summary = stopping ? ` (best ${stopping.bestStep}${cutText}${stopping.stoppedAt !== null ? `, stopped ${stopping.stoppedAt}` : ', running'})` : '';
    const line = { color, width: 2 };
    // one legend entry per run: the loss trace carries it when there is one, else the BLEU trace
    if (devLoss.x.length)
      data.push({ type: 'scatter', mode: 'lines', name: `${label}${summary}`, legendgroup: label, ...devLoss, xaxis: lossAx.x, yaxis: lossAx.y, line });
    if (devBleu.x.length)
      data.push({
        type: 'scatter',
        mode: 'lines',
        name: `${label}${summary}`,
        legendgroup: label,
        showlegend: !devLoss.x.length,
        ...devBleu,
        xaxis: bleuAx.x,
        yaxis: bleuAx.y,
        line,
      });
    if (!stopping) continue;
    const marks: Array<[number, { symbol: string; size: number; color: string }, boolean]> = [[stopping.bestStep, { symbol: 'star', size: 14, color }, true]];
    // a cut on the dev-loss panel only (the rule reads dev loss or BLEU, the cut changes the training)
    for (const step of stopping.cutAt) marks.push([step, { ...CUT_MARKER, color }, false]);
    if (stopping.stoppedAt !== null) marks.push([stopping.stoppedAt, { symbol: 'x', size: 11, color }, true]);
    for (const [step, marker, both] of marks) {
      const r = log.eval.find((e) => e.step === step);
      if (!r) continue;
      for (const [ax, y] of [
        [lossAx, r.devLoss],
        [bleuAx, both ? r.devBleu : undefined],
      ] as const)
        if (y !== undefined)
          data.push({
            type: 'scatter',
            mode: 'markers',
            name: label,
            legendgroup: label,
            showlegend: false,
            x: [step],
            y: [y],
            xaxis: ax.x,
            yaxis: ax.y,
            marker,
          });
    }
  }
  if (!drawn) notes.push(panelNote('no evaluation logged', lossAx));
  if (empty.length) notes.push({ ...panelNote(`no evaluation logged: ${empty.join(', ')}`, bleuAx), y: 0.05 });
  const layout = baseLayout(
    opts.title ?? `Dev loss and dev BLEU of ${drawn} run(s) (star: best evaluation, triangle: learning rate cut, x: early stop)`,
    900,
    720,
  );
  layout.margin = { l: 80, r: 30, t: 60, b: 90 + 22 * Math.ceil(drawn / 2) };
  layout.legend = { orientation: 'h', x: 0, y: -0.1, yanchor: 'top' };
  layout.annotations = notes;
  setAxis(layout, lossAx.xKey, axis('', { anchor: lossAx.y, matches: 'x2', showticklabels: false }));
  setAxis(layout, lossAx.yKey, axis('dev loss (NLL, nats / token, log scale)', { domain: domains[0], anchor: lossAx.x, type: 'log' }));
  setAxis(layout, bleuAx.xKey, axis('training step', { anchor: bleuAx.y }));
  setAxis(layout, bleuAx.yKey, axis('dev BLEU (greedy)', { domain: domains[1], anchor: bleuAx.x }));
  return { data, layout };
}
