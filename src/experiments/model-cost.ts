/**
 * What a model costs per token, counted from its config and weights (not measured): the figures the
 * sparsity-methods table puts beside test BLEU, bytes and decode time.
 *
 *   params        every weight of the model (dense count)
 *   nonZeroParams params minus the zeros in weight matrices and embeddings (fewer after magnitude pruning)
 *   activeParams  the weights one token uses: params minus, per MoE layer, the (E - topK) experts it skips
 *                 (embeddings count whole, as in params)
 *   FLOPs per token, 2 per multiply-add, for "a token": one source token through the encoder plus one
 *   target token through the decoder, averaged over the test set (teacher-forced: reference target lengths):
 *     ffnFlops    FFN products 2 * 2 * d * width per layer (per MoE layer topK experts + the router 2 * d * E)
 *     attnFlops   attention projections (Q, K, V, O: 4 * 2 * d * h * dHead per attention per token) plus the
 *                 two attention products (scores, context) over the query-key pairs a kernel computes:
 *                 allowed pairs of the sparse pattern (model.attentionPatterns), counted on the test set's
 *                 lengths by attentionSavings (model/attention-patterns.ts); no padding
 *     attnProductShare  pattern products / dense products (1 for dense): the share of attention-product
 *                 FLOPs a sparse kernel would compute; the toolkit's masked dense kernels compute all of them
 *   MoE routing on the test set (teacher-forced, evaluation: no capacity limit, so nothing is dropped in
 *   decoding): per MoE layer the share of claims per expert, and the share of claims that the training
 *   capacity (capacityFactor, per forward of one eval batch) would have dropped.
 */
import * as tf from '@tensorflow/tfjs';
import type { ResolvedConfig } from '../config/schema.js';
import type { BpeTokenizer } from '../data/tokenizer.js';
import type { SentencePair } from '../data/corpus.js';
import { encodePairs } from '../data/prepare.js';
import { makeBatch, planEvalBatches } from '../data/batches.js';
import { attentionSavings } from '../model/attention-patterns.js';
import { expertCapacity } from '../model/moe.js';
import { type Transformer, ffnWidth, moeOf } from '../model/transformer.js';
import { ATTENTION_TYPES } from '../config/head-id.js';
import { isPrunableWeight } from '../compress/magnitude-pruning.js';

export interface ModelCost {
  params: number;
  nonZeroParams: number;
  activeParams: number;
  ffnFlopsPerToken: number;
  attnFlopsPerToken: number;
  /** attnFlopsPerToken with every attention dense */
  attnDenseFlopsPerToken: number;
  attnProductShare: number;
  /** test-set tokens the per-token figures average over */
  tokens: { src: number; tgt: number; sentences: number };
}

export interface MoeRouting {
  /** per MoE layer (`enc.0`): share of claims per expert (1/E each when balanced) */
  load: Record<string, number[]>;
  /** max over experts of load / (1/E), averaged over layers (1: balanced; E: one expert takes all) */
  maxLoadRatio: number;
  /** share of claims the training capacity would drop, over all layers */
  droppedAtTrainingCapacity: number;
  capacityFactor: number;
}

/** params minus the zeros of the weight matrices magnitude pruning prunes (a bias that is 0, e.g. a key bias, is not a pruned weight). */
function countNonZero(model: Transformer): number {
  let zeros = 0;
  for (const name of model.params.names()) {
    if (!isPrunableWeight(name, true)) continue;
    const d = model.params.get(name).dataSync();
    for (let i = 0; i < d.length; i++) if (d[i] === 0) zeros++;
  }
  return model.params.count() - zeros;
}

