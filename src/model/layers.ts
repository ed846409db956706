/**
 * Building blocks of the Transformer (Vaswani et al. 2017) in plain tfjs ops: linear maps on the last axis,
 * layer norm, the position-wise feed-forward net, dropout with explicit per-call seeds, and the sinusoidal
 * position table. Linear maps reshape to 2-D first: on wasm only untransposed 2-D matMuls take the fast path.
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '../util/random.js';
import { fusedLayerNorm, hasFusedLayerNorm, layerNormValue } from '../backend/layer-norm-kernel.js';
import { fastDropout } from '../backend/dropout.js';

/** Per-forward context: train/eval mode and a deterministic stream of dropout seeds. */
export class ForwardContext {
  private counter = 0;
  /**
   * Inference only (the fast decoders' steps): `linear` adds its bias in the product's epilogue (the
   * _FusedMatMul kernel tf.fused.matMul runs: natively the same sgemm, then the same float additions)
   * instead of an Add kernel.
   */
  fusedBias = false;
  /**
   * Inference only (the fast decoders' steps, head ablations): the fused kernels run without their
   * gradient wrappers (tf.fused.matMul's, fusedLayerNorm's and the attention kernel's tf.customGrad, which
   * cost more than the kernels in a decoding step): the same kernels, so the same numbers.
   */
  noGrad = false;
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
  /** eval, and no gradient will be taken (`noGrad`) */
  static inference(): ForwardContext {
    const ctx = ForwardContext.eval();
    ctx.noGrad = true;
    return ctx;
  }
}

/**
 * x [..., dIn] @ w [dIn, dOut] + b [dOut] -> [..., dOut]; `fusedBias` (inference only, no gradient): the
 * bias in the product's epilogue (ForwardContext.fusedBias)
 */
export function linear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null, fusedBias = false): tf.Tensor {
  const shape = x.shape;
  const dIn = shape[shape.length - 1]!;
  const dOut = w.shape[1]!;
  const x2 = x.rank === 2 ? x : x.reshape([-1, dIn]);
  let y: tf.Tensor;
  // the kernel tf.fused.matMul runs (the same 3-D operands and attributes), without its gradient wrapper
  if (b && fusedBias)
    y = (
      tf.engine().runKernel('_FusedMatMul', { a: x2.reshape([1, -1, dIn]), b: w.reshape([1, dIn, dOut]), bias: b } as unknown as tf.NamedTensorMap, {
        transposeA: false,
        transposeB: false,
        activation: 'linear',
        leakyreluAlpha: 0.2,
      }) as tf.Tensor
    ).reshape([-1, dOut]);
  else {
    y = tf.matMul(x2 as tf.Tensor2D, w as tf.Tensor2D);
    if (b) y = y.add(b);
  }
  return x.rank === 2 ? y : y.reshape([...shape.slice(0, -1), dOut]);
}

/** Layer norm over the last axis with gain g and bias b (one native kernel where registered, backend/layer-norm-kernel.ts). */
export function layerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps = 1e-5, noGrad = false): tf.Tensor {
  if (x.dtype === 'float32' && hasFusedLayerNorm()) return noGrad ? layerNormValue(x, null, g, b, eps) : fusedLayerNorm(x, null, g, b, eps, 0, 0);
  const { mean, variance } = tf.moments(x, -1, true);
  return x
    .sub(mean)
    .mul(tf.rsqrt(variance.add(eps)))
    .mul(g)
    .add(b);
}

/**
 * The post-norm residual end LN(x + dropout(y)) g + b. Where the fused kernel is registered it is one
 * native kernel per direction, its dropout mask drawn from backend/dropout.ts's hash under the same
 * per-call seed (so other masks than tf.dropout's); else the ops.
 */
export function residualLayerNorm(x: tf.Tensor, y: tf.Tensor, g: tf.Tensor, b: tf.Tensor, ctx: ForwardContext, eps = 1e-5): tf.Tensor {
  if (x.dtype === 'float32' && y.dtype === 'float32' && x.shape.join() === y.shape.join() && hasFusedLayerNorm()) {
    if (ctx.noGrad && !ctx.isTraining) return layerNormValue(x, y, g, b, eps);
    const rate = ctx.isTraining ? ctx.dropout : 0;
    return fusedLayerNorm(x, y, g, b, eps, rate, rate > 0 ? ctx.nextSeed() : 0);
  }
  return layerNorm(x.add(dropout(y, ctx.dropout, ctx)), g, b, eps);
}

/**
 * Inverted dropout with the next seed of ctx: the fused `HeadsDropout` kernel where registered (wasm and
 * cpu by default: one pass, masks from backend/dropout.ts's hash), else tf.dropout (seedrandom's stream).
 */
export function dropout(x: tf.Tensor, rate: number, ctx: ForwardContext): tf.Tensor {
  if (!ctx.isTraining || rate <= 0) return x;
  return fastDropout(x, rate, ctx.nextSeed());
}

/** The FFN's activation (model.activation): relu (the default), swish = x sigmoid(x) (Marian), gelu (erf form). */
export type Activation = 'relu' | 'swish' | 'gelu';

export function activate(x: tf.Tensor, kind: Activation = 'relu'): tf.Tensor {
  if (kind === 'swish') return x.mul(tf.sigmoid(x));
  if (kind === 'gelu') return x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5);
  return tf.relu(x);
}

/** Position-wise FFN: act(x W1 + b1) W2 + b2 (act: relu unless given), with dropout on the hidden layer. */
export function feedForward(
  x: tf.Tensor,
  w1: tf.Tensor,
  b1: tf.Tensor,
  w2: tf.Tensor,
  b2: tf.Tensor,
  ctx: ForwardContext,
  activation: Activation = 'relu',
): tf.Tensor {
  const h = dropout(activate(linear(x, w1, b1, ctx.fusedBias), activation), ctx.dropout, ctx);
  return linear(h, w2, b2, ctx.fusedBias);
}

/**
 * Sinusoidal positions [maxLen, d] with angle pos / 10000^(2i/d) for pair i: `interleaved` (the default,
 * Vaswani et al.) puts sin on even and cos on odd dims; `split` (Marian / fairseq) puts the sines on dims
 * [0, d/2) and the cosines on [d/2, d).
 */
export function sinusoidalTable(maxLen: number, d: number, layout: 'interleaved' | 'split' = 'interleaved'): Float32Array {
  const out = new Float32Array(maxLen * d);
  const half = Math.floor(d / 2);
  for (let pos = 0; pos < maxLen; pos++) {
    for (let i = 0; i < d; i += 2) {
      const angle = pos / Math.pow(10000, i / d);
      if (layout === 'split') {
        if (i / 2 < half) {
          out[pos * d + i / 2] = Math.sin(angle);
          out[pos * d + half + i / 2] = Math.cos(angle);
        }
        continue;
      }
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
