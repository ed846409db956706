/**
 * Beam search with Hugging Face's rules (`eval.beamRules: 'hf'`, set by `heads import marian`), so an
 * imported model translates as `MarianMTModel.generate` does (src/import/marian_reference.py is the
 * independent reference the tests compare with):
 *   - beam scores start at [0, -1e9, ..., -1e9]; each step takes the best 2k of (beam score + log-prob)
 *     per sentence over all k x V continuations;
 *   - a </s> candidate ranked below k (0-based rank >= k) is ignored; one ranked in the first k finishes a
 *     hypothesis scored sum_logprobs / len^lengthPenalty, len counting the tokens and the </s>; the
 *     other candidates fill the k beams in order;
 *   - a sentence is done once it has k hypotheses and the best running beam, normalised the same way,
 *     cannot beat the worst of them (early_stopping false);
 *   - the step at the length limit forces </s> (forced_eos_token_id: the only finite log-prob, 0 after
 *     renormalisation); sentences still running at the end add their live beams.
 * The gnmt rules (decode.ts, fast-decode.ts) stop at k finished hypotheses and use ((5 + len) / 6)^alpha.
 * Shapes: rows b*k .. b*k+k-1 are sentence b's beams.
 */
import * as tf from '@tensorflow/tfjs';
import { type DecoderState, type GateTensors, type Transformer, stateTensors } from '../model/transformer.js';
import { BOS_ID, EOS_ID } from './decode-rules.js';

interface Hyp {
  tokens: number[];
  score: number;
}

function tidyState(fn: () => DecoderState): DecoderState {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as DecoderState;
}

function addHyp(hyps: Hyp[], k: number, h: Hyp): void {
  if (hyps.length < k || h.score > Math.min(...hyps.map((x) => x.score))) {
    hyps.push(h);
    if (hyps.length > k) {
      let worst = 0;
      for (let i = 1; i < hyps.length; i++) if (hyps[i]!.score < hyps[worst]!.score) worst = i;
      hyps.splice(worst, 1);
    }
  }
}

/** HF-rule beam search of a padded source batch [B, S]; `limits[b]`: most tokens before </s>. */
export async function hfBeamSearch(
  model: Transformer,
  srcT: tf.Tensor2D,
  limits: readonly number[],
  o: { beamSize: number; lengthPenalty: number; gates?: GateTensors },
): Promise<number[][]> {
  const k = o.beamSize;
  const B = srcT.shape[0];
  const V = model.vocabSize;
  const start = tidyState(() => model.startDecoding(srcT, o.gates));
  const tile = tf.tensor1d(
    Array.from({ length: B * k }, (_, i) => Math.floor(i / k)),
    'int32',
  );
  let state = tidyState(() => model.selectRows(start, tile));
  tf.dispose([...stateTensors(start), tile]);
  let beams: number[][] = Array.from({ length: B * k }, () => []);
  let scores = new Float64Array(B * k).fill(-1e9);
  for (let b = 0; b < B; b++) scores[b * k] = 0;
  const hyps: Hyp[][] = Array.from({ length: B }, () => []);
  const done = new Uint8Array(B);
  let tokens = new Int32Array(B * k).fill(BOS_ID);
  const maxT = Math.max(...limits);
  const forcedMask = (rows: number[]) => {
    const m = new Float32Array(B * k * V).fill(-Infinity);
    for (const r of rows) m[r * V + EOS_ID] = 0;
    return m;
  };
  for (let t = 0; t <= maxT && !done.every((d) => d === 1); t++) {
    const forcedRows: number[] = [];
    for (let b = 0; b < B; b++) if (t >= limits[b]!) for (let j = 0; j < k; j++) forcedRows.push(b * k + j);
    const prev = state;
    const res = tf.tidy(() => {
      const r = model.decodeStep(prev, tf.tensor1d(tokens, 'int32'), o.gates);
      let lp: tf.Tensor2D = r.logProbs;
      if (forcedRows.length) {
        // forced </s>: every other token -inf, </s> log-prob 0 (renormalised); rows not forced keep theirs
        const isForced = new Float32Array(B * k);
        for (const row of forcedRows) isForced[row] = 1;
        const f = tf.tensor2d(isForced, [B * k, 1]);
        lp = tf.where(f.cast('bool').tile([1, V]), tf.tensor2d(forcedMask(forcedRows), [B * k, V]), r.logProbs) as tf.Tensor2D;
      }
      const total = lp.add(tf.tensor2d(Float32Array.from(scores), [B * k, 1])).reshape([B, k * V]);
      const { values, indices } = tf.topk(total, 2 * k);
      return { self: r.state.self.map((c) => (c ? [c.k, c.v] : [])), values, indices };
    });
    state = { ...prev, step: prev.step + 1, self: res.self.map((kv) => (kv.length ? { k: kv[0] as tf.Tensor4D, v: kv[1] as tf.Tensor4D } : null)) };
    for (const c of prev.self) if (c) tf.dispose([c.k, c.v]);
    const values = (await res.values.data()) as Float32Array;
    const indices = (await res.indices.data()) as Int32Array;
    tf.dispose([res.values, res.indices]);
    const nextRows = new Int32Array(B * k);
    const nextTokens = new Int32Array(B * k).fill(EOS_ID);
    const nextScores = new Float64Array(B * k).fill(-Infinity);
    const nextBeams: number[][] = Array.from({ length: B * k }, () => []);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < k; j++) nextRows[b * k + j] = b * k;
      if (done[b]) continue;
      let filled = 0;
      for (let j = 0; j < 2 * k && filled < k; j++) {
        const s = values[b * 2 * k + j]!;
        const flat = indices[b * 2 * k + j]!;
        const row = b * k + Math.floor(flat / V);
        const tok = flat % V;
        if (tok === EOS_ID) {
          if (j < k && s > -Infinity) addHyp(hyps[b]!, k, { tokens: beams[row]!, score: s / Math.pow(t + 1, o.lengthPenalty) });
          continue;
        }
        const out = b * k + filled++;
        nextRows[out] = row;
        nextTokens[out] = tok;
        nextScores[out] = s;
        nextBeams[out] = [...beams[row]!, tok];
      }
      let best = -Infinity;
      for (let j = 0; j < k; j++) best = Math.max(best, nextScores[b * k + j]!);
      const h = hyps[b]!;
      if (h.length >= k && Math.min(...h.map((x) => x.score)) >= best / Math.pow(t + 1, o.lengthPenalty)) done[b] = 1;
      if (t >= limits[b]!) done[b] = 1;
      if (done[b]) for (let j = 0; j < k; j++) nextScores[b * k + j] = -Infinity;
    }
    const rowsT = tf.tensor1d(nextRows, 'int32');
    const reordered = tidyState(() => model.reorderSelfCaches(state, rowsT));
    for (const c of state.self) if (c) tf.dispose([c.k, c.v]);
    rowsT.dispose();
    state = reordered;
    beams = nextBeams;
    scores = nextScores;
    tokens = nextTokens;
  }
  tf.dispose(stateTensors(state));
  return hyps.map((h) => (h.length ? h.reduce((a, x) => (x.score > a.score ? x : a)).tokens : []));
}
