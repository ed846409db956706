/**
 * Magnitude pruning: exactly k = round(sparsity · n) weights zeroed (global and per matrix), and they are
 * the smallest magnitudes; ties fall deterministically; only weight matrices are touched (embeddings on
 * request); bad sparsities are refused naming the flag.
 */
import { describe, expect, it } from '@jest/globals';
import type { NamedArrays } from '../io/checkpoint.js';
import { ConfigError } from '../util/errors.js';
import { Rng } from '../util/random.js';
import { isPrunableWeight, magnitudePrune, magnitudePruningMasks } from './magnitude-pruning.js';

function randomParams(seed: number): NamedArrays {
  const rng = new Rng(seed);
  const t = (shape: number[]) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()) });
  return {
    'emb.shared': t([11, 6]),
    'enc.0.self.wq': t([6, 6]),
    'enc.0.self.bq': t([6]),
    'enc.0.ln1.g': t([6]),
    'enc.0.ffn.w1': t([6, 13]),
    'enc.0.ffn.b1': t([13]),
    'enc.0.ffn.w2': t([13, 6]),
    'dec.0.cross.wo': t([6, 6]),
    'gate.enc-self.0': t([2]),
  };
}

const zeros = (a: Float32Array) => a.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);

describe('magnitude pruning', () => {
  it('selects weight matrices only; embeddings on request', () => {
    expect(['enc.0.self.wq', 'enc.0.ffn.w1', 'enc.0.ffn.w2', 'dec.0.cross.wo', 'out.proj'].every((n) => isPrunableWeight(n))).toBe(true);
    expect(['enc.0.self.bq', 'enc.0.ln1.g', 'enc.0.ffn.b1', 'emb.shared', 'gate.enc-self.0'].some((n) => isPrunableWeight(n))).toBe(false);
    expect(isPrunableWeight('emb.shared', true)).toBe(true);
    expect(isPrunableWeight('gate.enc-self.0', true)).toBe(false);
  });

  it.each([0, 0.1, 0.5, 0.77, 0.999])('global sparsity %p zeroes exactly round(s·n) weights, the smallest |w|', (s) => {
    const params = randomParams(1);
    const { params: out, report } = magnitudePrune(params, { sparsity: s });
    const names = ['enc.0.self.wq', 'enc.0.ffn.w1', 'enc.0.ffn.w2', 'dec.0.cross.wo'];
    const n = names.reduce((a, k) => a + params[k]!.data.length, 0);
    const k = Math.round(s * n);
    expect(report.prunable).toBe(n);
    expect(names.reduce((a, name) => a + zeros(out[name]!.data), 0)).toBe(k);
    expect(report.zeroed).toBe(k);
    // every zeroed |w| <= every kept |w| (random normals have no exact ties)
    let maxZeroed = 0;
    let minKept = Infinity;
    for (const name of names)
      params[name]!.data.forEach((v, i) => {
        if (out[name]!.data[i] === 0) maxZeroed = Math.max(maxZeroed, Math.abs(v));
        else minKept = Math.min(minKept, Math.abs(v));
      });
    if (k > 0 && k < n) expect(maxZeroed).toBeLessThan(minKept);
    // biases, norms, embeddings and gates untouched
    for (const name of ['emb.shared', 'enc.0.self.bq', 'enc.0.ln1.g', 'enc.0.ffn.b1', 'gate.enc-self.0']) expect(out[name]!.data).toEqual(params[name]!.data);
    // kept weights keep their values
    for (const name of names) params[name]!.data.forEach((v, i) => out[name]!.data[i] !== 0 && expect(out[name]!.data[i]).toBe(v));
  });

  it('per-layer sparsity hits round(s·n) in every matrix, and the smallest of each', () => {
    const params = randomParams(2);
    const s = 0.37;
    const { params: out, report } = magnitudePrune(params, { sparsity: s, scope: 'per-layer', includeEmbeddings: true });
    for (const name of ['emb.shared', 'enc.0.self.wq', 'enc.0.ffn.w1', 'enc.0.ffn.w2', 'dec.0.cross.wo']) {
      const src = params[name]!.data;
      const k = Math.round(s * src.length);
      expect(zeros(out[name]!.data)).toBe(k);
      expect(report.tensors[name]!.zeroed).toBe(k);
      const sorted = Array.from(src, Math.abs).sort((a, b) => a - b);
      out[name]!.data.forEach((v, i) => expect(v === 0).toBe(Math.abs(src[i]!) <= sorted[k - 1]!));
    }
  });

  it('breaks ties by tensor name, then element index, deterministically', () => {
    const params: NamedArrays = {
      'enc.1.ffn.w1': { shape: [2, 2], data: Float32Array.from([1, -1, 1, 2]) },
      'enc.0.ffn.w1': { shape: [2, 2], data: Float32Array.from([3, 1, -1, 1]) },
    };
    // |w| = 1 appears 6 times; sparsity 0.375 of 8 = 3: the three first in (name, index) order go
    const { masks } = magnitudePruningMasks(params, { sparsity: 0.375 });
    expect(Array.from(masks['enc.0.ffn.w1']!)).toEqual([1, 0, 0, 0]);
    expect(Array.from(masks['enc.1.ffn.w1']!)).toEqual([1, 1, 1, 1]);
    const again = magnitudePruningMasks(params, { sparsity: 0.375 });
    expect(again.masks).toEqual(masks);
    // per layer, 0.5 of 4 = 2 each: lowest indices among the ties
    const per = magnitudePruningMasks(params, { sparsity: 0.5, scope: 'per-layer' }).masks;
    expect(Array.from(per['enc.0.ffn.w1']!)).toEqual([1, 0, 0, 1]);
    expect(Array.from(per['enc.1.ffn.w1']!)).toEqual([0, 0, 1, 1]);
  });

  it.each([[1], [-0.1], [1.5], [NaN], [Infinity]])('refuses sparsity %p naming the flag', (s) => {
    expect(() => magnitudePrune(randomParams(3), { sparsity: s })).toThrow(ConfigError);
    expect(() => magnitudePrune(randomParams(3), { sparsity: s })).toThrow(/--magnitude-sparsity: expected a fraction in \[0, 1\)/);
  });
});
