/**
 * Head relevance by layer-wise relevance propagation (LRP), the measure of Voita et al. 2019 (§4, App. A)
 * after Ding et al. 2017: the relevance of the top-1 logit at each decoding step, propagated back to the
 * head outputs of every attention layer (the gated per-head context), summed over the head's neurons,
 * normalised over the heads of the layer, and averaged over the decoding steps of a data set.
 *
 * What is implemented (rule 'lrp', the default): LRP-0 / the z-rule computed as gradient x input on a
 * copy of the forward pass in which the two non-linear couplings are frozen, following Ali et al. 2022
 * ("XAI for Transformers: Better Explanations through Conservative Propagation", ICML): the softmax
 * attention weights and LayerNorm's 1/sigma are treated as constants (their gradient is stopped). With
 * those constants the network is piecewise linear in its hidden states (ReLU is positively homogeneous),
 * and for a linear map z = W u the z-rule R_u = u * W^T (R_z / z) summed over outputs is exactly
 * u * dz/du, so gradient x input reproduces Ding's weight-ratio redistribution through every matrix
 * product (W_u,v u / sum_u' W_u',v u'), lets relevance through attention pass only along the values
 * ("the element-wise product" rule: proportional to each value's contribution), and passes it through
 * LayerNorm and ReLU unchanged in proportion, which is Ding's "non-linearities are ignored". Biases absorb
 * their share (no epsilon stabiliser is needed: nothing is divided). The forward values are unchanged.
 * Rule 'gradient-x-input' is the same without the frozen couplings (plain gradient x input on the model).
 *
 * Per step (sentence b, target position t, top-1 id y* = argmax of the model's logits given the
 * reference prefix): R_h = sum_{positions p, neurons i} x_{h,p,i} * d logit_{y*}(b,t) / d x_{h,p,i},
 * where x is head h's gated context; computed as d logit / d xi[b,h,p] of a per-token mask xi = 1
 * (x = xi * gate * ctx, so xi * d/dxi = x . d/dx). Signed sums can be negative, so a layer's heads are
 * normalised as |R_h| / sum_h' |R_h'|: each step's values sum to 1 over the layer (steps where the whole
 * layer has relevance 0, e.g. all gates closed, are skipped), and so does their average. A closed gate
 * gives x = 0, hence R_h = 0 exactly. Sentences of a batch are independent, so one backward pass per
 * target position serves the whole batch (the logit of sentence b only depends on sentence b).
 *
 * What step t's pass computes: the logit at position t depends on the target prefix 0..t only (causal
 * self-attention; everything else is per position), so the pass takes the sentences that have a real
 * token at t, their target prefix of length t + 1, and the output layer at position t alone. The values
 * are those of the whole batch and target (`legacy: true` computes it that way; tested equal): the
 * decoder's share of the work falls by about half and the output layer's by the target length.
 */
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { type AttentionParams, gateForContext, mergeHeads, projectKeysValues, splitHeads } from '../model/attention.js';
import { ForwardContext, causalBias, feedForward, linear, paddingBias } from '../model/layers.js';
import { type EncodedPair, makeBatch, planEvalBatches } from '../data/batches.js';
import { type HeadLayout, type PerHead, fillPerHead } from '../config/head-layout.js';
import { batchTensors, gatesWithTokenMasks, maskedLayers } from './importance.js';
import { tangentRelevance } from './lrp-tangent.js';

export type RelevanceRule = 'lrp' | 'gradient-x-input';
export const RELEVANCE_RULES: readonly RelevanceRule[] = ['lrp', 'gradient-x-input'];

