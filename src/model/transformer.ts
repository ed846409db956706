/**
 * The encoder-decoder Transformer, read top to bottom: parameters, embedding, encoder layers, decoder
 * layers, output projection, then incremental decoding with cached keys and values. Every attention
 * (enc-self, dec-self, dec-enc) receives a per-layer gate tensor (or null for "all ones") through
 * `GateTensors`. Pre-norm (the reference implementation's choice) or post-norm residual blocks. Sparse
 * attention patterns (`model.attentionPatterns`, attention-patterns.ts) add their masks to the biases.
 * Mixture-of-experts layers (`model.moe`, moe.ts) replace the FFNs of the chosen stacks. A forward may
 * see each weight through a `weightView` (quantization-aware training's fake quantization, train/).
 * Shapes: token ids [B, T] int32 (0 = pad); hidden [B, T, d]; logits [B*T, V].
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../config/schema.js';
import type { AttentionType } from '../config/head-id.js';
import { type HeadShape, headsPerLayer } from '../config/head-layout.js';
import { Rng } from '../util/random.js';
import { ParamStore } from './params.js';
import { ForwardContext, causalBias, dropout, feedForward, layerNorm, linear, paddingBias, residualLayerNorm, sinusoidalTable } from './layers.js';
import { type AttentionParams, type AttentionRecord, attend, attendQuery, attention, gateForContext, projectKeysValues, splitHeads } from './attention.js';
import { cacheContext, cacheScores, hasKvCache, hasNativeFusedMatMul } from '../backend/kv-cache-kernel.js';
import { patternBias, patternOf } from './attention-patterns.js';
import { type RoutingRecord, expertCapacity, mixtureOfExperts } from './moe.js';

/**
 * What a forward pass uses in place of weight `name` (e.g. its int8 fake quantization); called at most once
 * per weight per forward, on the gradient tape when training.
 */
export type WeightView = (name: string, w: tf.Tensor) => tf.Tensor;

/** Per attention type, per layer: the gate multiplying each head's context (null: no gate, i.e. ones). */
export type GateTensors = Partial<Record<AttentionType, ReadonlyArray<tf.Tensor | null>>>;

export interface ForwardOptions {
  isTraining: boolean;
  /** seed for this forward's dropout stream (per step) */
  seed?: number;
  gates?: GateTensors;
  /**
   * Called with each attention's weights and per-head context, for analysis. Without a gradient tape the
   * tensors are freed when the sub-layer ends: read them in the callback or `tf.keep` them.
   */
  record?: (stack: AttentionType, layer: number, r: AttentionRecord) => void;
  /**
   * Called with each mixture-of-experts layer's routing (model.moe): its load-balancing loss (on the
   * gradient tape in training; freed with the sub-layer in eval, like `record`) and expert usage.
   */
  routing?: (stack: 'encoder' | 'decoder', layer: number, r: RoutingRecord) => void;
  /** what this forward uses in place of each weight (absent: the weights themselves) */
  weightView?: WeightView;
}

/**
 * A stack (encoder or decoder) run from one of its layers on: `input` is what that layer takes (the
 * output of the layers below, e.g. collected by an earlier pass with `collect`). The layers below are not
 * run; whatever they would have computed must be what `input` holds (head ablations: heads above them).
 */
export interface StackFrom {
  layer: number;
  input: tf.Tensor3D;
}

/** Stack options beyond the gates: start at a layer (`from`), and collect each layer's input (`collect[l]`, kept). */
export interface StackOptions extends Pick<ForwardOptions, 'gates' | 'record' | 'routing'> {
  from?: StackFrom;
  collect?: tf.Tensor3D[];
}

