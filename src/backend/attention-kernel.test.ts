/**
 * The fused attention kernels (HeadsAttention / HeadsAttentionGrad, wasm + addon) against the tfjs ops
 * path of model/attention.ts (split heads, matMul, softmax, gate, merge): outputs and the gradients of
 * the inputs, every projection weight and the gate, for self- and cross-attention with padding and causal
 * masks and gates of shape [h], [B, h] or none; the fallbacks (per-token gate, attention dropout, records,
 * no addon); tensor leaks. Skipped, with a message, when the addon (or its attention functions) is not built.
 */
import { describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { installBackendFixes } from './ops.js';
import { loadNativeBlas } from './native-blas.js';
import { nativeKernelSuite } from '../test-utils/native-kernels.js';
import { ATTENTION_KERNEL, hasFusedAttention, nativeAttention } from './attention-kernel.js';
import { maxRelDiff } from './kernel-testing.js';
import { type AttentionParams, attention } from '../model/attention.js';
import { ForwardContext, causalBias, paddingBias } from '../model/layers.js';

const fns = nativeAttention(loadNativeBlas().blas);
const describeNative = nativeKernelSuite(
  fns !== null,
  'fused attention tests skipped: the addon (or its attention functions) is not built; run scripts/setup-native.sh',
);

function params(d: number, h: number, seed: number): AttentionParams {
  const w = (s: number) => tf.randomNormal([d, d], 0, 0.3, 'float32', seed + s);
  const b = (s: number) => tf.randomNormal([d], 0, 0.1, 'float32', seed + s);
  return { wq: w(1), bq: b(2), wk: w(3), bk: b(4), wv: w(5), bv: b(6), wo: w(7), bo: b(8), nHeads: h, dHead: d / h };
}

interface Case {
  name: string;
  self: boolean;
  gate: 'none' | 'heads' | 'sentences';
  causal: boolean;
}

/** output and gradients (xq, xkv, every weight, gate) of sum(out * r) for a fixed random r. */
function run(c: Case, fused: boolean) {
  installBackendFixes('wasm', { fusedAttention: fused });
  expect(hasFusedAttention()).toBe(fused);
  const B = 3,
    Tq = 7,
    Tk = c.self ? 7 : 5,
    d = 16,
    h = 4;
  return tf.tidy(() => {
    const p = params(d, h, 10);
    const xq = tf.randomNormal([B, Tq, d], 0, 1, 'float32', 1);
    const xkv = c.self ? xq : tf.randomNormal([B, Tk, d], 0, 1, 'float32', 2);
    const ids = tf.tensor2d(
      Array.from({ length: B * Tk }, (_, i) => (i % Tk >= Tk - ((i / Tk) | 0) ? 0 : 5)),
      [B, Tk],
      'int32',
    );
    let bias: tf.Tensor = paddingBias(ids);
    if (c.causal) bias = bias.add(causalBias(Tq));
    const gate = c.gate === 'none' ? null : c.gate === 'heads' ? tf.tensor1d([0.9, 0.3, 1, 0]) : tf.randomUniform([B, h], 0, 1, 'float32', 4);
    const r = tf.randomNormal([B, Tq, d], 0, 1, 'float32', 5);
    const ctx = new ForwardContext(true, 0, 0, 1);
    const names = ['wq', 'bq', 'wk', 'bk', 'wv', 'bv', 'wo', 'bo'] as const;
    const xs: tf.Tensor[] = [xq, ...(c.self ? [] : [xkv]), ...names.map((n) => p[n]), ...(gate ? [gate] : [])];
    const f = (...a: tf.Tensor[]) => {
      const xqi = a[0]!;
      const xkvi = c.self ? xqi : a[1]!;
      const o = c.self ? 1 : 2;
      const pi: AttentionParams = { ...p, ...Object.fromEntries(names.map((n, i) => [n, a[o + i]!])) };
      const gi = gate ? a[a.length - 1]! : null;
      return attention(pi, xqi, xkvi, bias, gi, ctx).mul(r).sum() as tf.Scalar;
    };
    const out = attention(p, xq, xkv, bias, gate, ctx);
    const grads = tf.grads(f)(xs);
    return { out: out.dataSync().slice(), grads: grads.map((g) => g.dataSync().slice()) };
  });
}

describeNative('HeadsAttention (native, wasm)', () => {
  const cases: Case[] = [
    { name: 'self-attention, padding, gate per head', self: true, gate: 'heads', causal: false },
    { name: 'decoder self-attention, causal + padding, gate per sentence', self: true, gate: 'sentences', causal: true },
    { name: 'cross-attention, padding, no gate', self: false, gate: 'none', causal: false },
    { name: 'cross-attention, gate per head', self: false, gate: 'heads', causal: false },
  ];
  it.each(cases)('$name: output and gradients equal the tfjs ops', (c) => {
    const ref = run(c, false);
    const got = run(c, true);
    expect(maxRelDiff(got.out, ref.out)).toBeLessThan(2e-5);
    expect(got.grads.length).toBe(ref.grads.length);
    for (let i = 0; i < ref.grads.length; i++) expect(maxRelDiff(got.grads[i]!, ref.grads[i]!)).toBeLessThan(5e-5);
  });

  it('leaks no tensors (forward + backward) and is used only where supported', () => {
    installBackendFixes('wasm');
    expect(tf.getKernel(ATTENTION_KERNEL, 'wasm')).toBeDefined();
    const before = tf.memory().numTensors;
    run(cases[1]!, true);
    expect(tf.memory().numTensors).toBe(before);
    // per-token gates, attention dropout and records take the ops path (no kernel call)
    const calls: string[] = [];
    const p = params(8, 2, 3);
    const x = tf.randomNormal([2, 3, 8], 0, 1, 'float32', 9);
    const prof = (fn: () => tf.Tensor) => tf.dispose(tf.tidy(fn));
    const spy = tf.engine().runKernel.bind(tf.engine());
    (tf.engine() as unknown as { runKernel: typeof spy }).runKernel = ((name: string, ...rest: unknown[]) => {
      calls.push(name);
      return (spy as (...a: unknown[]) => unknown)(name, ...rest);
    }) as unknown as typeof spy;
    try {
      prof(() => attention(p, x, x, null, tf.ones([2, 2, 3]), ForwardContext.eval()));
      prof(() => attention(p, x, x, null, null, new ForwardContext(true, 0, 0.1, 1)));
      prof(() => attention(p, x, x, null, null, ForwardContext.eval(), () => undefined));
      expect(calls).not.toContain(ATTENTION_KERNEL);
      prof(() => attention(p, x, x, null, null, ForwardContext.eval()));
      expect(calls).toContain(ATTENTION_KERNEL);
    } finally {
      (tf.engine() as unknown as { runKernel: typeof spy }).runKernel = spy;
      tf.dispose([x, ...Object.values(p).filter((t): t is tf.Tensor => t instanceof tf.Tensor)]);
    }
  });

  it.each([
    ['no gate', 'none'],
    ['a gate per sentence', 'sentences'],
  ] as const)('inference (ForwardContext.inference, %s): the same kernel without its gradient wrapper, the same bits, no leak', (_name, g) => {
    installBackendFixes('wasm');
    const p = params(16, 4, 21);
    const xq = tf.randomNormal([3, 6, 16], 0, 1, 'float32', 22);
    const xkv = tf.randomNormal([3, 5, 16], 0, 1, 'float32', 23);
    const gate = g === 'none' ? null : tf.randomUniform([3, 4], 0, 1, 'float32', 24);
    const before = tf.memory().numTensors;
    const wrapped = tf.tidy(() => attention(p, xq, xkv, null, gate, ForwardContext.eval()));
    const bare = tf.tidy(() => attention(p, xq, xkv, null, gate, ForwardContext.inference()));
    expect(Array.from(bare.dataSync())).toEqual(Array.from(wrapped.dataSync()));
    tf.dispose([wrapped, bare]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([xq, xkv, ...(gate ? [gate] : []), ...Object.values(p).filter((t): t is tf.Tensor => t instanceof tf.Tensor)]);
  });

  it('without native BLAS the kernels are not registered and the ops path runs', () => {
    installBackendFixes('wasm', { nativeBlas: false });
    expect(hasFusedAttention()).toBe(false);
    const p = params(8, 2, 3);
    const x = tf.randomNormal([2, 3, 8], 0, 1, 'float32', 9);
    const y = attention(p, x, x, null, tf.tensor1d([1, 0.5]), ForwardContext.eval());
    expect(y.shape).toEqual([2, 3, 8]);
    expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, y, ...Object.values(p).filter((t): t is tf.Tensor => t instanceof tf.Tensor)]);
    installBackendFixes('wasm');
    expect(hasFusedAttention()).toBe(true);
  });
});
