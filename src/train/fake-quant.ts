/**
 * Fake quantization for quantization-aware fine-tuning (Jacob et al. 2018, §3; Bengio et al. 2013's
 * straight-through estimator): the forward pass quantizes and dequantizes a weight per channel with the
 * int8 scheme of compress/quantize.ts (symmetric, scale = max|w| / 127 per output channel, q clamped to
 * ±127), so training sees the rounding the int8 export will apply; the backward pass lets the upstream
 * gradient through unchanged wherever |w| ≤ 127·scale (the clipping range) and zeroes it outside. The
 * scale itself gets no gradient (it is recomputed from the weights). tf.round rounds halves to even where
 * quantize.ts's Math.round rounds them up: the two differ only on exact halves.
 */
import * as tf from '@tensorflow/tfjs';
import { INT8_QMAX } from '../compress/quantize.js';

/** Per-channel scales max|w| / 127 along `axis` (kept as a broadcastable axis of size channels). */
export function int8Scales(w: tf.Tensor, axis: number): tf.Tensor {
  return tf.tidy(() => {
    const others = w.shape.map((_, i) => i).filter((i) => i !== (axis < 0 ? w.rank + axis : axis));
    return tf.max(tf.abs(w), others, true).div(INT8_QMAX);
  });
}

/**
 * quantize-dequantize `w` per channel along `axis` (1 for the toolkit's [dIn, dOut] matrices), with a
 * straight-through gradient. `scale` (broadcastable to w) overrides the max-abs scales, e.g. to test the
 * clipping range or to freeze scales during fine-tuning.
 */
export function fakeQuantInt8(w: tf.Tensor, axis: number, scale?: tf.Tensor): tf.Tensor {
  // tfjs types the customGrad callback as variadic (inputs..., save); the only input is the weight, so the
  // scale (given or computed from the weight) is a constant to the gradient
  const op = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const sc = scale ? scale.clone() : int8Scales(x, axis);
    // a channel of zeros has scale 0: divide by 1 there (q = 0 either way)
    const value = tf.tidy(() =>
      x
        .div(tf.where(sc.greater(0), sc, tf.onesLike(sc)))
        .round()
        .clipByValue(-INT8_QMAX, INT8_QMAX)
        .mul(sc),
    );
    save([x, sc]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ss] = saved as [tf.Tensor, tf.Tensor];
        return dy.mul(xs.abs().lessEqual(ss.mul(INT8_QMAX)).cast('float32'));
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(w);
}