/** Incremental decoder state: cached keys/values of every decoder layer. */
export interface DecoderState {
  /** source keys/values per decoder layer (fixed) */
  cross: Array<{ k: tf.Tensor4D; v: tf.Tensor4D }>;
  /** target keys/values so far per decoder layer [B, h, t, dHead] */
  self: Array<{ k: tf.Tensor4D; v: tf.Tensor4D } | null>;
  srcBias: tf.Tensor4D;
  memory: tf.Tensor3D;
  step: number;
  /**
   * Per decoder layer, [wq | wk | wv] and [bq | bk | bv] as one matrix and bias (null: a layer without
   * heads), when decoding asked for them: the step's queries, keys and values in one product (the same
   * numbers as three). Absent: three products.
   */
  selfQkv?: Array<{ w: tf.Tensor2D; b: tf.Tensor1D } | null>;
  /**
   * Per decoder layer, preallocated self-attention caches K and V [rowsCap, Tcap, h*dHead] (null: a layer
   * without heads), when decoding asked for them (with selfQkv, on a backend with the cache kernels,
   * backend/kv-cache-kernel.ts): positions 0..step-1 of rows 0.. hold the keys and values, each step
   * writes its own in place, `self` stays null, and the caller reorders rows with `cacheRows`.
   */
  selfCache?: Array<{ k: tf.Tensor3D; v: tf.Tensor3D } | null>;
  /** with selfCache and the native _FusedMatMul: each step's linear layers add their biases in the products' epilogue (ForwardContext.fusedBias) */
  fusedBias?: boolean;
}

/** The largest in-place self-attention caches (floats, all layers) startDecoding allocates: 1 GB. */
const MAX_CACHE_FLOATS = 2 ** 28;

/** The MoE layers' per-batch input: which rows are real tokens, and the capacity (null: no limit). */
interface MoeInput {
  tokenMask: tf.Tensor1D;
  capacity: number | null;
}

function addAttentionParams(ps: ParamStore, prefix: string, d: number, h: number, dHead: number, rng: Rng): void {
  for (const m of ['q', 'k', 'v']) {
    ps.addLinear(`${prefix}.w${m}`, d, h * dHead, rng);
    ps.addConstant(`${prefix}.b${m}`, [h * dHead], 0);
  }
  ps.addLinear(`${prefix}.wo`, h * dHead, d, rng);
  ps.addConstant(`${prefix}.bo`, [d], 0);
}

function addNorm(ps: ParamStore, prefix: string, d: number): void {
  ps.addConstant(`${prefix}.g`, [d], 1);
  ps.addConstant(`${prefix}.b`, [d], 0);
}

function addFfn(ps: ParamStore, prefix: string, d: number, dFF: number, rng: Rng): void {
  ps.addLinear(`${prefix}.w1`, d, dFF, rng);
  ps.addConstant(`${prefix}.b1`, [dFF], 0);
  ps.addLinear(`${prefix}.w2`, dFF, d, rng);
  ps.addConstant(`${prefix}.b2`, [d], 0);
}

/**
 * FFN hidden units of one layer: `dFF`, or the layer's width after FFN-neuron pruning (`ffnWidths`; absent
 * in checkpoints saved before the key existed, hence the optional chaining).
 */
export function ffnWidth(c: ModelConfig, stack: 'encoder' | 'decoder', layer: number): number {
  return c.ffnWidths?.[stack]?.[layer] ?? c.dFF;
}

/**
 * The mixture-of-experts settings when `stack`'s FFNs are MoE layers, else null (`moe` is absent in
 * checkpoints saved before the key existed).
 */
export function moeOf(c: ModelConfig, stack: 'encoder' | 'decoder'): NonNullable<ModelConfig['moe']> | null {
  const m = c.moe ?? null;
  return m && (m.layers === 'all' || m.layers === stack) ? m : null;
}

/** A feed-forward sub-layer's parameters: a plain FFN (`enc.0.ffn.*`) or a router and E experts (`enc.0.moe.*`). */
function addFeedForward(ps: ParamStore, c: ModelConfig, stack: 'encoder' | 'decoder', layer: number, rng: Rng): void {
  const prefix = `${stack === 'encoder' ? 'enc' : 'dec'}.${layer}`;
  const moe = moeOf(c, stack);
  if (!moe) return addFfn(ps, `${prefix}.ffn`, c.dModel, ffnWidth(c, stack, layer), rng);
  ps.addLinear(`${prefix}.moe.router.w`, c.dModel, moe.experts, rng);
  for (let e = 0; e < moe.experts; e++) addFfn(ps, `${prefix}.moe.e${e}`, c.dModel, c.dFF, rng);
}

