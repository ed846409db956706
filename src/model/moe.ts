/**
 * Mixture of experts (`model.moe`, issue 10): a feed-forward sub-layer replaced by E experts, each a normal
 * FFN d -> dFF -> d, behind a learned top-k router (Shazeer et al. 2017; GShard, Lepikhin et al. 2021 for
 * top-2 and expert capacity; Switch Transformer, Fedus et al. 2022 for top-1 and the load-balancing loss).
 *
 * Per token x (a row of the flattened batch, N = B*T rows):
 *   p = softmax(x W_r)                                  router probabilities over experts, W_r [d, E]
 *   e_1 = argmax p, e_2 = argmax of p without e_1       (k = 2; ties go to the lower expert index)
 *   k = 1: y = p[e_1] FFN_{e_1}(x)                      (Switch: the raw probability, see below)
 *   k = 2: y = sum_j p[e_j] / (p[e_1] + p[e_2]) FFN_{e_j}(x)   (GShard: renormalised to sum to 1)
 * With k = 1, renormalising would make the weight identically 1 and the router would learn from the aux
 * loss alone; Switch keeps the probability so the task loss trains the router, and so do we.
 *
 * Capacity: each expert processes at most `capacity` tokens per forward (the Transformer passes
 * ceil(capacityFactor * tokens * k / E) in training, tokens = the non-pad tokens of the batch, and no
 * limit in evaluation and decoding, so cached decoding equals the teacher-forced forward). ORDERING RULE
 * for who is dropped: claims on an expert are served in priority order, all first choices (e_1) before any
 * second choice (e_2), and within one choice rank in the order of the flattened batch (sentence by
 * sentence, position by position: row b*T + t). An expert takes the first `capacity` claims; a later
 * claim is dropped for that expert: its output from that expert is zero (the other choice, if kept, still
 * contributes with its weight unchanged) and the residual connection carries the token. Padding rows
 * (tokenMask 0) claim nothing and get zero output.
 *
 * Load-balancing loss (Switch Transformer eq. 4): aux = E * sum_e f_e * P_e, with f_e the fraction of
 * non-pad tokens whose top-1 choice is e (before capacity drops; no gradient) and P_e the mean router
 * probability of e over the non-pad tokens. It is 1 for perfectly uniform routing. The trainer adds
 * auxLossWeight * (sum over MoE layers of aux) to the loss.
 *
 * Batched: the routing decisions (choices, slots in each expert's buffer) are computed with tensor ops on
 * a copy of the router probabilities taken off the gradient tape (tfjs has no stop_gradient, and integer
 * indices derived on the tape would need gradients that Gather and TopK do not define); tokens are
 * gathered into an [E, C, d] buffer, the experts run as two batched matMuls, and each token gathers its
 * expert outputs back (the gradient of those gathers is UnsortedSegmentSum, registered on wasm by
 * backend/ops.ts). Shapes: x [..., d]; router [d, E]; expert buffers [E, C, d].
 */
import * as tf from '@tensorflow/tfjs';
import { type ForwardContext, dropout } from './layers.js';

/** One expert's weights: w1 [d, H], b1 [H], w2 [H, d], b2 [d]. */
export interface FfnWeights {
  w1: tf.Tensor;
  b1: tf.Tensor;
  w2: tf.Tensor;
  b2: tf.Tensor;
}

export interface MoeWeights {
  /** router [d, E] (no bias) */
  router: tf.Tensor;
  /** E experts of the same width */
  experts: ReadonlyArray<FfnWeights>;
}

export interface RoutingOptions {
  /** experts per token: 1 or 2 (<= E) */
  topK: number;
  /** tokens each expert may process in this call (null: no limit) */
  capacity: number | null;
}

/** What one MoE layer did in one forward. */
export interface RoutingRecord {
  /** the layer's load-balancing loss E * sum_e f_e P_e (not yet times auxLossWeight); on the tape in training */
  auxLoss: tf.Scalar;
  /** claims on each expert (all k choices of the non-pad tokens), before the capacity cut */
  assigned: number[];
  /** claims each expert processed: min(assigned, capacity) */
  kept: number[];
  /** non-pad tokens routed */
  tokens: number;
  /** the capacity used (null: no limit) */
  capacity: number | null;
}

/** ceil(capacityFactor * tokens * topK / experts): the per-expert token budget of one forward. */
export function expertCapacity(capacityFactor: number, tokens: number, topK: number, experts: number): number {
  return Math.ceil((capacityFactor * tokens * topK) / experts);
}

