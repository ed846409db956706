/**
 * Batched greedy and beam search over a Transformer with cached keys and values. Beam search keeps B x k
 * rows on the device, picks the 2k best continuations per sentence with top-k on the device (only those
 * numbers come to JS), applies the GNMT length penalty ((5 + len) / 6)^alpha to finished hypotheses,
 * and reorders the caches with one gather per step. Special ids: 0 pad, 1 <s>, 2 </s>.
 * `greedyDecode` and `beamSearch` run the fast decoders of fast-decode.ts (same outputs, less work per
 * step); `decoder: 'legacy'` runs the first implementation kept below, for comparison.
 */
import * as tf from '@tensorflow/tfjs';
import { type DecoderState, type GateTensors, type Transformer, stateTensors } from '../model/transformer.js';
import { fastBeam, fastGreedy } from './fast-decode.js';
import { hfBeamSearch } from './hf-beam.js';

import { BOS_ID, EOS_ID, PAD_ID, lengthPenalty, maxOutputLength } from './decode-rules.js';

export { BOS_ID, EOS_ID, PAD_ID, lengthPenalty, maxOutputLength };

export interface DecodeOptions {
  beamSize: number;
  lengthPenalty: number;
  maxLenA: number;
  maxLenB: number;
  gates?: GateTensors;
  /** `fast` (the default, fast-decode.ts) or `legacy` (the first implementation, below; same outputs, kept to compare) */
  decoder?: Decoder;
  /** beam search rules: gnmt (absent, the decoders here) or hf (hf-beam.ts) */
  beamRules?: 'gnmt' | 'hf';
}

export const DECODERS = ['fast', 'legacy'] as const;
export type Decoder = (typeof DECODERS)[number];

/** Greedy decoding of a padded source batch src [B, S]; returns token ids without </s>. */
export async function greedyDecode(model: Transformer, src: Int32Array, B: number, S: number, o: DecodeOptions): Promise<number[][]> {
  if (o.decoder === 'legacy') return legacyGreedyDecode(model, src, B, S, o);
  return withSource(src, B, S, (srcT) => fastGreedy(model, srcT, { ...o, limits: limitsOf(model, src, B, S, o) }));
}

/** Batched beam search; returns the best hypothesis (ids without </s>) per sentence. */
export async function beamSearch(model: Transformer, src: Int32Array, B: number, S: number, o: DecodeOptions): Promise<number[][]> {
  if (o.beamRules === 'hf' && o.beamSize > 1) return withSource(src, B, S, (srcT) => hfBeamSearch(model, srcT, limitsOf(model, src, B, S, o), o));
  if (o.decoder === 'legacy') return legacyBeamSearch(model, src, B, S, o);
  if (o.beamSize === 1) return greedyDecode(model, src, B, S, o);
  return withSource(src, B, S, (srcT) => fastBeam(model, srcT, { ...o, limits: limitsOf(model, src, B, S, o) }));
}

async function withSource<T>(src: Int32Array, B: number, S: number, f: (srcT: tf.Tensor2D) => Promise<T>): Promise<T> {
  const srcT = tf.tensor2d(src, [B, S], 'int32');
  try {
    return await f(srcT);
  } finally {
    srcT.dispose();
  }
}

function limitsOf(model: Transformer, src: Int32Array, B: number, S: number, o: DecodeOptions): number[] {
  return lengthsOf(src, B, S).map((l) => maxOutputLength(l, o, model.config.maxPositions));
}

/** tf.tidy for functions returning a decoder state (tidy keeps every tensor nested in the returned object). */
function tidyState(fn: () => DecoderState): DecoderState {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as DecoderState;
}

function disposeSelfCaches(s: DecoderState): void {
  for (const c of s.self) if (c) tf.dispose([c.k, c.v]);
}

