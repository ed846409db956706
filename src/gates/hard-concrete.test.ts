/**
 * Tests for the Hard Concrete maths. Expected values come from hand derivations (β = 1 and β = 1/2 give
 * rational / surd answers), values computed independently with Python's math module (quoted), Monte
 * Carlo with standard errors, Simpson quadrature of E[g], and finite differences.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from '@jest/globals';
import {
  DEFAULT_HARD_CONCRETE,
  HARD_CONCRETE_EPS,
  LOUIZOS_BETA,
  argmaxOpenThreshold,
  hardConcrete,
  logAlphaForProbNonZero,
  resolveHardConcreteOptions,
  sigmoid,
  type HardConcreteOptions,
} from './hard-concrete.js';
import { Rng } from '../util/random.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const LN11 = Math.log(11);

/** Independent reference: E[g] = P(g=1) + ∫_{u0}^{u1} s̄(u) du, with Simpson's rule on the smooth part. */
function meanGateByQuadrature(logAlpha: number, o: HardConcreteOptions): number {
  const stretched = (u: number): number => {
    const s = 1 / (1 + Math.exp(-(Math.log(u / (1 - u)) + logAlpha) / o.beta));
    return s * (o.zeta - o.gamma) + o.gamma;
  };
  // g = 0 for u <= u0 and g = 1 for u >= u1 (s̄ is increasing in u)
  const u0 = 1 / (1 + Math.exp(-(o.beta * Math.log(-o.gamma / o.zeta) - logAlpha)));
  const u1 = 1 / (1 + Math.exp(-(o.beta * Math.log((1 - o.gamma) / (o.zeta - 1)) - logAlpha)));
  const n = 20000;
  const h = (u1 - u0) / n;
  let acc = stretched(u0) + stretched(u1);
  for (let i = 1; i < n; i++) acc += (i % 2 === 1 ? 4 : 2) * stretched(u0 + i * h);
  return 1 - u1 + (acc * h) / 3;
}