/**
 * A copy of `t` that is not connected to the gradient tape (routing decisions are not differentiated).
 * Reads the values back: N x E floats per MoE layer.
 */
function offTape(t: tf.Tensor): tf.Tensor {
  return tf.tensor(t.dataSync(), t.shape, t.dtype);
}

/** One-hot rows [N, depth] as float32 (tf.oneHot refuses depth 1, i.e. a single expert). */
function oneHotF(indices: tf.Tensor1D, depth: number): tf.Tensor2D {
  return indices
    .reshape([-1, 1])
    .equal(tf.range(0, depth, 1, 'int32').reshape([1, depth]))
    .cast('float32') as tf.Tensor2D;
}

/**
 * The MoE feed-forward sub-layer: x [..., d] -> y [..., d] and the layer's routing record. `tokenMask`
 * [N] (1 real, 0 padding; N = rows of x) defaults to all real. Dropout on the experts' hidden layer as in
 * the plain FFN. Call inside a tidy (or a gradient closure): intermediates are not freed here.
 */
export function mixtureOfExperts(
  x: tf.Tensor,
  w: MoeWeights,
  opts: RoutingOptions,
  ctx: ForwardContext,
  tokenMask: tf.Tensor | null = null,
): { y: tf.Tensor; record: RoutingRecord } {
  const shape = x.shape;
  const d = shape[shape.length - 1]!;
  const E = w.experts.length;
  const k = opts.topK;
  if (k !== 1 && k !== 2) throw new Error(`mixtureOfExperts: topK must be 1 or 2, got ${k}`);
  if (k > E) throw new Error(`mixtureOfExperts: topK ${k} is more than the ${E} experts`);
  const x2 = x.reshape([-1, d]) as tf.Tensor2D; // [N, d]
  const N = x2.shape[0];

  // ---- router (on the tape) ----
  const probs = tf.softmax(tf.matMul(x2, w.router as tf.Tensor2D)); // [N, E]

  // ---- routing decisions (off the tape) ----
  const p = offTape(probs) as tf.Tensor2D;
  const valid = (tokenMask ? offTape(tokenMask.reshape([N]).cast('float32')) : tf.ones([N])) as tf.Tensor1D; // [N]
  const first = tf.argMax(p, 1) as tf.Tensor1D; // [N] int32
  const masks = [oneHotF(first, E).mul(valid.reshape([N, 1])) as tf.Tensor2D]; // [N, E] per choice rank
  const choices = [first];
  if (k === 2) {
    // the second choice: the best of the others (probabilities lie in [0, 1], so -2 rules the first out)
    const second = tf.argMax(p.sub(oneHotF(first, E).mul(2)), 1) as tf.Tensor1D;
    choices.push(second);
    masks.push(oneHotF(second, E).mul(valid.reshape([N, 1])) as tf.Tensor2D);
  }
  const claims = masks.length === 1 ? masks[0]! : masks[0]!.add(masks[1]!);
  const assigned = Array.from(claims.sum(0).dataSync(), Math.round); // [E]
  const tokens = Math.round(valid.sum().dataSync()[0]!);
  const cap = opts.capacity === null ? Infinity : Math.max(0, Math.floor(opts.capacity));
  const kept = assigned.map((a) => Math.min(a, cap));
  // buffer rows per expert: only as many as some expert fills (the same slots as `cap`, less padding)
  const C = Math.max(1, ...kept);

  // slot of each claim in its expert's buffer: claims before it on that expert (priority order above)
  let offset = tf.zeros([1, E]) as tf.Tensor2D;
  const slots: tf.Tensor1D[] = []; // per choice rank: [N] int32, e * C + position, or E * C when dropped
  for (let j = 0; j < masks.length; j++) {
    const m = masks[j]!;
    const position = tf.cumsum(m, 0, true).add(offset).mul(m).sum(1); // [N]
    const isKept = position.less(Math.min(cap, C)).cast('float32').mul(m.sum(1)); // [N] 0/1 (0 for padding)
    const slot = choices[j]!.cast('float32').mul(C).add(position);
    slots.push(
      slot
        .mul(isKept)
        .add(tf.sub(1, isKept).mul(E * C))
        .cast('int32') as tf.Tensor1D,
    );
    offset = offset.add(m.sum(0, true)) as tf.Tensor2D;
  }
  // the token in each buffer slot (+1; 0 = empty): a scatter of token ids into slots (dropped claims land
  // in the extra slot E * C, which is cut off)
  const slotAll = tf.concat(slots) as tf.Tensor1D; // [k * N]
  const tokenIds = tf.tile(tf.range(1, N + 1, 1, 'int32'), [masks.length]);
  const table = tf.scatterND(slotAll.reshape([-1, 1]), tokenIds, [E * C + 1]).slice([0], [E * C]) as tf.Tensor1D; // [E * C]

  // ---- experts (on the tape) ----
  const xPad = tf.concat([tf.zeros([1, d]), x2]); // row 0: the empty slot's input
  const xe = tf.gather(xPad, table).reshape([E, C, d]) as tf.Tensor3D;
  const stack = (f: (e: FfnWeights) => tf.Tensor) => tf.stack(w.experts.map(f));
  const w1 = stack((e) => e.w1) as tf.Tensor3D; // [E, d, H]
  const w2 = stack((e) => e.w2) as tf.Tensor3D; // [E, H, d]
  const b1 = stack((e) => e.b1.reshape([1, -1])); // [E, 1, H]
  const b2 = stack((e) => e.b2.reshape([1, -1])); // [E, 1, d]
  const h = dropout(tf.relu(tf.matMul(xe, w1).add(b1)), ctx.dropout, ctx) as tf.Tensor3D; // [E, C, H]
  const out = tf
    .matMul(h, w2)
    .add(b2)
    .reshape([E * C, d]);
  const outPad = tf.concat([out, tf.zeros([1, d])]); // row E * C: a dropped claim's output

  // ---- combine: each token gathers its kept expert outputs, weighted ----
  const pChosen = choices.map((c) => probs.mul(oneHotF(c, E)).sum(1)); // [N] each, on the tape
  const weights =
    k === 1
      ? pChosen
      : (() => {
          const norm = pChosen[0]!.add(pChosen[1]!);
          return pChosen.map((q) => q.div(norm));
        })();
  let y: tf.Tensor = tf.gather(outPad, slots[0]!).mul(weights[0]!.reshape([N, 1]));
  if (k === 2) y = y.add(tf.gather(outPad, slots[1]!).mul(weights[1]!.reshape([N, 1])));

  // ---- load balancing (Switch): E * sum_e f_e P_e over the non-pad tokens ----
  const denom = Math.max(tokens, 1);
  const f = masks[0]!.sum(0).div(denom); // [E], no gradient
  const P = probs
    .mul(valid.reshape([N, 1]))
    .sum(0)
    .div(denom); // [E]
  const auxLoss = f.mul(P).sum().mul(E) as tf.Scalar;

  return { y: y.reshape(shape), record: { auxLoss, assigned, kept, tokens, capacity: opts.capacity === null ? null : cap } };
}

