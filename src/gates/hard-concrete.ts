/**
 * Hard Concrete gates (Louizos, Welling, Kingma 2018, "Learning Sparse Neural Networks through L0
 * Regularization", §4 eqs. 9–12), as used for attention-head gates by Voita et al. 2019 ("Analyzing
 * Multi-Head Self-Attention", §6.1) and implemented in the reference `ConcreteGate`
 * (lena-voita/the-story-of-heads; see shared/notes/anchor-story-of-heads.md §2).
 *
 * For one gate with location log α, temperature β and stretch limits (γ, ζ):
 *
 *   u ~ U(eps, 1 − eps)
 *   s = σ((ln u − ln(1 − u) + log α) / β)                       (Concrete / binary Gumbel sample)
 *   s̄ = s·(ζ − γ) + γ                                            (stretch)
 *   g = min(1, max(0, s̄))                                         (hard clip: train-time gate)
 *
 *   test gate       ĝ = min(1, max(0, σ(log α)·(ζ − γ) + γ))       (the reference's eval gate)
 *   P(g ≠ 0)        = σ(log α − β·ln(−γ/ζ))                        (Louizos eq. 12; the L0 term)
 *   P(g = 0)        = σ(β·ln(−γ/ζ) − log α)
 *   P(g = 1)        = σ(log α − β·ln((1 − γ)/(ζ − 1)))
 *   E[L0]           = Σ P(g ≠ 0),   ∂E[L0]/∂log α_i = p_i(1 − p_i) with p_i = P(g_i ≠ 0)
 *
 * Derivation of the last three: s ≤ t ⇔ u ≤ σ(β·logit(t) − log α); g = 0 ⇔ s ≤ −γ/(ζ − γ), whose logit
 * is ln(−γ/ζ); g = 1 ⇔ s ≥ (1 − γ)/(ζ − γ), whose logit is ln((1 − γ)/(ζ − 1)). With the symmetric
 * default stretch (ζ − 1 = −γ) the two logits are ∓ln 11, so P(g = 1) > P(g = 0) ⇔ log α > 0, which is
 * the paper's test-time binarisation rule (`argmaxOpenThreshold` gives the threshold for any limits).
 *
 * Defaults follow the reference code, not the paper: β = 0.33 (Louizos' value is 2/3, exported as
 * `LOUIZOS_BETA`), (γ, ζ) = (−0.1, 1.1), eps = 1e-6 both for the noise clamp and for clamping P(g ≠ 0)
 * (so the penalty gradient vanishes once a head is closed beyond log α ≈ −14.6, as in the reference;
 * `probZero` and `probOne` are not clamped).
 *
 * Every function in the `hardConcrete` namespace accepts `number[] | Float32Array` (computed in float64,
 * returns `number[]`, or `number` for `expectedL0`) or a `tf.Tensor` (float32, returns a new tensor the
 * caller disposes). The `...Tensor` functions are the raw differentiable ops for use inside the caller's
 * `tf.tidy` / `tf.grad` closures: they do not tidy and do not dispose their inputs.
 */
import * as tf from '@tensorflow/tfjs';

export interface HardConcreteOptions {
  /** Concrete temperature β > 0. */
  beta: number;
  /** Lower stretch limit γ < 0. */
  gamma: number;
  /** Upper stretch limit ζ > 1. */
  zeta: number;
}

/** The stretch interval of Louizos et al. and the reference code. */
export const HARD_CONCRETE_LIMITS = { gamma: -0.1, zeta: 1.1 } as const;
/** The temperature in the reference code (`ConcreteGate` default). */
export const REFERENCE_BETA = 0.33;
/** The temperature recommended by Louizos et al. 2018 (also CoFiPruning's). */
export const LOUIZOS_BETA = 2 / 3;
/** Clamp for the uniform noise and for P(g ≠ 0), as in the reference. */
export const HARD_CONCRETE_EPS = 1e-6;
export const DEFAULT_HARD_CONCRETE: Readonly<HardConcreteOptions> = Object.freeze({
  beta: REFERENCE_BETA,
  gamma: HARD_CONCRETE_LIMITS.gamma,
  zeta: HARD_CONCRETE_LIMITS.zeta,
});

