/**
 * The model pass behind the attention statistics: teacher-forced eval-mode forwards over a data set with
 * the `record` hook, feeding each head's weights [B, h, Tq, Tk] to the pure accumulators of
 * attention-stats.ts (confidence, entropy, argmax offsets, rare tokens) and roles.ts (syntactic
 * accuracy on CoNLL-U-aligned sentences); plus single-sentence attention maps for figures.
 * Queries and keys: enc-self src x src, dec-self tgtIn x tgtIn (causal), dec-enc tgtIn x src.
 */
import * as tf from '@tensorflow/tfjs';
import { type AttentionType, parseHeadKey } from '../config/head-id.js';
import type { Transformer } from '../model/transformer.js';
import { type EncodedPair, makeBatch, planEvalBatches } from '../data/batches.js';
import type { SentencePair } from '../data/corpus.js';
import type { BpeTokenizer } from '../data/tokenizer.js';
import { type HeadStatsAccumulator, type RareTokenOptions, accumulateAttention, createHeadStats } from './attention-stats.js';
import { type HeadSyntacticTally, type RelationInstance, addHeadInstances, wordArgmax } from './roles.js';
import type { WordAlignment } from './conllu.js';
import { type HeadLayout, type PerHead, fillPerHead, positionOf } from '../config/head-layout.js';
import { gateTensorsOf } from './multipliers.js';
import { disposeGates } from '../model/gate-tensors.js';
import { batchTensors } from './importance.js';

export interface AlignedSentence {
  alignment: WordAlignment;
  instances: RelationInstance[];
}

export interface AttentionPassOptions {
  stacks: readonly AttentionType[];
  maxTokensPerBatch: number;
  /** rare-token statistics: frequencies of the key side (source keys: `src`; target keys: `tgt`) */
  rare?: { src: RareTokenOptions; tgt: RareTokenOptions } | null;
  /** CoNLL-U alignments by position in `pairs` (encoder self-attention only) */
  syntax?: ReadonlyMap<number, AlignedSentence> | null;
  onBatch?: (done: number, total: number) => void;
}

export interface AttentionPassResult {
  stats: PerHead<HeadStatsAccumulator>;
  /** per enc-self head: relation tallies (empty maps for other stacks); null without CoNLL-U */
  syntactic: PerHead<HeadSyntacticTally> | null;
}

export async function collectAttentionStats(
  model: Transformer,
  layout: HeadLayout,
  pairs: readonly EncodedPair[],
  base: PerHead,
  o: AttentionPassOptions,
): Promise<AttentionPassResult> {
  const stats = fillPerHead(layout, () => createHeadStats());
  const syntactic = o.syntax ? fillPerHead(layout, (): HeadSyntacticTally => new Map()) : null;
  const plan = planEvalBatches(pairs, o.maxTokensPerBatch);
  const gates = gateTensorsOf(base);
  try {
    for (let bi = 0; bi < plan.length; bi++) {
      const positions = plan[bi]!;
      const b = makeBatch(pairs, positions);
      tf.tidy(() => {
        const { src, tgtIn } = batchTensors(b);
        model.forward(src, tgtIn, {
          isTraining: false,
          gates,
          record: (stack, layer, r) => {
            if (!o.stacks.includes(stack)) return;
            const [B, h, Tq, Tk] = r.weights.shape;
            const w = r.weights.dataSync();
            const keys = stack === 'dec-self' ? b.tgtIn : b.src;
            const rare = o.rare ? (stack === 'dec-self' ? o.rare.tgt : o.rare.src) : null;
            for (let row = 0; row < B; row++) {
              const pair = pairs[positions[row]!]!;
              const queries = stack === 'enc-self' ? pair.src.length + 1 : pair.tgt.length + 1;
              const keyIds = keys.subarray(row * Tk, (row + 1) * Tk);
              const aligned = stack === 'enc-self' ? o.syntax?.get(positions[row]!) : undefined;
              for (let j = 0; j < h; j++) {
                const base0 = (row * h + j) * Tq * Tk;
                accumulateAttention(stats[stack][layer]![j]!, { weights: w, base: base0, stride: Tk, queries, keyIds, isCausal: stack === 'dec-self' }, rare);
                if (aligned && syntactic) addHeadInstances(syntactic[stack][layer]![j]!, aligned.instances, wordArgmax(w, base0, Tk, aligned.alignment));
              }
            }
          },
        });
      });
      o.onBatch?.(bi + 1, plan.length);
    }
  } finally {
    disposeGates(gates);
  }
  return { stats, syntactic };
}

/** One head's attention over one sentence, for a figure. */
export interface AttentionMap {
  /** index of the sentence in the split */
  sentence: number;
  key: string;
  queryTokens: string[];
  keyTokens: string[];
  /** [query][key] */
  weights: number[][];
}

/**
 * Attention maps of the chosen sentences (indices into `pairs`) for the chosen heads (keys with original
 * ids). Source tokens end with `</s>`, decoder inputs start with `<s>`.
 */
export function attentionMaps(
  model: Transformer,
  layout: HeadLayout,
  tokenizer: BpeTokenizer,
  pairs: readonly SentencePair[],
  sentences: readonly number[],
  heads: readonly string[],
  base: PerHead,
): AttentionMap[] {
  const out: AttentionMap[] = [];
  const ids = heads.map((k) => ({ key: k, id: parseHeadKey(k)! }));
  const gates = gateTensorsOf(base);
  try {
    for (const s of sentences) {
      const pair = pairs[s];
      if (!pair) continue;
      const enc: EncodedPair = { src: tokenizer.encode(pair.src), tgt: tokenizer.encode(pair.tgt), index: s };
      const b = makeBatch([enc], [0]);
      const srcTokens = [...enc.src.map((id) => tokenizer.pieceOf(id)), '</s>'];
      const tgtTokens = ['<s>', ...enc.tgt.map((id) => tokenizer.pieceOf(id))];
      const found = new Map<string, number[][]>();
      tf.tidy(() => {
        const { src, tgtIn } = batchTensors(b);
        model.forward(src, tgtIn, {
          isTraining: false,
          gates,
          record: (stack, layer, r) => {
            const wanted = ids.filter((x) => x.id.stack === stack && x.id.layer === layer);
            if (!wanted.length) return;
            const w = r.weights.arraySync()[0]!;
            for (const x of wanted) {
              const j = positionOf(layout, stack, layer, x.id.head);
              if (j >= 0) found.set(x.key, w[j]!);
            }
          },
        });
      });
      for (const x of ids) {
        const weights = found.get(x.key);
        if (!weights) continue;
        const isSrcQuery = x.id.stack === 'enc-self';
        const isSrcKey = x.id.stack !== 'dec-self';
        out.push({ sentence: s, key: x.key, queryTokens: isSrcQuery ? srcTokens : tgtTokens, keyTokens: isSrcKey ? srcTokens : tgtTokens, weights });
      }
    }
  } finally {
    disposeGates(gates);
  }
  return out;
}