describe('closed forms', () => {
  it('β = 1, log α = 0: P(0) = P(1) = σ(−ln 11) = 1/12, P(≠0) = 11/12', () => {
    const o = { beta: 1 };
    expect(hardConcrete.probZero([0], o)[0]).toBeCloseTo(1 / 12, 14);
    expect(hardConcrete.probOne([0], o)[0]).toBeCloseTo(1 / 12, 14);
    expect(hardConcrete.probNonZero([0], o)[0]).toBeCloseTo(11 / 12, 14);
  });

  it('β = 1, log α = ln 2: P(≠0) = σ(ln 22) = 22/23, P(0) = 1/23, P(1) = σ(ln 2/11) = 2/13', () => {
    const o = { beta: 1 };
    const a = [Math.log(2)];
    expect(hardConcrete.probNonZero(a, o)[0]).toBeCloseTo(22 / 23, 14);
    expect(hardConcrete.probZero(a, o)[0]).toBeCloseTo(1 / 23, 14);
    expect(hardConcrete.probOne(a, o)[0]).toBeCloseTo(2 / 13, 14);
  });

  it('β = 1/2, log α = 0: P(0) = P(1) = 1/(1 + √11) ≈ 0.2317 (the blog / paper Fig. 6a value)', () => {
    const o = { beta: 0.5 };
    expect(hardConcrete.probZero([0], o)[0]).toBeCloseTo(1 / (1 + Math.sqrt(11)), 14);
    expect(hardConcrete.probOne([0], o)[0]).toBeCloseTo(1 / (1 + Math.sqrt(11)), 14);
  });

  // Values from Python: s = lambda x: 1/(1+math.exp(-x)); s(a + b*log(11)), s(-a - b*log(11)), s(a - b*log(11))
  const table: Array<[beta: number, logAlpha: number, pNonZero: number, pZero: number, pOne: number]> = [
    [0.33, 0.0, 0.6881115651159778, 0.3118884348840222, 0.3118884348840222],
    [0.33, 1.5, 0.9081543948408615, 0.09184560515913859, 0.6701126411448199],
    [0.33, -1.0, 0.4480149005915687, 0.5519850994084313, 0.14291274728543574],
    [2 / 3, 0.0, 0.8318221839916905, 0.16817781600830958, 0.16817781600830958],
    [2 / 3, 1.5, 0.9568348293169565, 0.04316517068304344, 0.47537073708517746],
    [2 / 3, -1.0, 0.6453352217131145, 0.3546647782868854, 0.06922877939830918],
  ];
  it.each(table)('β = %p, log α = %p', (beta, a, pNonZero, pZero, pOne) => {
    expect(hardConcrete.probNonZero([a], { beta })[0]).toBeCloseTo(pNonZero, 12);
    expect(hardConcrete.probZero([a], { beta })[0]).toBeCloseTo(pZero, 12);
    expect(hardConcrete.probOne([a], { beta })[0]).toBeCloseTo(pOne, 12);
  });

  it('defaults are the reference code values', () => {
    expect(DEFAULT_HARD_CONCRETE).toEqual({ beta: 0.33, gamma: -0.1, zeta: 1.1 });
    expect(LOUIZOS_BETA).toBeCloseTo(2 / 3, 15);
    expect(() => resolveHardConcreteOptions({ beta: 0 })).toThrow(/beta/);
    expect(() => resolveHardConcreteOptions({ gamma: 0.1 })).toThrow(/gamma/);
    expect(() => resolveHardConcreteOptions({ zeta: 1 })).toThrow(/zeta/);
  });

  it('P(g≠0) is clamped to [eps, 1−eps] like the reference, P(0) and P(1) are not', () => {
    const p = hardConcrete.probNonZero([-40, 40]);
    expect(p[0]).toBe(HARD_CONCRETE_EPS);
    expect(p[1]).toBe(1 - HARD_CONCRETE_EPS);
    expect(hardConcrete.probZero([40])[0]).toBeLessThan(1e-16);
    // the clamp starts near log α = −ln(1e6) − 0.33 ln 11 ≈ −14.6 (notes §2)
    expect(hardConcrete.probNonZero([-14.4])[0]).toBeGreaterThan(HARD_CONCRETE_EPS);
    expect(hardConcrete.probNonZero([-14.8])[0]).toBe(HARD_CONCRETE_EPS);
  });

  it('P(g=1) > P(g=0) ⇔ log α > 0 for the default (symmetric) limits, at several β', () => {
    for (const beta of [0.33, 0.5, 2 / 3, 1]) {
      expect(argmaxOpenThreshold({ beta })).toBeCloseTo(0, 12);
      for (const a of [-3, -0.5, -1e-3, 1e-3, 0.5, 3]) {
        const p1 = hardConcrete.probOne([a], { beta })[0]!;
        const p0 = hardConcrete.probZero([a], { beta })[0]!;
        expect(p1 > p0).toBe(a > 0);
        expect(hardConcrete.binaryGate([a], { beta })[0]).toBe(a > 0 ? 1 : 0);
      }
      // exactly equal at 0
      expect(hardConcrete.probOne([0], { beta })[0]).toBeCloseTo(hardConcrete.probZero([0], { beta })[0]!, 15);
    }
  });

  it('with asymmetric limits the argmax threshold moves away from 0 and is where P(0) = P(1)', () => {
    const o = { beta: 0.5, gamma: -0.2, zeta: 1.1 };
    const t = argmaxOpenThreshold(o);
    // hand: β/2·(ln(0.2/1.1) + ln(1.2/0.1)) = 0.25·ln(2.4/1.1) = 0.25·ln(24/11)
    expect(t).toBeCloseTo(0.25 * Math.log(24 / 11), 12);
    expect(hardConcrete.probOne([t], o)[0]).toBeCloseTo(hardConcrete.probZero([t], o)[0]!, 12);
  });

  it('logAlphaForProbNonZero inverts probNonZero', () => {
    for (const p of [0.1, 0.5, 0.99]) {
      for (const beta of [0.33, LOUIZOS_BETA]) {
        expect(hardConcrete.probNonZero([logAlphaForProbNonZero(p, { beta })], { beta })[0]).toBeCloseTo(p, 12);
      }
    }
  });
});

