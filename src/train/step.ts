/**
 * One training step: the objective and one optimizer update. trainer.ts is the loop around it (data
 * order, evaluation, checkpoints, logs); where the step's arithmetic runs is a StepRunner's business.
 *
 *   loss = sum_i CE_i / T + lambda * penalty [+ MoE load balancing]                     (chunkLoss)
 *     CE_i     label-smoothed cross-entropy summed over the target tokens of micro-batch i (objective.ts)
 *     T        target tokens of the whole step, so the gradients of the micro-batches simply add up
 *     penalty  the gates' expected L0 (gates/head-gates.ts), or in budget mode the Lagrangian term
 *     lambda   train.l0Lambda, or 1 in budget mode: the Lagrangian carries its own multipliers (penaltyWeight)
 *   g   = clip(grad loss, train.clipNorm)                        global l2 norm over every trainable tensor
 *   lr  = peakLr * min(t / warmup, sqrt(warmup / t)) * f^k       schedule.ts; f^k: train.earlyStopping.lrDecay's
 *                                                                k cuts so far (early-stopping.ts), 1 without
 *   m   = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2            Adam (adam.ts), bias-corrected:
 *   p  -= lr * s * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   s = gates.lrScale for log-alphas, else 1
 *
 * A step whose loss or gradient norm is not finite changes nothing and throws NonFiniteError (the trainer
 * skips it under train.skipNonFinite). Micro-batch i draws dropout from seed (step * 1000 + i) and gate
 * noise from the same counter under the `gates` stream, wherever it runs.
 *
 * The two runners compute the same step:
 * - InProcessRunner (in-process-runner.ts): micro-batches one after another on this thread
 *   (workers/micro-batch.ts), the penalty added to the first one's loss, then applyUpdate below;
 * - WorkerStepRunner (workers/step-runner.ts): micro-batch i on worker i mod N, the gradients summed in
 *   shared memory with the penalty's gradient (computed here on the main thread), the same update per
 *   element in shared memory (workers/shared-state.ts adamRange), equal to in-process up to float rounding.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batches.js';
import type { RoutingCounts } from '../model/moe.js';
import { HeadsError } from '../util/errors.js';
import { type Adam, clipByGlobalNorm } from './adam.js';
import { inverseSqrtLr } from './schedule.js';

/** What the step needs from the gates (the trainer's GateProvider has more). */
export interface PenaltySource {
  /** true when the penalty is an exact-budget Lagrangian term (added as is, not times l0Lambda) */
  readonly isBudgeted?: boolean;
  /** the penalty term multiplied by lambda (its convention is the provider's) */
  penalty(step: number): tf.Scalar;
}

/** lambda: train.l0Lambda in lambda mode, 1 in budget mode (the Lagrangian term as it is). */
export function penaltyWeight(gates: PenaltySource | null | undefined, l0Lambda: number): number {
  return gates?.isBudgeted ? 1 : l0Lambda;
}

/** lambda * penalty at `step` as a closure for the gradient tape, or undefined without gates or with lambda 0. */
export function weightedPenalty(gates: PenaltySource | null | undefined, step: number, l0Lambda: number): (() => tf.Scalar) | undefined {
  const lambda = penaltyWeight(gates, l0Lambda);
  return gates && lambda > 0 ? () => gates.penalty(step).mul(lambda) as tf.Scalar : undefined;
}

/**
 * The loss of one micro-batch (or row chunk of one): ceSum / T, plus the MoE load-balancing term, plus
 * lambda * penalty (passed for the step's first chunk only). The terms are built in this order on the
 * gradient tape; their values come back as kept copies for the logs. `poisoned` (test fault injection)
 * makes the loss NaN.
 */
export function chunkLoss(
  ceSum: tf.Scalar,
  stepTgtTokens: number,
  terms: { aux?: (() => tf.Scalar | undefined) | undefined; penalty?: (() => tf.Scalar) | undefined; poisoned?: boolean },
): { loss: tf.Scalar; ce: tf.Scalar; aux?: tf.Scalar; penalty?: tf.Scalar } {
  let loss = ceSum.div(stepTgtTokens) as tf.Scalar;
  if (terms.poisoned) loss = loss.mul(NaN) as tf.Scalar;
  const out: { loss: tf.Scalar; ce: tf.Scalar; aux?: tf.Scalar; penalty?: tf.Scalar } = { loss, ce: tf.keep(loss.clone()) };
  const aux = terms.aux?.();
  if (aux) {
    out.aux = tf.keep(aux.clone());
    loss = loss.add(aux) as tf.Scalar;
  }
  if (terms.penalty) {
    const pen = terms.penalty();
    out.penalty = tf.keep(pen.clone());
    loss = loss.add(pen) as tf.Scalar;
  }
  out.loss = loss;
  return out;
}

