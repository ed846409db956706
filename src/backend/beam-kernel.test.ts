/**
 * The native beam-step kernel (HeadsBeamTopk, wasm + addon) against fastBeam's ops path: tf.sub / max /
 * exp / sum / log on the device (the native Sum included) and fast-decode.ts topCandidates in JS, bit for
 * bit: every row's lse and every group's candidates (values and flat indices, order included) on random
 * logits with dead beams, a group without live beams, exact ties within a row and across beams, several
 * row counts (the sgemm row sum depends on them) and vocabulary sizes up to the study's 8146, on 1 and 2
 * BLAS threads; that it registers only with the addon function and the native Sum; no tensor leaks.
 * Skipped, with a message, when the addon (or its beamTopk) is not built.
 */
import { describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { installBackendFixes } from './ops.js';
import { type NativeBlas, loadNativeBlas } from './native-blas.js';
import { nativeKernelSuite } from '../test-utils/native-kernels.js';
import { BEAM_TOPK_KERNEL, beamTopk, hasBeamTopk, nativeBeamTopk } from './beam-kernel.js';
import { topCandidates } from '../eval/fast-decode.js';
import { Rng } from '../util/random.js';

const fn = nativeBeamTopk(loadNativeBlas().blas);
const describeNative = nativeKernelSuite(fn !== null, 'beam kernel tests skipped: the addon (or its beamTopk) is not built; run scripts/setup-native.sh');

interface Case {
  logits: Float32Array;
  R: number;
  V: number;
  width: number;
  groups: number;
  scores: Float32Array;
  /** beam -> logits row, -1 for a dead beam */
  at: Int32Array;
}

/** G groups of `width` beams; some beams dead (score -Infinity, no row), group 1 all dead; ties forced. */
function makeCase(groups: number, width: number, V: number, seed: number): Case {
  const r = new Rng(seed);
  const scores = new Float32Array(groups * width);
  const at = new Int32Array(groups * width).fill(-1);
  let R = 0;
  for (let g = 0; g < groups; g++) {
    for (let j = 0; j < width; j++) {
      const beam = g * width + j;
      const dead = (groups > 1 && g === 1) || (j > 0 && r.int(4) === 0);
      scores[beam] = dead ? -Infinity : -Math.abs(r.normal()) * 5;
      if (!dead) at[beam] = R++;
    }
  }
  // logits uniform in [-8, 8) from a cheap LCG (millions of values per case)
  const logits = new Float32Array(R * V);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < logits.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    logits[i] = x / 268435456 - 8;
  }
  for (let row = 0; row < R; row++) {
    const o = row * V;
    // exact ties within the row: copies of its largest logit and of random ones
    let m = 0;
    for (let v = 1; v < V; v++) if (logits[o + v]! > logits[o + m]!) m = v;
    for (let c = 0; c < 3; c++) logits[o + r.int(V)] = logits[o + m]!;
    for (let c = 0; c < 5; c++) logits[o + r.int(V)] = logits[o + r.int(V)]!;
  }
  // ties across beams: a group's second live beam repeats its first's logits and score
  for (let g = 0; g < groups; g++) {
    const live = Array.from({ length: width }, (_, j) => g * width + j).filter((b) => at[b]! >= 0);
    if (live.length >= 2 && g % 2 === 0) {
      logits.copyWithin(at[live[1]!]! * V, at[live[0]!]! * V, at[live[0]!]! * V + V);
      scores[live[1]!] = scores[live[0]!]!;
    }
  }
  return { logits, R, V, width, groups, scores, at };
}

/** fastBeam's ops path: lse from the device ops, candidates from topCandidates. */
function reference(c: Case, n: number): { lse: Float32Array; values: Float32Array; indices: Int32Array } {
  const t = tf.tensor2d(c.logits, [c.R, c.V]);
  const [shifted, lseT] = tf.tidy(() => {
    const s = tf.sub(t, tf.max(t, 1, true));
    return [s, tf.log(tf.sum(tf.exp(s), 1, true))];
  });
  const lse = lseT!.dataSync() as Float32Array;
  const data = shifted!.dataSync() as Float32Array;
  tf.dispose([t, shifted!, lseT!]);
  const values = new Float32Array(c.groups * n);
  const indices = new Int32Array(c.groups * n);
  const vals = new Float32Array(n);
  const idx = new Int32Array(n);
  for (let g = 0; g < c.groups; g++) {
    const rows = Array.from({ length: c.width }, (_, j) => g * c.width + j);
    if (rows.every((b) => c.at[b]! < 0)) {
      // fastBeam does not call topCandidates for such a group; it would find nothing
      vals.fill(-Infinity);
      idx.fill(-1);
    } else topCandidates(data, 0, rows, c.at, c.scores, lse, c.V, n, vals, idx);
    values.set(vals, g * n);
    indices.set(idx, g * n);
  }
  return { lse, values, indices };
}