describe('testGate', () => {
  it('is exactly 0 at log α ≤ −ln 11 and exactly 1 at ≥ ln 11 (default limits)', () => {
    const g = hardConcrete.testGate([-LN11, -LN11 - 1e-9, -5, -100, LN11, LN11 + 1e-9, 5, 100]);
    expect(g).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    const inside = hardConcrete.testGate([-LN11 + 1e-6, LN11 - 1e-6]);
    expect(inside[0]).toBeGreaterThan(0);
    expect(inside[1]).toBeLessThan(1);
  });

  it('equals 1.2σ(log α) − 0.1 inside; 0.5 at log α = 0 (hand: 1.2·0.5 − 0.1)', () => {
    expect(hardConcrete.testGate([0])[0]).toBeCloseTo(0.5, 15);
    // σ(ln 3) = 3/4 → 1.2·0.75 − 0.1 = 0.8
    expect(hardConcrete.testGate([Math.log(3)])[0]).toBeCloseTo(0.8, 14);
    // the reference init range ±0.612 gives gates in ≈ 0.32..0.68
    expect(hardConcrete.testGate([-0.612])[0]).toBeCloseTo(1.2 * sigmoid(-0.612) - 0.1, 14);
    expect(hardConcrete.testGate([-0.612])[0]).toBeCloseTo(0.3218, 3);
  });

  it('tensor version: 0 below −ln 11, 1 above ln 11, and agrees with the array version', () => {
    const a = [-3, -LN11 - 1e-3, -1, 0, 0.7, LN11 + 1e-3, 3];
    const t = tf.tensor1d(a);
    const out = hardConcrete.testGate(t);
    const arr = hardConcrete.testGate(a);
    const got = Array.from(out.dataSync());
    expect(got[0]).toBe(0);
    expect(got[1]).toBe(0);
    expect(got[5]).toBe(1);
    expect(got[6]).toBe(1);
    got.forEach((v, i) => expect(v).toBeCloseTo(arr[i]!, 6));
    t.dispose();
    out.dispose();
  });
});

describe('Monte Carlo: sampled gates match the closed forms', () => {
  const N = 200_000;
  const cases: Array<[beta: number, logAlpha: number]> = [
    [0.33, 0],
    [0.33, 1.2],
    [0.33, -0.8],
    [LOUIZOS_BETA, 0.4],
    [LOUIZOS_BETA, -1.5],
  ];
  it.each(cases)('β = %p, log α = %p: P(0), P(1), P(≠0) and E[g] within 4 standard errors', (beta, a) => {
    const rng = new Rng(12345 + Math.round(a * 100) + Math.round(beta * 1000));
    // float64 draws kept in a plain array so the noise is not rounded to float32
    const u64 = new Array<number>(N);
    for (let i = 0; i < N; i++) u64[i] = rng.next();
    const g = hardConcrete.sample([a], u64, { beta });
    expect(g.length).toBe(N);
    let zeros = 0;
    let ones = 0;
    let sum = 0;
    let sumSq = 0;
    let outside = 0;
    for (const v of g) {
      if (!(v >= 0 && v <= 1)) outside++;
      if (v === 0) zeros++;
      if (v === 1) ones++;
      sum += v;
      sumSq += v * v;
    }
    expect(outside).toBe(0);
    const within = (empirical: number, p: number): void => {
      const se = Math.sqrt((p * (1 - p)) / N);
      expect(Math.abs(empirical - p)).toBeLessThan(4 * se);
    };
    within(zeros / N, hardConcrete.probZero([a], { beta })[0]!);
    within(ones / N, hardConcrete.probOne([a], { beta })[0]!);
    within(1 - zeros / N, hardConcrete.probNonZero([a], { beta })[0]!);
    const mean = sum / N;
    const sd = Math.sqrt(sumSq / N - mean * mean);
    const exact = meanGateByQuadrature(a, { ...DEFAULT_HARD_CONCRETE, beta });
    expect(Math.abs(mean - exact)).toBeLessThan((4 * sd) / Math.sqrt(N));
  });

  it('the quadrature reference of E[g] is itself right: β = 1, log α = 0 gives 1/2 by symmetry', () => {
    expect(meanGateByQuadrature(0, { beta: 1, gamma: -0.1, zeta: 1.1 })).toBeCloseTo(0.5, 10);
    expect(meanGateByQuadrature(0, { beta: 0.33, gamma: -0.1, zeta: 1.1 })).toBeCloseTo(0.5, 10);
  });

  it('array noise is tiled over log α ([nSamples, H] row-major) and length is checked', () => {
    const g = hardConcrete.sample([-100, 100], [0.5, 0.5, 0.3, 0.7]);
    expect(g).toEqual([0, 1, 0, 1]);
    expect(() => hardConcrete.sample([0, 0], [0.1, 0.2, 0.3])).toThrow(/multiple/);
  });

  it('u is clamped to [eps, 1−eps]: u = 0 and u = 1 give finite gates', () => {
    const g = hardConcrete.sample([0, 0], [0, 1]);
    expect(g).toEqual([0, 1]);
    // with log α = 14, u = 0 is clamped to 1e-6, so by hand: ln(1e-6/(1−1e-6)) ≈ −13.8155,
    // (−13.8155 + 14)/0.33 ≈ 0.559, σ(0.559) ≈ 0.636, 1.2·0.636 − 0.1 ≈ 0.664
    expect(hardConcrete.sample([14], [0])[0]).toBeCloseTo(0.664, 2);
  });
});