/** The learning rate of 1-based `step`, times `scale` (train.earlyStopping.lrDecay's cuts so far; 1: none). */
export function learningRate(step: number, t: { peakLr: number; warmupSteps: number }, scale = 1): number {
  const lr = inverseSqrtLr(step, t.peakLr, t.warmupSteps);
  return scale === 1 ? lr : lr * scale;
}

/**
 * In-process update: clip the summed gradients to `clipNorm` (global norm) and apply one Adam step,
 * log-alphas (`gate.*`) at lr * gateScale. Takes ownership of `grads`. Returns the norm before clipping,
 * or null (and no update) when the norm or `loss` is not finite.
 */
export function applyUpdate(
  adam: Adam,
  params: Map<string, tf.Variable>,
  sum: Map<string, tf.Tensor>,
  loss: number,
  o: { lr: number; clipNorm: number; gateScale: number },
): { norm: number; applied: boolean } {
  const { grads, norm } = clipByGlobalNorm(sum, o.clipNorm);
  if (!Number.isFinite(norm) || !Number.isFinite(loss)) {
    tf.dispose([...grads.values()]);
    return { norm, applied: false };
  }
  adam.apply(params, grads, o.lr, (name) => (name.startsWith('gate.') ? o.gateScale : 1));
  tf.dispose([...grads.values()]);
  return { norm, applied: true };
}

/** One step as the trainer hands it to a runner. */
export interface StepInput {
  step: number;
  batches: Batch[];
  /** target tokens of the whole step (T above) */
  stepTgtTokens: number;
  lr: number;
  /** lambda * penalty (absent: no gates, or lambda 0) */
  penalty?: (() => tf.Scalar) | undefined;
}

/** What a runner reports back. */
export interface StepOutcome {
  /** sum_i CE_i / T */
  loss: number;
  /** lambda * penalty (0 without) */
  penalty: number;
  gradNorm: number;
  /** false: non-finite, nothing was updated */
  applied: boolean;
  moeAux?: number | undefined;
  routing?: RoutingCounts | undefined;
}

/**
 * Where the step's arithmetic runs. The trainer's model (and gates) holds the trained weights after
 * `syncMain`; the runner is told when the trainer changed them itself (restore, magnitude pruning).
 */
export interface StepRunner {
  /** forward + backward of `batches`, the penalty, clipping and one Adam update */
  run(input: StepInput): Promise<StepOutcome>;
  /** make the main thread's model and gates current (no-op in-process) */
  syncMain(): void;
  /** Adam's state as checkpoints store it */
  adamState(): Promise<{ step: number; tensors: Record<string, { shape: number[]; data: Float32Array }> }>;
  /** the trainer assigned new parameters (params) and/or Adam state (adam) on the main thread */
  mainChanged(what: { params?: boolean; adam?: boolean }): void;
  /** the pruning masks changed (set, restored or cleared) */
  masksChanged(): void;
  /** a pruning step zeroed the masked weights and moments on the main thread */
  weightsPruned(): void;
  dispose(): void;
}

/** One step: its learning rate and penalty, the runner's update, a NonFiniteError when nothing was applied. */
export async function optimizerStep(
  runner: StepRunner,
  step: number,
  batches: Batch[],
  gates: PenaltySource | null | undefined,
  t: { l0Lambda: number; peakLr: number; warmupSteps: number },
  lrScale = 1,
): Promise<StepOutcome> {
  const stepTgtTokens = batches.reduce((a, b) => a + b.tgtTokens, 0);
  const out = await runner.run({ step, batches, stepTgtTokens, lr: learningRate(step, t, lrScale), penalty: weightedPenalty(gates, step, t.l0Lambda) });
  if (!out.applied) throw new NonFiniteError(step, out.loss, out.gradNorm, batches.flatMap((b) => b.indices).slice(0, 10));
  return out;
}

export class NonFiniteError extends HeadsError {
  constructor(
    readonly step: number,
    loss: number,
    gradNorm: number,
    readonly sentenceIndices: number[],
  ) {
    super(
      `non-finite ${Number.isFinite(loss) ? 'gradient' : 'loss'} at step ${step} (loss ${loss}, gradient norm ${gradNorm}); batch sentences ${sentenceIndices.join(',')}...`,
    );
  }
}
