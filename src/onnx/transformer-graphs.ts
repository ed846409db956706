/**
 * The toolkit's Transformer as two ONNX graphs, from its (pruned, gates folded) float32 parameters in the
 * toolkit layout (linear weights [dIn, dOut], x @ W + b; see ../export/README.md):
 *
 *   encoder.onnx  src_ids [batch, src_len] int32 -> src_bias [batch, 1, 1, src_len] (-1e9 on padding, id 0),
 *                 and per decoder layer l with cross-attention heads: cross_key_l, cross_value_l
 *                 [batch, h_l, src_len, head_dim] (the source keys and values, once per sentence)
 *   decoder.onnx  one step for `rows` hypotheses: tokens [rows] int32 (the last token), position [1] int32
 *                 (its position, = the number of tokens before it), beam_rows [rows] int32 (the row of the
 *                 past caches each row continues: beam reordering happens inside the graph), src_bias and
 *                 cross_key_l / cross_value_l for these rows, past_key_l / past_value_l [past_rows, h_l,
 *                 past_len, head_dim] -> logits [rows, vocab], log_probs [rows, vocab] (their log-softmax),
 *                 present_key_l / present_value_l [rows, h_l, past_len + 1, head_dim]
 *
 * A layer left with no heads has no cache inputs or outputs: its attention adds W_O's bias only, as in the
 * toolkit (attention.ts). Everything else follows transformer.ts op for op: embeddings × sqrt(d) plus
 * sinusoidal positions, q scaled by 1/sqrt(head_dim) before QK^T, additive masks, softmax, pre- or post-norm
 * residual blocks with LayerNormalization (eps 1e-5), ReLU FFNs of per-layer width, tied or untied output.
 *
 * int8 (`int8: true`): every weight matrix is stored as int8 with one float32 scale per output channel (the
 * scheme and the very numbers of ../compress/quantize.ts), and each product with a weight matrix runs as ONNX
 * MatMulInteger on int8 × int8 with int32 accumulation: the activation rows are quantized on the fly,
 * symmetrically per row (per token): s = max(|x_row|, 1e-30) / 127, q = clip(round_half_even(x / s), -127,
 * 127); y = float(q_x @ q_W) · s · scale_W + b. Per-row scales keep every token's result independent of the
 * other rows of the batch (per-tensor DynamicQuantizeLinear would make a sentence's translation depend on
 * its batch). The attention products (QK^T, weights · V), softmax and layer norms stay float32. The
 * embedding table is stored once, transposed [d, V] int8: lookups gather its columns and scale them, and
 * the tied output layer multiplies by it.
 */
import type { ModelConfig } from '../config/schema.js';
import type { NamedArrays } from '../io/safetensors.js';
import { type HeadShape, headsPerLayer } from '../config/head-layout.js';
import { ffnWidth } from '../model/transformer.js';
import { sinusoidalTable } from '../model/layers.js';
import { quantizeInt8 } from '../compress/quantize.js';
import { CheckpointError } from '../util/errors.js';
import { type Dim, GraphBuilder } from './graph-builder.js';
import { ONNX_NAMES } from './layout.js';

export interface GraphOptions {
  int8: boolean;
}

const MODEL_KEYS_SUPPORTED = new Set([
  'encoderLayers',
  'decoderLayers',
  'heads',
  'dModel',
  'dFF',
  'dropout',
  'attentionDropout',
  'norm',
  'tieEmbeddings',
  'maxPositions',
  'keptHeads',
  'attentionPatterns',
  'ffnWidths',
  'moe',
]);

/** Options of imported models (src/import/) that the graphs support at their default value only. */
function isDefaultValue(c: ModelConfig, key: string, v: unknown): boolean {
  switch (key) {
    case 'activation':
      return v === 'relu';
    case 'positions':
      return v === 'interleaved';
    case 'embedScale':
      return v === Math.sqrt(c.dModel);
    case 'finalLogitsBias':
      return v === false;
    case 'neverGenerate':
      return Array.isArray(v) && v.length === 0;
    default:
      return false;
  }
}

