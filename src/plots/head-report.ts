/**
 * The figures of a head report (`heads analyze` writes them to <run>/plots/): a layer x head heatmap per
 * score (`heads-<score>`), every score at a glance (`heads-overview`), the roles map (`roles`) and the
 * attention maps of chosen sentences (`attention-sentence-<i>`). They read the report and the maps; they
 * compute nothing about the model.
 */
import { join } from 'node:path';
import type { HeadReport, ScoreColumn } from '../analysis/report.js';
import { attentionMapFigure } from './attention.js';
import type { FigureSpec } from './figure.js';
import { headHeatmap, headHeatmapGrid } from './heatmap.js';
import { type AttentionMapData, type HeadScores, headScoresOf } from './readers.js';
import { rolesMapFigure } from './roles.js';
import { writeFigure } from './write.js';

/** One score of the report as what the heatmaps draw (original heads per layer from the report). */
export function reportScores(report: HeadReport, score: ScoreColumn): HeadScores {
  return headScoresOf(report.heads, score, report.model.headsPerLayer);
}

/** The named figures of a report; `html` says whether a standalone page is written besides the JSON. */
export function headReportFigures(
  report: HeadReport,
  scores: readonly ScoreColumn[],
  maps: readonly AttentionMapData[] = [],
): Array<{ name: string; fig: FigureSpec; isScore: boolean }> {
  const about = `${report.data.split} (${report.data.sentences} sentences)`;
  const present = scores.filter((s) => Object.values(report.heads).some((e) => s.get(e) !== null));
  const out: Array<{ name: string; fig: FigureSpec; isScore: boolean }> = present.map((s) => ({
    name: `heads-${s.name}`,
    fig: headHeatmap(reportScores(report, s), { title: `${s.label} — ${about}`, stacks: report.stacks }),
    isScore: true,
  }));
  out.push({
    name: 'heads-overview',
    fig: headHeatmapGrid(
      present.map((s) => reportScores(report, s)),
      { title: `Head scores — ${about}: layer (down) x head (across)`, stacks: report.stacks },
    ),
    isScore: false,
  });
  out.push({
    name: 'roles',
    fig: rolesMapFigure(report.heads, report.model.headsPerLayer, report.stacks, { title: `Head roles — ${report.data.split}` }),
    isScore: false,
  });
  const sentences = [...new Set(maps.map((m) => m.sentence))];
  for (const s of sentences) out.push({ name: `attention-sentence-${s}`, fig: attentionMapFigure(maps.filter((m) => m.sentence === s)), isScore: false });
  return out;
}

/** Write the report's figures into `dir` as JSON and standalone HTML (per-score heatmaps: HTML only with `htmlPerScore`). */
export async function writeHeadReportFigures(
  dir: string,
  report: HeadReport,
  scores: readonly ScoreColumn[],
  maps: readonly AttentionMapData[] = [],
  opts: { htmlPerScore?: boolean } = {},
): Promise<string[]> {
  const written: string[] = [];
  for (const { name, fig, isScore } of headReportFigures(report, scores, maps)) {
    const w = await writeFigure(fig, join(dir, name), { html: !isScore || opts.htmlPerScore === true });
    written.push(w.json);
  }
  return written;
}
