/**
 * The gradient of one micro-batch, shared by the in-process trainer (workers = 1) and the training
 * workers, so both derive every seed the same way: dropout from `step * 1000 + index`, gate noise from
 * the same counter under the `gates` stream. The loss is step.ts's chunkLoss: the label-smoothed
 * cross-entropy summed over the micro-batch divided by the step's total target tokens (so gradients of
 * micro-batches simply add up), plus the MoE term and, on the step's first chunk, lambda * penalty.
 *
 * A micro-batch whose estimated wasm heap exceeds the budget (train/memory-split.ts) is split by rows into
 * chunks whose gradients are summed: the result equals the unsplit gradient up to float rounding when
 * dropout is off (with dropout on, chunk j > 0 draws its dropout masks from a derived seed, so the masks
 * differ from the unsplit batch's, as they would with another batch size). Gate noise is drawn once for
 * the whole micro-batch (per-sentence noise is then sliced by rows), so gates match the unsplit batch.
 *
 * Mixture of experts (model.moe): the load-balancing losses of the MoE layers (model/moe.ts) are added as
 * auxLossWeight * sum over layers, weighted by the chunk's share of the step's target tokens (so the
 * step's loss is the token-weighted mean over its micro-batches, as for the cross-entropy), and every
 * layer's expert usage is counted for the trainer's logs.
 */
import * as tf from '@tensorflow/tfjs';
import type { Transformer, GateTensors, WeightView } from '../../model/transformer.js';
import type { Batch } from '../../data/batches.js';
import { deriveSeed } from '../../util/random.js';
import { labelSmoothedCrossEntropySum, targetWeights } from '../objective.js';
import { chunkLoss } from '../step.js';
import { guardWasmHeap, sliceBatchRows } from '../memory-split.js';
import { type RoutingCounts, type RoutingRecord, addRoutingCounts } from '../../model/moe.js';

/** What a micro-batch gradient needs from the gates: sampling only (the penalty is added by the caller). */
export interface GateSampler {
  sampleGates(seed: number, batchSize: number): GateTensors;
}

export interface MicroBatchContext {
  model: Transformer;
  gates: GateSampler | null;
  /** the variables to differentiate */
  varList: tf.Variable[];
  /** tfjs variable name -> parameter name */
  varNameToParam: ReadonlyMap<string, string>;
  /** config.seed */
  seed: number;
  labelSmoothing: number;
  step: number;
  /** target tokens of the whole step (the loss normaliser) */
  stepTgtTokens: number;
  /** rows per chunk (>= batch size: no split) */
  chunkRows: number;
  /** a penalty added to this micro-batch's loss (first chunk only), e.g. lambda * E[L0] */
  penalty?: () => tf.Scalar;
  /** what the forward pass sees of each weight (train.quantAware: its int8 fake quantization); absent: the weights */
  weightView?: WeightView | undefined;
  /** test fault injection (RuntimeOptions.faultNonFinite); absent: none */
  faultNonFinite?: string | undefined;
}

export interface MicroBatchResult {
  /** gradients by parameter name (caller disposes) */
  grads: Map<string, tf.Tensor>;
  /** this micro-batch's cross-entropy / stepTgtTokens */
  ce: number;
  /** the penalty's value, when one was added */
  penalty?: number;
  /** MoE models: the load-balancing term added to the loss (auxLossWeight * aux, token-weighted) */
  aux?: number;
  /** MoE models: claims per expert per MoE layer, summed over the micro-batch's chunks */
  routing?: RoutingCounts;
}

/**
 * Fault injection for tests of the non-finite guard: `faults` "3,7:1" (RuntimeOptions.faultNonFinite, the CLI's
 * HEADS_FAULT_NONFINITE) makes the loss NaN at step 3 (every micro-batch) and at micro-batch 1 of step 7, each
 * once per thread (a step retried after a skip is clean). The trainer hands it to its workers.
 */
const faultsFired = new Set<string>();
export function isFaultInjected(faults: string | undefined, step: number, index: number): boolean {
  const raw = faults ?? '';
  if (!raw) return false;
  const key = `${step}:${index}`;
  if (faultsFired.has(key)) return false;
  const isListed = raw.split(',').some((entry) => {
    const [st, ix] = entry.trim().split(':');
    return st !== '' && Number(st) === step && (ix === undefined || Number(ix) === index);
  });
  if (isListed) faultsFired.add(key);
  return isListed;
}

/** Rows [r0, r1) of per-sentence gate tensors ([B, h]); per-batch gates ([h]) are shared. */
function sliceGates(g: GateTensors, batchSize: number, r0: number, r1: number): GateTensors {
  const out: Partial<Record<keyof GateTensors, Array<tf.Tensor | null>>> = {};
  for (const [stack, list] of Object.entries(g) as Array<[keyof GateTensors, ReadonlyArray<tf.Tensor | null>]>) {
    out[stack] = list.map((t) => (t !== null && t.rank >= 2 && t.shape[0] === batchSize ? t.slice([r0], [r1 - r0]) : t));
  }
  return out;
}