/** Plain numeric gate parameters or noise. */
export type GateArray = number[] | Float32Array;

/** Anything with a uniform [0, 1) `next()`, e.g. `Rng` from util/random.ts. */
export interface UniformSource {
  next(): number;
}

/** Fill in defaults and check the constraints β > 0, γ < 0, ζ > 1 (needed for the closed forms). */
export function resolveHardConcreteOptions(opts?: Partial<HardConcreteOptions>): HardConcreteOptions {
  const o: HardConcreteOptions = { ...DEFAULT_HARD_CONCRETE, ...(opts ?? {}) };
  if (!(Number.isFinite(o.beta) && o.beta > 0)) throw new RangeError(`hard concrete: beta must be > 0, got ${o.beta}`);
  if (!(Number.isFinite(o.gamma) && o.gamma < 0)) throw new RangeError(`hard concrete: gamma must be < 0, got ${o.gamma}`);
  if (!(Number.isFinite(o.zeta) && o.zeta > 1)) throw new RangeError(`hard concrete: zeta must be > 1, got ${o.zeta}`);
  return o;
}

/** ln(−γ/ζ): the logit of the stretched-zero point. Negative. */
function logitAtZero(o: HardConcreteOptions): number {
  return Math.log(-o.gamma / o.zeta);
}

/** ln((1 − γ)/(ζ − 1)): the logit of the stretched-one point. Positive. */
function logitAtOne(o: HardConcreteOptions): number {
  return Math.log((1 - o.gamma) / (o.zeta - 1));
}

/** Numerically stable logistic sigmoid. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

// ---------------------------------------------------------------------------------------------------
// Scalar maths (float64)

function sampleScalar(logAlpha: number, u: number, o: HardConcreteOptions): number {
  const uc = clamp(u, HARD_CONCRETE_EPS, 1 - HARD_CONCRETE_EPS);
  const s = sigmoid((Math.log(uc) - Math.log1p(-uc) + logAlpha) / o.beta);
  return clamp(s * (o.zeta - o.gamma) + o.gamma, 0, 1);
}

function testGateScalar(logAlpha: number, o: HardConcreteOptions): number {
  // The explicit thresholds make the gate exactly 0 / 1 at the boundary, where float rounding of the
  // stretch could otherwise leave ±1e-17.
  if (logAlpha <= logitAtZero(o)) return 0;
  if (logAlpha >= logitAtOne(o)) return 1;
  return clamp(sigmoid(logAlpha) * (o.zeta - o.gamma) + o.gamma, 0, 1);
}

function probNonZeroRaw(logAlpha: number, o: HardConcreteOptions): number {
  return sigmoid(logAlpha - o.beta * logitAtZero(o));
}

function probNonZeroScalar(logAlpha: number, o: HardConcreteOptions): number {
  return clamp(probNonZeroRaw(logAlpha, o), HARD_CONCRETE_EPS, 1 - HARD_CONCRETE_EPS);
}

function probZeroScalar(logAlpha: number, o: HardConcreteOptions): number {
  return sigmoid(o.beta * logitAtZero(o) - logAlpha);
}

function probOneScalar(logAlpha: number, o: HardConcreteOptions): number {
  return sigmoid(logAlpha - o.beta * logitAtOne(o));
}

/** d/dlog α of the clamped P(g ≠ 0): p(1 − p) inside the clamp, 0 where the clamp is active. */
function probNonZeroGradScalar(logAlpha: number, o: HardConcreteOptions): number {
  const p = probNonZeroRaw(logAlpha, o);
  if (p < HARD_CONCRETE_EPS || p > 1 - HARD_CONCRETE_EPS) return 0;
  return p * (1 - p);
}

