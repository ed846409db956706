/**
 * The default decoders: the same greedy and beam search as the first implementation (`decoder: 'legacy'`
 * in decode.ts, kept for comparison), with the same numbers, and less work per step:
 *
 * - rows only for hypotheses that can still matter. The first beam step runs one row per sentence (the
 *   legacy search tiles k rows, k-1 of them dead), and sentences that are done leave the batch with their
 *   target and source caches (once they are a fifth of its rows: COMPACT_AT), so the batch shrinks as
 *   sentences end instead of decoding dummy rows until the longest sentence of the batch ends. Until
 *   then their rows (and dead padding beams) skip the output layer and the log-softmax.
 * - beam search: tf.logSoftmax's own ops run on the device up to its last one (identical values); that
 *   last subtraction, adding each beam's score and picking the 2k best continuations per sentence run in
 *   one pass over the values, read in place from the backend's memory, in tf.topk's order (higher value
 *   first, lower index on a tie); the legacy search subtracts, adds the scores, reshapes and runs tf.topk
 *   over k x V values per sentence on the device.
 *   With the native kernel HeadsBeamTopk (wasm + the addon: backend/beam-kernel.ts) the whole log-softmax
 *   and that choice run in C over the logits, with the same numbers.
 * - greedy: the argmax of the logits, which is the argmax of their log-softmax unless two logits are
 *   near-tied (then that step's log-softmax is computed as before): no log-softmax pass over V.
 * - one product for each decoder layer's self-attention queries, keys and values instead of three
 *   (`fuseSelfQkv`; OpenBLAS gives the same numbers per column, checked in the tests by the outputs).
 * - with the native cache kernels (wasm + the addon: backend/kv-cache-kernel.ts), self-attention caches
 *   allocated once per batch (every row, every position up to the batch's length limit), each step's keys
 *   and values written in place, beams reordered by moving rows within them: no Concat, SplitV,
 *   Transpose or Gather of the caches per step (the same products, so the same numbers).
 *
 * Rows of the target caches only move within a sentence's beams or leave with their sentence, so one
 * gather index serves the self-attention caches every step and the source caches when a sentence left.
 * Special ids: 0 pad, 1 <s>, 2 </s>.
 */
import * as tf from '@tensorflow/tfjs';
import { type DecoderState, type GateTensors, type Transformer, gatherRows, stateTensors } from '../model/transformer.js';
import { BOS_ID, EOS_ID, lengthPenalty } from './decode-rules.js';
import { asCpuBackend, asWasmBackend, cpuValues, isFloat32Array, wasmHeapF32, wasmOffset4 } from '../backend/tfjs-internals.js';
import { beamTopk, hasBeamTopk } from '../backend/beam-kernel.js';
import { cacheRows } from '../backend/kv-cache-kernel.js';

export interface FastDecodeOptions {
  beamSize: number;
  lengthPenalty: number;
  /** per sentence: the longest output allowed */
  limits: readonly number[];
  gates?: GateTensors;
}

interface Hypothesis {
  tokens: number[];
  score: number;
}

/**
 * The values of a float32 tensor without a copy where the backend allows it (wasm heap, cpu arrays);
 * valid until the next tensor allocation (a growing wasm heap detaches older views).
 */
export function readF32(t: tf.Tensor): { data: Float32Array; offset: number } {
  const backend = tf.backend() as unknown;
  const info = { dataId: t.dataId, shape: t.shape, dtype: t.dtype } as unknown as Parameters<typeof wasmOffset4>[1];
  if (tf.getBackend() === 'wasm') {
    const b = asWasmBackend(backend);
    return { data: wasmHeapF32(b), offset: wasmOffset4(b, info) };
  }
  if (tf.getBackend() === 'cpu') {
    const v = cpuValues(asCpuBackend(backend), info);
    if (isFloat32Array(v)) return { data: v, offset: 0 };
  }
  return { data: t.dataSync() as Float32Array, offset: 0 };
}