/** Create the parameters of a model with the given shape, initialised from `rng`. */
export function initParams(c: ModelConfig, vocabSize: number, rng: Rng): ParamStore {
  const ps = new ParamStore();
  const d = c.dModel;
  const dHead = d / c.heads;
  const heads = headsPerLayer(c);
  if (c.tieEmbeddings) ps.addNormal('emb.shared', [vocabSize, d], Math.pow(d, -0.5), rng);
  else {
    ps.addNormal('emb.src', [vocabSize, d], Math.pow(d, -0.5), rng);
    ps.addNormal('emb.tgt', [vocabSize, d], Math.pow(d, -0.5), rng);
    ps.addLinear('out.proj', d, vocabSize, rng);
  }
  for (let l = 0; l < c.encoderLayers; l++) {
    addNorm(ps, `enc.${l}.ln1`, d);
    addAttentionParams(ps, `enc.${l}.self`, d, heads['enc-self'][l]!, dHead, rng);
    addNorm(ps, `enc.${l}.ln2`, d);
    addFeedForward(ps, c, 'encoder', l, rng);
  }
  if (c.norm === 'pre' && c.encoderLayers > 0) addNorm(ps, 'enc.ln', d);
  for (let l = 0; l < c.decoderLayers; l++) {
    addNorm(ps, `dec.${l}.ln1`, d);
    addAttentionParams(ps, `dec.${l}.self`, d, heads['dec-self'][l]!, dHead, rng);
    addNorm(ps, `dec.${l}.ln2`, d);
    addAttentionParams(ps, `dec.${l}.cross`, d, heads['dec-enc'][l]!, dHead, rng);
    addNorm(ps, `dec.${l}.ln3`, d);
    addFeedForward(ps, c, 'decoder', l, rng);
  }
  if (c.norm === 'pre') addNorm(ps, 'dec.ln', d);
  if (c.finalLogitsBias) ps.addConstant('out.bias', [vocabSize], 0);
  return ps;
}

export class Transformer {
  readonly shape: HeadShape;
  readonly dHead: number;
  private readonly positions: tf.Tensor2D;
  /** the weight view of the forward in progress and the views it made (forward is synchronous) */
  private view: { f: WeightView; made: Map<string, tf.Tensor>; owned: tf.Tensor[]; isTraining: boolean } | null = null;

  constructor(
    readonly config: ModelConfig,
    readonly vocabSize: number,
    readonly params: ParamStore,
  ) {
    this.shape = headsPerLayer(config);
    this.dHead = config.dModel / config.heads;
    this.positions = tf.tensor2d(sinusoidalTable(config.maxPositions, config.dModel, config.positions ?? 'interleaved'), [config.maxPositions, config.dModel]);
  }

  dispose(): void {
    this.params.dispose();
    this.positions.dispose();
  }

  private p(name: string): tf.Tensor {
    const w = this.params.get(name);
    if (this.view === null) return w;
    let t = this.view.made.get(name);
    if (t === undefined) {
      t = this.view.f(name, w);
      // in training the tape owns new views; in eval they outlive the per-sub-layer tidies until forward ends
      if (t !== w && !this.view.isTraining) this.view.owned.push(tf.keep(t));
      this.view.made.set(name, t);
    }
    return t;
  }

  attentionParams(prefix: string, nHeads: number): AttentionParams {
    const g = (n: string) => this.p(`${prefix}.${n}`);
    return { wq: g('wq'), bq: g('bq'), wk: g('wk'), bk: g('bk'), wv: g('wv'), bv: g('bv'), wo: g('wo'), bo: g('bo'), nHeads, dHead: this.dHead };
  }

  private norm(x: tf.Tensor, prefix: string, ctx?: ForwardContext): tf.Tensor {
    return layerNorm(x, this.p(`${prefix}.g`), this.p(`${prefix}.b`), 1e-5, ctx?.noGrad === true && !ctx.isTraining);
  }

