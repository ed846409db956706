/**
 * The training objective: label-smoothed cross-entropy (Szegedy et al. 2016) summed over non-pad target
 * tokens, with a hand-written gradient (softmax - smoothed target) so only one [N, V] tensor stays on the
 * tape: the probe measured ~0.5 GiB less wasm heap per 2000 tokens than logSoftmax x smoothed one-hot.
 * The smoothed target puts 1 - eps on the reference and eps / V on every class.
 *
 * Two implementations with the same value and gradient (objective.test.ts):
 * - fused (default where registered: wasm and cpu): the `HeadsSmoothedXent` kernel (backend/softmax-xent.ts)
 *   computes the loss AND its gradient in one pass over the logits during the forward, and the tape keeps
 *   that gradient instead of the logits; the backward is one multiply by dy. Measured on the bench model
 *   (2000 tokens, V 8000): the loss's kernels went from ~700 ms to ~100 ms per step (see bench.ts);
 * - ops: logSumExp forward, softmax - one-hot backward in tfjs ops (any backend, e.g. tfjs-node).
 * setLossImplementation('ops') selects the ops version everywhere (the CLI calls it for `HEADS_FUSED_LOSS=0`).
 * Shapes: logits [N, V]; targets [N] int32; weights [N] (1 for real tokens, 0 for pad).
 */
import * as tf from '@tensorflow/tfjs';
import { hasSmoothedXentKernel, smoothedXent } from '../backend/softmax-xent.js';

export type LossImplementation = 'fused' | 'ops';

let lossImpl: LossImplementation = 'fused';

/** Selects the loss implementation ('fused' falls back to 'ops' on backends without the kernel). */
export function setLossImplementation(impl: LossImplementation): void {
  lossImpl = impl;
}

/** The implementation the next call will use on the active backend. */
export function lossImplementation(): LossImplementation {
  return lossImpl === 'fused' && hasSmoothedXentKernel() ? 'fused' : 'ops';
}

/** Sum over tokens of the label-smoothed cross-entropy (a scalar); gradient flows to `logits` only. */
export function labelSmoothedCrossEntropySum(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D, eps: number): tf.Scalar {
  return lossImplementation() === 'fused'
    ? labelSmoothedCrossEntropySumFused(logits, targets, weights, eps)
    : labelSmoothedCrossEntropySumOps(logits, targets, weights, eps);
}

/** The fused-kernel version (needs `HeadsSmoothedXent` on the active backend). */
export function labelSmoothedCrossEntropySumFused(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D, eps: number): tf.Scalar {
  const y = targets.dtype === 'int32' ? targets : (targets.cast('int32') as tf.Tensor1D);
  const w = weights.dtype === 'float32' ? weights : (weights.cast('float32') as tf.Tensor1D);
  // tfjs types the customGrad callback as variadic (inputs..., save); the first argument is the logits.
  const f = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const [grad, perToken] = smoothedXent(x as tf.Tensor2D, y, w, eps);
    // only the gradient is kept for backward; the logits can be freed after the forward
    save([grad]);
    return {
      value: perToken.sum() as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => saved[0]!.mul(dy),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const out = f(logits) as tf.Scalar;
  if (y !== targets) y.dispose();
  if (w !== weights) w.dispose();
  return out;
}

/** The tfjs-ops version (any backend). */
export function labelSmoothedCrossEntropySumOps(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D, eps: number): tf.Scalar {
  const [N, V] = logits.shape;
  const flatIndex = tf.tidy(() => tf.range(0, N, 1, 'int32').mul(tf.scalar(V, 'int32')).add(targets.cast('int32')) as tf.Tensor1D);
  // tfjs types the customGrad callback as variadic (inputs..., save); the first argument is the logits.
  const f = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const l = x as tf.Tensor2D;
    const lse = tf.logSumExp(l, 1); // [N]
    const ly = tf.gather(l.reshape([-1]), flatIndex); // [N]
    const perToken = lse.sub(ly.mul(1 - eps)).sub(l.mean(1).mul(eps));
    // targets and weights may be made inside the caller's gradient scope: save() keeps them for backward
    save([l, lse, targets, weights]);
    return {
      value: perToken.mul(weights).sum() as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [ls, lseS, y, w] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        const probs = tf.exp(ls.sub(lseS.reshape([N, 1])));
        const target = tf
          .oneHot(y.cast('int32'), V)
          .mul(1 - eps)
          .add(eps / V);
        return probs
          .sub(target)
          .mul(w.reshape([N, 1]))
          .mul(dy);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const out = f(logits) as tf.Scalar;
  flatIndex.dispose();
  return out;
}

/** The plain negative log-likelihood of each row's target, times its weight (0 for padding): [N]. */
export function nllPerToken(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const [N, V] = logits.shape;
    const idx = tf.range(0, N, 1, 'int32').mul(tf.scalar(V, 'int32')).add(targets.cast('int32'));
    const ly = tf.gather(logits.reshape([-1]), idx);
    return tf.logSumExp(logits, 1).sub(ly).mul(weights) as tf.Tensor1D;
  });
}

/** Sum over non-pad tokens of the plain negative log-likelihood (for dev loss and perplexity). */
export function nllSum(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => nllPerToken(logits, targets, weights).sum() as tf.Scalar);
}

/** Non-pad weights for target ids [B, T] (0 = pad) -> [B*T]. */
export function targetWeights(tgtOut: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tgtOut.reshape([-1]).notEqual(0).cast('float32') as tf.Tensor1D);
}
