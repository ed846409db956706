/**
 * The two numbers every head ablation and pruning step is judged by: the dev loss (NLL per target token,
 * eval mode, the same definition as the trainer's dev loss) and greedy dev BLEU (sacreBLEU-compatible
 * corpus BLEU of greedy translations of the first N sentences; greedy keeps one evaluation per head
 * affordable, and the report says so).
 */
import * as tf from '@tensorflow/tfjs';
import type { ResolvedConfig } from '../config/schema.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { type EncodedPair, makeBatch, planEvalBatches } from '../data/batches.js';
import type { SentencePair } from '../data/corpus.js';
import { nllSum, targetWeights } from '../train/objective.js';
import { type TextCodec, translateSentences } from '../eval/translate.js';
import { corpusBleu } from '../eval/bleu.js';
import { batchTensors } from './importance.js';

/** NLL per non-pad target token over `pairs`. */
export async function devLoss(model: Transformer, pairs: readonly EncodedPair[], gates: GateTensors | undefined, maxTokensPerBatch: number): Promise<number> {
  let nll = 0;
  let tokens = 0;
  for (const idx of planEvalBatches(pairs, maxTokensPerBatch)) {
    const b = makeBatch(pairs, idx);
    const s = tf.tidy(() => {
      const { src, tgtIn, tgtOut } = batchTensors(b);
      const logits = model.forward(src, tgtIn, { isTraining: false, gates });
      return nllSum(logits, tgtOut.reshape([-1]) as tf.Tensor1D, targetWeights(tgtOut));
    });
    nll += (await s.data())[0]!;
    s.dispose();
    tokens += b.tgtTokens;
  }
  return tokens ? nll / tokens : 0;
}

/** Corpus BLEU of greedy translations of `pairs` (all of them: slice before calling). */
export async function greedyBleu(
  model: Transformer,
  tokenizer: TextCodec,
  pairs: readonly SentencePair[],
  gates: GateTensors | undefined,
  config: ResolvedConfig,
): Promise<number> {
  if (!pairs.length) return 0;
  const { outputs } = await translateSentences(
    model,
    tokenizer,
    pairs.map((p) => p.src),
    { ...config.eval, beamSize: 1, gates },
  );
  return corpusBleu(outputs, [pairs.map((p) => p.tgt)]).score;
}