/** Why a model cannot be exported as ONNX graphs (empty: it can). */
export function onnxUnsupported(c: ModelConfig): string[] {
  const problems: string[] = [];
  if (c.moe) problems.push('model.moe (mixture-of-experts FFNs) is not supported by the ONNX export');
  if (c.attentionPatterns) problems.push('model.attentionPatterns (sparse attention masks) is not supported by the ONNX export');
  for (const [k, v] of Object.entries(c as Record<string, unknown>)) {
    if (MODEL_KEYS_SUPPORTED.has(k) || v === null || v === undefined || isDefaultValue(c, k, v)) continue;
    problems.push(
      `model.${k} = ${JSON.stringify(v)} is not supported by the ONNX export (it builds the toolkit's own Transformer: ReLU FFNs, interleaved sinusoidal positions, embeddings x sqrt(dModel), no logits bias)`,
    );
  }
  return problems;
}

/** What builds both graphs: the parameters, the config, and the per-layer head counts. */
class TransformerGraph {
  readonly d: number;
  readonly dHead: number;
  readonly heads: HeadShape;
  private readonly used = new Set<string>();
  private readonly quantized = new Map<string, { q: string; scale: string }>();

  constructor(
    readonly g: GraphBuilder,
    readonly c: ModelConfig,
    readonly vocab: number,
    readonly params: NamedArrays,
    readonly o: GraphOptions,
  ) {
    this.d = c.dModel;
    this.dHead = c.dModel / c.heads;
    this.heads = headsPerLayer(c);
  }

  /** A float32 parameter as an initializer (once). */
  param(name: string): string {
    const p = this.params[name];
    if (!p) throw new CheckpointError(`onnx export: missing parameter ${name}`);
    if (!this.used.has(name)) {
      this.g.initializer(name, 'float32', p.shape, p.data);
      this.used.add(name);
    }
    return name;
  }

