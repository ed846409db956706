/**
 * The public API of `heads`, for notebooks and scripts (`import { ... } from 'heads'`, or from
 * '../dist/index.js' inside the repository): what a notebook or a script calls, in pipeline order.
 * Everything the CLI does is reachable from here; layout helpers of the figures and the internals of
 * training (workers, kernels) are not part of it.
 */
export const VERSION = '0.1.0';

// configs
export type { HeadsConfig, ResolvedConfig, DataConfig, ModelConfig, GateConfig, TrainConfig, EvalConfig } from './config/schema.js';
export { DEFAULT_CONFIG } from './config/defaults.js';
export { loadConfig, loadConfigOn, validateConfig } from './config/load.js';
export { type AttentionType, type HeadId, ATTENTION_TYPES, headKey, parseHeadKey } from './config/head-id.js';

// backends
export { initBackend, type BackendChoice, type BackendInfo } from './backend/select.js';
export { installBackendFixes, activeKernelFixes, describeBackendFixes } from './backend/ops.js';

// data
export { readParallelCorpus, describeCorpus, type SentencePair, type CorpusSpec } from './data/corpus.js';
export { BpeTokenizer, tokenFrequencies } from './data/tokenizer.js';
export { planBatches, planEvalBatches, makeBatch, filterByLength, type Batch, type EncodedPair } from './data/batches.js';
export { generateSyntheticCorpus } from './data/synthetic.js';
export { prepareData, loadCorpora, type PreparedData } from './data/prepare.js';

// model and gates
export { Transformer, createTransformer, type GateTensors, type ForwardOptions } from './model/transformer.js';
export { hardConcrete, HARD_CONCRETE_LIMITS, REFERENCE_BETA, LOUIZOS_BETA } from './gates/hard-concrete.js';
export { HeadGates, type GateState } from './gates/head-gates.js';
export { lagrangianPenalty, annealedTarget, selectTopHeads } from './gates/lagrangian.js';

// training: the trainer, the gate-provider interface it trains, and the step (loss = CE + lambda * penalty, Adam)
export { Trainer, NonFiniteError, type TrainerOptions, type GateProvider, type StepResult, type EvalResult, type StopRule } from './train/trainer.js';
export { penaltyWeight, learningRate, type StepRunner } from './train/step.js';
export type { RuntimeOptions } from './config/runtime.js';
export { runTraining, scoreTranslations, type RunTrainingResult } from './train/run-training.js';
export { runPruning, type PruneResult } from './train/prune.js';
export { loadModel, type LoadedModel } from './io/load-model.js';
export { readCheckpoint, findLatestValidCheckpoint } from './io/checkpoint.js';
export { inverseSqrtLr } from './train/schedule.js';

// evaluation
export { greedyDecode, beamSearch } from './eval/decode.js';
export { translateSentences } from './eval/translate.js';
export { corpusBleu, sentenceBleu, tokenizedLowercaseBleu, BleuScore } from './eval/bleu.js';
export { makeMetric, METRIC_NAMES, type Metric, type MetricName, type MetricOptions } from './eval/metric.js';
export {
  scoreCorpus,
  segmentStatistics,
  pairedBootstrap,
  pairedApproximateRandomization,
  bootstrapConfidence,
  type PairedResult,
  type SystemResult,
} from './eval/significance.js';

// masks and files
export {
  type HeadMask,
  readHeadMask,
  writeHeadMask,
  parseHeadMask,
  formatHeadMask,
  createFullMask,
  maskFromKeptSets,
  maskToKeptSets,
  maskFromDescriptor,
  maskToDescriptor,
  maskFromHfPruneDict,
  maskToHfPruneDict,
  composeMasks,
  countKept,
  isHeadKept,
} from './io/head-mask.js';
export { type HeadShape, type PerHead, type HeadLayout, headLayout, headsPerLayer, originalMaskShape, listHeads } from './config/head-layout.js';
export { readSafetensors, writeSafetensors, type NamedArrays } from './io/safetensors.js';
export { RunFolder } from './util/run-folder.js';
export { HeadsError, ConfigError, DataError, CheckpointError, MaskError } from './util/errors.js';

// analysis and export
export { analyzeHeads, trainingFrequencies } from './analysis/analyze.js';
export { readHeadReport, writeHeadReport, topHeads, rankAgreement, SCORE_COLUMNS, type HeadReport } from './analysis/report.js';
export { runImportancePruning, type PruningStep } from './analysis/importance-pruning.js';
export {
  estimateMichelImportance,
  importanceScores,
  IMPORTANCE_FORMS,
  IMPORTANCE_NORMALIZATIONS,
  DEFAULT_IMPORTANCE,
  type ImportanceForm,
  type ImportanceNormalization,
  type MichelImportance,
} from './analysis/importance.js';
export { exportModel } from './export/export-model.js';
export { sentenceAttention, modelHeadKeys, type AttentionModel, type SentenceAttention, type SentenceAttentionOptions } from './analysis/sentence-attention.js';

// experiments: a spec's stages, run in order, and their report (what `heads experiment` does)
export { loadSpec, expandStages, type ExperimentSpec, type StageInstance } from './experiments/spec.js';
export { resolveStages, stageState, type ResolvedStage, type StageState } from './experiments/stage.js';
export { runExperiment, planTable, type RunnerOptions } from './experiments/runner.js';
export { writeReport, writeReportFigures, markdownTable, type ResultRow } from './experiments/report.js';
// the notebooks' small runs (train, prune, compare on the toy data)
export {
  trainSmallRun,
  pruneSmallRun,
  smallPruningComparison,
  resultRowOfRun,
  SMALL_TRAIN_OVERRIDES,
  SMALL_PRUNE_OVERRIDES,
  type DemoRunOptions,
  type DemoPruneOptions,
  type SmallComparisonOptions,
} from './experiments/demo-runs.js';

// figures: read result files, build plotly.js specs, write them (JSON + HTML + PNG) or show them in a notebook
export {
  readMetrics,
  readGateTrajectory,
  readGateSettings,
  readHeadScores,
  selectScore,
  headScoresOf,
  readPruningCurve,
  readExperimentResults,
  readAttentionMaps,
  type MetricsLog,
  type GateTrajectory,
  type HeadScores,
  type HeadScoreTable,
  type PruningCurveRow,
  type ExperimentResultRow,
  type AttentionMapData,
} from './plots/readers.js';
export type { FigureSpec } from './plots/figure.js';
export { trainingCurves } from './plots/training.js';
export { gateTrajectories, closingOrder, closingOrderFigure, expectedOpenHeadsFigure, keepRuleOf, type KeepRule, type HeadClosing } from './plots/gates.js';
export { headHeatmap, headHeatmapGrid, agreementHeatmap, maskMap } from './plots/heatmap.js';
export { attentionMapFigure } from './plots/attention.js';
export { rolesMapFigure } from './plots/roles.js';
export { headReportFigures, writeHeadReportFigures } from './plots/head-report.js';
export { bleuVsHeadsFigure, keptPerTypeFigure, bleuPointsFromResults, bleuPointsFromPruningCurve, type BleuPoint } from './plots/experiments.js';
export { writeFigure, figureHtml, PngRenderer, type WrittenFigure } from './plots/write.js';
export { showFigure, latestRunFolder } from './plots/notebook.js';
