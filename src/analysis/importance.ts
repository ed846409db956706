/**
 * Head importance of Michel et al. 2019 ("Are Sixteen Heads Really Better than One?", §4.1 eq. 2):
 * I_h = E_x |∂L(x)/∂ξ_h| for a mask variable ξ_h = 1 multiplying head h's output. Dropout is off (eval
 * mode) and L(x) is sentence x's training loss SUMMED over its target tokens (label-smoothed
 * cross-entropy, or NLL with smoothing 0), as the criterion Michel's prune.py backpropagates.
 *
 * One backward pass gives the three forms. Each head's context is multiplied by a PER-TOKEN mask of ones
 * ξ[b, h, t] (shape [B, h, Tq]; `gateForContext` broadcasts it), so g[b,h,t] = ∂L/∂ξ[b,h,t] is Michel's
 * per-token dot product ⟨ctx_{h,t}, ∂L/∂ctx_{h,t}⟩ (the ctx being the gated context: a head with a closed
 * gate scores exactly 0). L is the sum of the sentences' losses and a sentence's mask touches only its
 * own loss (attention, layer norm and the loss are all within a sentence), so Σ_t g[b,h,t] is
 * ∂L(x_b)/∂ξ_{b,h} for a per-sentence mask [B, h]. With padding query tokens left out:
 *   example (the paper's eq. 2, default): Σ_sentences |Σ_t g[b,h,t]| / (sentences)
 *   token (Michel's MT code):             Σ_batches Σ_{b,t} |g[b,h,t]| / N
 *   batch (HF bertology):                 Σ_batches |Σ_{b,t} g[b,h,t]| / N
 * N = the non-pad query tokens of that attention type. The batch form's inner sum is ∂L_batch/∂ξ_h for
 * one [h] mask, so it depends on the batching (recorded). By the triangle inequality the three sums are
 * ordered: batch ≤ example ≤ token (before the divisions). Per-layer l2 normalisation (Michel's
 * `--normalize-by-layer`, passed by both of his MT scripts; default 'layer'): I_{l,h} / sqrt(Σ_h' I_{l,h'}^2).
 * src/analysis/README.md compares the three.
 */
import { DEFAULT_ANALYSIS } from '../config/defaults.js';
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { type Batch, type EncodedPair, makeBatch, planEvalBatches } from '../data/batches.js';
import { labelSmoothedCrossEntropySum, targetWeights } from '../train/objective.js';
import { type HeadLayout, type PerHead, fillPerHead } from '../config/head-layout.js';

/** The three int32 tensors of a batch: src [B, S], tgtIn [B, T], tgtOut [B, T]. */
export function batchTensors(b: Batch): { src: tf.Tensor2D; tgtIn: tf.Tensor2D; tgtOut: tf.Tensor2D } {
  return {
    src: tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32'),
    tgtIn: tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32'),
    tgtOut: tf.tensor2d(b.tgtOut, [b.batchSize, b.tgtLen], 'int32'),
  };
}

/** One gated layer that receives a per-token mask. */
export interface MaskedLayer {
  stack: AttentionType;
  layer: number;
  heads: number;
}

/** The layers of `stacks` that have heads. */
export function maskedLayers(model: Transformer, stacks: readonly AttentionType[]): MaskedLayer[] {
  const out: MaskedLayer[] = [];
  for (const stack of ATTENTION_TYPES) if (stacks.includes(stack)) model.shape[stack].forEach((heads, layer) => heads > 0 && out.push({ stack, layer, heads }));
  return out;
}

/**
 * Gate tensors for forward: in the masked layers ξ (shape [B, h, Tq]) times the base multipliers, in the
 * other layers the base multipliers [h] (null when all 1). Made inside the caller's tidy / grad scope.
 */
export function gatesWithTokenMasks(model: Transformer, base: PerHead, layers: readonly MaskedLayer[], xis: readonly tf.Tensor[]): GateTensors {
  const out: Partial<Record<AttentionType, Array<tf.Tensor | null>>> = {};
  for (const stack of ATTENTION_TYPES) {
    out[stack] = model.shape[stack].map((h, l) => {
      const vals = base[stack][l] ?? [];
      const i = layers.findIndex((m) => m.stack === stack && m.layer === l);
      const isOnes = vals.every((v) => v === 1);
      if (i >= 0) return isOnes ? xis[i]! : xis[i]!.mul(tf.tensor1d(vals).reshape([1, h, 1]));
      return h > 0 && !isOnes ? tf.tensor1d(vals) : null;
    });
  }
  return out;
}