  /**
   * Residual sub-layer in the configured order: pre-norm x + f(LN(x)), post-norm LN(x + f(x)).
   * Without gradients being recorded (eval, decoding), each sub-layer runs in its own tidy so its
   * intermediates ([B, h, T, T] scores above all) are freed at once instead of piling up in the wasm heap.
   * Under a gradient tape the tape keeps what backward needs, so the tidy changes nothing there.
   */
  private residual(x: tf.Tensor, normName: string, ctx: ForwardContext, f: (y: tf.Tensor) => tf.Tensor): tf.Tensor {
    const run = () => {
      if (this.config.norm === 'pre') return x.add(dropout(f(this.norm(x, normName, ctx)), ctx.dropout, ctx));
      return residualLayerNorm(x, f(x), this.p(`${normName}.g`), this.p(`${normName}.b`), ctx);
    };
    return ctx.isTraining ? run() : tf.tidy(run);
  }

  /** Token embedding * sqrt(d) (or model.embedScale) + sinusoidal position (starting at `offset`), then dropout. */
  embed(ids: tf.Tensor2D, side: 'src' | 'tgt', ctx: ForwardContext, offset = 0): tf.Tensor3D {
    const [B, T] = ids.shape;
    if (offset + T > this.config.maxPositions) throw new Error(`sequence of length ${offset + T} exceeds model.maxPositions = ${this.config.maxPositions}`);
    const table = this.config.tieEmbeddings ? this.p('emb.shared') : this.p(side === 'src' ? 'emb.src' : 'emb.tgt');
    const e = tf.gather(table, ids.reshape([B * T])).mul(this.config.embedScale ?? Math.sqrt(this.config.dModel));
    const pos = this.positions.slice([offset, 0], [T, this.config.dModel]);
    return dropout(e.reshape([B, T, this.config.dModel]).add(pos), ctx.dropout, ctx) as tf.Tensor3D;
  }

  /**
   * The feed-forward sub-layer of `stack`'s layer `layer`: the plain FFN, or the mixture of experts with
   * `tokenMask` [B*T] (1 for real tokens) and, in training, the per-expert capacity of this batch.
   */
  private ffn(
    x: tf.Tensor,
    stack: 'encoder' | 'decoder',
    layer: number,
    ctx: ForwardContext,
    moeInput: MoeInput | null,
    routing: ForwardOptions['routing'],
  ): tf.Tensor {
    const prefix = `${stack === 'encoder' ? 'enc' : 'dec'}.${layer}`;
    const moe = moeOf(this.config, stack);
    if (!moe)
      return feedForward(
        x,
        this.p(`${prefix}.ffn.w1`),
        this.p(`${prefix}.ffn.b1`),
        this.p(`${prefix}.ffn.w2`),
        this.p(`${prefix}.ffn.b2`),
        ctx,
        this.config.activation,
      );
    const g = (n: string) => this.p(`${prefix}.moe.${n}`);
    const experts = Array.from({ length: moe.experts }, (_, e) => ({ w1: g(`e${e}.w1`), b1: g(`e${e}.b1`), w2: g(`e${e}.w2`), b2: g(`e${e}.b2`) }));
    const { y, record } = mixtureOfExperts(
      x,
      { router: g('router.w'), experts },
      { topK: moe.topK, capacity: moeInput?.capacity ?? null },
      ctx,
      moeInput?.tokenMask ?? null,
    );
    routing?.(stack, layer, record);
    return y;
  }

  /**
   * What the MoE layers of one stack need for a batch of token ids [B, T]: the non-pad mask and, in
   * training only, the capacity ceil(capacityFactor * non-pad tokens * topK / E). Evaluation and decoding
   * have no capacity limit, so cached decoding equals the teacher-forced forward. Null without MoE.
   */
  private moeInput(ids: tf.Tensor2D, stack: 'encoder' | 'decoder', ctx: ForwardContext): MoeInput | null {
    const moe = moeOf(this.config, stack);
    if (!moe) return null;
    const tokenMask = ids.reshape([-1]).notEqual(0).cast('float32') as tf.Tensor1D;
    if (!ctx.isTraining) return { tokenMask, capacity: null };
    const tokens = Math.round(tokenMask.sum().dataSync()[0]!);
    return { tokenMask, capacity: expertCapacity(moe.capacityFactor, tokens, moe.topK, moe.experts) };
  }

