/**
 * `heads import marian`: a Hugging Face MarianMT folder (opus-mt) as users download it -> a toolkit model.
 *
 * Read: config.json (MarianConfig), generation_config.json (optional), vocab.json, source.spm, target.spm,
 * and the weights from model.safetensors or, without it, pytorch_model.bin (restricted unpickler,
 * torch-pickle.ts). Everything is validated before anything is written; a problem is one line naming the
 * file and field (exit 2).
 *
 * Marian's conventions become model options (config/schema.ts), not a fork of the model:
 *   normalize_before false     -> model.norm 'post' (LN(x + f(x)); post-norm has no final stack norm)
 *   activation_function        -> model.activation (swish / relu / gelu)
 *   sin first half, cos second -> model.positions 'split'
 *   scale_embedding            -> model.embedScale sqrt(d_model) or 1
 *   final_logits_bias          -> model.finalLogitsBias, the parameter `out.bias`
 *   shared embeddings, tied lm_head -> model.tieEmbeddings (emb.shared)
 *   pad = decoder_start = V-1, eos = 0 -> the toolkit's ids through MarianTokenizer's map (one row more:
 *     toolkit pad 0 is a zero row whose logit bias is -30, toolkit <s> 1 is Marian's pad row)
 *   bad_words_ids (pad)        -> model.neverGenerate [0, 1, ...] (decoding only; -1e9, i.e. HF with
 *     renormalize_logits: the log-probabilities are normalised without them)
 *   num_beams, max_length, length_penalty -> eval.beamSize, eval.maxLenA 0 / maxLenB max_length - 2
 *     (max_length counts the start token and the final eos), eval.lengthPenalty.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import { type HeadsConfig, HeadsConfigSchema } from '../config/schema.js';
import { MarianTokenizer } from '../data/tokenizer.js';
import { sinusoidalTable } from '../model/layers.js';
import { type NamedArrays, readSafetensors } from '../io/safetensors.js';
import { DataError } from '../util/errors.js';
import { readJsonFile } from '../util/fs.js';
import { toFloat32 } from './tensors.js';
import { readTorchCheckpoint } from './torch-pickle.js';

/** The logit bias of the toolkit-only pad row: exp(-30) keeps it out of every softmax. */
export const TOOLKIT_PAD_LOGIT_BIAS = -30;

export interface MarianFolder {
  folder: string;
  config: Record<string, unknown>;
  generation: Record<string, unknown>;
  tokenizer: MarianTokenizer;
  /** HF name -> float32 tensor */
  weights: NamedArrays;
  weightsFile: string;
}

const ACTIVATIONS: Record<string, 'relu' | 'swish' | 'gelu'> = { swish: 'swish', silu: 'swish', relu: 'relu', gelu: 'gelu' };

function need(cond: boolean, msg: string): void {
  if (!cond) throw new DataError(msg);
}

