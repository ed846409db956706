/**
 * Single-head ablation losses, many heads per forward pass. The attention takes a gate per sentence
 * ([B, h] per layer, model/attention.ts), so a batch of B dev sentences is replicated K times and replica
 * k gets the test-time multipliers with head k multiplied by 0: one forward of K*B rows gives the dev
 * loss of K ablations. Each row is scored on its own (attention, layer norm and the loss stay within a
 * sentence), so the numbers are the ones `devLoss` gives with that one head removed, up to float
 * summation order (tested against it, head by head).
 *
 * K is bounded so that a pass holds at most `maxLogits` logits (K * B * tgtLen * vocab floats; the
 * output layer is the largest tensor) and at most `masksPerPass` replicas. Encoder heads and the others go in
 * separate passes, in layer order, and every pass starts at the layer of its lowest head: what the layers
 * below compute is the same in every replica (no head of theirs is removed), so it comes from one
 * unablated pass per batch (`prefixOf`), and a pass without encoder heads runs no encoder at all.
 * Each row's NLL comes from the loss-only cross-entropy kernel (`HeadsXentLoss`, eps 0) where it is
 * registered (wasm, cpu), else from logSumExp: the same NLL up to float rounding (within 1e-5, tested).
 */
import { DEFAULT_ANALYSIS } from '../config/defaults.js';
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { type Batch, type EncodedPair, makeBatch, planEvalBatches } from '../data/batches.js';
import type { PerHead } from '../config/head-layout.js';
import { ForwardContext, paddingBias } from '../model/layers.js';
import { hasXentLossKernel, xentLoss } from '../backend/softmax-xent.js';
import { nllPerToken, targetWeights } from '../train/objective.js';

/** What a single-head ablation measures: the dev loss only (default; batched), or the loss and greedy dev BLEU. */
export const ABLATION_METRICS = ['loss', 'bleu'] as const;
export type AblationMetric = (typeof ABLATION_METRICS)[number];
export const DEFAULT_ABLATION_METRIC: AblationMetric = DEFAULT_ANALYSIS.ablation.metric;

export interface AblatedHead {
  stack: AttentionType;
  layer: number;
  position: number;
}

export interface BatchedAblationOptions {
  maxTokensPerBatch: number;
  /** most replicas (ablated heads) in one forward pass (default 16) */
  masksPerPass?: number;
  /** most logits in one pass (default 2^25 floats, 128 MB) */
  maxLogits?: number;
  /** after every forward pass: passes done, passes planned (a stop point for the caller) */
  onPass?: (done: number, total: number) => void;
}

export const DEFAULT_MASKS_PER_PASS = 16;
export const DEFAULT_MAX_LOGITS = 2 ** 25;

/** How many replicas of batch `b` fit one pass. */
function replicasFor(b: Batch, vocab: number, heads: number, o: BatchedAblationOptions): number {
  const perReplica = b.batchSize * b.tgtLen * vocab;
  const byMemory = Math.floor((o.maxLogits ?? DEFAULT_MAX_LOGITS) / perReplica);
  return Math.max(1, Math.min(heads, o.masksPerPass ?? DEFAULT_MASKS_PER_PASS, byMemory));
}

/** Per-row gates [K*B, h] for the layers touched by `chunk` or gated in `base` (null: all ones). */
function replicaGates(model: Transformer, base: PerHead, chunk: readonly AblatedHead[], rows: number): GateTensors {
  const out: Partial<Record<AttentionType, Array<tf.Tensor | null>>> = {};
  for (const stack of ATTENTION_TYPES) {
    out[stack] = model.shape[stack].map((h, l) => {
      const vals = base[stack][l] ?? [];
      const isTouched = chunk.some((c) => c.stack === stack && c.layer === l);
      if (!h || (!isTouched && vals.every((v) => v === 1))) return null;
      if (!isTouched) return tf.tensor1d(vals);
      const data = new Float32Array(chunk.length * rows * h);
      chunk.forEach((c, k) => {
        for (let r = 0; r < rows; r++) {
          const o = (k * rows + r) * h;
          for (let j = 0; j < h; j++) data[o + j] = c.stack === stack && c.layer === l && c.position === j ? 0 : vals[j]!;
        }
      });
      return tf.tensor2d(data, [chunk.length * rows, h]);
    });
  }
  return out;
}