  /** An int8 matrix [dIn, dOut] with per-column scales [dOut] (quantize.ts's numbers), once. */
  private qparam(name: string, transposeFrom?: 'rows'): { q: string; scale: string } {
    const hit = this.quantized.get(name);
    if (hit) return hit;
    const p = this.params[name];
    if (!p) throw new CheckpointError(`onnx export: missing parameter ${name}`);
    const [rows, cols] = p.shape as [number, number];
    let out: { q: string; scale: string };
    if (transposeFrom === 'rows') {
      // an embedding [V, d]: one scale per token (row), stored transposed [d, V] so a token is a column
      const t = quantizeInt8(p.data, p.shape, 0);
      const qt = new Int8Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) qt[c * rows + r] = t.q[r * cols + c]!;
      out = { q: this.g.initializer(`${name}.T.int8`, 'int8', [cols, rows], qt), scale: this.g.initializer(`${name}.scale`, 'float32', [rows], t.scale) };
    } else {
      const t = quantizeInt8(p.data, p.shape, 1);
      out = { q: this.g.initializer(`${name}.int8`, 'int8', [rows, cols], t.q), scale: this.g.initializer(`${name}.scale`, 'float32', [cols], t.scale) };
    }
    this.quantized.set(name, out);
    return out;
  }

  private readonly scalars = new Map<number, string>();

  /** A float32 scalar constant, one initializer per value. */
  private scalar(v: number): string {
    let n = this.scalars.get(v);
    if (n === undefined) this.scalars.set(v, (n = this.g.constant('c', 'float32', [], [v])));
    return n;
  }

  private ints(values: number[]): string {
    return this.g.constant('shape', 'int64', [values.length], values);
  }

  /**
   * Per-row symmetric int8 quantization of x [..., dIn]: q (int8, same shape) and s [..., 1] with
   * x ≈ q · s, s = max(max|x_row|, 1e-30) / 127.
   */
  private quantizeRows(x: string): { q: string; s: string } {
    const g = this.g;
    const maxAbs = g.op('ReduceMax', [g.op('Abs', [x])], { axes: [-1], keepdims: 1 });
    const s = g.op('Div', [g.op('Max', [maxAbs, this.scalar(1e-30)]), this.scalar(127)]);
    const q = g.op('Cast', [g.op('Clip', [g.op('Round', [g.op('Div', [x, s])]), this.scalar(-127), this.scalar(127)])], { to: 3 /* INT8 */ });
    return { q, s };
  }

  /** x [..., dIn] @ W [dIn, dOut] + b: MatMul, or MatMulInteger on int8 rows and weights. */
  linear(x: string, w: string, b: string | null): string {
    const g = this.g;
    let y: string;
    if (this.o.int8) {
      const W = this.qparam(w);
      const { q, s } = this.quantizeRows(x);
      const acc = g.op('Cast', [g.op('MatMulInteger', [q, W.q])], { to: 1 /* FLOAT */ });
      y = g.op('Mul', [g.op('Mul', [acc, s]), W.scale]);
    } else y = g.op('MatMul', [x, this.param(w)]);
    return b ? g.op('Add', [y, this.param(b)]) : y;
  }

  layerNorm(x: string, prefix: string): string {
    return this.g.op('LayerNormalization', [x, this.param(`${prefix}.g`), this.param(`${prefix}.b`)], { axis: -1, epsilon: { float: 1e-5 } });
  }

  /** Pre-norm x + f(LN(x)), post-norm LN(x + f(x)). */
  residual(x: string, normName: string, f: (y: string) => string): string {
    if (this.c.norm === 'pre') return this.g.op('Add', [x, f(this.layerNorm(x, normName))]);
    return this.layerNorm(this.g.op('Add', [x, f(x)]), normName);
  }

  /** Token embeddings × sqrt(d) for ids [B, T] -> [B, T, d]. */
  embedTokens(ids: string, side: 'src' | 'tgt'): string {
    const g = this.g;
    const table = this.c.tieEmbeddings ? 'emb.shared' : side === 'src' ? 'emb.src' : 'emb.tgt';
    let e: string;
    if (this.o.int8) {
      const E = this.qparam(table, 'rows');
      // columns of E^T [d, V] -> [d, B, T] -> [B, T, d], times each token's scale
      const cols = g.op('Gather', [E.q, ids], { axis: 1 });
      const rows = g.op('Cast', [g.op('Transpose', [cols], { perm: [1, 2, 0] })], { to: 1 });
      const scale = g.op('Unsqueeze', [g.op('Gather', [E.scale, ids], { axis: 0 }), this.ints([-1])]);
      e = g.op('Mul', [rows, scale]);
    } else e = g.op('Gather', [this.param(table), ids], { axis: 0 });
    return g.op('Mul', [e, this.scalar(Math.sqrt(this.d))]);
  }

  positions(): string {
    const name = 'positions';
    if (!this.used.has(name)) {
      this.g.initializer(name, 'float32', [this.c.maxPositions, this.d], sinusoidalTable(this.c.maxPositions, this.d));
      this.used.add(name);
    }
    return name;
  }

  /** [B, T, h*dh] -> [B, h, T, dh] */
  splitHeads(x: string, h: number): string {
    return this.g.op('Transpose', [this.g.op('Reshape', [x, this.ints([0, 0, h, this.dHead])])], { perm: [0, 2, 1, 3] });
  }

  /** softmax(q/sqrt(dh) K^T + bias) V, heads merged, @ W_O + b_O. q [B, h, Tq, dh] unscaled; k, v [B, h, Tk, dh]. */
  attendQuery(prefix: string, h: number, q: string, k: string, v: string, bias: string | null): string {
    const g = this.g;
    const qs = g.op('Mul', [q, this.scalar(1 / Math.sqrt(this.dHead))]);
    let scores = g.op('MatMul', [qs, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]);
    if (bias) scores = g.op('Add', [scores, bias]);
    const weights = g.op('Softmax', [scores], { axis: -1 });
    const ctx = g.op('MatMul', [weights, v]); // [B, h, Tq, dh]
    const merged = g.op('Reshape', [g.op('Transpose', [ctx], { perm: [0, 2, 1, 3] }), this.ints([0, 0, h * this.dHead])]);
    return this.linear(merged, `${prefix}.wo`, `${prefix}.bo`);
  }

  /** A layer without heads: zeros + b_O, shaped like x. */
  emptyAttention(x: string, prefix: string): string {
    return this.g.op('Add', [this.g.op('Mul', [x, this.scalar(0)]), this.param(`${prefix}.bo`)]);
  }

  keysValues(prefix: string, h: number, x: string): { k: string; v: string } {
    return { k: this.splitHeads(this.linear(x, `${prefix}.wk`, `${prefix}.bk`), h), v: this.splitHeads(this.linear(x, `${prefix}.wv`, `${prefix}.bv`), h) };
  }

  ffn(x: string, prefix: string): string {
    const hidden = this.g.op('Relu', [this.linear(x, `${prefix}.w1`, `${prefix}.b1`)]);
    return this.linear(hidden, `${prefix}.w2`, `${prefix}.b2`);
  }

  logits(hidden2d: string): string {
    const g = this.g;
    if (!this.c.tieEmbeddings) return this.linear(hidden2d, 'out.proj', null);
    if (this.o.int8) {
      const E = this.qparam('emb.shared', 'rows');
      const { q, s } = this.quantizeRows(hidden2d);
      const acc = g.op('Cast', [g.op('MatMulInteger', [q, E.q])], { to: 1 });
      return g.op('Mul', [g.op('Mul', [acc, s]), E.scale]);
    }
    return g.op('Gemm', [hidden2d, this.param('emb.shared')], { transB: 1 });
  }
}