describe('tensor and array versions agree', () => {
  const logAlpha = [-3, -1.1, -0.2, 0, 0.35, 1.7, 4];
  const u = [0.01, 0.2, 0.45, 0.5, 0.63, 0.9, 0.999];
  for (const beta of [0.33, LOUIZOS_BETA]) {
    it(`β = ${beta.toFixed(3)}: sample, testGate, probNonZero, probZero, probOne, expectedL0(+grad)`, () => {
      const la = tf.tensor1d(logAlpha);
      const ut = tf.tensor1d(u);
      const o = { beta };
      const pairs: Array<[tf.Tensor, number[]]> = [
        [hardConcrete.sample(la, ut, o), hardConcrete.sample(logAlpha, u, o)],
        [hardConcrete.sample(la, u, o), hardConcrete.sample(logAlpha, u, o)],
        [hardConcrete.testGate(la, o), hardConcrete.testGate(logAlpha, o)],
        [hardConcrete.probNonZero(la, o), hardConcrete.probNonZero(logAlpha, o)],
        [hardConcrete.probZero(la, o), hardConcrete.probZero(logAlpha, o)],
        [hardConcrete.probOne(la, o), hardConcrete.probOne(logAlpha, o)],
        [hardConcrete.binaryGate(la, o), hardConcrete.binaryGate(logAlpha, o)],
        [hardConcrete.expectedL0Grad(la, o), hardConcrete.expectedL0Grad(logAlpha, o)],
      ];
      for (const [t, arr] of pairs) {
        const got = Array.from(t.dataSync());
        expect(got.length).toBe(arr.length);
        got.forEach((v, i) => expect(v).toBeCloseTo(arr[i]!, 5));
        t.dispose();
      }
      const e = hardConcrete.expectedL0(la, o);
      expect(e.rank).toBe(0);
      expect(e.dataSync()[0]).toBeCloseTo(hardConcrete.expectedL0(logAlpha, o), 5);
      e.dispose();
      la.dispose();
      ut.dispose();
    });
  }

  it('Float32Array input works and returns number[]', () => {
    const out = hardConcrete.probNonZero(new Float32Array([0]));
    expect(Array.isArray(out)).toBe(true);
    expect(out[0]).toBeCloseTo(0.6881115651159778, 7);
  });

  it('namespace tensor functions do not leak tensors', () => {
    const la = tf.tensor1d(logAlpha);
    const before = tf.memory().numTensors;
    const outs = [
      hardConcrete.sample(la, u),
      hardConcrete.testGate(la),
      hardConcrete.probNonZero(la),
      hardConcrete.expectedL0(la),
      hardConcrete.expectedL0Grad(la),
    ];
    expect(tf.memory().numTensors).toBe(before + outs.length);
    outs.forEach((t) => t.dispose());
    la.dispose();
  });
});