/** How the gate gradients are reduced to one score per head (see the module header). */
export const IMPORTANCE_FORMS = ['example', 'batch', 'token'] as const;
export type ImportanceForm = (typeof IMPORTANCE_FORMS)[number];
/** Per-layer l2 normalisation of the scores, or none. */
export const IMPORTANCE_NORMALIZATIONS = ['layer', 'none'] as const;
export type ImportanceNormalization = (typeof IMPORTANCE_NORMALIZATIONS)[number];
/** Michel et al.'s definition: the per-example expectation, normalised per layer as his MT scripts do. */
export const DEFAULT_IMPORTANCE: { readonly form: ImportanceForm; readonly normalize: ImportanceNormalization } = DEFAULT_ANALYSIS.importance;

/**
 * Problems with an importance form and normalisation given by a user (`names`: how the caller calls the
 * two settings, e.g. `--importance-form`); undefined = the default. One line each.
 */
export function importanceSettingProblems(form: unknown, normalize: unknown, names: { form: string; normalize: string }): string[] {
  const out: string[] = [];
  const check = (v: unknown, allowed: readonly string[], name: string) => {
    if (v !== undefined && !allowed.includes(v as string)) out.push(`${name}: expected ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  };
  check(form, IMPORTANCE_FORMS, names.form);
  check(normalize, IMPORTANCE_NORMALIZATIONS, names.normalize);
  return out;
}

export interface GateGradientSums {
  /** Σ over non-pad query tokens of |∂L/∂ξ[b,h,t]|, per head position */
  perTokenAbs: PerHead;
  /** Σ over the batch's sentences of |Σ over its non-pad query tokens of ∂L/∂ξ[b,h,t]| (= Σ_x |∂L(x)/∂ξ_h|) */
  perExampleAbs: PerHead;
  /** Σ over non-pad query tokens of ∂L/∂ξ[b,h,t] (= ∂L/∂ξ_h for a per-head mask) */
  signed: PerHead;
  /** per head position, per row of the batch: ∂L(x_b)/∂ξ_h, sentence b's own gradient */
  perSentence: PerHead<number[]>;
  /** non-pad query tokens per attention type */
  queryTokens: Record<AttentionType, number>;
  loss: number;
}

/** ∂L/∂ξ for one batch, reduced per head (see the module header). */
export async function headGateGradients(
  model: Transformer,
  layout: HeadLayout,
  b: Batch,
  base: PerHead,
  stacks: readonly AttentionType[],
  labelSmoothing: number,
): Promise<GateGradientSums> {
  const layers = maskedLayers(model, stacks);
  const perTokenAbs = fillPerHead(layout, () => 0);
  const perExampleAbs = fillPerHead(layout, () => 0);
  const signed = fillPerHead(layout, () => 0);
  const perSentence = fillPerHead<number[]>(layout, () => []);
  const queryTokens: Record<AttentionType, number> = { 'enc-self': b.srcTokens, 'dec-self': b.tgtTokens, 'dec-enc': b.tgtTokens };
  if (!layers.length) return { perTokenAbs, perExampleAbs, signed, perSentence, queryTokens, loss: 0 };
  const [packed, lossT] = tf.tidy(() => {
    const { src, tgtIn, tgtOut } = batchTensors(b);
    const xis = layers.map((m) => tf.ones([b.batchSize, m.heads, m.stack === 'enc-self' ? b.srcLen : b.tgtLen]));
    const f = (...xs: tf.Tensor[]) => {
      const logits = model.forward(src, tgtIn, { isTraining: false, gates: gatesWithTokenMasks(model, base, layers, xs) });
      return labelSmoothedCrossEntropySum(logits, tgtOut.reshape([-1]) as tf.Tensor1D, targetWeights(tgtOut), labelSmoothing);
    };
    const { value, grads } = tf.valueAndGrads(f)(xis);
    // [B, 1, Tq] masks of real query tokens
    const srcMask = src.notEqual(0).cast('float32').expandDims(1);
    const tgtMask = tgtIn.notEqual(0).cast('float32').expandDims(1);
    const parts: tf.Tensor[] = [];
    layers.forEach((m, i) => {
      const g = grads[i]!.mul(m.stack === 'enc-self' ? srcMask : tgtMask);
      const bySentence = g.sum(2); // [B, h]: ∂L(x_b)/∂ξ_{b,h}
      parts.push(g.abs().sum([0, 2]), bySentence.abs().sum(0), bySentence.sum(0), bySentence.transpose().reshape([-1]));
    });
    return [tf.concat(parts), value];
  });
  const data = await packed.data();
  const loss = (await lossT.data())[0]!;
  tf.dispose([packed, lossT]);
  let o = 0;
  for (const m of layers) {
    for (const out of [perTokenAbs, perExampleAbs, signed]) {
      for (let j = 0; j < m.heads; j++) out[m.stack][m.layer]![j] = data[o + j]!;
      o += m.heads;
    }
    for (let j = 0; j < m.heads; j++) perSentence[m.stack][m.layer]![j] = Array.from(data.subarray(o + j * b.batchSize, o + (j + 1) * b.batchSize));
    o += m.heads * b.batchSize;
  }
  return { perTokenAbs, perExampleAbs, signed, perSentence, queryTokens, loss };
}

export interface MichelImportance {
  /** per-example form (the paper's eq. 2): mean over sentences of |∂L(x)/∂ξ_h| */
  perExample: PerHead;
  /** per-token form (Michel et al.'s MT code) */
  perToken: PerHead;
  /** per-batch form (HF bertology) */
  perBatch: PerHead;
  queryTokens: Record<AttentionType, number>;
  sentences: number;
  batches: number;
  /** the loss per target token over the data (label-smoothed if smoothing > 0) */
  lossPerToken: number;
}

export interface ImportanceOptions {
  stacks: readonly AttentionType[];
  maxTokensPerBatch: number;
  /** 0 = plain NLL; Michel et al. used the training criterion (label-smoothed) */
  labelSmoothing: number;
  onBatch?: (done: number, total: number) => void;
}

/** Michel importance of every head of `stacks` over `pairs` (multipliers `base` applied). */
export async function estimateMichelImportance(
  model: Transformer,
  layout: HeadLayout,
  pairs: readonly EncodedPair[],
  base: PerHead,
  o: ImportanceOptions,
): Promise<MichelImportance> {
  const perTokenSum = fillPerHead(layout, () => 0);
  const perExampleSum = fillPerHead(layout, () => 0);
  const perBatchSum = fillPerHead(layout, () => 0);
  const queryTokens: Record<AttentionType, number> = { 'enc-self': 0, 'dec-self': 0, 'dec-enc': 0 };
  const plan = planEvalBatches(pairs, o.maxTokensPerBatch);
  let loss = 0;
  let tgtTokens = 0;
  let sentences = 0;
  for (let i = 0; i < plan.length; i++) {
    const b = makeBatch(pairs, plan[i]!);
    const g = await headGateGradients(model, layout, b, base, o.stacks, o.labelSmoothing);
    for (const stack of ATTENTION_TYPES) {
      queryTokens[stack] += g.queryTokens[stack];
      g.perTokenAbs[stack].forEach((l, li) => l.forEach((v, j) => (perTokenSum[stack][li]![j]! += v)));
      g.perExampleAbs[stack].forEach((l, li) => l.forEach((v, j) => (perExampleSum[stack][li]![j]! += v)));
      g.signed[stack].forEach((l, li) => l.forEach((v, j) => (perBatchSum[stack][li]![j]! += Math.abs(v))));
    }
    loss += g.loss;
    tgtTokens += b.tgtTokens;
    sentences += b.batchSize;
    o.onBatch?.(i + 1, plan.length);
  }
  const div = (m: PerHead) => fillPerHead(layout, (s, l, j) => (queryTokens[s] ? m[s][l]![j]! / queryTokens[s] : 0));
  const perExample = fillPerHead(layout, (s, l, j) => (sentences ? perExampleSum[s][l]![j]! / sentences : 0));
  return {
    perExample,
    perToken: div(perTokenSum),
    perBatch: div(perBatchSum),
    queryTokens,
    sentences,
    batches: plan.length,
    lossPerToken: tgtTokens ? loss / tgtTokens : 0,
  };
}

/** The raw scores of one form. */
export function importanceOfForm(imp: MichelImportance, form: ImportanceForm): PerHead {
  return form === 'example' ? imp.perExample : form === 'token' ? imp.perToken : imp.perBatch;
}

/** The scores of one form, normalised as asked. */
export function importanceScores(imp: MichelImportance, form: ImportanceForm, normalize: ImportanceNormalization): PerHead {
  const raw = importanceOfForm(imp, form);
  return normalize === 'layer' ? normalizeByLayer(raw) : raw;
}

/** Michel's per-layer l2 normalisation: I_{l,h} / sqrt(Σ_h' I_{l,h'}^2) (+1e-20 as in the BERT code). */
export function normalizeByLayer(m: PerHead): PerHead {
  const out = {} as PerHead;
  for (const stack of ATTENTION_TYPES) {
    out[stack] = m[stack].map((l) => {
      const norm = Math.sqrt(l.reduce((a, v) => a + v * v, 0)) + 1e-20;
      return l.map((v) => v / norm);
    });
  }
  return out;
}