/** Sizes the graphs are built for, checked against the parameters. */
function checkParams(c: ModelConfig, vocab: number, params: NamedArrays): void {
  const table = params[c.tieEmbeddings ? 'emb.shared' : 'emb.src'];
  if (!table || table.shape[0] !== vocab || table.shape[1] !== c.dModel)
    throw new CheckpointError(`onnx export: embedding table of shape [${table?.shape ?? 'missing'}], expected [${vocab}, ${c.dModel}]`);
  const h = headsPerLayer(c);
  const dHead = c.dModel / c.heads;
  for (const [stack, prefix, layers] of [
    ['enc-self', 'enc', c.encoderLayers],
    ['dec-self', 'dec', c.decoderLayers],
    ['dec-enc', 'dec', c.decoderLayers],
  ] as const) {
    for (let l = 0; l < layers; l++) {
      const name = `${prefix}.${l}.${stack === 'dec-enc' ? 'cross' : 'self'}.wq`;
      const w = params[name];
      if (!w || w.shape[1] !== h[stack][l]! * dHead)
        throw new CheckpointError(
          `onnx export: ${name} has shape [${w?.shape ?? 'missing'}], expected [${c.dModel}, ${h[stack][l]! * dHead}] (${h[stack][l]} heads)`,
        );
    }
  }
}

/** encoder.onnx: src_ids -> src_bias, cross keys/values of every decoder layer that has cross heads. */
export function buildEncoderGraph(c: ModelConfig, vocab: number, params: NamedArrays, o: GraphOptions): GraphBuilder {
  checkParams(c, vocab, params);
  const g = new GraphBuilder('heads-encoder');
  const t = new TransformerGraph(g, c, vocab, params, o);
  const N = ONNX_NAMES;
  const ids = g.input(N.srcIds, 'int32', ['batch', 'src_len']);
  // padding bias [B, 1, 1, S]: -1e9 where the id is 0
  const isPad = g.op('Cast', [g.op('Equal', [ids, g.constant('pad', 'int32', [], [0])])], { to: 1 });
  const bias = g.op('Unsqueeze', [g.op('Mul', [isPad, g.constant('neg', 'float32', [], [-1e9])]), g.constant('axes', 'int64', [2], [1, 2])]);
  // positions 0 .. S-1
  const S = g.op('Shape', [ids], { start: 1, end: 2 });
  const pos = g.op('Slice', [t.positions(), g.constant('zero', 'int64', [1], [0]), S, g.constant('axis', 'int64', [1], [0])]);
  let x = g.op('Add', [t.embedTokens(ids, 'src'), pos]);
  for (let l = 0; l < c.encoderLayers; l++) {
    const h = t.heads['enc-self'][l]!;
    const prefix = `enc.${l}.self`;
    x = t.residual(x, `enc.${l}.ln1`, (y) => {
      if (h === 0) return t.emptyAttention(y, prefix);
      const { k, v } = t.keysValues(prefix, h, y);
      return t.attendQuery(prefix, h, t.splitHeads(t.linear(y, `${prefix}.wq`, `${prefix}.bq`), h), k, v, bias);
    });
    x = t.residual(x, `enc.${l}.ln2`, (y) => t.ffn(y, `enc.${l}.ffn`));
  }
  if (c.norm === 'pre' && c.encoderLayers > 0) x = t.layerNorm(x, 'enc.ln');
  g.output(N.srcBias, bias, 'float32', ['batch', 1, 1, 'src_len']);
  for (let l = 0; l < c.decoderLayers; l++) {
    const h = t.heads['dec-enc'][l]!;
    if (h === 0) continue;
    const { k, v } = t.keysValues(`dec.${l}.cross`, h, x);
    g.output(N.crossKey(l), k, 'float32', ['batch', h, 'src_len', t.dHead]);
    g.output(N.crossValue(l), v, 'float32', ['batch', h, 'src_len', t.dHead]);
  }
  return g;
}

