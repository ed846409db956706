/**
 * Multi-head attention with a gate on every head (Voita et al. 2019, section 6.1): each head's context
 * softmax(QK^T / sqrt(dHead)) V is multiplied by its gate g_h before the heads are concatenated and
 * projected by W_O. The gate is received, not owned: gates/ decides its value (sampled, deterministic,
 * a fixed mask, or ones for importance gradients). Layers may have fewer heads after physical pruning;
 * a layer with no heads outputs W_O's bias only (the paper's footnote 9).
 * Shapes: x [B, T, d]; per-head tensors [B, h, T, dHead]; weights [B, h, Tq, Tk].
 */
import * as tf from '@tensorflow/tfjs';
import { ForwardContext, dropout, linear } from './layers.js';
import { fusedAttention, fusedAttentionSupports, hasFusedAttention } from '../backend/attention-kernel.js';

export interface AttentionParams {
  wq: tf.Tensor;
  bq: tf.Tensor;
  wk: tf.Tensor;
  bk: tf.Tensor;
  wv: tf.Tensor;
  bv: tf.Tensor;
  wo: tf.Tensor;
  bo: tf.Tensor;
  /** heads in this layer (columns of wq / dHead) */
  nHeads: number;
  dHead: number;
}

/** What one attention call can report for analysis. */
export interface AttentionRecord {
  /** attention weights [B, h, Tq, Tk] */
  weights: tf.Tensor4D;
  /** per-head context before the gate [B, h, Tq, dHead] */
  context: tf.Tensor4D;
}

/** [B, T, h*dHead] -> [B, h, T, dHead] */
export function splitHeads(x: tf.Tensor, h: number, dHead: number): tf.Tensor4D {
  const [B, T] = x.shape as [number, number, number];
  return x.reshape([B, T, h, dHead]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
}

/** [B, h, T, dHead] -> [B, T, h*dHead] */
export function mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
  const [B, h, T, dHead] = x.shape;
  return x.transpose([0, 2, 1, 3]).reshape([B, T, h * dHead]) as tf.Tensor3D;
}

/** Keys and values of a source sequence [B, Tk, d] -> two [B, h, Tk, dHead]. */
export function projectKeysValues(p: AttentionParams, x: tf.Tensor): { k: tf.Tensor4D; v: tf.Tensor4D } {
  return { k: splitHeads(linear(x, p.wk, p.bk), p.nHeads, p.dHead), v: splitHeads(linear(x, p.wv, p.bv), p.nHeads, p.dHead) };
}

/**
 * Reshape a gate to broadcast over [B, h, Tq, dHead]: [h] (one value per head, the reference's
 * per-batch noise), [B, h] (per sentence) or [B, h, Tq] (per token, for Michel's per-token importance).
 */
export function gateForContext(gate: tf.Tensor, h: number): tf.Tensor {
  if (gate.rank === 1) return gate.reshape([1, h, 1, 1]);
  if (gate.rank === 2) return gate.reshape([gate.shape[0]!, h, 1, 1]);
  if (gate.rank === 3) return gate.reshape([gate.shape[0]!, h, gate.shape[2]!, 1]);
  throw new Error(`gate of rank ${gate.rank} not supported`);
}

/**
 * Attention of queries xq [B, Tq, d] over the keys and values of xkv [B, Tk, d] (self-attention: the
 * same tensor): projections, attention, W_O. Where the backend registers the fused kernel
 * (backend/attention-kernel.ts: wasm with the OpenBLAS addon) and nothing needs the weights (no record,
 * no attention dropout, a gate per head or per sentence), the heads are never split or merged: one
 * native kernel per direction takes the projections as they come. Otherwise `projectKeysValues` + `attend`.
 */
export function attention(
  p: AttentionParams,
  xq: tf.Tensor,
  xkv: tf.Tensor,
  bias: tf.Tensor | null,
  gate: tf.Tensor | null,
  ctx: ForwardContext,
  record?: (r: AttentionRecord) => void,
): tf.Tensor3D {
  const d = p.nHeads * p.dHead;
  const fused =
    p.nHeads > 0 &&
    !record &&
    !(ctx.isTraining && ctx.attentionDropout > 0) &&
    xq.rank === 3 &&
    xkv.rank === 3 &&
    hasFusedAttention() &&
    fusedAttentionSupports([xq.shape[0]!, xq.shape[1]!, d], [xkv.shape[0]!, xkv.shape[1]!, d], p.nHeads, bias, gate);
  if (fused) {
    const q = linear(xq, p.wq, p.bq) as tf.Tensor3D;
    const k = linear(xkv, p.wk, p.bk) as tf.Tensor3D;
    const v = linear(xkv, p.wv, p.bv) as tf.Tensor3D;
    return linear(fusedAttention(q, k, v, bias, gate, p.nHeads, 1 / Math.sqrt(p.dHead), ctx.noGrad && !ctx.isTraining), p.wo, p.bo) as tf.Tensor3D;
  }
  const { k, v } = projectKeysValues(p, xkv);
  return attend(p, xq, k, v, bias, gate, ctx, record);
}

/**
 * Attention of queries xq [B, Tq, d] over precomputed keys/values [B, h, Tk, dHead].
 * bias broadcasts to [B, h, Tq, Tk] (padding and/or causal, -1e9 where masked).
 */
export function attend(
  p: AttentionParams,
  xq: tf.Tensor,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor | null,
  gate: tf.Tensor | null,
  ctx: ForwardContext,
  record?: (r: AttentionRecord) => void,
): tf.Tensor3D {
  const [B, Tq, d] = xq.shape as [number, number, number];
  if (p.nHeads === 0) return tf.add(tf.zeros([B, Tq, d]), p.bo) as tf.Tensor3D;
  return attendQuery(p, splitHeads(linear(xq, p.wq, p.bq, ctx.fusedBias), p.nHeads, p.dHead), k, v, bias, gate, ctx, record);
}

/** `attend` from projected queries q [B, h, Tq, dHead] (unscaled; e.g. one product for q, k and v when decoding); nHeads > 0. */
export function attendQuery(
  p: AttentionParams,
  qHeads: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor | null,
  gate: tf.Tensor | null,
  ctx: ForwardContext,
  record?: (r: AttentionRecord) => void,
): tf.Tensor3D {
  // scale q rather than the scores: [B, h, Tq, dHead] is smaller than [B, h, Tq, Tk]
  const q = qHeads.mul(1 / Math.sqrt(p.dHead));
  let scores = tf.matMul(q, k, false, true); // [B, h, Tq, Tk]
  if (bias) scores = scores.add(bias);
  const weights = tf.softmax(scores) as tf.Tensor4D;
  const context = tf.matMul(dropout(weights, ctx.attentionDropout, ctx), v) as tf.Tensor4D; // [B, h, Tq, dHead]
  if (record) record({ weights, context });
  const gated = gate ? (context.mul(gateForContext(gate, p.nHeads)) as tf.Tensor4D) : context;
  return linear(mergeHeads(gated), p.wo, p.bo, ctx.fusedBias) as tf.Tensor3D;
}
