/**
 * The defaults, and the only place they live. This is also the embedded quickstart: a small model on the
 * generated toy EN->DE corpus that trains in a few minutes on 2 cores. Config files list only differences.
 */
import type { AnalysisConfig, ExportConfig, HeadsConfig } from './schema.js';

export const DEFAULT_CONFIG: HeadsConfig = {
  name: 'quickstart',
  seed: 1,
  backend: 'auto',
  data: {
    srcLang: 'en',
    tgtLang: 'de',
    train: null,
    valid: null,
    test: null,
    synthetic: { task: 'toy-mt', trainPairs: 20000, validPairs: 300, testPairs: 500 },
    bpeMerges: 1000,
    maxLen: 100,
  },
  model: {
    encoderLayers: 2,
    decoderLayers: 2,
    heads: 4,
    dModel: 64,
    dFF: 256,
    dropout: 0.1,
    attentionDropout: 0,
    norm: 'pre',
    tieEmbeddings: true,
    maxPositions: 512,
    keptHeads: null,
    attentionPatterns: null,
    ffnWidths: null,
    moe: null,
  },
  gates: {
    attention: [],
    beta: 0.33,
    noise: 'batch',
    logAlphaInit: { kind: 'glorot' },
    penalty: 'sum',
    targetHeads: null,
    targetWarmupSteps: null,
    lrScale: 1,
    lagrangianLr: 0.05,
    settle: null,
  },
  train: {
    maxSteps: 700,
    maxTokensPerBatch: 2000,
    accumulateSteps: 1,
    peakLr: 2e-3,
    warmupSteps: 100,
    adamBeta1: 0.9,
    adamBeta2: 0.98,
    adamEps: 1e-9,
    clipNorm: 1,
    labelSmoothing: 0.1,
    logEverySteps: 20,
    evalEverySteps: 350,
    devBleuSentences: 100,
    checkpointEverySteps: 350,
    keepCheckpoints: 3,
    l0Lambda: 0,
    trainOnly: null,
    workers: 'auto',
    skipNonFinite: 0,
    magnitudePruning: null,
    quantAware: false,
    earlyStopping: null,
  },
  eval: {
    beamSize: 4,
    lengthPenalty: 0.6,
    maxLenA: 1.5,
    maxLenB: 10,
    batchSentences: 64,
    maxTokensPerBatch: 4000,
  },
};

/**
 * The head analysis. One number of dev sentences for every greedy BLEU scored after removing heads
 * (single-head ablation with --ablation bleu, and each step of heuristic pruning): 200.
 */
export const DEFAULT_ANALYSIS = {
  importance: { form: 'example', normalize: 'layer' },
  ablation: { metric: 'loss', bleuSentences: 200 },
  lrp: { rule: 'lrp', sentences: 200 },
  roles: { positionalMinFraction: 0.9, rareMinRate: 0.5, rareMinRank: 0, syntacticMinGain: 0.1, syntacticMinInstances: 20 },
  pruning: { stepPercent: 10, bleuSentences: 200, minHeadsPerLayer: 0 },
} as const satisfies AnalysisConfig;

/** `heads export`. */
export const DEFAULT_EXPORT = {
  format: 'both',
  verify: true,
  foldGates: true,
  int8: false,
  ffnScope: 'per-layer',
  magnitudePerLayer: false,
  pruneEmbeddings: false,
} as const satisfies ExportConfig;
