/**
 * Building blocks of the Transformer (Vaswani et al. 2017) in plain tfjs ops: linear maps on the last axis,
 * layer norm, the position-wise feed-forward net, dropout with explicit per-call seeds, and the sinusoidal
 * position table. Linear maps reshape to 2-D first: on wasm only untransposed 2-D matMuls take the fast path.
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '../util/random.js';

/** Per-forward context: train/eval mode and a deterministic stream of dropout seeds. */
export class ForwardContext {
  private counter = 0;
  constructor(
    readonly isTraining: boolean,
    readonly dropout: number,
    readonly attentionDropout: number,
    private readonly seed: number,
  ) {}
  nextSeed(): number {
    return deriveSeed(this.seed, 'dropout', this.counter++);
  }
  static eval(): ForwardContext {
    return new ForwardContext(false, 0, 0, 0);
  }
}

/** x [..., dIn] @ w [dIn, dOut] + b [dOut] -> [..., dOut] */
export function linear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null): tf.Tensor {
  const shape = x.shape;
  const dIn = shape[shape.length - 1]!;
  const dOut = w.shape[1]!;
  const x2 = x.rank === 2 ? x : x.reshape([-1, dIn]);
  let y = tf.matMul(x2 as tf.Tensor2D, w as tf.Tensor2D);
  if (b) y = y.add(b);
  return x.rank === 2 ? y : y.reshape([...shape.slice(0, -1), dOut]);
}

/** Layer norm over the last axis with gain g and bias b. */
export function layerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps = 1e-5): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).mul(tf.rsqrt(variance.add(eps))).mul(g).add(b);
}

export function dropout(x: tf.Tensor, rate: number, ctx: ForwardContext): tf.Tensor {
  if (!ctx.isTraining || rate <= 0) return x;
  return tf.dropout(x, rate, undefined, ctx.nextSeed());
}

/** Position-wise FFN: relu(x W1 + b1) W2 + b2, with dropout on the hidden layer. */
export function feedForward(x: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor, ctx: ForwardContext): tf.Tensor {
  const h = dropout(tf.relu(linear(x, w1, b1)), ctx.dropout, ctx);
  return linear(h, w2, b2);
}

/** Sinusoidal positions [maxLen, d] (sin on even, cos on odd dims), as in Vaswani et al. */
export function sinusoidalTable(maxLen: number, d: number): Float32Array {
  const out = new Float32Array(maxLen * d);
  for (let pos = 0; pos < maxLen; pos++) {
    for (let i = 0; i < d; i += 2) {
      const angle = pos / Math.pow(10000, i / d);
      out[pos * d + i] = Math.sin(angle);
      if (i + 1 < d) out[pos * d + i + 1] = Math.cos(angle);
    }
  }
  return out;
}

/** Additive attention bias for padded keys: [B, 1, 1, Tk], -1e9 where the key is padding (id 0). */
export function paddingBias(ids: tf.Tensor2D): tf.Tensor4D {
  const [B, T] = ids.shape;
  return ids.equal(0).cast('float32').mul(-1e9).reshape([B, 1, 1, T]);
}

/** Additive causal bias [1, 1, T, T]: -1e9 above the diagonal. */
export function causalBias(T: number): tf.Tensor4D {
  const lower = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
  return tf.sub(1, lower).mul(-1e9).reshape([1, 1, T, T]);
}