/** The cost figures of `model` over the sentence lengths of `pairs` (see the module header). */
export function modelCost(model: Transformer, tok: BpeTokenizer, pairs: readonly SentencePair[]): ModelCost {
  const c = model.config;
  const d = c.dModel;
  const params = model.params.count();
  let skipped = 0;
  let ffnEnc = 0;
  let ffnDec = 0;
  for (const stack of ['encoder', 'decoder'] as const) {
    const n = stack === 'encoder' ? c.encoderLayers : c.decoderLayers;
    const moe = moeOf(c, stack);
    for (let l = 0; l < n; l++) {
      let f: number;
      if (moe) {
        skipped += (moe.experts - moe.topK) * (2 * d * c.dFF + c.dFF + d);
        f = moe.topK * 4 * d * c.dFF + 2 * d * moe.experts;
      } else f = 4 * d * ffnWidth(c, stack, l);
      if (stack === 'encoder') ffnEnc += f;
      else ffnDec += f;
    }
  }
  const encoded = encodePairs(tok, pairs);
  const lengths = encoded.map((p) => ({ src: p.src.length + 1, tgt: p.tgt.length + 1 }));
  const src = lengths.reduce((a, x) => a + x.src, 0);
  const tgt = lengths.reduce((a, x) => a + x.tgt, 0);
  const s = attentionSavings(c, model.shape, model.dHead, lengths);
  const perToken = (t: (typeof ATTENTION_TYPES)[number]) => (t === 'enc-self' ? src : tgt);
  let attn = 0;
  let dense = 0;
  let products = 0;
  let denseProducts = 0;
  for (const t of ATTENTION_TYPES) {
    const heads = model.shape[t].reduce((a, h) => a + h, 0);
    const proj = 4 * 2 * d * model.dHead * heads;
    const p = (s[t].pattern.scoreFlops + s[t].pattern.contextFlops) / Math.max(1, perToken(t));
    const q = (s[t].dense.scoreFlops + s[t].dense.contextFlops) / Math.max(1, perToken(t));
    attn += proj + p;
    dense += proj + q;
    products += p;
    denseProducts += q;
  }
  return {
    params,
    nonZeroParams: countNonZero(model),
    activeParams: params - skipped,
    ffnFlopsPerToken: ffnEnc + ffnDec,
    attnFlopsPerToken: Math.round(attn),
    attnDenseFlopsPerToken: Math.round(dense),
    attnProductShare: denseProducts > 0 ? products / denseProducts : 1,
    tokens: { src, tgt, sentences: pairs.length },
  };
}

/** Expert load on `pairs`, teacher-forced in eval batches (null without MoE layers; see the module header). */
export function moeRouting(model: Transformer, tok: BpeTokenizer, pairs: readonly SentencePair[], cfg: ResolvedConfig): MoeRouting | null {
  const moe = cfg.model.moe;
  if (!moe) return null;
  const encoded = encodePairs(tok, pairs);
  const plan = planEvalBatches(encoded, cfg.train.maxTokensPerBatch);
  const assigned: Record<string, number[]> = {};
  let claims = 0;
  let dropped = 0;
  for (const positions of plan) {
    const b = makeBatch(encoded, positions);
    tf.tidy(() => {
      const srcT = tf.tensor2d(b.src, [b.batchSize, b.srcLen], 'int32');
      const tgtT = tf.tensor2d(b.tgtIn, [b.batchSize, b.tgtLen], 'int32');
      model.forward(srcT, tgtT, {
        isTraining: false,
        routing: (stack, layer, r) => {
          const key = `${stack === 'encoder' ? 'enc' : 'dec'}.${layer}`;
          const a = (assigned[key] ??= new Array<number>(r.assigned.length).fill(0));
          r.assigned.forEach((v, e) => (a[e] = a[e]! + v));
          const cap = expertCapacity(moe.capacityFactor, r.tokens, moe.topK, moe.experts);
          for (const v of r.assigned) {
            claims += v;
            dropped += Math.max(0, v - cap);
          }
        },
      });
    });
  }
  const load = Object.fromEntries(
    Object.entries(assigned).map(([k, a]) => {
      const total = a.reduce((x, y) => x + y, 0);
      return [k, a.map((v) => (total > 0 ? Number((v / total).toFixed(4)) : 0))];
    }),
  );
  const ratios = Object.values(load).map((a) => Math.max(...a) * a.length);
  return {
    load,
    maxLoadRatio: ratios.length ? ratios.reduce((x, y) => x + y, 0) / ratios.length : 1,
    droppedAtTrainingCapacity: claims > 0 ? dropped / claims : 0,
    capacityFactor: moe.capacityFactor,
  };
}
