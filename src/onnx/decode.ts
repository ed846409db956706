/**
 * Greedy and beam search over the exported encoder and decoder graphs (layout.ts, README.md), for any
 * ONNX Runtime flavour: it receives sessions with `run(feeds) -> outputs` and the runtime's Tensor class,
 * and imports nothing Node-only (onnxruntime-node is loaded by load-node.ts; a page passes
 * onnxruntime-web's). The search is the toolkit's (../eval/fast-decode.ts), step for step:
 *
 * - the encoder runs once per batch: the source padding bias and every decoder layer's cross-attention keys
 *   and values, kept per sentence and copied to the rows of its hypotheses when those rows change;
 * - each decoder step feeds the last tokens, their position, and `beam_rows` (which past row each row
 *   continues): the graph gathers the self-attention caches and appends one position, so reordering beams
 *   costs no copy here; the present caches are fed back unchanged;
 * - greedy: the argmax of the logits (lowest id on ties, as tf.argMax); beam search: the graph's log_probs
 *   (LogSoftmax in float32, as tf.logSoftmax), scores accumulated in float32, the 2k best
 *   continuations per sentence in tf.topk's order (higher first, lower beam * V + token on ties), </s> or the
 *   length limit finishing a hypothesis with score / ((5 + len) / 6)^alpha, a sentence done when it has k
 *   finished hypotheses or no live continuation, the best finished hypothesis returned;
 * - finished sentences leave the batch once the live ones are at most COMPACT_AT of the rows; the first beam
 *   step runs one row per sentence.
 * Token ids: 0 pad, 1 <s>, 2 </s>; outputs exclude </s>.
 */
import { BOS_ID, EOS_ID, PAD_ID, lengthPenalty, maxOutputLength } from '../eval/decode-rules.js';
import { ONNX_NAMES, type OnnxExportMetadata, cachedLayers } from './layout.js';

/** The part of an ONNX Runtime tensor the loop reads. */
export interface OrtTensorLike {
  readonly data: unknown;
  readonly dims: readonly number[];
  readonly type: string;
}

/** The part of an ONNX Runtime InferenceSession the loop uses (onnxruntime-node's and onnxruntime-web's fit). */
export interface OrtSessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
  /** `fetches`: the outputs wanted (ORT copies only those out) */
  run(feeds: Record<string, OrtTensorLike>, fetches: readonly string[]): Promise<Record<string, OrtTensorLike>>;
}

/** The runtime's Tensor class: `new Tensor('float32' | 'int32', data, dims)`. */
export type OrtTensorClass = new (type: 'float32' | 'int32', data: Float32Array | Int32Array, dims: readonly number[]) => OrtTensorLike;

/** An export folder opened in some runtime. */
export interface OnnxModel {
  encoder: OrtSessionLike;
  decoder: OrtSessionLike;
  metadata: OnnxExportMetadata;
  Tensor: OrtTensorClass;
}

export interface OnnxDecodeOptions {
  beamSize: number;
  lengthPenalty: number;
  maxLenA: number;
  maxLenB: number;
}

/** See fast-decode.ts: done sentences leave the batch once live ones are at most this share of the rows. */
const COMPACT_AT = 0.8;

function f32(t: OrtTensorLike | undefined, name: string): Float32Array {
  if (!t || !(t.data instanceof Float32Array)) throw new Error(`onnx decoder: output ${name} missing or not float32`);
  return t.data;
}

/** Encoder outputs kept per sentence. */
interface Source {
  B: number;
  S: number;
  bias: Float32Array; // [B, 1, 1, S]
  cross: Map<number, { k: Float32Array; v: Float32Array; heads: number }>; // [B, h, S, dh]
}

async function encode(m: OnnxModel, src: Int32Array, B: number, S: number): Promise<Source> {
  const N = ONNX_NAMES;
  const out = await m.encoder.run({ [N.srcIds]: new m.Tensor('int32', src, [B, S]) });
  const cross = new Map<number, { k: Float32Array; v: Float32Array; heads: number }>();
  for (const l of cachedLayers(m.metadata).cross)
    cross.set(l, { k: f32(out[N.crossKey(l)], N.crossKey(l)), v: f32(out[N.crossValue(l)], N.crossValue(l)), heads: m.metadata.headsPerLayer['dec-enc'][l]! });
  return { B, S, bias: f32(out[N.srcBias], N.srcBias), cross };
}

/** Copy per-sentence blocks of `size` values to rows: out[r] = x[sentence[r]]. */
function rowsOf(x: Float32Array, size: number, sentence: readonly number[]): Float32Array {
  const out = new Float32Array(sentence.length * size);
  sentence.forEach((b, r) => out.set(x.subarray(b * size, (b + 1) * size), r * size));
  return out;
}

