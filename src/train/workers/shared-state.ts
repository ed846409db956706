/**
 * The memory the main thread and the training workers share (SharedArrayBuffers), and the barrier that
 * orders their phases. One flat float32 layout covers every parameter (model weights, then gate
 * log-alphas), in a fixed order both sides derive from the same list of names and shapes:
 *
 * - `params`: the current parameters, the source of truth between steps (the main thread reads its
 *   checkpoints and its model's weights from here, and writes here after a restore);
 * - `m`, `v`: Adam's moments; `seen`: which parameters have Adam state (ever received a gradient);
 *   `got`: which received one in the current step (cleared by the main thread before each step);
 * - `slots`: one gradient slot per worker; after the reduce, slot 0 holds the step's summed gradient;
 * - `keep`: per element, 0 where gradual magnitude pruning holds the weight at zero (read when a step is
 *   masked: Adam then zeroes those parameters and their moments after the update);
 * - `extra`: a gradient the main thread adds into the sum (the gate penalty's, over the gate range);
 * - `sq`, `ce`: per-worker partial sums (squared gradient norm, cross-entropy) read after a barrier;
 * - `control`: the barrier's counter and generation, and an abort flag a failing worker raises so the
 *   others leave their barrier wait instead of blocking forever.
 */

export interface ParamEntry {
  name: string;
  shape: number[];
  size: number;
  /** element offset in the flat layout */
  offset: number;
  /** receives gradients and Adam updates */
  trainable: boolean;
  /** a gate log-alpha (its learning rate is scaled by gates.lrScale) */
  isGate: boolean;
}

export interface ParamLayout {
  entries: ParamEntry[];
  /** total elements */
  size: number;
}

export function makeLayout(params: ReadonlyArray<{ name: string; shape: readonly number[]; trainable: boolean; isGate: boolean }>): ParamLayout {
  let offset = 0;
  const entries: ParamEntry[] = params.map((p) => {
    const size = p.shape.reduce((a, b) => a * b, 1);
    const e = { name: p.name, shape: p.shape.slice(), size, offset, trainable: p.trainable, isGate: p.isGate };
    offset += size;
    return e;
  });
  return { entries, size: offset };
}

