/**
 * `heads export --format hf-marian`: a (pruned) imported Marian model back as a Hugging Face folder that
 * stock `MarianMTModel.from_pretrained` loads: config.json, generation_config.json, vocab.json,
 * source.spm, target.spm and model.safetensors with HF's names and UNIFORM shapes (HF Marian has one head
 * count for all layers). A head the toolkit model no longer has (config.model.keptHeads) gets zero
 * q/k/v rows and biases and zero out_proj columns: its scores are all 0, its values 0, so it adds exactly
 * nothing; kept heads carry the weights of the toolkit model, whose out_proj already holds the folded
 * gates (exportModel). A layer with no heads outputs out_proj's bias, as the toolkit's does. FFN layers
 * narrowed by neuron pruning are padded with zero units (act(0) = 0 for relu, swish and gelu).
 * The toolkit-only pad row 0 is dropped; toolkit ids return to Marian's (MarianTokenizer.toMarian).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { AttentionType } from '../config/head-id.js';
import { headLayout } from '../config/head-layout.js';
import { MarianTokenizer } from '../data/tokenizer.js';
import { loadModel } from '../io/load-model.js';
import { type SafeTensor, writeSafetensors } from '../io/safetensors.js';
import { sinusoidalTable } from '../model/layers.js';
import { CheckpointError } from '../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { makeDirs } from '../util/dirs.js';
import type { MarianImportRecord } from './marian.js';

/** marian.json of the import a run descends from (through parent.json links), or null. */
export function findImportRecord(runPath: string): MarianImportRecord | null {
  let p: string | null = runPath;
  for (let i = 0; p && i < 20; i++) {
    const rec = join(p, 'marian.json');
    if (existsSync(rec)) return JSON.parse(readFileSync(rec, 'utf8')) as MarianImportRecord;
    // a prune run names its parent checkpoint (parent.json), an export its source run (export.json)
    const parent = join(p, 'parent.json');
    const exp = join(p, 'export.json');
    let next: string | null = null;
    if (existsSync(parent)) {
      const j = JSON.parse(readFileSync(parent, 'utf8')) as { checkpoint?: string };
      next = j.checkpoint ? dirname(dirname(j.checkpoint)) : null;
    } else if (existsSync(exp)) next = (JSON.parse(readFileSync(exp, 'utf8')) as { from?: { run?: string } }).from?.run ?? null;
    p = next && next !== p ? next : null;
  }
  return null;
}

