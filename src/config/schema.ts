/**
 * The one config tree: HeadsConfig = { seed, data, model, gates, train, eval }. The zod schemas here are
 * strict (unknown keys are errors) and describe the fully resolved config; files list only what differs
 * from `defaults.ts` and are merged onto it before validation (load.ts).
 */
import { z } from 'zod';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const prob = z.number().min(0).max(1);
const attentionType = z.enum(['enc-self', 'dec-self', 'dec-enc']);

/** Largest beam: a batch decodes sentences x beam rows (beam 1000 on one sentence: 5 s; 100000 ran for minutes without output). */
export const MAX_BEAM_SIZE = 1000;
/** Most pairs per split of a generated corpus (data.synthetic, `heads data synth`): 1M pairs took 29 s and 320 MB. */
export const MAX_SYNTHETIC_PAIRS = 2_000_000;
const pairCount = posInt.max(MAX_SYNTHETIC_PAIRS);

export const SyntheticDataSchema = z.strictObject({
  task: z.enum(['toy-mt', 'copy', 'reverse']),
  trainPairs: pairCount,
  validPairs: pairCount,
  testPairs: pairCount,
});

export const DataSchema = z.strictObject({
  /** source and target language codes; Moses pairs are `<prefix>.<srcLang>` / `<prefix>.<tgtLang>` */
  srcLang: z.string().min(1),
  tgtLang: z.string().min(1),
  /** a Moses prefix (`dir/train` -> dir/train.en + dir/train.de) or a .tsv file; relative to the working folder */
  train: z.string().min(1).nullable(),
  valid: z.string().min(1).nullable(),
  test: z.string().min(1).nullable(),
  /** used when `train` is null: a generated corpus (the embedded default) */
  synthetic: SyntheticDataSchema,
  /** joint BPE merges learned on the training data */
  bpeMerges: nonNegInt.max(1_000_000), // the tokenizer packs symbol pairs below 2^24 ids; NMT vocabularies stay near 8k-64k
  /** pairs longer than this (BPE tokens, either side) are dropped from training */
  maxLen: posInt,
});

// ---- sparse attention patterns (issue 10; the masks live in model/attention-patterns.ts) ----

const patternSize = z
  .number({ error: 'expected a positive integer' })
  .int({ error: 'expected a positive integer' })
  .positive({ error: 'expected a positive integer' });
/** each position sees the positions at most `window` away on either side */
const localPattern = z.strictObject({ kind: z.literal('local'), window: patternSize });
/** causal: each position sees itself and the `window` previous positions */
const slidingPattern = z.strictObject({ kind: z.literal('sliding'), window: patternSize });
/** positions fall in blocks of `block`; a query sees keys of its own and the two neighbouring blocks */
const blockPattern = z.strictObject({ kind: z.literal('block'), block: patternSize });

/**
 * A sparse attention pattern per attention type (null or absent: dense). Encoder self-attention takes
 * `local` or `block`; decoder self-attention `sliding` or `block` (both causal). Decoder-encoder attention
 * takes none: target and source positions are not aligned, so a positional window has no meaning there.
 */
export const AttentionPatternsSchema = z
  .strictObject({
    'enc-self': z
      .discriminatedUnion('kind', [localPattern, blockPattern], {
        error: (iss) =>
          iss.code === 'invalid_union' ? "expected kind 'local' or 'block' for encoder self-attention ('sliding' is causal: dec-self only)" : undefined,
      })
      .nullable()
      .optional(),
    'dec-self': z
      .discriminatedUnion('kind', [slidingPattern, blockPattern], {
        error: (iss) =>
          iss.code === 'invalid_union' ? "expected kind 'sliding' or 'block' for decoder self-attention (a causal 'local' window is 'sliding')" : undefined,
      })
      .nullable()
      .optional(),
    'dec-enc': z.null({ error: 'expected null: no pattern applies to decoder-encoder attention (target and source positions are not aligned)' }).optional(),
  })
  .nullable();

export type AttentionPatterns = z.infer<typeof AttentionPatternsSchema>;
export type AttentionPattern = z.infer<typeof localPattern> | z.infer<typeof slidingPattern> | z.infer<typeof blockPattern>;

// ---- mixture of experts (issue 10; the layer lives in model/moe.ts) ----

/**
 * Feed-forward sub-layers replaced by `experts` FFNs (each d -> dFF -> d) behind a learned top-k router.
 * null (or absent, in checkpoints saved before the key existed): plain FFNs everywhere.
 */
