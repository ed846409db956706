/**
 * Exact head-budget controller: the Lagrangian relaxation of a target L0 constraint from Wang, Wohlwend,
 * Lei 2020 ("Structured Pruning of Large Language Models", FLOP, §3.3) as used by CoFiPruning (Xia,
 * Zhong, Chen 2022, §3.2; shared/notes/anchor-pruning-peers.md §C.4), applied to the expected number of
 * open heads E = Σ P(g ≠ 0) (hard-concrete.ts) instead of CoFi's parameter sparsity:
 *
 *   L = L_task + λ₁·(E − N(t)) + λ₂·(E − N(t))²
 *
 * where N(t) is the head target, annealed linearly from the full head count to the final target over the
 * warm-up (`annealedTarget`; CoFi anneals from 0 % sparsity, which is the same thing).
 *
 * Min–max training: the gate logits log α (and the model) minimise L by gradient descent, while the
 * multipliers λ₁, λ₂ (both initialised to 0) MAXIMISE L by gradient ascent. The trainer implements the
 * ascent by negating the multipliers' gradients before its optimiser step (CoFi does the same with a
 * negative learning rate). Since ∂L/∂λ₁ = E − N, ascent raises λ₁ while E > N, which makes the penalty
 * push E down harder, and lowers it (possibly below 0) while E < N, which pushes E up; ∂L/∂λ₂ = (E − N)²
 * ≥ 0, so λ₂ only grows and acts as an increasingly stiff quadratic spring.
 *
 * At the end, an exact budget is met by keeping the `selectTopHeads(pOpen, N)` heads with the highest
 * P(g ≠ 0) (ties to the lowest index, so the choice is deterministic).
 */
import * as tf from '@tensorflow/tfjs';

export interface TargetSchedule {
  /** Head count at step 0 (all gated heads). */
  fullCount: number;
  /** Final head target N. */
  targetCount: number;
  /** Steps over which the target moves linearly from fullCount to targetCount; 0 = target at once. */
  warmupSteps: number;
}

/** λ₁(E − N) + λ₂(E − N)². */
export function lagrangianPenalty(expected: number, target: number, lambda1: number, lambda2: number): number {
  const d = expected - target;
  return lambda1 * d + lambda2 * d * d;
}

/** The partial derivatives of `lagrangianPenalty` (descend on `expected`, ascend on the λs). */
export function lagrangianGradients(
  expected: number,
  target: number,
  lambda1: number,
  lambda2: number,
): { dExpected: number; dLambda1: number; dLambda2: number } {
  const d = expected - target;
  return { dExpected: lambda1 + 2 * lambda2 * d, dLambda1: d, dLambda2: d * d };
}

/**
 * Tensor version for autodiff inside the trainer's loss closure. `expected` is a scalar (e.g.
 * `expectedL0Tensor(logAlpha)` summed over all gated layers); the λs are scalar variables.
 */
export function lagrangianPenaltyTensor(expected: tf.Tensor, target: number | tf.Tensor, lambda1: tf.Tensor, lambda2: tf.Tensor): tf.Scalar {
  const d = tf.sub(expected, target);
  return tf.sum(tf.add(tf.mul(lambda1, d), tf.mul(lambda2, tf.square(d))));
}

/** N(step) = full + (target − full)·min(1, step / warmup); steps before 0 count as 0. */
export function annealedTarget(step: number, schedule: TargetSchedule): number {
  const { fullCount, targetCount, warmupSteps } = schedule;
  if (!Number.isFinite(fullCount) || !Number.isFinite(targetCount)) {
    throw new RangeError(`annealedTarget: counts must be finite, got full ${fullCount}, target ${targetCount}`);
  }
  if (!(Number.isFinite(warmupSteps) && warmupSteps >= 0)) {
    throw new RangeError(`annealedTarget: warmupSteps must be >= 0, got ${warmupSteps}`);
  }
  if (warmupSteps === 0) return targetCount;
  const frac = Math.min(1, Math.max(0, step) / warmupSteps);
  return fullCount + (targetCount - fullCount) * frac;
}

/**
 * Exactly `n` indices of `pOpen`, the highest P(open) first; equal values are ordered by index (lowest
 * first), so the result is deterministic. The result is in rank order; sort it for a kept-set.
 */
export function selectTopHeads(pOpen: readonly number[], n: number): number[] {
  if (!(Number.isInteger(n) && n >= 0 && n <= pOpen.length)) {
    throw new RangeError(`selectTopHeads: n must be an integer in 0..${pOpen.length}, got ${n}`);
  }
  pOpen.forEach((p, i) => {
    if (Number.isNaN(p)) throw new RangeError(`selectTopHeads: P(open) of head ${i} is NaN`);
  });
  const order = pOpen.map((_, i) => i);
  order.sort((a, b) => pOpen[b]! - pOpen[a]! || a - b);
  return order.slice(0, n);
}
