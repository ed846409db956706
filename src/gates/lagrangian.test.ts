/**
 * Tests for the Lagrangian head-budget controller: hand-worked penalty values, annealing endpoints,
 * gradient signs (closed form and tf autodiff), deterministic top-N, and a small min–max simulation that
 * must settle on the target head count.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { annealedTarget, lagrangianGradients, lagrangianPenalty, lagrangianPenaltyTensor, selectTopHeads } from './lagrangian.js';
import { hardConcrete } from './hard-concrete.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('lagrangianPenalty', () => {
  it('hand-worked values', () => {
    // E = 10, N = 6: d = 4 → 0.5·4 + 0.25·16 = 2 + 4 = 6
    expect(lagrangianPenalty(10, 6, 0.5, 0.25)).toBeCloseTo(6, 14);
    // E = 4, N = 6: d = −2 → 0.5·(−2) + 0.25·4 = −1 + 1 = 0
    expect(lagrangianPenalty(4, 6, 0.5, 0.25)).toBeCloseTo(0, 14);
    // λ = 0 at the start: no penalty
    expect(lagrangianPenalty(40, 6, 0, 0)).toBe(0);
  });

  it('tensor version matches and its autodiff matches the closed-form partials', () => {
    const cases: Array<[number, number, number, number]> = [
      [10, 6, 0.5, 0.25],
      [4, 6, -0.3, 1.5],
      [6, 6, 2, 2],
    ];
    for (const [e, n, l1, l2] of cases) {
      const E = tf.scalar(e);
      const L1 = tf.scalar(l1);
      const L2 = tf.scalar(l2);
      const value = lagrangianPenaltyTensor(E, n, L1, L2);
      expect(value.dataSync()[0]).toBeCloseTo(lagrangianPenalty(e, n, l1, l2), 5);
      const [gE, g1, g2] = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => lagrangianPenaltyTensor(a, n, b, c))([E, L1, L2]);
      const want = lagrangianGradients(e, n, l1, l2);
      expect(gE!.dataSync()[0]).toBeCloseTo(want.dExpected, 5);
      expect(g1!.dataSync()[0]).toBeCloseTo(want.dLambda1, 5);
      expect(g2!.dataSync()[0]).toBeCloseTo(want.dLambda2, 5);
      // finite differences of the numeric penalty
      const h = 1e-6;
      expect(want.dExpected).toBeCloseTo((lagrangianPenalty(e + h, n, l1, l2) - lagrangianPenalty(e - h, n, l1, l2)) / (2 * h), 6);
      expect(want.dLambda1).toBeCloseTo((lagrangianPenalty(e, n, l1 + h, l2) - lagrangianPenalty(e, n, l1 - h, l2)) / (2 * h), 6);
      [E, L1, L2, value, gE!, g1!, g2!].forEach((t) => t.dispose());
    }
  });

  it('gradient ascent (negated gradient, then a descent step) raises λ₁ when E > N and lowers it when E < N', () => {
    for (const [e, n, sign] of [
      [12, 6, 1],
      [3, 6, -1],
    ] as const) {
      const lambda1 = tf.variable(tf.scalar(0));
      const lambda2 = tf.variable(tf.scalar(0));
      const E = tf.scalar(e);
      const g = tf.grads((l1: tf.Tensor, l2: tf.Tensor) => lagrangianPenaltyTensor(E, n, l1, l2))([lambda1, lambda2]);
      const opt = tf.train.sgd(0.1);
      // the trainer's ascent: negate the multipliers' gradients, then apply an ordinary descent step
      opt.applyGradients({ [lambda1.name]: tf.neg(g[0]!), [lambda2.name]: tf.neg(g[1]!) });
      expect(Math.sign(lambda1.dataSync()[0]!)).toBe(sign);
      expect(lambda1.dataSync()[0]).toBeCloseTo(0.1 * (e - n), 5);
      expect(lambda2.dataSync()[0]).toBeCloseTo(0.1 * (e - n) ** 2, 4); // λ₂ only grows
      // with λ₁ > 0 the penalty's gradient w.r.t. E is positive: descent on the gates lowers E
      const dE = lagrangianGradients(e, n, lambda1.dataSync()[0]!, lambda2.dataSync()[0]!).dExpected;
      expect(Math.sign(dE)).toBe(sign);
      [lambda1, lambda2, E, ...g].forEach((t) => t!.dispose());
      opt.dispose();
    }
  });
});

describe('annealedTarget', () => {
  const s = { fullCount: 48, targetCount: 12, warmupSteps: 100 };
  it('starts at the full count, ends at the target, linear in between, constant after', () => {
    expect(annealedTarget(0, s)).toBe(48);
    expect(annealedTarget(-5, s)).toBe(48);
    expect(annealedTarget(50, s)).toBeCloseTo(30, 12); // 48 + (12 − 48)·0.5
    expect(annealedTarget(25, s)).toBeCloseTo(39, 12); // 48 − 36·0.25
    expect(annealedTarget(100, s)).toBe(12);
    expect(annealedTarget(10_000, s)).toBe(12);
  });
  it('warmupSteps 0 means the target at once; bad schedules are refused', () => {
    expect(annealedTarget(0, { ...s, warmupSteps: 0 })).toBe(12);
    expect(() => annealedTarget(0, { ...s, warmupSteps: -1 })).toThrow(/warmupSteps/);
    expect(() => annealedTarget(0, { ...s, targetCount: Number.NaN })).toThrow(/finite/);
  });
});

describe('selectTopHeads', () => {
  it('returns exactly n indices by descending P(open), ties to the lowest index', () => {
    const p = [0.2, 0.9, 0.5, 0.9, 0.1, 0.5, 0.5];
    expect(selectTopHeads(p, 0)).toEqual([]);
    expect(selectTopHeads(p, 1)).toEqual([1]);
    expect(selectTopHeads(p, 2)).toEqual([1, 3]);
    expect(selectTopHeads(p, 3)).toEqual([1, 3, 2]);
    expect(selectTopHeads(p, 4)).toEqual([1, 3, 2, 5]);
    expect(selectTopHeads(p, 7)).toEqual([1, 3, 2, 5, 6, 0, 4]);
    for (let n = 0; n <= p.length; n++) expect(new Set(selectTopHeads(p, n)).size).toBe(n);
  });
  it('all equal: the first n indices; out-of-range n and NaN are refused', () => {
    expect(selectTopHeads([0.5, 0.5, 0.5, 0.5], 2)).toEqual([0, 1]);
    expect(() => selectTopHeads([0.1, 0.2], 3)).toThrow(/0\.\.2/);
    expect(() => selectTopHeads([0.1, 0.2], -1)).toThrow(RangeError);
    expect(() => selectTopHeads([0.1, 0.2], 1.5)).toThrow(RangeError);
    expect(() => selectTopHeads([0.1, Number.NaN], 1)).toThrow(/head 1/);
  });
  it('does not reorder its input', () => {
    const p = [0.3, 0.7, 0.1];
    selectTopHeads(p, 2);
    expect(p).toEqual([0.3, 0.7, 0.1]);
  });
});

describe('min–max simulation', () => {
  it('descent on log α and ascent on λ settle E[#open] on the target and keep the most useful heads', () => {
    // A toy task loss −Σ c_i P(open_i) wants every head open, more so for larger c_i.
    const c = [0.9, 0.1, 0.5, 0.05, 0.7, 0.2, 0.3, 0.15];
    let logAlpha = c.map(() => 0.3);
    let lambda1 = 0;
    let lambda2 = 0;
    const schedule = { fullCount: 8, targetCount: 3, warmupSteps: 500 };
    for (let step = 0; step < 3000; step++) {
      const target = annealedTarget(step, schedule);
      const e = hardConcrete.expectedL0(logAlpha);
      const g = lagrangianGradients(e, target, lambda1, lambda2);
      const dp = hardConcrete.expectedL0Grad(logAlpha);
      logAlpha = logAlpha.map((a, i) => a - 0.5 * (-c[i]! + g.dExpected) * dp[i]!);
      lambda1 += 0.05 * g.dLambda1; // ascent
      lambda2 += 0.05 * g.dLambda2;
    }
    expect(hardConcrete.expectedL0(logAlpha)).toBeCloseTo(3, 1);
    expect(selectTopHeads(hardConcrete.probNonZero(logAlpha), 3).sort((a, b) => a - b)).toEqual([0, 2, 4]);
    expect(lambda1).toBeGreaterThan(0);
  });
});