describe('expectedL0 gradient', () => {
  const logAlpha = [-16, -5, -1.3, -0.2, 0, 0.4, 2.2, 7];
  for (const beta of [0.33, LOUIZOS_BETA]) {
    it(`β = ${beta.toFixed(3)}: closed form vs central finite differences`, () => {
      const o = { beta };
      const grad = hardConcrete.expectedL0Grad(logAlpha, o);
      const h = 1e-5;
      logAlpha.forEach((a, i) => {
        const plus = logAlpha.slice();
        const minus = logAlpha.slice();
        plus[i] = a + h;
        minus[i] = a - h;
        const fd = (hardConcrete.expectedL0(plus, o) - hardConcrete.expectedL0(minus, o)) / (2 * h);
        expect(grad[i]).toBeCloseTo(fd, 8);
      });
      // hand: at log α = 0, p = σ(β ln 11), grad = p(1 − p)
      const p = sigmoid(beta * LN11);
      expect(grad[4]).toBeCloseTo(p * (1 - p), 14);
      // the clamped head (log α = −16) gets no gradient, as in the reference
      expect(grad[0]).toBe(0);
    });

    it(`β = ${beta.toFixed(3)}: closed form vs tf.grad through expectedL0Tensor`, () => {
      const o = { beta };
      const la = tf.tensor1d(logAlpha.slice(1)); // float32 cannot resolve the clamp edge at −16 reliably
      const g = tf.grad((x: tf.Tensor) => hardConcrete.expectedL0Tensor(x, o))(la);
      const want = hardConcrete.expectedL0Grad(logAlpha.slice(1), o);
      Array.from(g.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
      g.dispose();
      la.dispose();
    });
  }

  it('the sampled gate is differentiable w.r.t. log α (reparameterisation) inside [0, 1]', () => {
    // d g/d log α = (ζ−γ)·s(1−s)/β for an unclipped sample; hand-check at u = 0.5, log α = 0: s = 0.5
    const la = tf.tensor1d([0]);
    const u = tf.tensor1d([0.5]);
    const g = tf.grad((x: tf.Tensor) => tf.sum(hardConcrete.sampleGateTensor(x, u)))(la);
    expect(g.dataSync()[0]).toBeCloseTo((1.2 * 0.25) / 0.33, 4);
    [la, u, g].forEach((t) => t.dispose());
  });
});

describe('initialisation and noise', () => {
  it('glorotUniformLogAlpha: U(±√(6/16)) = U(±0.612) for 8 heads, seeded', () => {
    const limit = Math.sqrt(6 / 16);
    expect(limit).toBeCloseTo(0.6124, 4);
    const a = hardConcrete.glorotUniformLogAlpha(8, new Rng(7));
    const b = hardConcrete.glorotUniformLogAlpha(8, new Rng(7));
    expect(a).toEqual(b);
    expect(a.length).toBe(8);
    for (const v of a) expect(Math.abs(v)).toBeLessThanOrEqual(limit);
    // many draws: mean 0, variance limit²/3
    const many = hardConcrete.glorotUniformLogAlpha(100_000, new Rng(8));
    const lim2 = Math.sqrt(6 / 200_000);
    const mean = many.reduce((s, v) => s + v, 0) / many.length;
    const variance = many.reduce((s, v) => s + v * v, 0) / many.length;
    expect(Math.abs(mean)).toBeLessThan((4 * lim2) / Math.sqrt(3 * many.length));
    expect(variance).toBeCloseTo((lim2 * lim2) / 3, 8);
  });

  it('constantLogAlpha and argument checks', () => {
    expect(hardConcrete.constantLogAlpha(3, 2.5)).toEqual([2.5, 2.5, 2.5]);
    expect(hardConcrete.constantLogAlpha(0, 1)).toEqual([]);
    expect(hardConcrete.glorotUniformLogAlpha(0, new Rng(1))).toEqual([]);
    expect(() => hardConcrete.constantLogAlpha(-1, 1)).toThrow(/head count/);
    expect(() => hardConcrete.glorotUniformLogAlpha(2.5, new Rng(1))).toThrow(/head count/);
    expect(() => hardConcrete.constantLogAlpha(2, Number.NaN)).toThrow(/finite/);
  });

  it('samplePerHeadNoise: shape, range [eps, 1−eps], seeded', () => {
    const a = hardConcrete.samplePerHeadNoise([1, 8, 1, 1], 42);
    const b = hardConcrete.samplePerHeadNoise([1, 8, 1, 1], 42);
    expect(a.shape).toEqual([1, 8, 1, 1]);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    for (const v of a.dataSync()) {
      expect(v).toBeGreaterThanOrEqual(HARD_CONCRETE_EPS * 0.99);
      expect(v).toBeLessThanOrEqual(1 - HARD_CONCRETE_EPS);
    }
    a.dispose();
    b.dispose();
  });
});
