/**
 * The defaults, and the only place they live. This is also the embedded quickstart: a small model on the
 * generated toy EN->DE corpus that trains in a few minutes on 2 cores. Config files list only differences.
 */
import type { HeadsConfig } from './schema.js';

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
  },
  gates: {
    attention: [],
    beta: 0.33,
    noise: 'batch',
    logAlphaInit: { kind: 'glorot' },
    penalty: 'sum',
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
    workers: 1,
    skipNonFinite: 0,
  },
  eval: {
    beamSize: 4,
    lengthPenalty: 0.6,
    maxLenA: 1.5,
    maxLenB: 10,
    batchSentences: 64,
  },
};