export const MoeSchema = z
  .strictObject({
    /** experts per MoE layer (>= topK) */
    experts: z.number({ error: 'expected an integer >= 1' }).int({ error: 'expected an integer >= 1' }).min(1, { error: 'expected an integer >= 1' }),
    /** experts each token is sent to: 1 (Switch, weight = router probability) or 2 (GShard, weights renormalised) */
    topK: z.union([z.literal(1), z.literal(2)], { error: 'expected 1 or 2' }),
    /** per-expert capacity in training = ceil(capacityFactor * tokens * topK / experts); later claims are dropped */
    capacityFactor: z.number({ error: 'expected a number > 0' }).positive({ error: 'expected a number > 0' }),
    /** weight of the load-balancing loss E * sum_e f_e P_e (summed over MoE layers) in the training loss */
    auxLossWeight: z.number({ error: 'expected a number >= 0' }).nonnegative({ error: 'expected a number >= 0' }),
    /** which stacks' FFNs become MoE layers (every layer of them) */
    layers: z.enum(['encoder', 'decoder', 'all'], { error: "expected 'encoder', 'decoder' or 'all'" }),
  })
  .nullable();

export type MoeConfig = NonNullable<z.infer<typeof MoeSchema>>;

export const ModelSchema = z.strictObject({
  encoderLayers: nonNegInt,
  decoderLayers: posInt,
  heads: posInt,
  dModel: posInt,
  dFF: posInt,
  dropout: prob,
  attentionDropout: prob,
  norm: z.enum(['pre', 'post']),
  tieEmbeddings: z.boolean(),
  /** longest sequence the sinusoidal table covers */
  maxPositions: posInt,
  /**
   * Heads per layer after physical pruning, as the original head ids that remain (exporter output).
   * null: every layer has `heads` heads.
   */
  keptHeads: z
    .strictObject({
      'enc-self': z.array(z.array(nonNegInt)),
      'dec-self': z.array(z.array(nonNegInt)),
      'dec-enc': z.array(z.array(nonNegInt)),
    })
    .nullable(),
  /** sparse attention patterns per attention type, as additive masks (null: dense everywhere; see AttentionPatternsSchema) */
  attentionPatterns: AttentionPatternsSchema,
  /**
   * FFN hidden units per layer after structured neuron pruning (export/ffn-pruning.ts writes it).
   * null (or absent, in checkpoints saved before the key existed): every layer has `dFF` units.
   */
  ffnWidths: z.strictObject({ encoder: z.array(posInt), decoder: z.array(posInt) }).nullable(),
  /** mixture-of-experts FFNs (null: off; see MoeSchema and model/moe.ts) */
  moe: MoeSchema,
  // ---- conventions of imported models (issue 21, src/import/); absent: the toolkit's own behaviour ----
  /** the FFN activation (absent: relu); Marian's opus-mt base models use swish */
  activation: z.enum(['relu', 'swish', 'gelu'], { error: "expected 'relu', 'swish' or 'gelu'" }).optional(),
  /** sinusoidal position layout (absent: interleaved sin/cos); Marian puts the sines first (`split`) */
  positions: z.enum(['interleaved', 'split'], { error: "expected 'interleaved' or 'split'" }).optional(),
  /** token embeddings are multiplied by this (absent: sqrt(dModel)); 1 for models without scale_embedding */
  embedScale: z.number({ error: 'expected a number > 0' }).positive({ error: 'expected a number > 0' }).optional(),
  /** a learned bias `out.bias` [V] added to the logits (Marian's final_logits_bias; absent: false) */
  finalLogitsBias: z.boolean({ error: 'expected true or false' }).optional(),
  /** token ids decoding never emits (their logits are -1e9 in every decoding step; absent: none), e.g. a pad that doubles as <s> */
  neverGenerate: z.array(nonNegInt).readonly().optional(),
});