/**
 * One batch's unablated pass, kept for the passes that share it: the input of every encoder and decoder
 * layer and the memory, with the test-time multipliers `base` (what every layer below an ablated head
 * computes in its replica, the same rows and values).
 */
interface Prefix {
  enc: tf.Tensor3D[];
  dec: tf.Tensor3D[];
  memory: tf.Tensor3D;
}

function prefixOf(model: Transformer, b: Batch, base: PerHead): Prefix {
  const gates = replicaGates(model, base, [], b.batchSize);
  const enc: tf.Tensor3D[] = [];
  const dec: tf.Tensor3D[] = [];
  const memory = tf.tidy(() => {
    const ctx = ForwardContext.inference();
    const src = tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32');
    const memory = model.encode(src, ctx, { gates, collect: enc });
    model.decode(tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32'), memory, paddingBias(src), ctx, { gates, collect: dec });
    return memory;
  });
  for (const t of Object.values(gates)) for (const gt of t ?? []) gt?.dispose();
  return { enc, dec, memory };
}

function disposePrefix(p: Prefix): void {
  tf.dispose([...p.enc, ...p.dec, p.memory]);
}

/**
 * NLL summed over each replica's non-pad target tokens: [K]. The replicas' heads sit at layer `from` or
 * above of their stack (`stack`: 'enc' for encoder heads, 'dec' for the decoder's), so the layers below
 * are the batch's unablated pass (`prefix`, replicated): an encoder chunk runs the encoder from layer `from`
 * and the whole decoder, a decoder chunk the decoder from layer `from` on the unablated memory.
 */
function replicaNll(model: Transformer, b: Batch, k: number, gates: GateTensors, prefix: Prefix, stack: 'enc' | 'dec', from: number): tf.Tensor1D {
  return tf.tidy(() => {
    // one replica (the study's shapes: its logits alone fill a pass) needs no copies
    const tile = (ids: Int32Array | number[], len: number) => {
      const t = tf.tensor2d(ids, [b.batchSize, len], 'int32');
      return k === 1 ? t : (t.tile([k, 1]) as tf.Tensor2D);
    };
    const src = tile(b.src, b.srcLen);
    const tgtIn = tile(b.tgtIn, b.tgtLen);
    const tgtOutRows = tile(b.tgtOut, b.tgtLen);
    const tgtOut = tgtOutRows.reshape([-1]) as tf.Tensor1D;
    const ctx = ForwardContext.inference();
    const rep = (x: tf.Tensor3D) => (k === 1 ? x : (x.tile([k, 1, 1]) as tf.Tensor3D));
    let hidden: tf.Tensor3D;
    if (stack === 'enc') {
      const memory =
        from < model.config.encoderLayers ? model.encode(src, ctx, { gates, from: { layer: from, input: rep(prefix.enc[from]!) } }) : rep(prefix.memory);
      hidden = model.decode(tgtIn, memory, paddingBias(src), ctx, { gates });
    } else hidden = model.decode(tgtIn, rep(prefix.memory), paddingBias(src), ctx, { gates, from: { layer: from, input: rep(prefix.dec[from]!) } });
    // only the target tokens reach the output layer (its product is about a third of a pass; padding
    // rows would only be weighted 0): every replica has the same rows, in replica order
    const rows = tokenRows(b, k);
    const logits = model.logits(rows ? hidden.reshape([-1, hidden.shape[2]]).gather(rows) : hidden);
    const y = rows ? (tgtOut.gather(rows) as tf.Tensor1D) : tgtOut;
    const weights = rows ? (tf.onesLike(y).cast('float32') as tf.Tensor1D) : targetWeights(tgtOutRows);
    // one pass over each row of logits (max, sum of exp) instead of logSumExp's Max, Sub, Exp, Sum, Log and
    // a gather: at the study's vocabulary (8146) that is about twice the output layer's own product
    const nll = hasXentLossKernel() ? xentLoss(logits, y, weights, 0) : nllPerToken(logits, y, weights);
    return nll.reshape([k, -1]).sum(1) as tf.Tensor1D;
  });
}

/** The flat indices of `k` replicas of batch `b`'s target tokens (not padding), [k * tokens]; null: no padding. */
function tokenRows(b: Batch, k: number): tf.Tensor1D | null {
  const one: number[] = [];
  b.tgtOut.forEach((id, i) => {
    if (id !== 0) one.push(i);
  });
  if (one.length === b.tgtOut.length) return null;
  const all = new Int32Array(k * one.length);
  for (let r = 0; r < k; r++) for (let j = 0; j < one.length; j++) all[r * one.length + j] = r * b.tgtOut.length + one[j]!;
  return tf.tensor1d(all, 'int32');
}

/** Dev loss (NLL per non-pad target token, as `devLoss`) with each head of `heads` removed alone, in order. */
export async function batchedAblationLosses(
  model: Transformer,
  pairs: readonly EncodedPair[],
  base: PerHead,
  heads: readonly AblatedHead[],
  o: BatchedAblationOptions,
): Promise<number[]> {
  const nll = new Float64Array(heads.length);
  let tokens = 0;
  const batches = planEvalBatches(pairs, o.maxTokensPerBatch).map((idx) => makeBatch(pairs, idx));
  const V = model.vocabSize;
  const encHeads = heads.filter((h) => h.stack === 'enc-self').length;
  const chunksOf = (b: Batch) => {
    const k = replicasFor(b, V, heads.length, o);
    return Math.ceil(encHeads / k) + Math.ceil((heads.length - encHeads) / k);
  };
  const total = batches.reduce((a, b) => a + chunksOf(b), 0);
  let done = 0;
  // encoder heads and the others in separate passes, each in layer order: a pass starts at its lowest
  // head's layer on the batch's unablated pass below it (a pass without encoder heads runs no encoder)
  const byLayer = (a: { h: AblatedHead }, b: { h: AblatedHead }) => a.h.layer - b.h.layer;
  const groups = [
    { stack: 'enc' as const, heads: heads.map((h, i) => ({ h, i })).filter((x) => x.h.stack === 'enc-self') },
    { stack: 'dec' as const, heads: heads.map((h, i) => ({ h, i })).filter((x) => x.h.stack !== 'enc-self') },
  ].map((g) => ({ ...g, heads: [...g.heads].sort(byLayer) }));
  for (const b of batches) {
    tokens += b.tgtTokens;
    const k = replicasFor(b, V, heads.length, o);
    const prefix = prefixOf(model, b, base);
    try {
      for (const group of groups) {
        for (let start = 0; start < group.heads.length; start += k) {
          const chunk = group.heads.slice(start, start + k);
          const gates = replicaGates(
            model,
            base,
            chunk.map((x) => x.h),
            b.batchSize,
          );
          const from = Math.min(...chunk.map((x) => x.h.layer));
          const sums = replicaNll(model, b, chunk.length, gates, prefix, group.stack, from);
          const data = await sums.data();
          sums.dispose();
          for (const t of Object.values(gates)) for (const gt of t ?? []) gt?.dispose();
          chunk.forEach((x, j) => (nll[x.i]! += data[j]!));
          o.onPass?.(++done, total);
        }
      }
    } finally {
      disposePrefix(prefix);
    }
  }
  return Array.from(nll, (s) => (tokens ? s / tokens : 0));
}