/** Keep rows `idx` of the self caches, and of the source caches and bias too when `withSource`; disposes what it replaces. */
function keepRows(state: DecoderState, idx: Int32Array, withSource: boolean): DecoderState {
  // in-place caches: rows move within them, over the positions written so far (kv-cache-kernel.ts)
  if (state.selfCache)
    cacheRows(
      state.selfCache.flatMap((c) => (c ? [c.k, c.v] : [])),
      idx,
      state.step,
    );
  const idxT = tf.tensor1d(idx, 'int32');
  const next = tf.tidy(() => ({
    self: state.self.map((c) => (c ? [gatherRows(c.k, idxT), gatherRows(c.v, idxT)] : [])),
    cross: withSource ? state.cross.map((c) => [gatherRows(c.k, idxT), gatherRows(c.v, idxT)]) : [],
    srcBias: withSource ? [gatherRows(state.srcBias, idxT)] : [],
  }));
  idxT.dispose();
  for (const c of state.self) if (c) tf.dispose([c.k, c.v]);
  const out: DecoderState = { ...state, self: next.self.map((kv) => (kv.length ? { k: kv[0] as tf.Tensor4D, v: kv[1] as tf.Tensor4D } : null)) };
  if (withSource) {
    for (const c of state.cross) tf.dispose([c.k, c.v]);
    state.srcBias.dispose();
    out.cross = next.cross.map((kv) => ({ k: kv[0] as tf.Tensor4D, v: kv[1] as tf.Tensor4D }));
    out.srcBias = next.srcBias[0] as tf.Tensor4D;
  }
  return out;
}

/**
 * The encoded batch with the fused self-attention projection and, where the backend has the cache
 * kernels, in-place self-attention caches for `rows` rows and `positions` steps (model/transformer.ts).
 */
function startState(model: Transformer, src: tf.Tensor2D, gates: GateTensors | undefined, rows: number, positions: number): DecoderState {
  const opts = { fuseSelfQkv: true, selfCache: { rows, positions } };
  return tf.tidy(() => model.startDecoding(src, gates, opts) as unknown as tf.TensorContainer) as unknown as DecoderState;
}

/** One decoder step under tidy: the new state (old self caches disposed) and what `pick` returns of the logits. */
function step<T extends tf.TensorContainer>(
  model: Transformer,
  state: DecoderState,
  tokens: Int32Array,
  gates: GateTensors | undefined,
  pick: (logits: tf.Tensor2D) => T,
  rows?: Int32Array,
): { state: DecoderState; out: T } {
  const r = tf.tidy(() => {
    const s = model.decodeStepLogits(state, tf.tensor1d(tokens, 'int32'), gates, rows ? tf.tensor1d(rows, 'int32') : undefined);
    return { self: s.state.self.map((c) => (c ? [c.k, c.v] : [])), out: pick(s.logits) };
  });
  for (const c of state.self) if (c) tf.dispose([c.k, c.v]);
  const self = r.self.map((kv) => (kv.length ? { k: kv[0] as tf.Tensor4D, v: kv[1] as tf.Tensor4D } : null));
  return { state: { ...state, step: state.step + 1, self }, out: r.out as T };
}

/**
 * Row-wise argmax of logSoftmax(logits) [R, V], as tf.logSoftmax(...).argMax(1) gives it, mostly without the
 * log-softmax: log-softmax is x - max - c per row (c = log-sum-exp >= 0) rounded to float32, monotone in
 * x, so its argmax is the first maximal logit unless a smaller logit lies so close to the maximum
 * (within NEAR_TIE, far above float32 rounding at |c| <= log V) that rounding could make it equal, and
 * win as the lower index. Then (rarely) the step's log-softmax is computed on the device as before.
 */
export function argMaxOfLogSoftmax(logits: tf.Tensor2D): Int32Array {
  const [R, V] = logits.shape;
  const ids = new Int32Array(R);
  const { data, offset } = readF32(logits);
  let safe = true;
  for (let r = 0; r < R && safe; r++) {
    const o = offset + r * V;
    let best = 0;
    let m = data[o]!;
    for (let v = 1; v < V; v++) if (data[o + v]! > m) ((m = data[o + v]!), (best = v));
    ids[r] = best;
    // a smaller logit with a lower index, within NEAR_TIE of the maximum
    for (let v = 0; v < best && safe; v++) if (data[o + v]! < m && m - data[o + v]! <= NEAR_TIE) safe = false;
    if (!Number.isFinite(m)) safe = false;
  }
  if (safe) return ids;
  return tf.tidy(() => tf.logSoftmax(logits).argMax(1)).dataSync() as Int32Array;
}

/** Gaps between logits at or below this may vanish in a float32 log-softmax (c <= log V < 16: ulp 1e-6). */
const NEAR_TIE = 1e-4;

/**
 * Done sentences leave the batch once the live ones are at most this share of its rows: a row stays
 * cheaper than copying every cache for each sentence that ends (their rows idle until then).
 */
const COMPACT_AT = 0.8;

