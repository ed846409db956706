/** Tiny models, configs and data shared by the analysis tests (not a test file itself). */
import { DEFAULT_CONFIG } from '../config/defaults.js';
import type { HeadsConfig, ModelConfig, ResolvedConfig } from '../config/schema.js';
import type { EncodedPair } from '../data/batches.js';
import { Rng } from '../util/random.js';
import { createTransformer, type Transformer } from '../model/transformer.js';
import { DEFAULT_ROLE_OPTIONS } from './roles.js';
import { DEFINITIONS, type HeadReport, type HeadReportEntry } from './report.js';

export const TINY_MODEL: ModelConfig = {
  ...DEFAULT_CONFIG.model,
  encoderLayers: 2,
  decoderLayers: 2,
  heads: 2,
  dModel: 8,
  dFF: 16,
  dropout: 0.1,
  attentionDropout: 0.1,
  maxPositions: 48,
};

/** A full config around a model config (eval settings small so greedy decoding stays short). */
export function tinyConfig(model: Partial<ModelConfig> = {}, over: Partial<HeadsConfig> = {}): ResolvedConfig {
  return {
    ...DEFAULT_CONFIG,
    ...over,
    model: { ...TINY_MODEL, ...model },
    train: { ...DEFAULT_CONFIG.train, maxTokensPerBatch: 64, labelSmoothing: 0.1 },
    eval: { ...DEFAULT_CONFIG.eval, beamSize: 1, maxLenA: 1, maxLenB: 3, batchSentences: 8 },
  };
}

export function tinyModel(vocabSize: number, model: Partial<ModelConfig> = {}, seed = 7): Transformer {
  return createTransformer({ ...TINY_MODEL, ...model }, vocabSize, new Rng(seed));
}

/** Random pairs of ids 4..V-1 with the given lengths. */
export function randomPairs(vocabSize: number, lengths: Array<[number, number]>, seed = 11): EncodedPair[] {
  const rng = new Rng(seed);
  const ids = (n: number) => Array.from({ length: n }, () => 4 + rng.int(vocabSize - 4));
  return lengths.map(([s, t], index) => ({ src: ids(s), tgt: ids(t), index }));
}

/** One head entry of `sampleReport` (positional -1, no gate, ablation or LRP). */
export function sampleEntry(stack: HeadReportEntry['stack'], layer: number, head: number, perToken: number, confidence: number): HeadReportEntry {
  const shares = new Array<number>(11).fill(0);
  shares[4] = 0.95; // offset -1
  return {
    stack,
    layer,
    head,
    position: head,
    gate: null,
    importance: {
      score: perToken,
      perExample: perToken,
      perExampleLayerNorm: perToken,
      perToken,
      perTokenLayerNorm: perToken,
      perBatch: perToken / 2,
      perBatchLayerNorm: perToken / 2,
    },
    attention: { queries: 10, confidence, entropy: 1, offsetHistogram: { from: -5, to: 5, shares, other: 0.05 }, modeOffset: -1, modeFraction: 0.95 },
    ablation: null,
    lrp: null,
    roles: { positional: { isPositional: true, offset: -1, fraction: 0.95 }, rare: null, syntactic: null, labels: ['positional -1'] },
  };
}

/** A small hand-made report: enc-self layer 0 with heads 0 and 1 (original shape 2 heads per layer). */
export function sampleReport(): HeadReport {
  return {
    format: 'heads.head-report',
    version: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    model: {
      runPath: null,
      checkpoint: null,
      step: null,
      headsPerLayer: { 'enc-self': [2], 'dec-self': [2], 'dec-enc': [2] },
      keptHeads: null,
      gatedStacks: [],
    },
    data: { split: 'dev', source: 'x', sentences: 1, skippedTooLong: 0, srcTokens: 3, tgtTokens: 3 },
    stacks: ['enc-self'],
    settings: {
      maxTokensPerBatch: 100,
      importance: {
        form: 'example',
        normalize: 'layer',
        loss: 'nll',
        labelSmoothing: 0,
        sentences: 1,
        batches: 1,
        queryTokens: { 'enc-self': 3, 'dec-self': 3, 'dec-enc': 3 },
      },
      ablation: { enabled: false, metric: 'loss', decoding: 'greedy', bleuSentences: 0, lossSentences: 0 },
      lrp: { enabled: false, rule: 'lrp', sentences: 0, steps: 0 },
      roles: { ...DEFAULT_ROLE_OPTIONS },
      frequencies: null,
      conllu: null,
    },
    definitions: DEFINITIONS,
    baseline: null,
    syntacticBaselines: null,
    agreement: { scores: [], spearman: [] },
    heads: { 'enc-self.0.1': sampleEntry('enc-self', 0, 1, 0.5, 0.2), 'enc-self.0.0': sampleEntry('enc-self', 0, 0, 0.1, 0.9) },
    notes: [],
  };
}