function intField(cfg: Record<string, unknown>, key: string, file: string, min = 1): number {
  const v = cfg[key];
  need(Number.isInteger(v) && (v as number) >= min, `${file}: ${key}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v as number;
}

/** Read and validate a Marian folder (nothing is written). */
export function readMarianFolder(folder: string): MarianFolder {
  need(
    existsSync(folder) && statSync(folder).isDirectory(),
    `${folder}: no such folder (expected a Hugging Face MarianMT folder: config.json, model.safetensors or pytorch_model.bin, source.spm, target.spm, vocab.json)`,
  );
  const file = (n: string) => join(folder, n);
  for (const n of ['config.json', 'vocab.json', 'source.spm', 'target.spm'])
    need(existsSync(file(n)), `${file(n)}: not found (a MarianMT folder has config.json, vocab.json, source.spm and target.spm)`);
  const cfgPath = file('config.json');
  const config = readJsonFile<Record<string, unknown>>(cfgPath, 'Marian config');
  need(typeof config === 'object' && config !== null && !Array.isArray(config), `${cfgPath}: expected a JSON object`);
  need(config.model_type === 'marian', `${cfgPath}: model_type: expected "marian", got ${JSON.stringify(config.model_type)}`);
  const generation = existsSync(file('generation_config.json'))
    ? readJsonFile<Record<string, unknown>>(file('generation_config.json'), 'generation config')
    : {};

  const vocabPath = file('vocab.json');
  const vocabObj = readJsonFile<Record<string, unknown>>(vocabPath, 'Marian vocabulary');
  need(typeof vocabObj === 'object' && vocabObj !== null && !Array.isArray(vocabObj), `${vocabPath}: expected a JSON object {piece: id}`);
  const entries = Object.entries(vocabObj);
  const vocab: string[] = new Array(entries.length);
  for (const [piece, id] of entries) {
    need(
      Number.isInteger(id) && (id as number) >= 0 && (id as number) < entries.length,
      `${vocabPath}: "${piece}": expected an id in [0, ${entries.length}), got ${JSON.stringify(id)}`,
    );
    need(
      vocab[id as number] === undefined,
      `${vocabPath}: id ${String(id)} is given to both ${JSON.stringify(vocab[id as number])} and ${JSON.stringify(piece)}`,
    );
    vocab[id as number] = piece;
  }
  const V = vocab.length;
  const vocabSize = intField(config, 'vocab_size', cfgPath, 3);
  need(vocabSize === V, `${cfgPath}: vocab_size: expected ${V} (the entries of vocab.json), got ${vocabSize}`);
  need(
    vocab[0] === '</s>' && vocab[1] === '<unk>' && vocab[V - 1] === '<pad>',
    `${vocabPath}: expected "</s>" = 0, "<unk>" = 1, "<pad>" = ${V - 1}, got ${JSON.stringify([vocab[0], vocab[1], vocab[V - 1]])}`,
  );
  const gen = (k: string) => generation[k] ?? config[k];
  need(config.pad_token_id === V - 1, `${cfgPath}: pad_token_id: expected ${V - 1} (vocab_size - 1), got ${JSON.stringify(config.pad_token_id)}`);
  need(
    gen('decoder_start_token_id') === V - 1,
    `${cfgPath}: decoder_start_token_id: expected ${V - 1} (= pad_token_id), got ${JSON.stringify(gen('decoder_start_token_id'))}`,
  );
  need(gen('eos_token_id') === 0, `${cfgPath}: eos_token_id: expected 0, got ${JSON.stringify(gen('eos_token_id'))}`);
  need(
    config.share_encoder_decoder_embeddings !== false,
    `${cfgPath}: share_encoder_decoder_embeddings: false (separate source and target vocabularies) is not supported, expected true`,
  );
  need(config.normalize_before !== true, `${cfgPath}: normalize_before: true (pre-norm Marian) is not supported, expected false`);
  need(
    typeof config.activation_function === 'string' && config.activation_function in ACTIVATIONS,
    `${cfgPath}: activation_function: expected one of ${Object.keys(ACTIVATIONS).join(', ')}, got ${JSON.stringify(config.activation_function)}`,
  );
  const d = intField(config, 'd_model', cfgPath);
  for (const k of [
    'encoder_layers',
    'decoder_layers',
    'encoder_attention_heads',
    'decoder_attention_heads',
    'encoder_ffn_dim',
    'decoder_ffn_dim',
    'max_position_embeddings',
  ])
    intField(config, k, cfgPath, k === 'encoder_layers' ? 0 : 1);
  need(
    config.encoder_attention_heads === config.decoder_attention_heads,
    `${cfgPath}: decoder_attention_heads: expected ${String(config.encoder_attention_heads)} (= encoder_attention_heads; the toolkit has one head count), got ${String(config.decoder_attention_heads)}`,
  );
  need(
    config.encoder_ffn_dim === config.decoder_ffn_dim,
    `${cfgPath}: decoder_ffn_dim: expected ${String(config.encoder_ffn_dim)} (= encoder_ffn_dim), got ${String(config.decoder_ffn_dim)}`,
  );
  need(
    d % (config.encoder_attention_heads as number) === 0,
    `${cfgPath}: d_model ${d} is not a multiple of encoder_attention_heads ${String(config.encoder_attention_heads)}`,
  );

  let tokenizer: MarianTokenizer;
  try {
    tokenizer = new MarianTokenizer(vocab, new Uint8Array(readFileSync(file('source.spm'))), new Uint8Array(readFileSync(file('target.spm'))));
  } catch (e) {
    throw new DataError(`${folder}: source.spm / target.spm: not a usable SentencePiece model (${(e as Error).message})`);
  }

  const st = file('model.safetensors');
  const bin = file('pytorch_model.bin');
  need(existsSync(st) || existsSync(bin), `${folder}: no weights (expected model.safetensors or pytorch_model.bin)`);
  const weightsFile = existsSync(st) ? st : bin;
  const weights: NamedArrays = {};
  if (weightsFile === st) {
    for (const [name, t] of Object.entries(readSafetensors(st).tensors))
      weights[name] = { shape: t.shape.slice(), data: toFloat32(t.dtype, t.data, `${st}: tensor ${name}`) };
  } else Object.assign(weights, readTorchCheckpoint(bin));
  return { folder, config, generation, tokenizer, weights, weightsFile };
}

/** [out, in] row-major (torch Linear) -> [in, out] (the toolkit's x @ W). */
export function transpose(t: { shape: number[]; data: Float32Array }): { shape: number[]; data: Float32Array } {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return { shape: [c, r], data: out };
}

/** The toolkit config and parameters of a read Marian folder. */
export function marianToToolkit(m: MarianFolder): { config: HeadsConfig; params: NamedArrays } {
  const c = m.config;
  const w = m.weights;
  const src = m.weightsFile;
  const d = c.d_model as number;
  const V = m.tokenizer.marianVocab.length;
  const get = (name: string, shape: number[]): { shape: number[]; data: Float32Array } => {
    const t = w[name];
    need(t !== undefined, `${src}: missing tensor ${name}`);
    need(t!.shape.join(',') === shape.join(','), `${src}: ${name}: expected shape [${shape}], got [${t!.shape}]`);
    return t!;
  };
  const sharedName = w['model.shared.weight'] ? 'model.shared.weight' : 'model.encoder.embed_tokens.weight';
  const shared = get(sharedName, [V, d]);
  for (const tied of ['model.encoder.embed_tokens.weight', 'model.decoder.embed_tokens.weight', 'lm_head.weight']) {
    const t = w[tied];
    if (t && tied !== sharedName)
      need(
        t.data.every((x, i) => x === shared.data[i]),
        `${src}: ${tied} differs from ${sharedName} (untied embeddings are not supported)`,
      );
  }
  const maxPos = c.max_position_embeddings as number;
  const table = sinusoidalTable(maxPos, d, 'split');
  for (const name of ['model.encoder.embed_positions.weight', 'model.decoder.embed_positions.weight']) {
    const t = w[name];
    if (!t) continue;
    need(t.shape.join(',') === `${maxPos},${d}`, `${src}: ${name}: expected shape [${maxPos},${d}], got [${t.shape}]`);
    let worst = 0;
    for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(t.data[i]! - table[i]!));
    // 1e-3: a half-precision checkpoint stores the table rounded to float16 (2.4e-4 off); another layout is ~1 off
    need(
      worst < 1e-3,
      `${src}: ${name}: not Marian's sinusoidal table (sin on the first half of the features, cos on the second): max difference ${worst.toExponential(2)}`,
    );
  }
  const tok = m.tokenizer;
  const Vt = tok.vocabSize;
  const emb = new Float32Array(Vt * d);
  const bias = new Float32Array(Vt);
  const flb = get('final_logits_bias', [1, V]);
  bias[0] = TOOLKIT_PAD_LOGIT_BIAS;
  for (let t = 1; t < Vt; t++) {
    const mId = tok.toMarian(t);
    emb.set(shared.data.subarray(mId * d, (mId + 1) * d), t * d);
    bias[t] = flb.data[mId]!;
  }
  const params: NamedArrays = { 'emb.shared': { shape: [Vt, d], data: emb }, 'out.bias': { shape: [Vt], data: bias } };
  const ffn = c.encoder_ffn_dim as number;
  const attn = (to: string, from: string) => {
    for (const [m2, hf] of [
      ['q', 'q_proj'],
      ['k', 'k_proj'],
      ['v', 'v_proj'],
      ['o', 'out_proj'],
    ] as const) {
      params[`${to}.w${m2}`] = transpose(get(`${from}.${hf}.weight`, [d, d]));
      params[`${to}.b${m2}`] = get(`${from}.${hf}.bias`, [d]);
    }
  };
  const norm = (to: string, from: string) => {
    params[`${to}.g`] = get(`${from}.weight`, [d]);
    params[`${to}.b`] = get(`${from}.bias`, [d]);
  };
  const ff = (to: string, from: string) => {
    params[`${to}.w1`] = transpose(get(`${from}.fc1.weight`, [ffn, d]));
    params[`${to}.b1`] = get(`${from}.fc1.bias`, [ffn]);
    params[`${to}.w2`] = transpose(get(`${from}.fc2.weight`, [d, ffn]));
    params[`${to}.b2`] = get(`${from}.fc2.bias`, [d]);
  };
  for (let l = 0; l < (c.encoder_layers as number); l++) {
    const p = `model.encoder.layers.${l}`;
    attn(`enc.${l}.self`, `${p}.self_attn`);
    norm(`enc.${l}.ln1`, `${p}.self_attn_layer_norm`);
    ff(`enc.${l}.ffn`, p);
    norm(`enc.${l}.ln2`, `${p}.final_layer_norm`);
  }
  for (let l = 0; l < (c.decoder_layers as number); l++) {
    const p = `model.decoder.layers.${l}`;
    attn(`dec.${l}.self`, `${p}.self_attn`);
    norm(`dec.${l}.ln1`, `${p}.self_attn_layer_norm`);
    attn(`dec.${l}.cross`, `${p}.encoder_attn`);
    norm(`dec.${l}.ln2`, `${p}.encoder_attn_layer_norm`);
    ff(`dec.${l}.ffn`, p);
    norm(`dec.${l}.ln3`, `${p}.final_layer_norm`);
  }

  const gen = (k: string) => m.generation[k] ?? c[k];
  const banned = new Set<number>([0, 1]);
  const bad = gen('bad_words_ids');
  if (Array.isArray(bad))
    for (const seq of bad)
      if (Array.isArray(seq) && seq.length === 1 && Number.isInteger(seq[0]) && seq[0] >= 0 && seq[0] < V) banned.add(tok.fromMarian(seq[0] as number));
  const maxLength = Number.isInteger(gen('max_length')) ? (gen('max_length') as number) : 512;
  const beams = Number.isInteger(gen('num_beams')) ? (gen('num_beams') as number) : 1;
  const lp = typeof gen('length_penalty') === 'number' ? (gen('length_penalty') as number) : 1;
  const num = (k: string, dflt: number) => (typeof c[k] === 'number' ? (c[k] as number) : dflt);
  const config: HeadsConfig = {
    ...structuredClone(DEFAULT_CONFIG),
    name: `marian-${basename(m.folder).replace(/[^A-Za-z0-9_.-]+/g, '-')}`,
    // training pairs must fit the position table with their <s> or </s>
    data: { ...DEFAULT_CONFIG.data, maxLen: Math.min(DEFAULT_CONFIG.data.maxLen, maxPos - 1) },
    model: {
      encoderLayers: c.encoder_layers as number,
      decoderLayers: c.decoder_layers as number,
      heads: c.encoder_attention_heads as number,
      dModel: d,
      dFF: ffn,
      dropout: num('dropout', 0.1),
      attentionDropout: num('attention_dropout', 0),
      norm: 'post',
      tieEmbeddings: true,
      maxPositions: maxPos,
      keptHeads: null,
      attentionPatterns: null,
      ffnWidths: null,
      moe: null,
      activation: ACTIVATIONS[c.activation_function as string],
      positions: 'split',
      embedScale: c.scale_embedding === true ? Math.sqrt(d) : 1,
      finalLogitsBias: true,
      neverGenerate: [...banned].sort((a, b) => a - b),
    },
    eval: {
      ...DEFAULT_CONFIG.eval,
      beamSize: Math.max(1, beams),
      lengthPenalty: lp,
      beamRules: 'hf',
      maxLenA: 0,
      // HF's max_length counts the decoder start token and the final </s>
      maxLenB: Math.max(1, Math.min(maxLength, maxPos) - 2),
    },
    // fine-tuning an imported model: a small learning rate, no warm-up from zero weights
    train: { ...DEFAULT_CONFIG.train, peakLr: 5e-5, warmupSteps: 0, labelSmoothing: 0.1 },
  };
  const parsed = HeadsConfigSchema.safeParse(config);
  need(
    parsed.success,
    `${m.folder}: the converted config does not validate: ${parsed.success ? '' : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
  );
  return { config, params };
}

/** What `heads import marian` records beside the model (marian.json): enough to export the HF folder back. */
export interface MarianImportRecord {
  format: 'heads.marian-import';
  version: 1;
  source: string;
  weightsFile: string;
  /** config.json and generation_config.json as read */
  hfConfig: Record<string, unknown>;
  hfGeneration: Record<string, unknown>;
}

/**
 * Write an imported model as a toolkit run folder: config.json, tokenizer.json (MarianTokenizer),
 * marian.json, checkpoints/step-0000000 (no optimizer state) and results.json (no scores: a finished run
 * for `heads experiment adopt`). The CLI writes the provenance.
 */
export function writeImportedRun(
  m: MarianFolder,
  converted: { config: HeadsConfig; params: NamedArrays },
  run: { path: string; writeJson(name: string, v: unknown): void; file(...parts: string[]): string },
  writeCheckpoint: (runPath: string, config: HeadsConfig, params: NamedArrays) => void,
): void {
  m.tokenizer.save(run.file('tokenizer.json'));
  const record: MarianImportRecord = {
    format: 'heads.marian-import',
    version: 1,
    source: m.folder,
    weightsFile: basename(m.weightsFile),
    hfConfig: m.config,
    hfGeneration: m.generation,
  };
  run.writeJson('marian.json', record);
  writeCheckpoint(run.path, converted.config, converted.params);
  // the imported model counts as a finished run (experiment adopt takes it as a study's baseline); no scores yet
  run.writeJson('results.json', { imported: { from: m.folder, weightsFile: basename(m.weightsFile) }, steps: 0, devBleu: null, test: null });
}