/**
 * The decoder's step state: which sentence each row belongs to (the source inputs follow it), the source
 * feeds for those rows, and the present caches of the last step.
 */
class StepRunner {
  private rowSentence: number[] = [];
  private sourceFeeds: Record<string, OrtTensorLike> = {};
  private past: Record<string, OrtTensorLike> = {};
  private readonly dh: number;
  private readonly self: number[];
  /** the graph's log_probs output (exports of version 1 written before it existed lack it) */
  readonly hasLogProbs: boolean;

  constructor(
    private readonly m: OnnxModel,
    private readonly src: Source,
    rows: number,
  ) {
    this.dh = m.metadata.headDim;
    this.self = cachedLayers(m.metadata).self;
    const N = ONNX_NAMES;
    this.hasLogProbs = m.decoder.outputNames.includes(N.logProbs);
    // zero-length caches for the first step
    for (const l of this.self) {
      const h = m.metadata.headsPerLayer['dec-self'][l]!;
      this.past[N.pastKey(l)] = new m.Tensor('float32', new Float32Array(0), [rows, h, 0, this.dh]);
      this.past[N.pastValue(l)] = new m.Tensor('float32', new Float32Array(0), [rows, h, 0, this.dh]);
    }
  }

  /** Rows now belong to `sentence` (one entry per row); rebuilds the source feeds when that changed. */
  private setRows(sentence: readonly number[]): void {
    if (sentence.length === this.rowSentence.length && sentence.every((b, i) => b === this.rowSentence[i])) return;
    const N = ONNX_NAMES;
    const { S } = this.src;
    const feeds: Record<string, OrtTensorLike> = { [N.srcBias]: new this.m.Tensor('float32', rowsOf(this.src.bias, S, sentence), [sentence.length, 1, 1, S]) };
    for (const [l, c] of this.src.cross) {
      const size = c.heads * S * this.dh;
      feeds[N.crossKey(l)] = new this.m.Tensor('float32', rowsOf(c.k, size, sentence), [sentence.length, c.heads, S, this.dh]);
      feeds[N.crossValue(l)] = new this.m.Tensor('float32', rowsOf(c.v, size, sentence), [sentence.length, c.heads, S, this.dh]);
    }
    this.sourceFeeds = feeds;
    this.rowSentence = [...sentence];
  }

  /**
   * One step: row r continues past row `beamRows[r]` with `tokens[r]` at `position`, and belongs to
   * sentence `sentence[r]`. Returns the logits [rows, V], or with `want` 'log_probs' (when the graph has
   * it) their log-softmax.
   */
  async step(
    tokens: Int32Array,
    position: number,
    beamRows: Int32Array,
    sentence: readonly number[],
    want: 'logits' | 'log_probs' = 'logits',
  ): Promise<Float32Array> {
    const N = ONNX_NAMES;
    this.setRows(sentence);
    const R = tokens.length;
    const wanted = want === 'log_probs' && this.hasLogProbs ? N.logProbs : N.logits;
    const out = await this.m.decoder.run(
      {
        ...this.sourceFeeds,
        ...this.past,
        [N.tokens]: new this.m.Tensor('int32', tokens, [R]),
        [N.position]: new this.m.Tensor('int32', Int32Array.of(position), [1]),
        [N.beamRows]: new this.m.Tensor('int32', beamRows, [R]),
      },
      [wanted, ...this.self.flatMap((l) => [N.presentKey(l), N.presentValue(l)])],
    );
    const past: Record<string, OrtTensorLike> = {};
    for (const l of this.self) {
      past[N.pastKey(l)] = out[N.presentKey(l)]!;
      past[N.pastValue(l)] = out[N.presentValue(l)]!;
    }
    this.past = past;
    return f32(out[wanted], wanted);
  }
}

/** Non-pad length of each row of a padded [B, S] id matrix. */
function lengthsOf(src: Int32Array, B: number, S: number): number[] {
  return Array.from({ length: B }, (_, b) => {
    let n = 0;
    for (let s = 0; s < S; s++) if (src[b * S + s] !== PAD_ID) n++;
    return n;
  });
}

function limitsOf(m: OnnxModel, src: Int32Array, B: number, S: number, o: OnnxDecodeOptions): number[] {
  return lengthsOf(src, B, S).map((l) => maxOutputLength(l, o, m.metadata.maxPositions));
}

