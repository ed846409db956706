/**
 * Figures as a library: readers of the toolkit's result files, pure builders (result -> plotly.js spec)
 * and the writer (JSON + standalone HTML + PNG). `heads plot` and the notebooks use exactly these.
 */
export * from './figure.js';
export * from './readers.js';
export { type LabelledLog, trainingCurves, trainingCurvesOverlay, type TrainingCurvesOptions } from './training.js';
export {
  gateTrajectories,
  closingOrder,
  closingOrderFigure,
  expectedOpenHeadsFigure,
  shadeColor,
  keepRuleOf,
  keptAtStep,
  describeKeepRule,
  headLineStyle,
  HEAD_LINE_COLORS,
  HEAD_LINE_DASHES,
  type KeepRule,
  type HeadClosing,
  type GateTrajectoryOptions,
} from './gates.js';
export { headHeatmap, headHeatmapGrid, agreementHeatmap, maskMap, type HeadHeatmapOptions, type HeatmapGridOptions, type MaskMapOptions } from './heatmap.js';
export { attentionMapFigure, escapeLabel, type AttentionMapOptions } from './attention.js';
export {
  bleuVsHeadsFigure,
  keptPerTypeFigure,
  bleuPointsFromResults,
  bleuPointsFromPruningCurve,
  prunedTypes,
  BASELINE_METHODS,
  REPORTING_KINDS,
  type BleuPoint,
  type BleuPointOptions,
  type BleuVsHeadsOptions,
} from './experiments.js';
export {
  writeFigure,
  figureHtml,
  plotlySource,
  findChromium,
  chromiumMissingMessage,
  PngRenderer,
  CHROMIUM_CANDIDATES,
  type FigureLike,
  type WriteFigureOptions,
  type WrittenFigure,
  type PngRendererOptions,
} from './write.js';
export { showFigure, latestRunFolder, PLOTLY_MIME, type NotebookDisplay, type ShowFigureOptions } from './notebook.js';
