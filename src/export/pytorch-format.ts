/**
 * The PyTorch-facing export: the toolkit's parameters renamed to a fairseq/BART-style state dict and
 * stored in torch.nn.Linear layout, plus a JSON config describing everything a PyTorch user needs to
 * rebuild the model without this toolkit (per-layer head lists, the tied embedding, norms, positions).
 * The full table of names, shapes and the attention maths is in ./README.md; `pytorch_reference.py`
 * beside this file is an independent numpy forward pass over exactly these files (tested).
 * Layouts: toolkit linear weights are [dIn, dOut] (y = x @ W + b); exported ones are [dOut, dIn]
 * (y = x @ W.T + b, torch.nn.Linear). Embeddings are [vocab, d] in both.
 */
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import type { ResolvedConfig } from '../config/schema.js';
import { type HeadShape, type PerHead, headLayout, layoutShape } from '../config/head-layout.js';
import type { NamedArrays } from '../io/checkpoint.js';
import { CheckpointError } from '../util/errors.js';
import { BOS_ID, EOS_ID, PAD_ID } from '../eval/decode.js';
import type { SafeTensor } from '../io/safetensors.js';
import { type HeadMask, maskToHfPruneDict } from '../io/head-mask.js';

export const PYTORCH_EXPORT_FORMAT = 'heads.pytorch-export';
export const PYTORCH_EXPORT_VERSION = 1;

/** Where each attention type lives in the exported state dict (`{i}` = layer). */
export const ATTENTION_MODULES: Record<AttentionType, string> = {
  'enc-self': 'encoder.layers.{i}.self_attn',
  'dec-self': 'decoder.layers.{i}.self_attn',
  'dec-enc': 'decoder.layers.{i}.encoder_attn',
};

/** Renames of layer sub-modules: toolkit suffix -> exported suffix (per layer). */
const ENCODER_LAYER: Record<string, string> = {
  ln1: 'self_attn_layer_norm',
  self: 'self_attn',
  ln2: 'final_layer_norm',
  ffn: '',
};
const DECODER_LAYER: Record<string, string> = {
  ln1: 'self_attn_layer_norm',
  self: 'self_attn',
  ln2: 'encoder_attn_layer_norm',
  cross: 'encoder_attn',
  ln3: 'final_layer_norm',
  ffn: '',
};
const LEAF: Record<string, string> = {
  wq: 'q_proj.weight',
  bq: 'q_proj.bias',
  wk: 'k_proj.weight',
  bk: 'k_proj.bias',
  wv: 'v_proj.weight',
  bv: 'v_proj.bias',
  wo: 'out_proj.weight',
  bo: 'out_proj.bias',
  w1: 'fc1.weight',
  b1: 'fc1.bias',
  w2: 'fc2.weight',
  b2: 'fc2.bias',
  g: 'weight',
  b: 'bias',
};

/** The exported name of a toolkit parameter, and whether its matrix is transposed to [dOut, dIn]. */
export function pytorchNameOf(name: string): { name: string; isTransposed: boolean } {
  const top: Record<string, { name: string; isTransposed: boolean }> = {
    'emb.shared': { name: 'shared.weight', isTransposed: false },
    'emb.src': { name: 'encoder.embed_tokens.weight', isTransposed: false },
    'emb.tgt': { name: 'decoder.embed_tokens.weight', isTransposed: false },
    'out.proj': { name: 'lm_head.weight', isTransposed: true },
    'enc.ln.g': { name: 'encoder.layer_norm.weight', isTransposed: false },
    'enc.ln.b': { name: 'encoder.layer_norm.bias', isTransposed: false },
    'dec.ln.g': { name: 'decoder.layer_norm.weight', isTransposed: false },
    'dec.ln.b': { name: 'decoder.layer_norm.bias', isTransposed: false },
  };
  if (top[name]) return top[name];
  const m = /^(enc|dec)\.(\d+)\.(\w+)\.(\w+)$/.exec(name);
  const sub = m ? (m[1] === 'enc' ? ENCODER_LAYER : DECODER_LAYER)[m[3]!] : undefined;
  const leaf = m ? LEAF[m[4]!] : undefined;
  if (!m || sub === undefined || leaf === undefined) throw new CheckpointError(`pytorch export: no exported name for parameter ${name}`);
  const side = m[1] === 'enc' ? 'encoder' : 'decoder';
  return { name: `${side}.layers.${m[2]}.${sub ? `${sub}.` : ''}${leaf}`, isTransposed: /^w/.test(m[4]!) };
}

/** Transpose a row-major [rows, cols] matrix. */
function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/** The toolkit's parameters as exported F32 tensors (renamed, linear weights transposed). */
export function toPytorchTensors(params: NamedArrays): Record<string, SafeTensor> {
  const out: Record<string, SafeTensor> = {};
  for (const [name, { shape, data }] of Object.entries(params)) {
    if (name.startsWith('gate.')) continue; // gates are folded into W_O before export
    const t = pytorchNameOf(name);
    if (out[t.name]) throw new CheckpointError(`pytorch export: two parameters map to ${t.name}`);
    out[t.name] = t.isTransposed
      ? { dtype: 'F32', shape: [shape[1]!, shape[0]!], data: transpose(data, shape[0]!, shape[1]!) }
      : { dtype: 'F32', shape: shape.slice(), data: Float32Array.from(data) };
  }
  return out;
}

/**
 * The inverse of `toPytorchTensors` for a model of `config` (used to check round trips and to bring a
 * model edited in PyTorch back). Every exported tensor must be present, F32, with the expected shape.
 */