/** The SharedArrayBuffers (what is posted to workers). */
export interface SharedBuffers {
  params: SharedArrayBuffer;
  m: SharedArrayBuffer;
  v: SharedArrayBuffer;
  seen: SharedArrayBuffer;
  got: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  extra: SharedArrayBuffer;
  keep: SharedArrayBuffer;
  sq: SharedArrayBuffer;
  ce: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

/** Typed views of the shared buffers. */
export interface SharedViews {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
  seen: Uint8Array;
  got: Uint8Array;
  /** slot w: slots.subarray(w * size, (w + 1) * size) */
  slots: Float32Array;
  extra: Float32Array;
  keep: Uint8Array;
  sq: Float64Array;
  ce: Float64Array;
  control: Int32Array;
}

/** control[] indices */
export const CTRL_COUNT = 0;
export const CTRL_GENERATION = 1;
export const CTRL_ABORT = 2;
const CTRL_SIZE = 4;

export function allocateShared(layout: ParamLayout, workers: number): SharedBuffers {
  const f32 = (n: number) => new SharedArrayBuffer(Math.max(1, n) * 4);
  return {
    params: f32(layout.size),
    m: f32(layout.size),
    v: f32(layout.size),
    seen: new SharedArrayBuffer(Math.max(1, layout.entries.length)),
    got: new SharedArrayBuffer(Math.max(1, layout.entries.length)),
    slots: f32(layout.size * workers),
    extra: f32(layout.size),
    keep: new SharedArrayBuffer(Math.max(1, layout.size)),
    sq: new SharedArrayBuffer(8 * workers),
    ce: new SharedArrayBuffer(8 * workers),
    control: new SharedArrayBuffer(4 * CTRL_SIZE),
  };
}

export function viewsOf(b: SharedBuffers): SharedViews {
  return {
    params: new Float32Array(b.params),
    m: new Float32Array(b.m),
    v: new Float32Array(b.v),
    seen: new Uint8Array(b.seen),
    got: new Uint8Array(b.got),
    slots: new Float32Array(b.slots),
    extra: new Float32Array(b.extra),
    keep: new Uint8Array(b.keep),
    sq: new Float64Array(b.sq),
    ce: new Float64Array(b.ce),
    control: new Int32Array(b.control),
  };
}

/** The element range [lo, hi) worker `w` of `n` reduces and updates. */
export function shardOf(size: number, w: number, n: number): [number, number] {
  return [Math.floor((size * w) / n), Math.floor((size * (w + 1)) / n)];
}

/** Raised in a worker whose peer failed mid-step. */
export class PeerAbortError extends Error {
  constructor() {
    super('another training worker failed during this step');
    this.name = 'PeerAbortError';
  }
}

/**
 * Waits until all `n` parties have arrived (generation-counting barrier on Atomics). Polls the abort
 * flag every 50 ms so a failed peer cannot leave the others blocked. Worker threads only (Atomics.wait).
 */
export function barrier(control: Int32Array, n: number): void {
  const gen = Atomics.load(control, CTRL_GENERATION);
  if (Atomics.add(control, CTRL_COUNT, 1) === n - 1) {
    Atomics.store(control, CTRL_COUNT, 0);
    Atomics.add(control, CTRL_GENERATION, 1);
    Atomics.notify(control, CTRL_GENERATION);
    return;
  }
  while (Atomics.load(control, CTRL_GENERATION) === gen) {
    if (Atomics.load(control, CTRL_ABORT) !== 0) throw new PeerAbortError();
    Atomics.wait(control, CTRL_GENERATION, gen, 50);
  }
}

/** Raise the abort flag and wake every waiter. */
export function abortPeers(control: Int32Array): void {
  Atomics.store(control, CTRL_ABORT, 1);
  Atomics.add(control, CTRL_GENERATION, 0);
  Atomics.notify(control, CTRL_GENERATION);
}

/** Main thread, between steps (no worker inside a barrier): clear the counter and the abort flag. */
export function resetControl(control: Int32Array): void {
  Atomics.store(control, CTRL_COUNT, 0);
  Atomics.store(control, CTRL_ABORT, 0);
}

export interface AdamHyper {
  beta1: number;
  beta2: number;
  eps: number;
  /** Adam's step counter after this update (bias corrections 1 - beta^t) */
  t: number;
  lr: number;
  /** learning-rate factor of gate parameters */
  gateScale: number;
  /** gradient multiplier from global-norm clipping (1: none) */
  clipScale: number;
  /** gradual magnitude pruning: zero the parameters (and moments) where `keep` is 0 after the update */
  isMasked?: boolean;
}

/**
 * Sums the workers' gradient slots (plus `extra`) over [lo, hi) into slot 0 and returns the sum of
 * squares of the result (float64). Parameters that are not trainable are skipped (their slots are 0).
 */
export function reduceRange(s: SharedViews, layout: ParamLayout, workers: number, lo: number, hi: number, withExtra: boolean): number {
  const size = layout.size;
  const g = s.slots;
  let sq = 0;
  for (const e of layout.entries) {
    if (!e.trainable) continue;
    const a = Math.max(lo, e.offset);
    const b = Math.min(hi, e.offset + e.size);
    if (a >= b) continue;
    for (let w = 1; w < workers; w++) {
      const base = w * size;
      for (let i = a; i < b; i++) g[i] = g[i]! + g[base + i]!;
    }
    if (withExtra) for (let i = a; i < b; i++) g[i] = g[i]! + s.extra[i]!;
    for (let i = a; i < b; i++) {
      const x = g[i]!;
      sq += x * x;
    }
  }
  return sq;
}

/**
 * Adam over [lo, hi) with the summed gradient in slot 0, exactly as train/adam.ts writes it:
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= (m / c1) * lr_p / (sqrt(v / c2) + eps), where
 * g is the clipped gradient. Only parameters that received a gradient this step (`got`) are updated, as
 * the tfjs Adam updates only the parameters in its gradient map. With `isMasked`, parameters whose `keep`
 * entry is 0 and their moments are set to 0 afterwards, as the in-process trainer does (MaskTensors).
 */
export function adamRange(s: SharedViews, layout: ParamLayout, got: Uint8Array, lo: number, hi: number, h: AdamHyper): void {
  const c1 = 1 - Math.pow(h.beta1, h.t);
  const c2 = 1 - Math.pow(h.beta2, h.t);
  const { beta1: b1, beta2: b2, eps } = h;
  const p = s.params,
    m = s.m,
    v = s.v,
    g = s.slots,
    keep = h.isMasked ? s.keep : null;
  for (let k = 0; k < layout.entries.length; k++) {
    const e = layout.entries[k]!;
    if (!e.trainable || got[k] === 0) continue;
    const a = Math.max(lo, e.offset);
    const b = Math.min(hi, e.offset + e.size);
    if (a >= b) continue;
    const lr = h.lr * (e.isGate ? h.gateScale : 1);
    for (let i = a; i < b; i++) {
      const gi = g[i]! * h.clipScale;
      const mi = b1 * m[i]! + (1 - b1) * gi;
      const vi = b2 * v[i]! + (1 - b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i]! - ((mi / c1) * lr) / (Math.sqrt(vi / c2) + eps);
    }
    if (keep) for (let i = a; i < b; i++) if (keep[i] === 0) p[i] = m[i] = v[i] = 0;
  }
}