/** Greedy decoding of src [B, S]; finished sentences leave the batch. Token ids without </s>. */
export async function fastGreedy(model: Transformer, src: tf.Tensor2D, o: FastDecodeOptions): Promise<number[][]> {
  const B = src.shape[0];
  const maxLen = Math.max(...o.limits);
  let state = startState(model, src, o.gates, B, maxLen);
  const outputs: number[][] = Array.from({ length: B }, () => []);
  let slots = Array.from({ length: B }, (_, b) => b); // the sentence of each row, -1 once it is done
  let liveCount = B;
  let tokens = new Int32Array(B).fill(BOS_ID);
  try {
    for (let t = 0; t < maxLen && liveCount; t++) {
      const r = step(model, state, tokens, o.gates, (logits) => logits);
      state = r.state;
      const ids = argMaxOfLogSoftmax(r.out);
      r.out.dispose();
      tokens = new Int32Array(slots.length).fill(EOS_ID);
      slots = slots.map((b, i) => {
        if (b < 0 || ids[i] === EOS_ID || outputs[b]!.length >= o.limits[b]!) return -1;
        outputs[b]!.push(ids[i]!);
        tokens[i] = ids[i]!;
        return b;
      });
      liveCount = slots.filter((b) => b >= 0).length;
      if (liveCount && liveCount <= COMPACT_AT * slots.length) {
        const keep = slots.flatMap((b, i) => (b >= 0 ? [i] : []));
        state = keepRows(state, Int32Array.from(keep), true);
        tokens = Int32Array.from(keep, (i) => tokens[i]!);
        slots = keep.map((i) => slots[i]!);
      }
    }
  } finally {
    tf.dispose(stateTensors(state));
  }
  return outputs;
}

/**
 * The 2k best (value, flat index) over a sentence's rows, where value = fround(logProb + row score),
 * logProb = fround(shifted - lse) (tf.logSoftmax's last op, in float32 as the device does it; row r is
 * at position at[r] of shifted and lse), and
 * the flat index is beam * V + token, in tf.topk's order: rows and tokens are visited in index order and
 * only a strictly greater value displaces, so equal values keep the lower index first.
 */
export function topCandidates(
  shifted: Float32Array,
  base: number,
  rows: readonly number[],
  at: Int32Array,
  scores: Float32Array,
  lse: Float32Array,
  V: number,
  n: number,
  vals: Float32Array,
  idx: Int32Array,
): void {
  vals.fill(-Infinity);
  idx.fill(-1);
  for (let beam = 0; beam < rows.length; beam++) {
    const r = rows[beam]!;
    const s = scores[r]!;
    if (s === -Infinity) continue; // a dead beam: every continuation is -Infinity
    const c = lse[at[r]!]!;
    const o = base + at[r]! * V;
    let min = vals[n - 1]!;
    for (let v = 0; v < V; v++) {
      const x = Math.fround(Math.fround(shifted[o + v]! - c) + s);
      if (!(x > min)) continue;
      let j = n - 1;
      while (j > 0 && x > vals[j - 1]!) {
        vals[j] = vals[j - 1]!;
        idx[j] = idx[j - 1]!;
        j--;
      }
      vals[j] = x;
      idx[j] = beam * V + v;
      min = vals[n - 1]!;
    }
  }
}