/** Forward + backward of micro-batch `index` of the step (split into row chunks when chunkRows < batch size). */
export async function microBatchGradients(ctx: MicroBatchContext, b: Batch, index: number): Promise<MicroBatchResult> {
  const baseSeed = deriveSeed(ctx.seed, 'step', ctx.step * 1000 + index);
  const gateSeed = deriveSeed(ctx.seed, 'gates', ctx.step * 1000 + index);
  const chunks = Math.max(1, Math.ceil(b.batchSize / Math.max(1, ctx.chunkRows)));
  const isPoisoned = isFaultInjected(ctx.faultNonFinite, ctx.step, index);
  let sum: Map<string, tf.Tensor> | null = null;
  let ce = 0;
  let penalty: number | undefined;
  const moe = ctx.model.config.moe ?? null;
  let aux = 0;
  let routing: RoutingCounts = {};
  for (let c = 0; c < chunks; c++) {
    const r0 = Math.floor((b.batchSize * c) / chunks);
    const r1 = Math.floor((b.batchSize * (c + 1)) / chunks);
    const part = chunks === 1 ? b : sliceBatchRows(b, r0, r1);
    const seed = c === 0 ? baseSeed : deriveSeed(baseSeed, 'split', c);
    const src = tf.tensor2d(part.src, [part.batchSize, part.srcLen], 'int32');
    const tgtIn = tf.tensor2d(part.tgtIn, [part.batchSize, part.tgtLen], 'int32');
    const tgtOut = tf.tensor2d(part.tgtOut, [part.batchSize, part.tgtLen], 'int32');
    const parts: { ce?: tf.Scalar; pen?: tf.Scalar; aux?: tf.Scalar } = {};
    const withPenalty = c === 0 && ctx.penalty !== undefined;
    const { value, grads } = guardWasmHeap(part, () =>
      tf.variableGrads(() => {
        let gates = ctx.gates?.sampleGates(gateSeed, b.batchSize);
        if (gates && chunks > 1) gates = sliceGates(gates, b.batchSize, r0, r1);
        const auxLosses: tf.Scalar[] = [];
        const routingHook = moe
          ? (stack: 'encoder' | 'decoder', layer: number, r: RoutingRecord) => {
              auxLosses.push(r.auxLoss);
              routing = addRoutingCounts(routing, { [`${stack === 'encoder' ? 'enc' : 'dec'}.${layer}`]: { assigned: r.assigned, kept: r.kept } });
            }
          : undefined;
        const logits = ctx.model.forward(src, tgtIn, {
          isTraining: true,
          seed,
          gates,
          routing: routingHook,
          ...(ctx.weightView ? { weightView: ctx.weightView } : {}),
        });
        const ceSum = labelSmoothedCrossEntropySum(logits, tgtOut.reshape([-1]) as tf.Tensor1D, targetWeights(tgtOut), ctx.labelSmoothing);
        const auxTerm =
          moe && auxLosses.length > 0 ? () => tf.addN(auxLosses).mul(moe.auxLossWeight * (part.tgtTokens / ctx.stepTgtTokens)) as tf.Scalar : undefined;
        const r = chunkLoss(ceSum, ctx.stepTgtTokens, { aux: auxTerm, penalty: withPenalty ? ctx.penalty : undefined, poisoned: isPoisoned });
        parts.ce = r.ce;
        if (r.aux) parts.aux = r.aux;
        if (r.penalty) parts.pen = r.penalty;
        return r.loss;
      }, ctx.varList),
    );
    ce += (await parts.ce!.data())[0]!;
    if (parts.pen) penalty = (await parts.pen.data())[0]!;
    if (parts.aux) aux += (await parts.aux.data())[0]!;
    tf.dispose([src, tgtIn, tgtOut, value, parts.ce, parts.pen, parts.aux]);
    const named = new Map<string, tf.Tensor>();
    for (const [vn, g] of Object.entries(grads)) named.set(ctx.varNameToParam.get(vn) ?? vn, g);
    sum = addGradients(sum, named);
  }
  const out: MicroBatchResult = { grads: sum!, ce };
  if (penalty !== undefined) out.penalty = penalty;
  if (moe) {
    out.aux = aux;
    out.routing = routing;
  }
  return out;
}

/** Add `grads` into the running sum (taking ownership of both; the first call returns `grads` itself). */
export function addGradients(sum: Map<string, tf.Tensor> | null, grads: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
  if (!sum) return grads;
  for (const [k, g] of grads) {
    const prev = sum.get(k);
    if (prev) {
      sum.set(k, tf.add(prev, g));
      tf.dispose([prev, g]);
    } else sum.set(k, g);
  }
  return sum;
}