export const GatesSchema = z.strictObject({
  /** which attention types carry Hard Concrete gates (empty: all gates fixed at 1) */
  attention: z.array(attentionType),
  /** Concrete temperature: 0.33 as in the reference code, 2/3 as in Louizos et al. */
  beta: z.number().positive(),
  /** one noise sample per head per batch (the reference) or per sentence */
  noise: z.enum(['batch', 'sentence']),
  logAlphaInit: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('glorot') }),
    z.strictObject({ kind: z.literal('constant'), value: z.number() }),
  ]),
  /** `sum` over heads (the paper) or `layer-mean` (the reference code: per-layer sums averaged over gated layers) */
  penalty: z.enum(['sum', 'layer-mean']),
  /**
   * An exact head budget instead of a lambda: the number of heads to keep overall (across the gated
   * attention types) or per attention type. A Lagrangian controller drives the expected number of open
   * heads to the target, annealed from the full count over `targetWarmupSteps`; the top heads by
   * P(open) are kept at the end.
   */
  targetHeads: z
    .union([nonNegInt, z.strictObject({ 'enc-self': nonNegInt.optional(), 'dec-self': nonNegInt.optional(), 'dec-enc': nonNegInt.optional() })])
    .nullable(),
  /** steps over which the target falls from the full head count to targetHeads (null: half of train.maxSteps) */
  targetWarmupSteps: nonNegInt.nullable(),
  /** the gates' learning rate is train's times this (1: the reference; CoFiPruning trains its gates faster) */
  lrScale: z.number().positive(),
  /** learning rate of the Lagrange multipliers' gradient ascent */
  lagrangianLr: z.number().positive(),
  /**
   * Train the gates until they settle (null: off): every `checkEvery` steps (from `minSteps`, and in
   * budget mode from the end of the target warm-up) the run ends once no gate's deterministic value is
   * strictly between 0 and 1; train.maxSteps stays the cap, and results.json says how many are still
   * fractional when the cap ends it (train/settle.ts).
   */
  settle: z
    .strictObject({
      checkEvery: z.number({ error: 'expected an integer >= 1' }).int({ error: 'expected an integer >= 1' }).min(1, { error: 'expected an integer >= 1' }),
      minSteps: z
        .number({ error: 'expected an integer >= 0' })
        .int({ error: 'expected an integer >= 0' })
        .nonnegative({ error: 'expected an integer >= 0' })
        .default(0),
    })
    .nullable(),
});

// ---- weight pruning and quantization in training (issue 10; train/gradual-pruning.ts, train/quant-aware.ts) ----

const stepCount = z.number({ error: 'expected an integer >= 0' }).int({ error: 'expected an integer >= 0' }).nonnegative({ error: 'expected an integer >= 0' });

/**
 * Gradual magnitude pruning with fine-tuning (Zhu & Gupta 2017): after the update of step t the masks are
 * recomputed from the weights at the cubic schedule's sparsity s_t at t = startStep + k * everySteps
 * (t <= endStep) and at endStep, and the pruned weights are held at zero after every update in between.
 * null (or absent, in checkpoints saved before the key existed): off.
 */
export const MagnitudePruningSchema = z
  .strictObject({
    /** the final sparsity s_f, a fraction of the prunable weights in [0, 1) */
    sparsity: z
      .number({ error: 'expected a fraction in [0, 1) (0.5 zeroes half)' })
      .min(0, { error: 'expected a fraction in [0, 1) (0.5 zeroes half)' })
      .lt(1, { error: 'expected a fraction in [0, 1) (0.5 zeroes half)' }),
    /** rank all prunable matrices together (global) or prune each matrix to the same sparsity (per-layer) */
    scope: z.enum(['global', 'per-layer'], { error: "expected 'global' or 'per-layer'" }).default('global'),
    /** t0: the schedule starts here (sparsity 0 at t0) */
    startStep: stepCount.default(0),
    /** t0 + n * dt: the step from which the sparsity is s_f (<= train.maxSteps) */
    endStep: stepCount,
    /** dt: steps between mask updates */
    everySteps: z.number({ error: 'expected an integer >= 1' }).int({ error: 'expected an integer >= 1' }).min(1, { error: 'expected an integer >= 1' }),
    /** also prune the embedding tables emb.* */
    includeEmbeddings: z.boolean({ error: 'expected true or false' }).default(false),
  })
  .nullable();

export type MagnitudePruningConfig = NonNullable<z.infer<typeof MagnitudePruningSchema>>;

/**
 * Quantization-aware fine-tuning: the training forward pass sees every matrix fake-quantized to int8 as
 * `heads export --int8` stores it (straight-through gradient). false: off. Evaluation stays float32.
 */
export const QuantAwareSchema = z.union([z.literal(false), z.strictObject({ bits: z.literal(8, { error: 'expected 8 (int8 is the only width)' }) })], {
  error: (iss) => (iss.code === 'invalid_union' ? 'expected false or { bits: 8 }' : undefined),
});