/** Greedy decoding of a padded source batch src [B, S]: token ids without </s>, per sentence. */
export async function onnxGreedy(m: OnnxModel, src: Int32Array, B: number, S: number, o: OnnxDecodeOptions): Promise<number[][]> {
  const limits = limitsOf(m, src, B, S, o);
  const V = m.metadata.vocabSize;
  const runner = new StepRunner(m, await encode(m, src, B, S), B);
  const outputs: number[][] = Array.from({ length: B }, () => []);
  let slots = Array.from({ length: B }, (_, b) => b); // the sentence of each row, -1 once done
  let sentence = [...slots]; // the sentence whose source each row reads (kept for done rows)
  let beamRows = Int32Array.from(slots);
  let tokens = new Int32Array(B).fill(BOS_ID);
  let live = B;
  const maxLen = Math.max(...limits);
  for (let t = 0; t < maxLen && live; t++) {
    const logits = await runner.step(tokens, t, beamRows, sentence);
    tokens = new Int32Array(slots.length).fill(EOS_ID);
    slots = slots.map((b, r) => {
      if (b < 0) return -1;
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[r * V + v]! > logits[r * V + best]!) best = v;
      if (best === EOS_ID || outputs[b]!.length >= limits[b]!) return -1;
      outputs[b]!.push(best);
      tokens[r] = best;
      return b;
    });
    live = slots.filter((b) => b >= 0).length;
    beamRows = Int32Array.from(slots, (_, r) => r);
    if (live && live <= COMPACT_AT * slots.length) {
      const keep = slots.flatMap((b, r) => (b >= 0 ? [r] : []));
      beamRows = Int32Array.from(keep);
      tokens = Int32Array.from(keep, (r) => tokens[r]!);
      slots = keep.map((r) => slots[r]!);
      sentence = keep.map((r) => sentence[r]!);
    }
  }
  return outputs;
}

interface Hypothesis {
  tokens: number[];
  score: number;
}

/** Row-wise float32 log-softmax pieces: shifted = fround(x - max) in place of the row, and lse = fround(log Σ exp(shifted)). */
function shiftRow(logits: Float32Array, o: number, V: number): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) if (logits[o + v]! > m) m = logits[o + v]!;
  let sum = 0;
  for (let v = 0; v < V; v++) {
    const s = Math.fround(logits[o + v]! - m);
    logits[o + v] = s;
    sum += Math.exp(s);
  }
  return Math.fround(Math.log(sum));
}