/**
 * The log α above which a gate is open under the paper's test-time rule "0 or 1, whichever of
 * P(g = 0) and P(g = 1) is larger": β·(ln(−γ/ζ) + ln((1 − γ)/(ζ − 1)))/2, which is 0 for the default
 * symmetric stretch (for any β).
 */
export function argmaxOpenThreshold(opts?: Partial<HardConcreteOptions>): number {
  const o = resolveHardConcreteOptions(opts);
  return (o.beta * (logitAtZero(o) + logitAtOne(o))) / 2;
}

/**
 * The same rule in terms of P(g ≠ 0), the number gate trajectories record (it rises with log α): a head
 * is kept when its P(open) is above this, the P(open) at log α = `argmaxOpenThreshold`. About 0.688 for
 * the reference β = 0.33 and 0.832 for β = 2/3 (not 0.5: a gate half likely to be non-zero is still more
 * likely exactly 0 than exactly 1).
 */
export function keepThresholdProbNonZero(opts?: Partial<HardConcreteOptions>): number {
  const o = resolveHardConcreteOptions(opts);
  return probNonZeroRaw(argmaxOpenThreshold(o), o);
}

/** The log α whose P(g ≠ 0) is `p` (inverse of `probNonZero`), e.g. for an "almost open" init. */
export function logAlphaForProbNonZero(p: number, opts?: Partial<HardConcreteOptions>): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`hard concrete: probability must be in (0, 1), got ${p}`);
  const o = resolveHardConcreteOptions(opts);
  return Math.log(p) - Math.log1p(-p) + o.beta * logitAtZero(o);
}

// ---------------------------------------------------------------------------------------------------
// Tensor ops (float32, differentiable, no tidy)