export type QuantAwareConfig = z.infer<typeof QuantAwareSchema>;

/**
 * Early stopping (train/early-stopping.ts): at every evaluation (train.evalEverySteps, and the last step)
 * the dev metric counts as a gain when it beats the last gain by more than `minDelta` (dev BLEU higher,
 * dev loss lower); after `patience` evaluations in a row without a gain the run stops. train.maxSteps
 * stays the cap. The run keeps its best checkpoint (the best evaluation by any margin), and its test
 * translation, results.json and the model later stages load are the best step's. null: off.
 */
export const EarlyStoppingSchema = z
  .strictObject({
    metric: z.enum(['devBleu', 'devLoss'], { error: "expected 'devBleu' or 'devLoss'" }),
    patience: z
      .number({ error: 'expected an integer >= 1 (evaluations)' })
      .int({ error: 'expected an integer >= 1 (evaluations)' })
      .min(1, { error: 'expected an integer >= 1 (evaluations)' }),
    minDelta: z.number({ error: 'expected a number >= 0' }).nonnegative({ error: 'expected a number >= 0' }).default(0),
    /**
     * reduce-on-plateau: when patience runs out, multiply the learning rate by `factor` and go on (patience
     * starts again), `times` times; the run stops at the next exhausted patience. Absent or null: stop at
     * the first (null lets a preset or an override switch off a spec's lrDecay; it resolves to absent).
     */
    lrDecay: z
      .strictObject({
        factor: z
          .number({ error: 'expected a number between 0 and 1' })
          .gt(0, { error: 'expected a number between 0 and 1' })
          .lt(1, { error: 'expected a number between 0 and 1' }),
        times: z
          .number({ error: 'expected an integer >= 1 (learning-rate cuts)' })
          .int({ error: 'expected an integer >= 1 (learning-rate cuts)' })
          .min(1, { error: 'expected an integer >= 1 (learning-rate cuts)' }),
      })
      .nullable()
      .optional(),
  })
  // absent and null are one rule: the resolved config (and so every stage hash) has no lrDecay key
  .transform(({ lrDecay, ...rule }): typeof rule & { lrDecay?: NonNullable<typeof lrDecay> } => (lrDecay ? { ...rule, lrDecay } : rule))
  .nullable();

export type EarlyStoppingConfig = NonNullable<z.infer<typeof EarlyStoppingSchema>>;

export const TrainSchema = z.strictObject({
  maxSteps: posInt,
  /** padded tokens (sentences x max(srcLen, tgtLen)) per batch, summed over workers and accumulation */
  maxTokensPerBatch: posInt,
  accumulateSteps: posInt,
  /** peak learning rate reached at the end of warm-up, then inverse square root decay */
  peakLr: z.number().positive(),
  warmupSteps: nonNegInt,
  adamBeta1: z.number().min(0).lt(1),
  adamBeta2: z.number().min(0).lt(1),
  adamEps: z.number().positive(),
  /** global gradient norm clip; 0 disables */
  clipNorm: z.number().nonnegative(),
  labelSmoothing: z.number().min(0).lt(1),
  logEverySteps: posInt,
  evalEverySteps: nonNegInt,
  /** dev BLEU on the first N dev sentences at each eval (0: dev loss only) */
  devBleuSentences: nonNegInt,
  checkpointEverySteps: posInt,
  keepCheckpoints: posInt,
  /** lambda for the expected-L0 penalty (gated runs) */
  l0Lambda: z.number().nonnegative(),
  /** train only these parameter groups (null: all); the reference's encoder-only pruning trains `encoder` */
  trainOnly: z.array(z.enum(['encoder', 'decoder', 'embeddings', 'gates'])).nullable(),
  workers: z.union([z.literal('auto'), posInt.max(64, 'at most 64 (one worker per core; each holds a copy of the model)')]),
  /** steps whose loss or gradient is not finite that may be skipped (batches dropped, no update) before the run stops; 0: stop at the first */
  skipNonFinite: nonNegInt,
  /** gradual magnitude pruning during training (null: off; see MagnitudePruningSchema) */
  magnitudePruning: MagnitudePruningSchema,
  /** quantization-aware training with int8 fake quantization (false: off; see QuantAwareSchema) */
  quantAware: QuantAwareSchema,
  /** stop when the dev metric stops improving (null: off; see EarlyStoppingSchema) */
  earlyStopping: EarlyStoppingSchema,
});