  /** Encoder: src [B, S] -> memory [B, S, d] (`opts.from`: from that layer on; `opts.collect`: each layer's input). */
  encode(src: tf.Tensor2D, ctx: ForwardContext, opts: StackOptions = {}): tf.Tensor3D {
    // a sparse pattern (model.attentionPatterns) adds its mask to the padding bias
    const encPattern = patternOf(this.config, 'enc-self');
    const S = src.shape[1];
    const bias = encPattern ? paddingBias(src).add(patternBias('enc-self', encPattern, S, S)) : paddingBias(src);
    const moeInput = this.moeInput(src, 'encoder', ctx);
    let x: tf.Tensor = opts.from ? opts.from.input : this.embed(src, 'src', ctx);
    for (let l = opts.from?.layer ?? 0; l < this.config.encoderLayers; l++) {
      if (opts.collect) opts.collect[l] = tf.keep(x as tf.Tensor3D);
      const ap = this.attentionParams(`enc.${l}.self`, this.shape['enc-self'][l]!);
      const gate = opts.gates?.['enc-self']?.[l] ?? null;
      const rec = opts.record ? (r: AttentionRecord) => opts.record!('enc-self', l, r) : undefined;
      x = this.residual(x, `enc.${l}.ln1`, ctx, (y) => attention(ap, y, y, bias, gate, ctx, rec));
      x = this.residual(x, `enc.${l}.ln2`, ctx, (y) => this.ffn(y, 'encoder', l, ctx, moeInput, opts.routing));
    }
    if (this.config.norm === 'pre' && this.config.encoderLayers > 0) x = this.norm(x, 'enc.ln');
    return x as tf.Tensor3D;
  }

  /** Decoder over a whole target prefix (teacher forcing): tgtIn [B, T] -> hidden [B, T, d] (`opts` as `encode`'s). */
  decode(tgtIn: tf.Tensor2D, memory: tf.Tensor3D, srcBias: tf.Tensor4D, ctx: ForwardContext, opts: StackOptions = {}): tf.Tensor3D {
    const T = tgtIn.shape[1];
    // a dec-self pattern's bias includes the causal mask
    const selfPattern = patternOf(this.config, 'dec-self');
    const selfBias = (selfPattern ? patternBias('dec-self', selfPattern, T, T) : causalBias(T)).add(paddingBias(tgtIn));
    const moeInput = this.moeInput(tgtIn, 'decoder', ctx);
    let x: tf.Tensor = opts.from ? opts.from.input : this.embed(tgtIn, 'tgt', ctx);
    for (let l = opts.from?.layer ?? 0; l < this.config.decoderLayers; l++) {
      if (opts.collect) opts.collect[l] = tf.keep(x as tf.Tensor3D);
      const sp = this.attentionParams(`dec.${l}.self`, this.shape['dec-self'][l]!);
      const cp = this.attentionParams(`dec.${l}.cross`, this.shape['dec-enc'][l]!);
      const selfRec = opts.record ? (r: AttentionRecord) => opts.record!('dec-self', l, r) : undefined;
      const crossRec = opts.record ? (r: AttentionRecord) => opts.record!('dec-enc', l, r) : undefined;
      x = this.residual(x, `dec.${l}.ln1`, ctx, (y) => attention(sp, y, y, selfBias, opts.gates?.['dec-self']?.[l] ?? null, ctx, selfRec));
      x = this.residual(x, `dec.${l}.ln2`, ctx, (y) => attention(cp, y, memory, srcBias, opts.gates?.['dec-enc']?.[l] ?? null, ctx, crossRec));
      x = this.residual(x, `dec.${l}.ln3`, ctx, (y) => this.ffn(y, 'decoder', l, ctx, moeInput, opts.routing));
    }
    if (this.config.norm === 'pre') x = this.norm(x, 'dec.ln');
    return x as tf.Tensor3D;
  }