/** Beam search over src [B, S]; the best hypothesis (ids without </s>) per sentence. beamSize 1 is greedy. */
export async function onnxBeam(m: OnnxModel, src: Int32Array, B: number, S: number, o: OnnxDecodeOptions): Promise<number[][]> {
  const k = o.beamSize;
  if (k === 1) return onnxGreedy(m, src, B, S, o);
  const limits = limitsOf(m, src, B, S, o);
  const V = m.metadata.vocabSize;
  const runner = new StepRunner(m, await encode(m, src, B, S), B);
  const finished: Hypothesis[][] = Array.from({ length: B }, () => []);
  // slot i owns rows i*width .. i*width+width-1 (width 1 before the first step, then k); -1 once done
  let slots = Array.from({ length: B }, (_, b) => b);
  let sentenceOfSlot = [...slots];
  let width = 1;
  let beamTokens: number[][] = Array.from({ length: B }, () => []);
  let scores = new Float32Array(B);
  let tokens = new Int32Array(B).fill(BOS_ID);
  let beamRows = Int32Array.from(slots);
  let live = B;
  const maxLen = Math.max(...limits);
  const n = 2 * k;
  const vals = new Float32Array(n);
  const idx = new Int32Array(n);
  for (let t = 0; t < maxLen && live; t++) {
    const rowSentence = Array.from({ length: slots.length * width }, (_, r) => sentenceOfSlot[Math.floor(r / width)]!);
    // log-probabilities from the graph (LogSoftmax), else the logits normalised here
    const logits = await runner.step(tokens, t, beamRows, rowSentence, 'log_probs');
    const normalised = runner.hasLogProbs;
    const nextRows: number[] = [];
    const nextTokens: number[] = [];
    const nextScores: number[] = [];
    const nextBeamTokens: number[][] = [];
    const nextSlots: number[] = [];
    const dead = (i: number) => {
      nextRows.push(i * width);
      nextTokens.push(EOS_ID);
      nextScores.push(-Infinity);
      nextBeamTokens.push([]);
    };
    for (let i = 0; i < slots.length; i++) {
      const b = slots[i]!;
      if (b < 0) {
        for (let j = 0; j < k; j++) dead(i);
        nextSlots.push(-1);
        continue;
      }
      // the 2k best fround(logProb + score) over the slot's rows, in tf.topk's order
      vals.fill(-Infinity);
      idx.fill(-1);
      for (let beam = 0; beam < width; beam++) {
        const r = i * width + beam;
        const s = scores[r]!;
        if (s === -Infinity) continue;
        const off = r * V;
        const lse = normalised ? 0 : shiftRow(logits, off, V);
        let min = vals[n - 1]!;
        for (let v = 0; v < V; v++) {
          const x = Math.fround(Math.fround(logits[off + v]! - lse) + s);
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
      let filled = 0;
      const start = nextRows.length;
      for (let j = 0; j < n && filled < k; j++) {
        const score = vals[j]!;
        if (score === -Infinity) break;
        const beam = Math.floor(idx[j]! / V);
        const token = idx[j]! % V;
        const row = i * width + beam;
        if (token === EOS_ID || beamTokens[row]!.length + 1 >= limits[b]!) {
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
    live = nextSlots.filter((b) => b >= 0).length;
    const compact = width === 1 || live <= COMPACT_AT * nextSlots.length;
    const keep = compact ? nextSlots.flatMap((b, i) => (b >= 0 ? Array.from({ length: k }, (_, j) => i * k + j) : [])) : null;
    const pick = <T>(xs: T[]): T[] => (keep ? keep.map((j) => xs[j]!) : xs);
    if (compact) sentenceOfSlot = nextSlots.flatMap((b, i) => (b >= 0 ? [sentenceOfSlot[i]!] : []));
    slots = compact ? nextSlots.filter((b) => b >= 0) : nextSlots;
    width = k;
    beamRows = Int32Array.from(pick(nextRows));
    beamTokens = pick(nextBeamTokens);
    scores = Float32Array.from(pick(nextScores));
    tokens = Int32Array.from(pick(nextTokens));
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

/**
 * Teacher-forced logits: the decoder run step by step over tgtIn [B, T] (starting with <s>), every row its
 * own sentence; returns [B * T, V] in row-major (b, t) order, as Transformer.forward's logits.
 */
export async function onnxTeacherForcedLogits(m: OnnxModel, src: Int32Array, B: number, S: number, tgtIn: Int32Array, T: number): Promise<Float32Array> {
  const V = m.metadata.vocabSize;
  const runner = new StepRunner(m, await encode(m, src, B, S), B);
  const rows = Array.from({ length: B }, (_, b) => b);
  const out = new Float32Array(B * T * V);
  for (let t = 0; t < T; t++) {
    const logits = await runner.step(
      Int32Array.from(rows, (b) => tgtIn[b * T + t]!),
      t,
      Int32Array.from(rows),
      rows,
    );
    for (let b = 0; b < B; b++) out.set(logits.subarray(b * V, (b + 1) * V), (b * T + t) * V);
  }
  return out;
}

export interface TextCodecLike {
  encode(text: string): number[];
  decode(ids: number[]): string;
}

/**
 * Translate raw sentences as ../eval/translate.ts does: encode (at most maxPositions - 2 tokens, then </s>),
 * sort by length, batches of at most `batchSentences` sentences and `maxTokensPerBatch` source tokens,
 * decode (beam search, greedy for beam 1), detokenise, outputs in input order.
 */
export async function translateWithOnnx(
  m: OnnxModel,
  codec: TextCodecLike,
  sentences: readonly string[],
  o: OnnxDecodeOptions & { batchSentences: number; maxTokensPerBatch: number; onProgress?: (done: number, total: number, elapsedMs: number) => void },
): Promise<{ outputs: string[]; stats: { sentences: number; elapsedMs: number; sentencesPerSec: number; outputTokens: number } }> {
  const t0 = performance.now();
  const maxSrc = m.metadata.maxPositions - 1;
  const encoded = sentences.map((s) => [...codec.encode(s).slice(0, maxSrc - 1), EOS_ID]);
  const order = encoded.map((_, i) => i).sort((a, b) => encoded[a]!.length - encoded[b]!.length);
  const outputs: string[] = new Array(sentences.length).fill('');
  let outputTokens = 0;
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && end - start < o.batchSentences && (end - start + 1) * encoded[order[end]!]!.length <= o.maxTokensPerBatch) end++;
    const idx = order.slice(start, end);
    start = end;
    const B = idx.length;
    const S = Math.max(...idx.map((i) => encoded[i]!.length));
    const src = new Int32Array(B * S);
    idx.forEach((i, b) => src.set(encoded[i]!, b * S));
    const hyps = await onnxBeam(m, src, B, S, o);
    idx.forEach((i, b) => {
      outputs[i] = codec.decode(hyps[b]!);
      outputTokens += hyps[b]!.length;
    });
    o.onProgress?.(start, order.length, performance.now() - t0);
  }
  const elapsedMs = performance.now() - t0;
  return { outputs, stats: { sentences: sentences.length, elapsedMs, sentencesPerSec: (sentences.length / elapsedMs) * 1000, outputTokens } };
}
