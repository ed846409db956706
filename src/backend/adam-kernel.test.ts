/**
 * The native Adam step (HeadsAdam, wasm + addon) against train/adam.ts's tfjs ops: three updates of
 * several parameters (a learning-rate scale per name included) give the same parameters and moments bit
 * for bit; no tensors leak; without the addon the kernel is absent and the ops run. Skipped, with a
 * message, when the addon (or its adamUpdate) is not built.
 */
import { describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { installBackendFixes } from './ops.js';
import { loadNativeBlas } from './native-blas.js';
import { nativeKernelSuite } from '../test-utils/native-kernels.js';
import { ADAM_KERNEL, hasAdamKernel, nativeAdam } from './adam-kernel.js';
import { Adam } from '../train/adam.js';

const fn = nativeAdam(loadNativeBlas().blas);
const describeNative = nativeKernelSuite(fn !== null, 'native Adam tests skipped: the addon (or its adamUpdate) is not built; run scripts/setup-native.sh');

function train(native: boolean): Record<string, number[]> {
  installBackendFixes('wasm', { nativeAdam: native });
  expect(hasAdamKernel()).toBe(native);
  const shapes: Record<string, number[]> = { w: [17, 9], b: [9], 'gate.x': [4] };
  const params = new Map(
    Object.entries(shapes).map(([n, s], i) => [n, tf.tidy(() => tf.variable(tf.randomNormal(s, 0, 1, 'float32', i + 1), true, `adam-test-${native}-${n}`))]),
  );
  const adam = new Adam({ beta1: 0.9, beta2: 0.98, eps: 1e-9 });
  for (let step = 0; step < 3; step++) {
    const grads = new Map(Object.entries(shapes).map(([n, s], i) => [n, tf.randomNormal(s, 0, step === 1 ? 1e-4 : 2, 'float32', 100 * step + i + 1)]));
    adam.apply(params, grads, 7e-4 * (step + 1), (n) => (n.startsWith('gate.') ? 100 : 1));
    tf.dispose([...grads.values()]);
  }
  const out: Record<string, number[]> = {};
  for (const [n, p] of params) out[`p.${n}`] = Array.from(p.dataSync());
  for (const [n, m] of adam.m) out[`m.${n}`] = Array.from(m.dataSync());
  for (const [n, v] of adam.v) out[`v.${n}`] = Array.from(v.dataSync());
  adam.dispose();
  tf.dispose([...params.values()]);
  return out;
}

describeNative('HeadsAdam (native, wasm)', () => {
  it('three updates equal the tfjs ops bit for bit', () => {
    const ref = train(false);
    const before = tf.memory().numTensors;
    const got = train(true);
    expect(tf.memory().numTensors).toBe(before);
    expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());
    for (const k of Object.keys(ref)) expect(got[k]).toEqual(ref[k]);
  });

  it('without native BLAS the kernel is absent', () => {
    installBackendFixes('wasm', { nativeBlas: false });
    expect(tf.getKernel(ADAM_KERNEL, 'wasm')).toBeUndefined();
    installBackendFixes('wasm');
    expect(hasAdamKernel()).toBe(true);
  });
});