/** Write the HF folder of the model at `modelPath` (a run or checkpoint folder of an imported model). */
export function writeHfMarian(modelPath: string, outDir: string, record: MarianImportRecord | null): { heads: number; zeroedHeads: number; bytes: number } {
  const { model, tokenizer, config, runPath } = loadModel(modelPath);
  try {
    if (!(tokenizer instanceof MarianTokenizer))
      throw new CheckpointError(
        `${runPath}: not an imported Marian model (its tokenizer.json is not ${'marian-spm'}): --format hf-marian needs a model made by heads import marian`,
      );
    const c = config.model;
    if (!c.finalLogitsBias || !c.tieEmbeddings || c.norm !== 'post' || c.positions !== 'split' || c.moe)
      throw new CheckpointError(
        `${runPath}: model options are not Marian's (finalLogitsBias, tied embeddings, post-norm, split positions, no MoE): cannot write an HF Marian folder`,
      );
    const layout = headLayout(c);
    const d = c.dModel;
    const H = c.heads;
    const dh = d / H;
    const V = tokenizer.marianVocab.length;
    const get = (n: string) => model.params.get(n).dataSync() as Float32Array;
    const t: Record<string, SafeTensor> = {};
    const put = (name: string, shape: number[], data: Float32Array) => (t[name] = { dtype: 'F32', shape, data });
    // embeddings and the logit bias in Marian's id order (toolkit row 0, the pad of its own, is dropped)
    const emb = get('emb.shared');
    const bias = get('out.bias');
    const shared = new Float32Array(V * d);
    const flb = new Float32Array(V);
    for (let m = 0; m < V; m++) {
      const tk = tokenizer.fromMarian(m);
      shared.set(emb.subarray(tk * d, (tk + 1) * d), m * d);
      flb[m] = bias[tk]!;
    }
    put('final_logits_bias', [1, V], flb);
    put('model.shared.weight', [V, d], shared);
    put('model.encoder.embed_tokens.weight', [V, d], shared.slice());
    put('model.decoder.embed_tokens.weight', [V, d], shared.slice());
    put('lm_head.weight', [V, d], shared.slice());
    const pos = sinusoidalTable(c.maxPositions, d, 'split');
    put('model.encoder.embed_positions.weight', [c.maxPositions, d], pos);
    put('model.decoder.embed_positions.weight', [c.maxPositions, d], pos.slice());
    let heads = 0;
    let zeroed = 0;
    const attn = (to: string, from: string, stack: AttentionType, layer: number) => {
      const kept = layout.originalIds[stack][layer]!;
      heads += H;
      zeroed += H - kept.length;
      for (const [m, hf] of [
        ['q', 'q_proj'],
        ['k', 'k_proj'],
        ['v', 'v_proj'],
      ] as const) {
        const w = get(`${from}.w${m}`); // [d, kept*dh]
        const b = get(`${from}.b${m}`);
        const W = new Float32Array(d * d); // HF [out = H*dh, in = d]
        const B = new Float32Array(d);
        kept.forEach((h, j) => {
          for (let r = 0; r < dh; r++) {
            for (let i = 0; i < d; i++) W[(h * dh + r) * d + i] = w[i * kept.length * dh + j * dh + r]!;
            B[h * dh + r] = b[j * dh + r]!;
          }
        });
        put(`${to}.${hf}.weight`, [d, d], W);
        put(`${to}.${hf}.bias`, [d], B);
      }
      const wo = get(`${from}.wo`); // [kept*dh, d]
      const O = new Float32Array(d * d); // HF [out = d, in = H*dh]
      kept.forEach((h, j) => {
        for (let r = 0; r < dh; r++) for (let o = 0; o < d; o++) O[o * d + h * dh + r] = wo[(j * dh + r) * d + o]!;
      });
      put(`${to}.out_proj.weight`, [d, d], O);
      put(`${to}.out_proj.bias`, [d], get(`${from}.bo`).slice());
    };
    const norm = (to: string, from: string) => {
      put(`${to}.weight`, [d], get(`${from}.g`).slice());
      put(`${to}.bias`, [d], get(`${from}.b`).slice());
    };
    const ffn = (to: string, from: string) => {
      const w1 = get(`${from}.w1`); // [d, width]
      const width = w1.length / d;
      const F = c.dFF;
      const fc1 = new Float32Array(F * d);
      const b1 = new Float32Array(F);
      const fc2 = new Float32Array(d * F);
      const w2 = get(`${from}.w2`); // [width, d]
      const bb1 = get(`${from}.b1`);
      for (let u = 0; u < width; u++) {
        for (let i = 0; i < d; i++) fc1[u * d + i] = w1[i * width + u]!;
        b1[u] = bb1[u]!;
        for (let o = 0; o < d; o++) fc2[o * F + u] = w2[u * d + o]!;
      }
      put(`${to}.fc1.weight`, [F, d], fc1);
      put(`${to}.fc1.bias`, [F], b1);
      put(`${to}.fc2.weight`, [d, F], fc2);
      put(`${to}.fc2.bias`, [d], get(`${from}.b2`).slice());
    };
    for (let l = 0; l < c.encoderLayers; l++) {
      const p = `model.encoder.layers.${l}`;
      attn(`${p}.self_attn`, `enc.${l}.self`, 'enc-self', l);
      norm(`${p}.self_attn_layer_norm`, `enc.${l}.ln1`);
      ffn(p, `enc.${l}.ffn`);
      norm(`${p}.final_layer_norm`, `enc.${l}.ln2`);
    }
    for (let l = 0; l < c.decoderLayers; l++) {
      const p = `model.decoder.layers.${l}`;
      attn(`${p}.self_attn`, `dec.${l}.self`, 'dec-self', l);
      norm(`${p}.self_attn_layer_norm`, `dec.${l}.ln1`);
      attn(`${p}.encoder_attn`, `dec.${l}.cross`, 'dec-enc', l);
      norm(`${p}.encoder_attn_layer_norm`, `dec.${l}.ln2`);
      ffn(p, `dec.${l}.ffn`);
      norm(`${p}.final_layer_norm`, `dec.${l}.ln3`);
    }
    const pad = V - 1;
    const hfBase = record?.hfConfig ?? { architectures: ['MarianMTModel'], model_type: 'marian', transformers_version: '4.22.0.dev0' };
    const act = c.activation ?? 'relu';
    const hfConfig = {
      ...hfBase,
      activation_function: act === 'swish' ? (typeof hfBase.activation_function === 'string' && hfBase.activation_function === 'silu' ? 'silu' : 'swish') : act,
      d_model: d,
      encoder_layers: c.encoderLayers,
      decoder_layers: c.decoderLayers,
      num_hidden_layers: c.encoderLayers,
      encoder_attention_heads: H,
      decoder_attention_heads: H,
      encoder_ffn_dim: c.dFF,
      decoder_ffn_dim: c.dFF,
      max_position_embeddings: c.maxPositions,
      vocab_size: V,
      decoder_vocab_size: V,
      pad_token_id: pad,
      decoder_start_token_id: pad,
      eos_token_id: 0,
      scale_embedding: (c.embedScale ?? Math.sqrt(d)) !== 1,
      normalize_before: false,
      share_encoder_decoder_embeddings: true,
      model_type: 'marian',
    };
    makeDirs(outDir);
    const digest = writeSafetensors(join(outDir, 'model.safetensors'), t, { format: 'pt' });
    writeJsonAtomic(join(outDir, 'config.json'), hfConfig);
    const generation =
      record?.hfGeneration && Object.keys(record.hfGeneration).length
        ? record.hfGeneration
        : {
            bad_words_ids: [[pad]],
            bos_token_id: 0,
            decoder_start_token_id: pad,
            eos_token_id: 0,
            forced_eos_token_id: 0,
            max_length: config.eval.maxLenB + 2,
            num_beams: config.eval.beamSize,
            pad_token_id: pad,
            renormalize_logits: true,
          };
    writeJsonAtomic(join(outDir, 'generation_config.json'), generation);
    writeJsonAtomic(join(outDir, 'vocab.json'), Object.fromEntries(tokenizer.marianVocab.map((p, i) => [p, i])));
    writeFileAtomic(join(outDir, 'source.spm'), tokenizer.sourceModel);
    writeFileAtomic(join(outDir, 'target.spm'), tokenizer.targetModel);
    writeJsonAtomic(join(outDir, 'tokenizer_config.json'), {
      model_max_length: c.maxPositions,
      tokenizer_class: 'MarianTokenizer',
      eos_token: '</s>',
      unk_token: '<unk>',
      pad_token: '<pad>',
    });
    return { heads, zeroedHeads: zeroed, bytes: digest.bytes };
  } finally {
    model.dispose();
  }
}