/** Identity forward, zero gradient: turns a quantity into a constant of the backward pass. */
const stopGradient = tf.customGrad(((x: tf.Tensor) => ({
  value: x.clone(),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;

function layerNormWith(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, isFrozen: boolean, eps = 1e-5): tf.Tensor {
  // same maths as model/layers.ts layerNorm; with isFrozen the scale 1/sigma is a constant
  const { mean, variance } = tf.moments(x, -1, true);
  const inv = tf.rsqrt(variance.add(eps));
  return x
    .sub(mean)
    .mul(isFrozen ? stopGradient(inv) : inv)
    .mul(g)
    .add(b);
}

function attentionWith(p: AttentionParams, xq: tf.Tensor, xkv: tf.Tensor, bias: tf.Tensor | null, gate: tf.Tensor | null, isFrozen: boolean): tf.Tensor {
  // same maths as model/attention.ts attend (eval mode); with isFrozen the softmax weights are constants
  const [B, Tq, d] = xq.shape as [number, number, number];
  if (p.nHeads === 0) return tf.add(tf.zeros([B, Tq, d]), p.bo);
  const q = splitHeads(linear(xq, p.wq, p.bq), p.nHeads, p.dHead);
  const { k, v } = projectKeysValues(p, xkv);
  let scores = tf.matMul(q, k, false, true).mul(1 / Math.sqrt(p.dHead));
  if (bias) scores = scores.add(bias);
  let weights = tf.softmax(scores);
  if (isFrozen) weights = stopGradient(weights);
  const context = tf.matMul(weights, v) as tf.Tensor4D;
  const gated = gate ? (context.mul(gateForContext(gate, p.nHeads)) as tf.Tensor4D) : context;
  return linear(mergeHeads(gated), p.wo, p.bo);
}

/**
 * The model's teacher-forced eval-mode forward (logits [B*T, V]), rebuilt from its parameters so that
 * rule 'lrp' can freeze attention weights and LayerNorm scales. Its values equal `model.forward` (tested).
 */
export function relevanceForward(
  model: Transformer,
  src: tf.Tensor2D,
  tgtIn: tf.Tensor2D,
  gates: GateTensors | undefined,
  rule: RelevanceRule,
  atPosition?: number,
): tf.Tensor2D {
  const c = model.config;
  const isFrozen = rule === 'lrp';
  const ctx = ForwardContext.eval();
  const p = (n: string) => model.params.get(n);
  const norm = (x: tf.Tensor, prefix: string) => layerNormWith(x, p(`${prefix}.g`), p(`${prefix}.b`), isFrozen);
  const residual = (x: tf.Tensor, normName: string, f: (y: tf.Tensor) => tf.Tensor) =>
    c.norm === 'pre' ? x.add(f(norm(x, normName))) : norm(x.add(f(x)), normName);
  const ffn = (x: tf.Tensor, prefix: string) =>
    feedForward(x, p(`${prefix}.w1`), p(`${prefix}.b1`), p(`${prefix}.w2`), p(`${prefix}.b2`), ctx, model.config.activation);
  const gate = (stack: AttentionType, l: number) => gates?.[stack]?.[l] ?? null;

  const srcBias = paddingBias(src);
  let x: tf.Tensor = model.embed(src, 'src', ctx);
  for (let l = 0; l < c.encoderLayers; l++) {
    const ap = model.attentionParams(`enc.${l}.self`, model.shape['enc-self'][l]!);
    x = residual(x, `enc.${l}.ln1`, (y) => attentionWith(ap, y, y, srcBias, gate('enc-self', l), isFrozen));
    x = residual(x, `enc.${l}.ln2`, (y) => ffn(y, `enc.${l}.ffn`));
  }
  if (c.norm === 'pre' && c.encoderLayers > 0) x = norm(x, 'enc.ln');
  const memory = x;

  const T = tgtIn.shape[1];
  const selfBias = causalBias(T).add(paddingBias(tgtIn));
  let y: tf.Tensor = model.embed(tgtIn, 'tgt', ctx);
  for (let l = 0; l < c.decoderLayers; l++) {
    const sp = model.attentionParams(`dec.${l}.self`, model.shape['dec-self'][l]!);
    const cp = model.attentionParams(`dec.${l}.cross`, model.shape['dec-enc'][l]!);
    y = residual(y, `dec.${l}.ln1`, (h) => attentionWith(sp, h, h, selfBias, gate('dec-self', l), isFrozen));
    y = residual(y, `dec.${l}.ln2`, (h) => attentionWith(cp, h, memory, srcBias, gate('dec-enc', l), isFrozen));
    y = residual(y, `dec.${l}.ln3`, (h) => ffn(h, `dec.${l}.ffn`));
  }
  if (c.norm === 'pre') y = norm(y, 'dec.ln');
  // atPosition: the logits of that target position only, [B, V]
  return model.logits(atPosition === undefined ? y : y.slice([0, atPosition, 0], [-1, 1, -1]));
}

export interface RelevanceOptions {
  stacks: readonly AttentionType[];
  rule: RelevanceRule;
  maxTokensPerBatch: number;
  onBatch?: (done: number, total: number) => void;
  /** every step on the whole batch and target (the computation before the prefix passes; for the bench and tests) */
  legacy?: boolean;
  /**
   * rule 'lrp': every position at once from lrp-tangent.ts's linear pass per gated layer instead of the
   * default backward pass per step on its prefix. The same numbers; slower at the shapes measured (bench:analyze,
   * session 13: 4.4x slower than the per-step passes at d_model 128, 6+3 layers x 8 heads, vocab 8000), kept
   * for targets much longer than the model has heads.
   */
  tangent?: boolean;
}

export interface HeadRelevance {
  /** per head position: mean over steps of the layer-normalised |R_h| (sums to 1 over a layer) */
  relevance: PerHead;
  /** decoding steps (target tokens) averaged over */
  steps: number;
}

/** One step on the whole batch and target: R[b, h] for every row of the batch (rows without a token at t are not read). */
function legacyStep(
  model: Transformer,
  base: PerHead,
  layers: ReturnType<typeof maskedLayers>,
  b: ReturnType<typeof makeBatch>,
  src: tf.Tensor2D,
  tgtIn: tf.Tensor2D,
  idx: number[],
  rule: RelevanceRule,
): tf.Tensor {
  return tf.tidy(() => {
    const flatIdx = tf.tensor1d(idx, 'int32');
    const xis = layers.map((m) => tf.ones([b.batchSize, m.heads, m.stack === 'enc-self' ? b.srcLen : b.tgtLen]));
    const f = (...xs: tf.Tensor[]) => {
      const logits = relevanceForward(model, src, tgtIn, gatesWithTokenMasks(model, base, layers, xs), rule);
      return tf.gather(logits.reshape([-1]), flatIdx).sum() as tf.Scalar;
    };
    const grads = tf.grads(f)(xis);
    // R[b, h] = sum over positions of d logit / d xi; padded positions never reach a real logit
    // (their attention weight as keys is exactly 0, and causality hides later target positions)
    return tf.concat(
      grads.map((g) => g.sum(2)),
      1,
    ); // [B, sum of heads]
  });
}

/** Per-step head relevance of the top-1 logit, averaged over every target position of `pairs`. */
export async function estimateHeadRelevance(
  model: Transformer,
  layout: HeadLayout,
  pairs: readonly EncodedPair[],
  base: PerHead,
  o: RelevanceOptions,
): Promise<HeadRelevance> {
  const layers = maskedLayers(model, o.stacks);
  const sums = fillPerHead(layout, () => 0);
  const counts = new Map<string, number>();
  let steps = 0;
  /** one step's R_h of every masked layer, from data[offset..]: |R_h| / sum over the layer, layers with no relevance skipped */
  const addStep = (data: ArrayLike<number>, offset: number) => {
    let o2 = offset;
    for (const m of layers) {
      let total = 0;
      for (let j = 0; j < m.heads; j++) total += Math.abs(data[o2 + j]!);
      if (total > 0) {
        for (let j = 0; j < m.heads; j++) sums[m.stack][m.layer]![j]! += Math.abs(data[o2 + j]!) / total;
        const key = `${m.stack}.${m.layer}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      o2 += m.heads;
    }
  };
  const plan = planEvalBatches(pairs, o.maxTokensPerBatch);
  for (let bi = 0; bi < plan.length; bi++) {
    const b = makeBatch(pairs, plan[bi]!);
    const { src, tgtIn, tgtOut } = batchTensors(b);
    const V = model.vocabSize;
    const T = b.tgtLen;
    if (o.rule === 'lrp' && !o.legacy && o.tangent) {
      // every position at once: one forward pass and one linear pass per gated layer (lrp-tangent.ts)
      const width = layers.reduce((acc, m) => acc + m.heads, 0);
      let data: Float32Array | null = null;
      if (layers.length) {
        const r = tangentRelevance(model, src, tgtIn, base, layers);
        data = (await r.relevance.data()) as Float32Array;
        tf.dispose([r.relevance, r.top1]);
      }
      for (let r = 0; r < b.batchSize; r++)
        for (let t = 0; t < T; t++) {
          if (b.tgtOut[r * T + t] === 0) continue;
          steps++;
          if (data) addStep(data, (r * T + t) * width);
        }
      tf.dispose([src, tgtIn, tgtOut]);
      o.onBatch?.(bi + 1, plan.length);
      continue;
    }
    // the model's top-1 prediction at every position (values are the same under both rules)
    const top1T = tf.tidy(() => {
      const g = gatesWithTokenMasks(model, base, [], []);
      return model.forward(src, tgtIn, { isTraining: false, gates: g }).argMax(1);
    });
    const top1 = (await top1T.data()) as Int32Array;
    top1T.dispose();
    for (let t = 0; t < T; t++) {
      const rows: number[] = [];
      for (let r = 0; r < b.batchSize; r++) if (b.tgtOut[r * T + t] !== 0) rows.push(r);
      if (!rows.length) continue;
      steps += rows.length;
      if (!layers.length) continue;
      const packed = o.legacy
        ? legacyStep(
            model,
            base,
            layers,
            b,
            src,
            tgtIn,
            rows.map((r) => (r * T + t) * V + top1[r * T + t]!),
            o.rule,
          )
        : tf.tidy(() => {
            // the rows with a token at t, their target prefix 0..t, the logits at t
            const rowIdx = tf.tensor1d(rows, 'int32');
            const subSrc = tf.gather(src, rowIdx);
            const subTgt = tf.gather(tgtIn, rowIdx).slice([0, 0], [-1, t + 1]) as tf.Tensor2D;
            const flatIdx = tf.tensor1d(
              rows.map((r, i) => i * V + top1[r * T + t]!),
              'int32',
            );
            const xis = layers.map((m) => tf.ones([rows.length, m.heads, m.stack === 'enc-self' ? b.srcLen : t + 1]));
            const f = (...xs: tf.Tensor[]) => {
              const logits = relevanceForward(model, subSrc as tf.Tensor2D, subTgt, gatesWithTokenMasks(model, base, layers, xs), o.rule, t);
              return tf.gather(logits.reshape([-1]), flatIdx).sum() as tf.Scalar;
            };
            const grads = tf.grads(f)(xis);
            // R[row, h] = sum over positions of d logit / d xi (see legacyStep), scattered back to batch rows
            const sums = tf.concat(
              grads.map((g) => g.sum(2)),
              1,
            ); // [rows, sum of heads]
            return tf.scatterND(rowIdx.expandDims(1), sums, [b.batchSize, sums.shape[1]!]);
          });
      const data = await packed.data();
      packed.dispose();
      const width = layers.reduce((a, m) => a + m.heads, 0);
      for (const r of rows) addStep(data, r * width);
    }
    tf.dispose([src, tgtIn, tgtOut]);
    o.onBatch?.(bi + 1, plan.length);
  }
  const relevance = fillPerHead(layout, (s, l, j) => {
    const n = counts.get(`${s}.${l}`) ?? 0;
    return n ? sums[s][l]![j]! / n : 0;
  });
  for (const stack of ATTENTION_TYPES) if (!o.stacks.includes(stack)) relevance[stack] = relevance[stack].map((l) => l.map(() => 0));
  return { relevance, steps };
}
