/**
 * The ONNX export folder's contract, shared by the writer (onnx-export.ts), the graphs
 * (transformer-graphs.ts), the decode loop (decode.ts) and any page that loads the files: file names, graph
 * input/output names, and model.json (also in every graph's metadata_props). Pure: no Node-only imports.
 */
import type { PerHead, HeadShape } from '../config/head-layout.js';

export const ONNX_EXPORT_FORMAT = 'heads.onnx-export';
export const ONNX_EXPORT_VERSION = 1;

export const ONNX_FILES = { encoder: 'encoder.onnx', decoder: 'decoder.onnx', metadata: 'model.json', tokenizer: 'tokenizer.json' } as const;

/** Graph input and output names; `l` is the decoder layer. */
export const ONNX_NAMES = {
  srcIds: 'src_ids',
  srcBias: 'src_bias',
  tokens: 'tokens',
  position: 'position',
  beamRows: 'beam_rows',
  logits: 'logits',
  logProbs: 'log_probs',
  crossKey: (l: number) => `cross_key_${l}`,
  crossValue: (l: number) => `cross_value_${l}`,
  pastKey: (l: number) => `past_key_${l}`,
  pastValue: (l: number) => `past_value_${l}`,
  presentKey: (l: number) => `present_key_${l}`,
  presentValue: (l: number) => `present_value_${l}`,
} as const;

/** model.json, and (objects as JSON strings, one key per field) the metadata_props of both graphs. */
export interface OnnxExportMetadata {
  format: typeof ONNX_EXPORT_FORMAT;
  version: typeof ONNX_EXPORT_VERSION;
  opset: number;
  irVersion: number;
  vocabSize: number;
  dModel: number;
  headDim: number;
  /** heads per layer of the original model (before pruning) */
  originalHeads: number;
  encoderLayers: number;
  decoderLayers: number;
  norm: 'pre' | 'post';
  tieEmbeddings: boolean;
  maxPositions: number;
  ffnWidths: { encoder: number[]; decoder: number[] };
  /** heads remaining per layer */
  headsPerLayer: HeadShape;
  /** original ids of the remaining heads per layer */
  keptHeads: PerHead;
  specialIds: { pad: number; bos: number; eos: number };
  /**
   * the run's decoding defaults (config.eval): max output length = max(1, min(floor(maxLenA * srcLen +
   * maxLenB), maxPositions - 1)); batches of at most batchSentences sentences and maxTokensPerBatch source tokens
   */
  generation: { beamSize: number; lengthPenalty: number; maxLenA: number; maxLenB: number; batchSentences: number; maxTokensPerBatch: number };
  quantization: null | { method: 'int8-matmul-integer'; weights: string; activations: string };
  tokenizer: { file: string; sha256: string; kind: 'heads-bpe' };
  source: { run: string; checkpoint: string; step: number };
  mask: { source: string; descriptor: string; file: 'mask.json' };
  /** parameters of the exported model (float32 count before any int8 storage) */
  parameters: number;
}

/** Check a parsed model.json; returns the problems (empty: fine). */
export function metadataProblems(m: unknown): string[] {
  if (typeof m !== 'object' || m === null) return ['expected a JSON object'];
  const o = m as Record<string, unknown>;
  const problems: string[] = [];
  if (o.format !== ONNX_EXPORT_FORMAT) problems.push(`format: expected "${ONNX_EXPORT_FORMAT}", found ${JSON.stringify(o.format)}`);
  else if (o.version !== ONNX_EXPORT_VERSION) problems.push(`version: expected ${ONNX_EXPORT_VERSION}, found ${JSON.stringify(o.version)}`);
  for (const k of ['vocabSize', 'dModel', 'headDim', 'decoderLayers', 'encoderLayers', 'maxPositions'] as const)
    if (!Number.isInteger(o[k])) problems.push(`${k}: expected an integer, found ${JSON.stringify(o[k])}`);
  const hpl = o.headsPerLayer as Record<string, unknown> | undefined;
  for (const s of ['enc-self', 'dec-self', 'dec-enc'])
    if (!hpl || !Array.isArray(hpl[s])) problems.push(`headsPerLayer.${s}: expected an array of head counts`);
  const g = o.generation as Record<string, unknown> | undefined;
  for (const k of ['beamSize', 'lengthPenalty', 'maxLenA', 'maxLenB', 'batchSentences', 'maxTokensPerBatch'])
    if (!g || typeof g[k] !== 'number') problems.push(`generation.${k}: expected a number`);
  return problems;
}

/** The decoder layers whose self / cross attention has heads (and so cache inputs and outputs). */
export function cachedLayers(m: Pick<OnnxExportMetadata, 'headsPerLayer'>): { self: number[]; cross: number[] } {
  const pick = (xs: number[]) => xs.flatMap((h, l) => (h > 0 ? [l] : []));
  return { self: pick(m.headsPerLayer['dec-self']), cross: pick(m.headsPerLayer['dec-enc']) };
}