  /** hidden [..., d] -> logits [N, V] (tied: hidden @ E^T), plus `out.bias` with model.finalLogitsBias. */
  logits(hidden: tf.Tensor): tf.Tensor2D {
    const h2 = hidden.reshape([-1, this.config.dModel]) as tf.Tensor2D;
    const bias = this.config.finalLogitsBias ? this.p('out.bias') : null;
    if (this.config.tieEmbeddings) {
      const l = tf.matMul(h2, this.p('emb.shared') as tf.Tensor2D, false, true);
      return (bias ? l.add(bias) : l) as tf.Tensor2D;
    }
    return linear(h2, this.p('out.proj'), bias) as tf.Tensor2D;
  }

  /** Decoding's logits: -1e9 added to model.neverGenerate's columns (unchanged without the option). */
  private decodingLogits(logits: tf.Tensor2D): tf.Tensor2D {
    const banned = this.config.neverGenerate;
    if (!banned || banned.length === 0) return logits;
    const mask = new Float32Array(this.vocabSize);
    for (const id of banned) mask[id] = -1e9;
    const out = tf.tidy(() => logits.add(tf.tensor1d(mask))) as tf.Tensor2D;
    logits.dispose();
    return out;
  }

  /** Teacher-forced forward: logits [B*T, V] for tgtIn. */
  forward(src: tf.Tensor2D, tgtIn: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    const ctx = opts.isTraining ? new ForwardContext(true, this.config.dropout, this.config.attentionDropout, opts.seed ?? 0) : ForwardContext.eval();
    const view = opts.weightView ? { f: opts.weightView, made: new Map<string, tf.Tensor>(), owned: [] as tf.Tensor[], isTraining: opts.isTraining } : null;
    this.view = view;
    try {
      const memory = this.encode(src, ctx, opts);
      return this.logits(this.decode(tgtIn, memory, paddingBias(src), ctx, opts));
    } finally {
      this.view = null;
      if (view) tf.dispose(view.owned);
    }
  }

  // ---- incremental decoding (inference only; dropout off) ----

  /** Encode the source and precompute every decoder layer's source keys/values. */
  startDecoding(src: tf.Tensor2D, gates?: GateTensors, opts: { fuseSelfQkv?: boolean; selfCache?: { rows: number; positions: number } } = {}): DecoderState {
    const ctx = ForwardContext.eval();
    const memory = this.encode(src, ctx, { gates });
    const cross = [];
    for (let l = 0; l < this.config.decoderLayers; l++)
      cross.push(projectKeysValues(this.attentionParams(`dec.${l}.cross`, this.shape['dec-enc'][l]!), memory));
    const state: DecoderState = { cross, self: Array(this.config.decoderLayers).fill(null), srcBias: paddingBias(src), memory, step: 0 };
    if (opts.fuseSelfQkv) {
      state.selfQkv = Array.from({ length: this.config.decoderLayers }, (_, l) => {
        const sp = this.attentionParams(`dec.${l}.self`, this.shape['dec-self'][l]!);
        return sp.nHeads === 0 ? null : { w: tf.concat([sp.wq, sp.wk, sp.wv], 1) as tf.Tensor2D, b: tf.concat([sp.bq, sp.bk, sp.bv]) as tf.Tensor1D };
      });
      // in-place caches: with the fused projection, the kernels, and no sparse pattern (its bias row per step)
      const cap = opts.selfCache;
      // (within a quarter of wasm's 4 GB heap: larger batches keep the concatenated caches, which grow as needed)
      const widths = Array.from({ length: this.config.decoderLayers }, (_, l) => {
        const sp = this.attentionParams(`dec.${l}.self`, this.shape['dec-self'][l]!);
        return sp.nHeads * sp.dHead;
      });
      const floats = cap ? 2 * cap.rows * cap.positions * widths.reduce((a, b) => a + b, 0) : 0;
      if (cap && hasKvCache() && !patternOf(this.config, 'dec-self') && floats <= MAX_CACHE_FLOATS) {
        state.fusedBias = hasNativeFusedMatMul();
        state.selfCache = widths.map((w) => {
          const shape: [number, number, number] = [Math.max(1, cap.rows), Math.max(1, cap.positions), w];
          return w === 0 ? null : { k: tf.zeros(shape) as tf.Tensor3D, v: tf.zeros(shape) as tf.Tensor3D };
        });
      }
    }
    return state;
  }