/** One step under tidy: returns the new state (its self caches are new tensors) and the step's output. */
function step<T extends tf.TensorContainer>(
  model: Transformer,
  state: DecoderState,
  tokens: Int32Array,
  gates: GateTensors | undefined,
  pick: (lp: tf.Tensor2D) => T,
): { state: DecoderState; out: T } {
  const result = tf.tidy(() => {
    const r = model.decodeStep(state, tf.tensor1d(tokens, 'int32'), gates);
    return { self: r.state.self.map((c) => (c ? [c.k, c.v] : [])), out: pick(r.logProbs) };
  });
  const next: DecoderState = {
    ...state,
    step: state.step + 1,
    self: result.self.map((kv) => (kv.length ? { k: kv[0] as tf.Tensor4D, v: kv[1] as tf.Tensor4D } : null)),
  };
  disposeSelfCaches(state);
  return { state: next, out: result.out as T };
}

/** The first greedy decoder: all B rows every step until the last sentence ends. */
export async function legacyGreedyDecode(model: Transformer, src: Int32Array, B: number, S: number, o: DecodeOptions): Promise<number[][]> {
  const srcT = tf.tensor2d(src, [B, S], 'int32');
  let state = tidyState(() => model.startDecoding(srcT, o.gates));
  srcT.dispose();
  const srcLens = lengthsOf(src, B, S);
  const maxLen = Math.max(...srcLens.map((l) => maxOutputLength(l, o, model.config.maxPositions)));
  const outputs: number[][] = Array.from({ length: B }, () => []);
  const done = new Uint8Array(B);
  let tokens = new Int32Array(B).fill(BOS_ID);
  for (let t = 0; t < maxLen; t++) {
    const r = step(model, state, tokens, o.gates, (lp) => lp.argMax(1));
    state = r.state;
    const ids = (await r.out.data()) as Int32Array;
    r.out.dispose();
    tokens = new Int32Array(B);
    let allDone = true;
    for (let b = 0; b < B; b++) {
      if (!done[b]) {
        const limit = maxOutputLength(srcLens[b]!, o, model.config.maxPositions);
        if (ids[b] === EOS_ID || outputs[b]!.length >= limit) done[b] = 1;
        else outputs[b]!.push(ids[b]!);
      }
      tokens[b] = done[b] ? EOS_ID : ids[b]!;
      if (!done[b]) allDone = false;
    }
    if (allDone) break;
  }
  tf.dispose(stateTensors(state));
  return outputs;
}

/** Non-pad length of each row of a padded [B, S] id matrix. */
export function lengthsOf(ids: Int32Array, B: number, S: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    let n = 0;
    for (let s = 0; s < S; s++) if (ids[b * S + s] !== PAD_ID) n++;
    out.push(n);
  }
  return out;
}

interface Hypothesis {
  tokens: number[];
  score: number;
}

