/**
 * `heads export --format onnx`: write `<out>/onnx/` (layout in README.md beside this file): encoder.onnx and
 * decoder.onnx (transformer-graphs.ts), model.json (the metadata every graph also carries in its
 * metadata_props), and tokenizer.json (the run's BPE vocabulary and merges, unchanged).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { ModelConfig } from '../config/schema.js';
import type { HeadMask } from '../io/head-mask.js';
import type { NamedArrays } from '../io/safetensors.js';
import { headLayout, headsPerLayer } from '../config/head-layout.js';
import { BOS_ID, EOS_ID, PAD_ID } from '../eval/decode-rules.js';
import { ConfigError } from '../util/errors.js';
import { makeDirs } from '../util/dirs.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { ONNX_IR_VERSION, ONNX_OPSET } from './graph-builder.js';
import { ONNX_EXPORT_FORMAT, ONNX_EXPORT_VERSION, ONNX_FILES, type OnnxExportMetadata } from './layout.js';
import { buildDecoderGraph, buildEncoderGraph, ffnWidthsOf, onnxUnsupported } from './transformer-graphs.js';

export interface OnnxExportInput {
  /** the exported model's (pruned, FFN-pruned) config and float32 parameters, gates folded */
  model: ModelConfig;
  vocabSize: number;
  params: NamedArrays;
  int8: boolean;
  tokenizerText: Buffer;
  generation: OnnxExportMetadata['generation'];
  source: OnnxExportMetadata['source'];
  mask: HeadMask;
  maskDescriptor: string;
}

/** Build both graphs in memory; throws a ConfigError naming what the graphs cannot express. */
export function buildOnnxExport(i: OnnxExportInput): { encoder: Uint8Array; decoder: Uint8Array; metadata: OnnxExportMetadata } {
  const problems = onnxUnsupported(i.model);
  if (problems.length) throw new ConfigError(problems.map((p) => `--format onnx: ${p}`));
  const c = i.model;
  const metadata: OnnxExportMetadata = {
    format: ONNX_EXPORT_FORMAT,
    version: ONNX_EXPORT_VERSION,
    opset: ONNX_OPSET,
    irVersion: ONNX_IR_VERSION,
    vocabSize: i.vocabSize,
    dModel: c.dModel,
    headDim: c.dModel / c.heads,
    originalHeads: c.heads,
    encoderLayers: c.encoderLayers,
    decoderLayers: c.decoderLayers,
    norm: c.norm,
    tieEmbeddings: c.tieEmbeddings,
    maxPositions: c.maxPositions,
    ffnWidths: ffnWidthsOf(c),
    headsPerLayer: headsPerLayer(c),
    keptHeads: headLayout(c).originalIds,
    specialIds: { pad: PAD_ID, bos: BOS_ID, eos: EOS_ID },
    generation: i.generation,
    quantization: i.int8
      ? {
          method: 'int8-matmul-integer',
          weights: 'int8, symmetric per output channel (scale = max|w| / 127), as heads export --int8',
          activations: 'int8, symmetric per row (token) on the fly: s = max|x| / 127; MatMulInteger int8 x int8 -> int32, times s * weight scale',
        }
      : null,
    tokenizer: { file: ONNX_FILES.tokenizer, sha256: createHash('sha256').update(i.tokenizerText).digest('hex'), kind: 'heads-bpe' },
    source: i.source,
    mask: { source: i.mask.source, descriptor: i.maskDescriptor, file: 'mask.json' },
    parameters: Object.values(i.params).reduce((a, t) => a + t.data.length, 0),
  };
  const props = metadataProps(metadata);
  const o = { int8: i.int8 };
  const encoder = buildEncoderGraph(c, i.vocabSize, i.params, o).toBytes(
    { ...props, graph: 'encoder' },
    'heads Transformer encoder: src_ids -> src_bias, cross keys/values per decoder layer (see src/onnx/README.md)',
  );
  const decoder = buildDecoderGraph(c, i.vocabSize, i.params, o).toBytes(
    { ...props, graph: 'decoder' },
    'heads Transformer decoder step with key/value cache (see src/onnx/README.md)',
  );
  return { encoder, decoder, metadata };
}

/** Every metadata field as one string entry (objects as JSON). */
export function metadataProps(m: OnnxExportMetadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return out;
}

/** Write `dir` (created): encoder.onnx, decoder.onnx, model.json, tokenizer.json. Returns the file sizes. */
export function writeOnnxExport(
  dir: string,
  built: ReturnType<typeof buildOnnxExport>,
  tokenizerText: Buffer,
): { encoderBytes: number; decoderBytes: number; path: string } {
  makeDirs(dir);
  writeFileAtomic(join(dir, ONNX_FILES.encoder), Buffer.from(built.encoder.buffer, built.encoder.byteOffset, built.encoder.byteLength));
  writeFileAtomic(join(dir, ONNX_FILES.decoder), Buffer.from(built.decoder.buffer, built.decoder.byteOffset, built.decoder.byteLength));
  writeJsonAtomic(join(dir, ONNX_FILES.metadata), built.metadata);
  writeFileAtomic(join(dir, ONNX_FILES.tokenizer), tokenizerText);
  return { encoderBytes: built.encoder.byteLength, decoderBytes: built.decoder.byteLength, path: dir };
}
