/**
 * The fused layer-norm kernels (HeadsLayerNorm / HeadsLayerNormGrad, wasm + addon) against the tfjs ops of
 * model/layers.ts: plain layer norm and the post-norm residual end LN(x + dropout(y)), outputs and the
 * gradients of x, y, g and b; with dropout, against the ops on backend/dropout.ts's mask for the same seed
 * (the kernel draws that mask); tensor leaks; no kernels without the addon. Skipped, with a message, when
 * the addon (or its layer-norm functions) is not built.
 */
import { describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { installBackendFixes } from './ops.js';
import { loadNativeBlas } from './native-blas.js';
import { nativeKernelSuite } from '../test-utils/native-kernels.js';
import { hasFusedLayerNorm, nativeLayerNorm } from './layer-norm-kernel.js';
import { fastDropout } from './dropout.js';
import { maxRelDiff } from './kernel-testing.js';
import { ForwardContext, layerNorm, residualLayerNorm } from '../model/layers.js';

const fns = nativeLayerNorm(loadNativeBlas().blas);
const describeNative = nativeKernelSuite(
  fns !== null,
  'fused layer-norm tests skipped: the addon (or its layer-norm functions) is not built; run scripts/setup-native.sh',
);

/** value and gradients of sum(f(x, y, g, b) * r) */
function grads(f: (x: tf.Tensor, y: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor) {
  return tf.tidy(() => {
    const x = tf.randomNormal([3, 5, 24], 0, 2, 'float32', 1).add(0.5);
    const y = tf.randomNormal([3, 5, 24], 0, 1, 'float32', 2);
    const g = tf.randomNormal([24], 1, 0.2, 'float32', 3);
    const b = tf.randomNormal([24], 0, 0.2, 'float32', 4);
    const r = tf.randomNormal([3, 5, 24], 0, 1, 'float32', 5);
    const out = f(x, y, g, b);
    const gs = tf.grads((xi: tf.Tensor, yi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) => f(xi, yi, gi, bi).mul(r).sum() as tf.Scalar)([x, y, g, b]);
    return { out: out.dataSync().slice(), grads: gs.map((t) => t.dataSync().slice()) };
  });
}

function expectClose(got: ReturnType<typeof grads>, ref: ReturnType<typeof grads>): void {
  expect(maxRelDiff(got.out, ref.out)).toBeLessThan(2e-5);
  for (let i = 0; i < ref.grads.length; i++) expect(maxRelDiff(got.grads[i]!, ref.grads[i]!)).toBeLessThan(5e-5);
}

describeNative('HeadsLayerNorm (native, wasm)', () => {
  it('layer norm: output and gradients equal the tfjs ops', () => {
    const f = (x: tf.Tensor, y: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => layerNorm(x.add(y.mul(0)), g, b);
    installBackendFixes('wasm', { fusedLayerNorm: false });
    expect(hasFusedLayerNorm()).toBe(false);
    const ref = grads(f);
    installBackendFixes('wasm');
    expect(hasFusedLayerNorm()).toBe(true);
    expectClose(grads(f), ref);
  });

  it('post-norm residual without dropout (eval): equal to the ops', () => {
    const f = (x: tf.Tensor, y: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => residualLayerNorm(x, y, g, b, new ForwardContext(true, 0, 0, 1));
    installBackendFixes('wasm', { fusedLayerNorm: false });
    const ref = grads(f);
    installBackendFixes('wasm');
    expectClose(grads(f), ref);
  });

  it('post-norm residual with dropout 0.3: equal to the ops on dropout.ts mask of the same seed', () => {
    const seed = new ForwardContext(true, 0.3, 0, 7).nextSeed();
    installBackendFixes('wasm', { fusedLayerNorm: false });
    const ref = grads((x, y, g, b) => layerNorm(x.add(fastDropout(y, 0.3, seed)), g, b));
    installBackendFixes('wasm');
    const got = grads((x, y, g, b) => residualLayerNorm(x, y, g, b, new ForwardContext(true, 0.3, 0, 7)));
    expectClose(got, ref);
    // about 30 % of dy's entries are dropped: the y gradient is zero there
    const zeros = got.grads[1]!.filter((v) => v === 0).length / got.grads[1]!.length;
    expect(zeros).toBeGreaterThan(0.2);
    expect(zeros).toBeLessThan(0.4);
  });

  it('leaks no tensors; without native BLAS the kernels are not registered', () => {
    installBackendFixes('wasm');
    const before = tf.memory().numTensors;
    grads((x, y, g, b) => residualLayerNorm(x, y, g, b, new ForwardContext(true, 0.1, 0, 3)));
    expect(tf.memory().numTensors).toBe(before);
    installBackendFixes('wasm', { nativeBlas: false });
    expect(hasFusedLayerNorm()).toBe(false);
    installBackendFixes('wasm');
  });
});