export const EvalSchema = z.strictObject({
  beamSize: posInt.max(MAX_BEAM_SIZE),
  /** GNMT length penalty alpha: score / ((5 + len) / 6)^alpha */
  lengthPenalty: z.number().nonnegative(),
  /** maximum output length = maxLenA * srcLen + maxLenB */
  maxLenA: z.number().nonnegative(),
  maxLenB: nonNegInt,
  /** sentences per decoding batch */
  batchSentences: posInt,
  /** cap on sentences x longest source (in tokens) per decoding batch: keeps long sentences within the wasm heap */
  maxTokensPerBatch: posInt,
  /** beam search rules (absent: gnmt, decode.ts); `hf`: Hugging Face generate's (eval/hf-beam.ts), set by `heads import marian` */
  beamRules: z.enum(['gnmt', 'hf'], { error: "expected 'gnmt' or 'hf'" }).optional(),
});

export const HeadsConfigSchema = z.strictObject({
  name: z.string().min(1),
  seed: z.number().int().nonnegative(),
  backend: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']),
  data: DataSchema,
  model: ModelSchema,
  gates: GatesSchema,
  train: TrainSchema,
  eval: EvalSchema,
});

export type HeadsConfig = z.infer<typeof HeadsConfigSchema>;

type DeepReadonly<T> = T extends (infer U)[] ? ReadonlyArray<DeepReadonly<U>> : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;
export type ResolvedConfig = DeepReadonly<HeadsConfig>;
/** The readonly slices that code below the edge receives. */
export type DataConfig = ResolvedConfig['data'];
export type ModelConfig = ResolvedConfig['model'];
export type GateConfig = ResolvedConfig['gates'];
export type TrainConfig = ResolvedConfig['train'];
export type EvalConfig = ResolvedConfig['eval'];

/**
 * Settings of the head analysis (`heads analyze`, the importance / confidence / random pruning of
 * `heads prune`, the analyze and prune stages of experiments). Not part of a run's config tree (they do
 * not change how a model is trained, and run folders and checkpoints keep their config.json); their
 * defaults are DEFAULT_ANALYSIS in defaults.ts, and the CLI flags and library options fall back to them.
 */
export interface AnalysisConfig {
  /** the importance reported as `importance` (analysis/importance.ts IMPORTANCE_FORMS, IMPORTANCE_NORMALIZATIONS) */
  importance: { form: 'example' | 'batch' | 'token'; normalize: 'layer' | 'none' };
  /** single-head ablation: what it measures, and the dev sentences its greedy BLEU is scored on (metric bleu) */
  ablation: { metric: 'loss' | 'bleu'; bleuSentences: number };
  /** LRP relevance: rule (analysis/lrp.ts RELEVANCE_RULES) and the first N sentences */
  lrp: { rule: 'lrp' | 'gradient-x-input'; sentences: number };
  /** role thresholds (analysis/roles.ts RoleOptions) */
  roles: { positionalMinFraction: number; rareMinRate: number; rareMinRank: number; syntacticMinGain: number; syntacticMinInstances: number };
  /** heuristic pruning (importance / confidence / random): share of heads per step, dev sentences scored after each, heads left per layer */
  pruning: { stepPercent: number; bleuSentences: number; minHeadsPerLayer: number };
}

/** Settings of `heads export` that are not a mask or a compression amount; defaults: DEFAULT_EXPORT in defaults.ts. */
export interface ExportConfig {
  /** what is written: the toolkit checkpoint, PyTorch safetensors, ONNX, both (heads + safetensors), all, a Marian HF folder */
  format: 'heads' | 'safetensors' | 'onnx' | 'both' | 'all' | 'hf-marian';
  /** compare masked and exported logits on random sentences */
  verify: boolean;
  /** fold kept heads' deterministic gates into W_O */
  foldGates: boolean;
  /** store weight matrices as int8 with per-channel scales */
  int8: boolean;
  /** --ffn-prune: the fraction in every layer (per-layer) or over all layers (global) */
  ffnScope: 'per-layer' | 'global';
  /** --magnitude-sparsity: the fraction in every matrix instead of globally, and whether the embeddings are pruned */
  magnitudePerLayer: boolean;
  pruneEmbeddings: boolean;
}