/** decoder.onnx: one step over `rows` hypotheses with self caches grown by one position. */
export function buildDecoderGraph(c: ModelConfig, vocab: number, params: NamedArrays, o: GraphOptions): GraphBuilder {
  checkParams(c, vocab, params);
  const g = new GraphBuilder('heads-decoder');
  const t = new TransformerGraph(g, c, vocab, params, o);
  const N = ONNX_NAMES;
  const tokens = g.input(N.tokens, 'int32', ['rows']);
  const position = g.input(N.position, 'int32', [1]);
  const beamRows = g.input(N.beamRows, 'int32', ['rows']);
  const srcBias = g.input(N.srcBias, 'float32', ['rows', 1, 1, 'src_len']);
  const cacheDims = (h: number, len: Dim, rows: Dim = 'rows'): Dim[] => [rows, h, len, t.dHead];
  // [rows, 1, d]: the token embedding plus its position's row of the table
  const tok2 = g.op('Unsqueeze', [tokens, g.constant('axes', 'int64', [1], [1])]);
  let x = g.op('Add', [t.embedTokens(tok2, 'tgt'), g.op('Gather', [t.positions(), position], { axis: 0 })]);
  const outputs: Array<[string, string, Dim[]]> = [];
  for (let l = 0; l < c.decoderLayers; l++) {
    const hs = t.heads['dec-self'][l]!;
    const hc = t.heads['dec-enc'][l]!;
    const sp = `dec.${l}.self`;
    const cp = `dec.${l}.cross`;
    x = t.residual(x, `dec.${l}.ln1`, (y) => {
      if (hs === 0) return t.emptyAttention(y, sp);
      const pastK = g.input(N.pastKey(l), 'float32', cacheDims(hs, 'past_len', 'past_rows'));
      const pastV = g.input(N.pastValue(l), 'float32', cacheDims(hs, 'past_len', 'past_rows'));
      const kv = t.keysValues(sp, hs, y);
      const k = g.op('Concat', [g.op('Gather', [pastK, beamRows], { axis: 0 }), kv.k], { axis: 2 });
      const v = g.op('Concat', [g.op('Gather', [pastV, beamRows], { axis: 0 }), kv.v], { axis: 2 });
      outputs.push([N.presentKey(l), k, cacheDims(hs, 'present_len')], [N.presentValue(l), v, cacheDims(hs, 'present_len')]);
      return t.attendQuery(sp, hs, t.splitHeads(t.linear(y, `${sp}.wq`, `${sp}.bq`), hs), k, v, null);
    });
    x = t.residual(x, `dec.${l}.ln2`, (y) => {
      if (hc === 0) return t.emptyAttention(y, cp);
      const k = g.input(N.crossKey(l), 'float32', cacheDims(hc, 'src_len'));
      const v = g.input(N.crossValue(l), 'float32', cacheDims(hc, 'src_len'));
      return t.attendQuery(cp, hc, t.splitHeads(t.linear(y, `${cp}.wq`, `${cp}.bq`), hc), k, v, srcBias);
    });
    x = t.residual(x, `dec.${l}.ln3`, (y) => t.ffn(y, `dec.${l}.ffn`));
  }
  if (c.norm === 'pre') x = t.layerNorm(x, 'dec.ln');
  const hidden = g.op('Reshape', [x, g.constant('shape', 'int64', [2], [-1, c.dModel])]);
  const logits = t.logits(hidden);
  g.output(N.logits, logits, 'float32', ['rows', vocab]);
  // log-softmax in the runtime (vectorised) for beam search
  g.output(N.logProbs, g.op('LogSoftmax', [logits], { axis: -1 }), 'float32', ['rows', vocab]);
  for (const [name, value, dims] of outputs) g.output(name, value, 'float32', dims);
  return g;
}

/** Per-layer FFN widths (for the metadata). */
export function ffnWidthsOf(c: ModelConfig): { encoder: number[]; decoder: number[] } {
  return {
    encoder: Array.from({ length: c.encoderLayers }, (_, l) => ffnWidth(c, 'encoder', l)),
    decoder: Array.from({ length: c.decoderLayers }, (_, l) => ffnWidth(c, 'decoder', l)),
  };
}