/** Beam search over src [B, S]; the best hypothesis (ids without </s>) per sentence. */
export async function fastBeam(model: Transformer, src: tf.Tensor2D, o: FastDecodeOptions): Promise<number[][]> {
  const k = o.beamSize;
  const V = model.vocabSize;
  const B = src.shape[0];
  const maxLen = Math.max(...o.limits);
  let state = startState(model, src, o.gates, B * k, maxLen);
  const finished: Hypothesis[][] = Array.from({ length: B }, () => []);
  // the rows: sentence `slots[i]` owns rows i*width .. i*width+width-1 (width 1 before the first step,
  // then k); a done sentence's slot is -1 until the batch is compacted (COMPACT_AT)
  let slots = Array.from({ length: B }, (_, b) => b);
  let liveCount = B;
  let width = 1;
  let beamTokens: number[][] = Array.from({ length: B }, () => []);
  let scores = new Float32Array(B); // 0: the one live beam per sentence
  let tokens = new Int32Array(B).fill(BOS_ID);
  const vals = new Float32Array(2 * k);
  const idx = new Int32Array(2 * k);
  // the backend's kernels do not change during a search: look the native beam step up once
  const native = hasBeamTopk();
  try {
    for (let t = 0; t < maxLen && liveCount; t++) {
      // logits only for live rows (not a done sentence's rows nor dead padding rows, whose scores are
      // -Infinity), row r at position at[r] of the step's output
      const at = new Int32Array(scores.length).fill(-1);
      const liveRows: number[] = [];
      scores.forEach((sc, row) => {
        if (sc > -Infinity && slots[Math.floor(row / width)]! >= 0) at[row] = liveRows.push(row) - 1;
      });
      // tf.logSoftmax's own ops, up to its last one (shifted - c), which topCandidates does per value read;
      // or all of it and the choice of candidates in one native kernel (HeadsBeamTopk, the same numbers)
      const r = step(
        model,
        state,
        tokens,
        o.gates,
        (logits) => {
          if (native) return [logits];
          const shifted = tf.sub(logits, tf.max(logits, 1, true));
          return [shifted, tf.log(tf.sum(tf.exp(shifted), 1, true))];
        },
        liveRows.length < scores.length ? Int32Array.from(liveRows) : undefined,
      );
      state = r.state;
      const [lp, lseT] = r.out as [tf.Tensor2D, tf.Tensor2D | undefined];
      const lse = lseT ? (lseT.dataSync() as Float32Array) : new Float32Array(0);
      lseT?.dispose();
      const nextRows: number[] = [];
      const nextTokens: number[] = [];
      const nextScores: number[] = [];
      const nextBeamTokens: number[][] = [];
      const nextSlots: number[] = [];
      const dead = (i: number) => {
        // a done sentence's k rows, or padding for too few live continuations: never live again
        nextRows.push(i * width);
        nextTokens.push(EOS_ID);
        nextScores.push(-Infinity);
        nextBeamTokens.push([]);
      };
      try {
        // native: every slot's candidates at once (a done slot's and a dead beam's `at` is -1: no candidates)
        const top = native ? beamTopk(lp, scores, at, width, 2 * k) : null;
        const { data, offset } = top ? { data: new Float32Array(0), offset: 0 } : readF32(lp);
        const rows = Array.from({ length: width }, () => 0);
        for (let i = 0; i < slots.length; i++) {
          const b = slots[i]!;
          if (b < 0) {
            for (let j = 0; j < k; j++) dead(i);
            nextSlots.push(-1);
            continue;
          }
          if (top) {
            vals.set(top.values.subarray(i * 2 * k, (i + 1) * 2 * k));
            idx.set(top.indices.subarray(i * 2 * k, (i + 1) * 2 * k));
          } else {
            for (let j = 0; j < width; j++) rows[j] = i * width + j;
            topCandidates(data, offset, rows, at, scores, lse, V, 2 * k, vals, idx);
          }
          let filled = 0;
          const start = nextRows.length;
          for (let j = 0; j < 2 * k && filled < k; j++) {
            const score = vals[j]!;
            if (score === -Infinity) break;
            const beam = Math.floor(idx[j]! / V);
            const token = idx[j]! % V;
            const row = i * width + beam;
            // </s>, or the continuation reaches the sentence's length limit: a finished hypothesis
            if (token === EOS_ID || beamTokens[row]!.length + 1 >= o.limits[b]!) {
              const toks = token === EOS_ID ? beamTokens[row]! : [...beamTokens[row]!, token];
              finished[b]!.push({ tokens: toks, score: score / lengthPenalty(toks.length + 1, o.lengthPenalty) });
              continue;
            }
            nextRows.push(row);
            nextTokens.push(token);
            nextScores.push(score);
            nextBeamTokens.push([...beamTokens[row]!, token]);
            filled++;
          }
          const done = finished[b]!.length >= k || filled === 0;
          if (done) nextRows.length = nextTokens.length = nextScores.length = nextBeamTokens.length = start;
          for (let j = done ? 0 : filled; j < k; j++) dead(i);
          nextSlots.push(done ? -1 : b);
        }
      } finally {
        lp.dispose();
      }
      liveCount = nextSlots.filter((b) => b >= 0).length;
      // after the first step (one row per sentence, now k) and when enough have ended: drop done sentences
      const compact = width === 1 || liveCount <= COMPACT_AT * nextSlots.length;
      const keep = compact ? nextSlots.flatMap((b, i) => (b >= 0 ? Array.from({ length: k }, (_, j) => i * k + j) : [])) : null;
      const pick = <T>(xs: T[]): T[] => (keep ? keep.map((j) => xs[j]!) : xs);
      if (liveCount) state = keepRows(state, Int32Array.from(pick(nextRows)), compact);
      slots = compact ? nextSlots.filter((b) => b >= 0) : nextSlots;
      width = k;
      beamTokens = pick(nextBeamTokens);
      scores = Float32Array.from(pick(nextScores));
      tokens = Int32Array.from(pick(nextTokens));
    }
  } finally {
    tf.dispose(stateTensors(state));
  }
  // sentences still running at the length limit: their live beams count as finished
  slots.forEach((b, i) => {
    if (b < 0) return;
    for (let j = 0; j < k; j++) {
      const s = scores[i * k + j]!;
      const toks = beamTokens[i * k + j]!;
      if (s > -Infinity) finished[b]!.push({ tokens: toks, score: s / lengthPenalty(toks.length + 1, o.lengthPenalty) });
    }
  });
  return finished.map((hyps) => (hyps.length ? hyps.reduce((a, h) => (h.score > a.score ? h : a)).tokens : []));
}