/** The first beam search: B x k rows every step (dead ones too) until the last sentence ends. */
export async function legacyBeamSearch(model: Transformer, src: Int32Array, B: number, S: number, o: DecodeOptions): Promise<number[][]> {
  const k = o.beamSize;
  if (k === 1) return legacyGreedyDecode(model, src, B, S, o);
  const V = model.vocabSize;
  const srcLens = lengthsOf(src, B, S);
  const limits = srcLens.map((l) => maxOutputLength(l, o, model.config.maxPositions));
  const maxLen = Math.max(...limits);
  // rows b*k .. b*k+k-1 are sentence b's beams
  const srcT = tf.tensor2d(src, [B, S], 'int32');
  const start = tidyState(() => model.startDecoding(srcT, o.gates));
  srcT.dispose();
  const tileIdx = tf.tensor1d(
    Array.from({ length: B * k }, (_, i) => Math.floor(i / k)),
    'int32',
  );
  let state = tidyState(() => model.selectRows(start, tileIdx));
  tf.dispose([...stateTensors(start), tileIdx]);

  let beamTokens: number[][] = Array.from({ length: B * k }, () => []);
  let beamScores = new Float32Array(B * k).fill(-Infinity);
  for (let b = 0; b < B; b++) beamScores[b * k] = 0; // only the first beam is live at the start
  const finished: Hypothesis[][] = Array.from({ length: B }, () => []);
  const isDone = new Uint8Array(B);
  let tokens = new Int32Array(B * k).fill(BOS_ID);

  for (let t = 0; t < maxLen; t++) {
    const scoresT = tf.tensor2d(beamScores, [B * k, 1]);
    const r = step(model, state, tokens, o.gates, (lp) => {
      // cumulative scores of every continuation, per sentence: [B, k*V] -> best 2k
      const total = lp.add(scoresT).reshape([B, k * V]);
      const { values, indices } = tf.topk(total, 2 * k);
      return [values, indices];
    });
    scoresT.dispose();
    state = r.state;
    const [valuesT, indicesT] = r.out as [tf.Tensor, tf.Tensor];
    const values = (await valuesT.data()) as Float32Array;
    const indices = (await indicesT.data()) as Int32Array;
    tf.dispose([valuesT, indicesT]);

    const nextRows = new Int32Array(B * k);
    const nextTokens = new Int32Array(B * k);
    const nextScores = new Float32Array(B * k).fill(-Infinity);
    const nextBeamTokens: number[][] = new Array(B * k);
    for (let b = 0; b < B; b++) {
      let filled = 0;
      if (!isDone[b]) {
        for (let j = 0; j < 2 * k && filled < k; j++) {
          const score = values[b * 2 * k + j]!;
          if (score === -Infinity) break;
          const flat = indices[b * 2 * k + j]!;
          const beam = Math.floor(flat / V);
          const token = flat % V;
          const row = b * k + beam;
          // </s>, or the continuation reaches the sentence's length limit: a finished hypothesis
          if (token === EOS_ID || beamTokens[row]!.length + 1 >= limits[b]!) {
            const toks = token === EOS_ID ? beamTokens[row]! : [...beamTokens[row]!, token];
            finished[b]!.push({ tokens: toks, score: score / lengthPenalty(toks.length + 1, o.lengthPenalty) });
            continue;
          }
          const out = b * k + filled;
          nextRows[out] = row;
          nextTokens[out] = token;
          nextScores[out] = score;
          nextBeamTokens[out] = [...beamTokens[row]!, token];
          filled++;
        }
        if (finished[b]!.length >= k || filled === 0) isDone[b] = 1;
      }
      for (let j = filled; j < k; j++) {
        // padding beams of a finished sentence: keep a dummy row, never live
        nextRows[b * k + j] = b * k;
        nextTokens[b * k + j] = EOS_ID;
        nextBeamTokens[b * k + j] = [];
      }
      if (isDone[b]) for (let j = 0; j < k; j++) nextScores[b * k + j] = -Infinity;
    }
    const rowsT = tf.tensor1d(nextRows, 'int32');
    // rows only move within a sentence's beams, so only the target-side caches need reordering
    const reordered = tidyState(() => model.reorderSelfCaches(state, rowsT));
    disposeSelfCaches(state);
    rowsT.dispose();
    state = reordered;
    beamTokens = nextBeamTokens;
    beamScores = nextScores;
    tokens = nextTokens;
    if (isDone.every((d) => d === 1)) break;
  }
  // sentences still running at the length limit: their live beams count as finished
  for (let b = 0; b < B; b++) {
    if (isDone[b]) continue;
    for (let j = 0; j < k; j++) {
      const s = beamScores[b * k + j]!;
      if (s > -Infinity) finished[b]!.push({ tokens: beamTokens[b * k + j]!, score: s / lengthPenalty(beamTokens[b * k + j]!.length + 1, o.lengthPenalty) });
    }
  }
  tf.dispose(stateTensors(state));
  return finished.map((hyps) => (hyps.length ? hyps.reduce((a, h) => (h.score > a.score ? h : a)).tokens : []));
}