function native(c: Case, n: number) {
  const t = tf.tensor2d(c.logits, [c.R, c.V]);
  try {
    return beamTopk(t, c.scores, c.at, c.width, n);
  } finally {
    t.dispose();
  }
}

/** the same bits: NaN-free values compared as float32 bit patterns */
function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

describeNative('HeadsBeamTopk (native beam step)', () => {
  it.each([
    // groups, width, V, n
    [1, 1, 13, 2],
    [3, 4, 13, 8],
    [5, 4, 1000, 8],
    [1, 1, 8146, 8],
    [40, 1, 8146, 8],
    [7, 4, 8146, 8],
    [16, 4, 8146, 8],
    [75, 4, 8146, 8],
    [9, 2, 8146, 4],
  ])('%p groups of %p beams, V %p, %p candidates: lse and candidates bit for bit as the ops path', (groups, width, V, n) => {
    const cases = [1, 2].map((seed) => makeCase(groups, width, V, seed * 100 + groups));
    for (const threads of [1, 2]) {
      installBackendFixes('wasm', { blasThreads: threads });
      expect(hasBeamTopk()).toBe(true);
      for (const c of cases) {
        const before = tf.memory().numTensors;
        const want = reference(c, n);
        const got = native(c, n);
        expect(tf.memory().numTensors).toBe(before);
        expect(bits(got.lse)).toEqual(bits(want.lse));
        expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
        expect(bits(got.values)).toEqual(bits(want.values));
        // the cases really have ties among the candidates and dead groups
        if (groups > 1) expect(Array.from(got.indices.subarray(n, 2 * n))).toEqual(new Array(n).fill(-1));
      }
    }
    installBackendFixes('wasm');
  });

  it('rows whose maximum is a zero (-0 before +0, or +0 only) or a logit far above the rest', () => {
    installBackendFixes('wasm');
    const c = makeCase(3, 4, 8146, 9);
    for (let row = 0; row < c.R; row++) {
      const o = row * c.V;
      for (let v = 0; v < c.V; v++) c.logits[o + v] = -Math.abs(c.logits[o + v]!) - 1;
      if (row % 3 === 0) ((c.logits[o + 40] = -0), (c.logits[o + 8000] = 0));
      else if (row % 3 === 1) c.logits[o + 77] = 0;
      else c.logits[o + 5] = 200; // every other exp underflows: lse 0
    }
    const want = reference(c, 8);
    const got = native(c, 8);
    expect(bits(got.lse)).toEqual(bits(want.lse));
    expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
    expect(bits(got.values)).toEqual(bits(want.values));
  });

  it('masked logits (-1e9 as model.neverGenerate adds, -Infinity, whole blocks of them) and a 16-wide tail', () => {
    installBackendFixes('wasm');
    for (const V of [8146, 8000, 37]) {
      const c = makeCase(5, 4, V, 11);
      for (let row = 0; row < c.R; row++) {
        const o = row * c.V;
        for (let v = 0; v < c.V; v += 7) c.logits[o + v] = row % 2 ? -1e9 : -Infinity;
        // the first block (and for V 8146 the last, partial one) masked whole
        for (let v = 0; v < 16; v++) c.logits[o + v] = -1e9;
        if (row % 3 === 0) for (let v = c.V - (c.V % 16 || 16); v < c.V; v++) c.logits[o + v] = -Infinity;
      }
      const want = reference(c, 8);
      const got = native(c, 8);
      expect(bits(got.lse)).toEqual(bits(want.lse));
      expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
      expect(bits(got.values)).toEqual(bits(want.values));
    }
  });

  it('candidates include exact ties, kept in index order', () => {
    installBackendFixes('wasm');
    const c = makeCase(4, 4, 8146, 7);
    const got = native(c, 8);
    const g0 = Array.from(got.values.subarray(0, 8));
    // group 0's second live beam repeats the first: each value appears (at least) twice
    expect(new Set(g0).size).toBeLessThan(g0.length);
    for (let j = 1; j < 8; j++) if (g0[j] === g0[j - 1]) expect(got.indices[j]!).toBeGreaterThan(got.indices[j - 1]!);
  });

  it('registers only with the addon function and the native Sum', () => {
    expect(nativeBeamTopk(null)).toBeNull();
    const { beamTopk: _omit, ...older } = loadNativeBlas().blas!;
    expect(nativeBeamTopk(older as NativeBlas)).toBeNull();
    installBackendFixes('wasm', { nativeBeam: false });
    expect(hasBeamTopk()).toBe(false);
    installBackendFixes('wasm', { nativeSum: false });
    expect(hasBeamTopk()).toBe(false);
    installBackendFixes('wasm', { nativeBlas: false });
    expect(hasBeamTopk()).toBe(false);
    installBackendFixes('wasm');
    expect(hasBeamTopk()).toBe(true);
    // cpu: never (fastBeam keeps its ops path there)
    installBackendFixes('cpu');
    expect(tf.getKernel(BEAM_TOPK_KERNEL, 'cpu')).toBeUndefined();
  });
});