  /**
   * One decoding step: the last tokens [B] -> log-probabilities [B, V]; returns the new state (the caller
   * disposes the old one's self caches with `disposeStepCaches`). Tokens before `step` are never padding.
   */
  decodeStep(state: DecoderState, lastTokens: tf.Tensor1D, gates?: GateTensors): { logProbs: tf.Tensor2D; state: DecoderState } {
    const r = this.decodeStepLogits(state, lastTokens, gates);
    return { logProbs: tf.logSoftmax(r.logits) as tf.Tensor2D, state: r.state };
  }

  /**
   * `decodeStep` before the log-softmax: logits [B, V] (for decoders that normalise on their own), or only
   * the rows `rows` of them [rows, V] (rows whose scores are not needed skip the output layer).
   */
  decodeStepLogits(state: DecoderState, lastTokens: tf.Tensor1D, gates?: GateTensors, rows?: tf.Tensor1D): { logits: tf.Tensor2D; state: DecoderState } {
    const ctx = ForwardContext.eval();
    ctx.fusedBias = ctx.noGrad = state.fusedBias === true;
    const B = lastTokens.shape[0];
    let x: tf.Tensor = this.embed(lastTokens.reshape([B, 1]) as tf.Tensor2D, 'tgt', ctx, state.step);
    const self: DecoderState['self'] = [];
    const selfPattern = patternOf(this.config, 'dec-self');
    for (let l = 0; l < this.config.decoderLayers; l++) {
      const sp = this.attentionParams(`dec.${l}.self`, this.shape['dec-self'][l]!);
      const cp = this.attentionParams(`dec.${l}.cross`, this.shape['dec-enc'][l]!);
      const fused = state.selfQkv?.[l] ?? null;
      const cache = fused ? (state.selfCache?.[l] ?? null) : null;
      x = this.residual(x, `dec.${l}.ln1`, ctx, (y) => {
        if (fused && cache) {
          self.push(null);
          return this.cachedSelfAttention(sp, y, fused, cache, state.step, gates?.['dec-self']?.[l] ?? null, ctx.fusedBias);
        }
        let q: tf.Tensor4D | null = null;
        let kv: { k: tf.Tensor4D; v: tf.Tensor4D };
        if (fused) {
          const [qh, kh, vh] = tf.split(linear(y, fused.w, fused.b), 3, 2);
          q = splitHeads(qh!, sp.nHeads, sp.dHead);
          kv = { k: splitHeads(kh!, sp.nHeads, sp.dHead), v: splitHeads(vh!, sp.nHeads, sp.dHead) };
        } else kv = projectKeysValues(sp, y);
        const prev = state.self[l];
        const k = prev ? (tf.concat([prev.k, kv.k], 2) as tf.Tensor4D) : kv.k;
        const v = prev ? (tf.concat([prev.v, kv.v], 2) as tf.Tensor4D) : kv.v;
        // kept: the sub-layer's tidy must not free the cache the next step reads
        self.push({ k: tf.keep(k), v: tf.keep(v) });
        // the query is position `step` over keys 0..step: that row of the pattern (none needed when dense)
        const bias = selfPattern ? patternBias('dec-self', selfPattern, 1, state.step + 1, state.step) : null;
        const gate = gates?.['dec-self']?.[l] ?? null;
        return q ? attendQuery(sp, q, k, v, bias, gate, ctx) : attend(sp, y, k, v, bias, gate, ctx);
      });
      x = this.residual(x, `dec.${l}.ln2`, ctx, (y) =>
        attend(cp, y, state.cross[l]!.k, state.cross[l]!.v, state.srcBias, gates?.['dec-enc']?.[l] ?? null, ctx),
      );
      // MoE: every token of the step is routed, without a capacity limit (as in eval-mode forwards)
      x = this.residual(x, `dec.${l}.ln3`, ctx, (y) => this.ffn(y, 'decoder', l, ctx, null, undefined));
    }
    if (this.config.norm === 'pre') x = this.norm(x, 'dec.ln', ctx);
    return { logits: this.decodingLogits(this.logits(rows ? gatherRows(x, rows) : x)), state: { ...state, self, step: state.step + 1 } };
  }