// ---- expert usage, summed over forwards and reported at log steps ----

/** Per MoE layer (`enc.0`, `dec.1`): claims per expert before the capacity cut, and processed. */
export type RoutingCounts = Record<string, { assigned: number[]; kept: number[] }>;

/** a + b (new object; either may be empty). */
export function addRoutingCounts(a: RoutingCounts, b: RoutingCounts): RoutingCounts {
  const out: RoutingCounts = {};
  for (const [layer, c] of Object.entries(a)) out[layer] = { assigned: c.assigned.slice(), kept: c.kept.slice() };
  for (const [layer, c] of Object.entries(b)) {
    const o = out[layer];
    if (!o) out[layer] = { assigned: c.assigned.slice(), kept: c.kept.slice() };
    else
      c.assigned.forEach((v, e) => {
        o.assigned[e] = (o.assigned[e] ?? 0) + v;
        o.kept[e] = (o.kept[e] ?? 0) + c.kept[e]!;
      });
  }
  return out;
}

/**
 * Numbers for metrics.jsonl: per MoE layer, `moe.<layer>.e<i>` = the share of the layer's claims expert i
 * received (before the capacity cut; 1/E each when balanced) and `moe.<layer>.dropped` = the share of
 * claims dropped by capacity.
 */
export function routingSummary(c: RoutingCounts): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [layer, { assigned, kept }] of Object.entries(c)) {
    const total = assigned.reduce((s, v) => s + v, 0);
    const processed = kept.reduce((s, v) => s + v, 0);
    assigned.forEach((v, e) => (out[`moe.${layer}.e${e}`] = total > 0 ? Number((v / total).toFixed(4)) : 0));
    out[`moe.${layer}.dropped`] = total > 0 ? Number(((total - processed) / total).toFixed(4)) : 0;
  }
  return out;
}