export function fromPytorchTensors(tensors: Record<string, SafeTensor>, expected: NamedArrays | Record<string, { shape: number[] }>): NamedArrays {
  const out: NamedArrays = {};
  const problems: string[] = [];
  const used = new Set<string>();
  for (const [name, { shape }] of Object.entries(expected)) {
    if (name.startsWith('gate.')) continue;
    const t = pytorchNameOf(name);
    const src = tensors[t.name];
    used.add(t.name);
    const want = t.isTransposed ? [shape[1]!, shape[0]!] : shape;
    if (!src) problems.push(`missing tensor ${t.name}`);
    else if (src.dtype !== 'F32' || !(src.data instanceof Float32Array)) problems.push(`${t.name}: expected F32, found ${src.dtype}`);
    else if (src.shape.join(',') !== want.join(',')) problems.push(`${t.name}: shape [${src.shape.join(', ')}], expected [${want.join(', ')}]`);
    else out[name] = { shape: shape.slice(), data: t.isTransposed ? transpose(src.data, want[0]!, want[1]!) : Float32Array.from(src.data) };
  }
  for (const name of Object.keys(tensors)) if (!used.has(name)) problems.push(`unexpected tensor ${name}`);
  if (problems.length)
    throw new CheckpointError(
      `pytorch tensors do not fit the model: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`,
    );
  return out;
}

/** The config.json written beside the exported model.safetensors (snake_case, as PyTorch configs are). */
export interface PytorchExportConfig {
  format: typeof PYTORCH_EXPORT_FORMAT;
  version: typeof PYTORCH_EXPORT_VERSION;
  model_type: 'heads-transformer';
  vocab_size: number;
  d_model: number;
  d_ff: number;
  head_dim: number;
  /** heads per layer of the original model (before pruning) */
  num_attention_heads: number;
  encoder_layers: number;
  decoder_layers: number;
  /** 'pre': x + f(LN(x)) with a final LN per stack; 'post': LN(x + f(x)) */
  norm: 'pre' | 'post';
  layer_norm_eps: number;
  activation_function: 'relu';
  /** one [vocab, d] matrix (`shared.weight`) for source and target embeddings and the output projection */
  tie_word_embeddings: boolean;
  /** token embeddings are multiplied by sqrt(d_model) before positions are added */
  embed_scale: number;
  max_position_embeddings: number;
  position_embedding: string;
  pad_token_id: number;
  /** the decoder's start token */
  bos_token_id: number;
  eos_token_id: number;
  /** heads remaining per layer, per attention type */
  heads_per_layer: HeadShape;
  /** the ORIGINAL ids of the remaining heads, per layer, in the order their blocks appear in q/k/v/out_proj */
  kept_heads: PerHead;
  /** Hugging Face `config.pruned_heads` style: per attention type, { "<layer>": [original heads removed] } */
  pruned_heads: Partial<Record<AttentionType, Record<string, number[]>>>;
  /** state-dict prefix of each attention type */
  attention_modules: Record<AttentionType, string>;
  /** decoding defaults of the toolkit's config (GNMT length penalty, max length = a * srcLen + b) */
  generation: { num_beams: number; length_penalty: number; max_len_a: number; max_len_b: number };
  layout: string;
  source: { checkpoint: string; step: number; mask: string };
}

/** Build the PyTorch config.json for an (exported) toolkit config. */
export function pytorchConfig(config: ResolvedConfig, vocabSize: number, mask: HeadMask, source: { checkpoint: string; step: number }): PytorchExportConfig {
  const m = config.model;
  const layout = headLayout(m);
  const perLayer = layoutShape(layout);
  const pruned = maskToHfPruneDict(mask);
  for (const stack of ATTENTION_TYPES) pruned[stack] ??= {};
  return {
    format: PYTORCH_EXPORT_FORMAT,
    version: PYTORCH_EXPORT_VERSION,
    model_type: 'heads-transformer',
    vocab_size: vocabSize,
    d_model: m.dModel,
    d_ff: m.dFF,
    head_dim: m.dModel / m.heads,
    num_attention_heads: m.heads,
    encoder_layers: m.encoderLayers,
    decoder_layers: m.decoderLayers,
    norm: m.norm,
    layer_norm_eps: 1e-5,
    activation_function: 'relu',
    tie_word_embeddings: m.tieEmbeddings,
    embed_scale: Math.sqrt(m.dModel),
    max_position_embeddings: m.maxPositions,
    position_embedding:
      'sinusoidal: pe[pos, i] = sin(pos / 10000^(i / d_model)) for even i, pe[pos, i] = cos(pos / 10000^((i - 1) / d_model)) for odd i; positions start at 0 on both sides',
    pad_token_id: PAD_ID,
    bos_token_id: BOS_ID,
    eos_token_id: EOS_ID,
    heads_per_layer: { 'enc-self': [...perLayer['enc-self']], 'dec-self': [...perLayer['dec-self']], 'dec-enc': [...perLayer['dec-enc']] },
    kept_heads: layout.originalIds,
    pruned_heads: pruned,
    attention_modules: { ...ATTENTION_MODULES },
    generation: { num_beams: config.eval.beamSize, length_penalty: config.eval.lengthPenalty, max_len_a: config.eval.maxLenA, max_len_b: config.eval.maxLenB },
    layout:
      'torch.nn.Linear: weight [out_features, in_features], y = x @ weight.T + bias; q/k/v_proj rows and out_proj columns are grouped per head, head_dim each, in kept_heads order; see src/export/README.md',
    source: { checkpoint: source.checkpoint, step: source.step, mask: mask.source },
  };
}