  /**
   * A decoding step's self-attention over the in-place caches (backend/kv-cache-kernel.ts): attendQuery's
   * numbers (the same products per row and head, the same softmax, gate and W_O) without concatenating,
   * splitting or transposing; the context [B, h, 1, dHead] is already the merged heads' layout (one position).
   */
  private cachedSelfAttention(
    sp: AttentionParams,
    y: tf.Tensor,
    fused: { w: tf.Tensor2D; b: tf.Tensor1D },
    cache: { k: tf.Tensor3D; v: tf.Tensor3D },
    step: number,
    gate: tf.Tensor | null,
    fusedBias: boolean,
  ): tf.Tensor3D {
    const B = y.shape[0]!;
    const scores = cacheScores(linear(y, fused.w, fused.b, fusedBias), cache.k, cache.v, sp.nHeads, step, 1 / Math.sqrt(sp.dHead));
    const context = cacheContext(tf.softmax(scores) as tf.Tensor4D, cache.v);
    const gated = gate ? context.mul(gateForContext(gate, sp.nHeads)) : context;
    return linear(gated.reshape([B, 1, sp.nHeads * sp.dHead]), sp.wo, sp.bo, fusedBias) as tf.Tensor3D;
  }

  /**
   * Reorder the target-side caches only: beams of one sentence share its source, so the cross-attention
   * caches, memory and bias stay valid when `indices` only permutes rows within each sentence's beams.
   */
  reorderSelfCaches(state: DecoderState, indices: tf.Tensor1D): DecoderState {
    const g = (t: tf.Tensor4D) => gatherRows(t, indices);
    return { ...state, self: state.self.map((s) => (s ? { k: g(s.k), v: g(s.v) } : null)) };
  }

  /** Keep rows `indices` of every cached tensor (beam tiling / dropping finished sentences). */
  selectRows(state: DecoderState, indices: tf.Tensor1D): DecoderState {
    const g = <T extends tf.Tensor>(t: T) => gatherRows(t, indices);
    return {
      cross: state.cross.map(({ k, v }) => ({ k: g(k), v: g(v) })),
      self: state.self.map((s) => (s ? { k: g(s.k), v: g(s.v) } : null)),
      srcBias: g(state.srcBias),
      memory: g(state.memory),
      step: state.step,
    };
  }
}

/**
 * Rows `indices` of t along axis 0. An empty tensor (a layer pruned to zero heads) is rebuilt directly:
 * the wasm GatherV2 of tfjs 4.22 returns a wrong shape for it ([3,0,2,4] comes back as [1,1,2,0]).
 */
export function gatherRows<T extends tf.Tensor>(t: T, indices: tf.Tensor1D): T {
  if (t.size === 0) return tf.zeros([indices.shape[0], ...t.shape.slice(1)], t.dtype) as T;
  return tf.gather(t, indices) as T;
}

/** Every tensor a decoder state holds. */
export function stateTensors(s: DecoderState): tf.Tensor[] {
  const out: tf.Tensor[] = [s.srcBias, s.memory];
  for (const c of s.cross) out.push(c.k, c.v);
  for (const c of s.self) if (c) out.push(c.k, c.v);
  for (const f of s.selfQkv ?? []) if (f) out.push(f.w, f.b);
  for (const c of s.selfCache ?? []) if (c) out.push(c.k, c.v);
  return out;
}

export function createTransformer(c: ModelConfig, vocabSize: number, rng: Rng): Transformer {
  return new Transformer(c, vocabSize, initParams(c, vocabSize, rng));
}