/** Train-time gate g for noise u (any broadcast-compatible shapes). Gradient flows to log α. */
export function sampleGateTensor(logAlpha: tf.Tensor, u: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Tensor {
  const o = resolveHardConcreteOptions(opts);
  const uc = tf.clipByValue(u, HARD_CONCRETE_EPS, 1 - HARD_CONCRETE_EPS);
  const noise = tf.sub(tf.log(uc), tf.log1p(tf.neg(uc)));
  const s = tf.sigmoid(tf.div(tf.add(noise, logAlpha), o.beta));
  return tf.clipByValue(tf.add(tf.mul(s, o.zeta - o.gamma), o.gamma), 0, 1);
}

/** Eval-time gate clip(σ(log α)(ζ − γ) + γ, 0, 1). */
export function testGateTensor(logAlpha: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Tensor {
  const o = resolveHardConcreteOptions(opts);
  return tf.clipByValue(tf.add(tf.mul(tf.sigmoid(logAlpha), o.zeta - o.gamma), o.gamma), 0, 1);
}

/** P(g ≠ 0) clamped to [eps, 1 − eps] (the reference's penalty term). */
export function probNonZeroTensor(logAlpha: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Tensor {
  const o = resolveHardConcreteOptions(opts);
  return tf.clipByValue(tf.sigmoid(tf.sub(logAlpha, o.beta * logitAtZero(o))), HARD_CONCRETE_EPS, 1 - HARD_CONCRETE_EPS);
}

/** P(g = 0), unclamped. */
export function probZeroTensor(logAlpha: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Tensor {
  const o = resolveHardConcreteOptions(opts);
  return tf.sigmoid(tf.sub(o.beta * logitAtZero(o), logAlpha));
}

/** P(g = 1), unclamped. */
export function probOneTensor(logAlpha: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Tensor {
  const o = resolveHardConcreteOptions(opts);
  return tf.sigmoid(tf.sub(logAlpha, o.beta * logitAtOne(o)));
}

/** Expected number of open gates Σ P(g ≠ 0) over all elements, as a scalar (differentiable). */
export function expectedL0Tensor(logAlpha: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Scalar {
  return tf.sum(probNonZeroTensor(logAlpha, opts));
}

/** 0/1 test-time gate by the paper's rule P(g = 1) > P(g = 0) (⇔ log α > 0 for the default limits). */
export function binaryGateTensor(logAlpha: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Tensor {
  return tf.cast(tf.greater(logAlpha, argmaxOpenThreshold(opts)), 'float32');
}

/**
 * Uniform noise for `sampleGateTensor`: U(eps, 1 − eps) of the given shape, e.g. [1, H, 1, 1] for one
 * draw per head shared by the batch (the reference default), resampled every step with a new seed
 * (derive it with `deriveSeed(root, 'gate-noise', step)`).
 */
export function samplePerHeadNoise(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, HARD_CONCRETE_EPS, 1 - HARD_CONCRETE_EPS, 'float32', seed);
}

// ---------------------------------------------------------------------------------------------------
// log α initialisation

/**
 * The reference init: `log_a` of shape [1, H, 1, 1] gets TF's Glorot-uniform with fan_in = fan_out = H,
 * i.e. U(−√(6/2H), +√(6/2H)) = U(±0.612) for H = 8, so every head starts half-closed.
 */
export function glorotUniformLogAlpha(nHeads: number, rng: UniformSource): number[] {
  checkHeadCount(nHeads);
  if (nHeads === 0) return [];
  const limit = Math.sqrt(6 / (nHeads + nHeads));
  return Array.from({ length: nHeads }, () => (2 * rng.next() - 1) * limit);
}

/** All heads at the same log α (e.g. `logAlphaForProbNonZero(0.99)` to start open). */
export function constantLogAlpha(nHeads: number, value: number): number[] {
  checkHeadCount(nHeads);
  if (!Number.isFinite(value)) throw new RangeError(`hard concrete: log alpha init must be finite, got ${value}`);
  return new Array<number>(nHeads).fill(value);
}

function checkHeadCount(n: number): void {
  if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`hard concrete: head count must be a non-negative integer, got ${n}`);
}

// ---------------------------------------------------------------------------------------------------
// The array-or-tensor namespace

function isTensor(x: unknown): x is tf.Tensor {
  return x instanceof tf.Tensor;
}

function mapArray(a: GateArray, f: (x: number) => number): number[] {
  const out = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f(a[i]!);
  return out;
}

function unary(fNum: (x: number, o: HardConcreteOptions) => number, fTen: (x: tf.Tensor, o: HardConcreteOptions) => tf.Tensor) {
  function apply(logAlpha: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Tensor;
  function apply(logAlpha: GateArray, opts?: Partial<HardConcreteOptions>): number[];
  function apply(logAlpha: GateArray | tf.Tensor, opts?: Partial<HardConcreteOptions>): number[] | tf.Tensor;
  function apply(logAlpha: GateArray | tf.Tensor, opts?: Partial<HardConcreteOptions>): number[] | tf.Tensor {
    const o = resolveHardConcreteOptions(opts);
    if (isTensor(logAlpha)) return tf.tidy(() => fTen(logAlpha, o));
    return mapArray(logAlpha, (x) => fNum(x, o));
  }
  return apply;
}

/**
 * Train-time gates. Arrays: `u.length` must be a multiple of `logAlpha.length`; u is read as
 * [nSamples, H] row-major and log α is tiled over the samples (so one log α with 200k u gives 200k
 * draws). Tensors: tf broadcasting; an array on either side is converted to a float32 tensor.
 */
function sample(logAlpha: tf.Tensor, u: tf.Tensor | GateArray, opts?: Partial<HardConcreteOptions>): tf.Tensor;
function sample(logAlpha: GateArray, u: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Tensor;
function sample(logAlpha: GateArray, u: GateArray, opts?: Partial<HardConcreteOptions>): number[];
function sample(logAlpha: GateArray | tf.Tensor, u: GateArray | tf.Tensor, opts?: Partial<HardConcreteOptions>): number[] | tf.Tensor;
function sample(logAlpha: GateArray | tf.Tensor, u: GateArray | tf.Tensor, opts?: Partial<HardConcreteOptions>): number[] | tf.Tensor {
  const o = resolveHardConcreteOptions(opts);
  if (isTensor(logAlpha) || isTensor(u)) {
    return tf.tidy(() =>
      sampleGateTensor(
        isTensor(logAlpha) ? logAlpha : tf.tensor1d(Array.from(logAlpha), 'float32'),
        isTensor(u) ? u : tf.tensor1d(Array.from(u), 'float32'),
        o,
      ),
    );
  }
  const h = logAlpha.length;
  if (h === 0 ? u.length !== 0 : u.length % h !== 0) {
    throw new RangeError(`hard concrete: noise length ${u.length} is not a multiple of the ${h} gates`);
  }
  const out = new Array<number>(u.length);
  for (let i = 0; i < u.length; i++) out[i] = sampleScalar(logAlpha[i % h]!, u[i]!, o);
  return out;
}

/** Σ P(g ≠ 0): a number for arrays, a scalar tensor for tensors. */
function expectedL0(logAlpha: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Scalar;
function expectedL0(logAlpha: GateArray, opts?: Partial<HardConcreteOptions>): number;
function expectedL0(logAlpha: GateArray | tf.Tensor, opts?: Partial<HardConcreteOptions>): number | tf.Scalar;
function expectedL0(logAlpha: GateArray | tf.Tensor, opts?: Partial<HardConcreteOptions>): number | tf.Scalar {
  const o = resolveHardConcreteOptions(opts);
  if (isTensor(logAlpha)) return tf.tidy(() => expectedL0Tensor(logAlpha, o));
  let sum = 0;
  for (let i = 0; i < logAlpha.length; i++) sum += probNonZeroScalar(logAlpha[i]!, o);
  return sum;
}

/** ∂(Σ P(g ≠ 0))/∂log α: closed form p(1 − p) for arrays, tf autodiff for tensors. */
function expectedL0Grad(logAlpha: tf.Tensor, opts?: Partial<HardConcreteOptions>): tf.Tensor;
function expectedL0Grad(logAlpha: GateArray, opts?: Partial<HardConcreteOptions>): number[];
function expectedL0Grad(logAlpha: GateArray | tf.Tensor, opts?: Partial<HardConcreteOptions>): number[] | tf.Tensor;
function expectedL0Grad(logAlpha: GateArray | tf.Tensor, opts?: Partial<HardConcreteOptions>): number[] | tf.Tensor {
  const o = resolveHardConcreteOptions(opts);
  if (isTensor(logAlpha)) return tf.tidy(() => tf.grad((x: tf.Tensor) => expectedL0Tensor(x, o))(logAlpha));
  return mapArray(logAlpha, (x) => probNonZeroGradScalar(x, o));
}

export const hardConcrete = {
  sample,
  testGate: unary(testGateScalar, testGateTensor),
  probNonZero: unary(probNonZeroScalar, probNonZeroTensor),
  probZero: unary(probZeroScalar, probZeroTensor),
  probOne: unary(probOneScalar, probOneTensor),
  /** 0/1 gates by the paper's rule P(g = 1) > P(g = 0). */
  binaryGate: unary((x, o) => (x > argmaxOpenThreshold(o) ? 1 : 0), binaryGateTensor),
  expectedL0,
  expectedL0Grad,
  sampleGateTensor,
  testGateTensor,
  probNonZeroTensor,
  probZeroTensor,
  probOneTensor,
  expectedL0Tensor,
  binaryGateTensor,
  samplePerHeadNoise,
  glorotUniformLogAlpha,
  constantLogAlpha,
  argmaxOpenThreshold,
  logAlphaForProbNonZero,
} as const;
