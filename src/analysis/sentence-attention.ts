/**
 * The data behind an attention-map figure (plots/attention.ts draws it): one teacher-forced, eval-mode forward pass of a trained model
 * over one sentence pair (the target translated greedily first when none is given), reading each chosen
 * head's weights [query][key] through the model's `record` hook. Gated models run with their
 * deterministic test-time gates, as they are evaluated. Heads are named with original ids.
 */
import * as tf from '@tensorflow/tfjs';
import { parseHeadKey } from '../config/head-id.js';
import { headLayout, listHeads, originalKey } from '../config/head-layout.js';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import type { EvalConfig } from '../config/schema.js';
import { makeBatch } from '../data/batches.js';
import type { BpeTokenizer } from '../data/tokenizer.js';
import { translateSentences } from '../eval/translate.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { disposeGates } from '../model/gate-tensors.js';
import { ConfigError } from '../util/errors.js';

/** What `loadModel` returns is enough: a model, its tokenizer and (for gated runs) its gates. */
export interface AttentionModel {
  model: Transformer;
  tokenizer: BpeTokenizer;
  gates?: { testGates(): GateTensors } | null;
}

export interface SentenceAttentionOptions {
  /** head keys with original ids (default: every head of the last decoder-encoder layer) */
  heads?: readonly string[];
  /** decoding settings for the greedy translation when no target is given (default: the defaults' eval) */
  eval?: EvalConfig;
  /** label written into each map (default: the source sentence) */
  sentence?: number | string;
}

/** One head's attention over the sentence (the shape plots/attention.ts draws: plots/readers.ts AttentionMapData). */
export interface SentenceAttentionMap {
  /** head key, e.g. `dec-enc.1.3` */
  key: string;
  queryTokens: string[];
  keyTokens: string[];
  /** [query][key], rows sum to 1 */
  weights: number[][];
  sentence?: number | string;
}

export interface SentenceAttention {
  source: string;
  /** the reference given, or the model's greedy translation */
  target: string;
  isTranslated: boolean;
  maps: SentenceAttentionMap[];
}

/** Every head key the model has, in stack / layer / head order. */
export function modelHeadKeys(model: Transformer): string[] {
  return listHeads(headLayout(model.config)).map((h) => h.key);
}

/** Attention weights of the chosen heads over one sentence pair. */
export async function sentenceAttention(
  m: AttentionModel,
  pair: { src: string; tgt?: string },
  opts: SentenceAttentionOptions = {},
): Promise<SentenceAttention> {
  const { model, tokenizer } = m;
  const layout = headLayout(model.config);
  const available = listHeads(layout).map((h) => h.key);
  const lastDecEnc = model.shape['dec-enc'].length - 1;
  const heads = opts.heads ?? available.filter((k) => k.startsWith(`dec-enc.${lastDecEnc}.`));
  const unknown = heads.filter((k) => !available.includes(k));
  if (unknown.length)
    throw new ConfigError([`heads: the model has no head ${unknown.join(', ')} (heads look like enc-self.0.1; this model has ${available.length})`]);

  const gates = m.gates?.testGates();
  try {
    let target = pair.tgt;
    if (target === undefined) {
      const { outputs } = await translateSentences(model, tokenizer, [pair.src], { ...(opts.eval ?? DEFAULT_CONFIG.eval), beamSize: 1, gates });
      target = outputs[0] ?? '';
    }
    const maxLen = model.config.maxPositions - 1;
    const enc = { src: tokenizer.encode(pair.src).slice(0, maxLen - 1), tgt: tokenizer.encode(target).slice(0, maxLen - 1), index: 0 };
    const b = makeBatch([enc], [0]);
    const srcTokens = [...enc.src.map((id) => tokenizer.pieceOf(id)), '</s>'];
    const tgtTokens = ['<s>', ...enc.tgt.map((id) => tokenizer.pieceOf(id))];
    const wanted = heads.map((k) => ({ key: k, id: parseHeadKey(k)! }));
    const found = new Map<string, number[][]>();
    tf.tidy(() => {
      const src = tf.tensor2d(b.src, [1, b.srcLen], 'int32');
      const tgtIn = tf.tensor2d(b.tgtIn, [1, b.tgtLen], 'int32');
      model.forward(src, tgtIn, {
        isTraining: false,
        gates,
        record: (stack, layer, r) => {
          const mine = wanted.filter((w) => w.id.stack === stack && w.id.layer === layer);
          if (!mine.length) return;
          const w = r.weights.arraySync()[0]!; // [heads, Tq, Tk] of the one sentence
          w.forEach((grid, pos) => {
            const key = originalKey(layout, stack, layer, pos);
            if (mine.some((x) => x.key === key)) found.set(key, grid);
          });
        },
      });
    });
    const maps = wanted.flatMap(({ key, id }): SentenceAttentionMap[] => {
      const weights = found.get(key);
      if (!weights) return [];
      return [
        {
          key,
          queryTokens: id.stack === 'enc-self' ? srcTokens : tgtTokens,
          keyTokens: id.stack === 'dec-self' ? tgtTokens : srcTokens,
          weights,
          sentence: opts.sentence ?? pair.src,
        },
      ];
    });
    return { source: pair.src, target, isTranslated: pair.tgt === undefined, maps };
  } finally {
    if (gates) disposeGates(gates);
  }
}
