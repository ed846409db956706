/** A tiny Transformer briefly trained on synthetic pairs, for decoding tests (a random model repeats one token). */
import { loadConfig } from '../config/load.js';
import type { EncodedPair } from '../data/batches.js';
import { type Transformer, createTransformer } from '../model/transformer.js';
import { Trainer } from '../train/trainer.js';
import { Rng } from '../util/random.js';

/** d_model 16, d_ff 32, 2 heads, no dropout, plus `sets` (layers, steps, ...); initialised with seed 5, trained in the main thread. */
export async function trainedTinyModel(vocab: number, pairs: EncodedPair[], sets: string[]): Promise<Transformer> {
  const cfg = loadConfig(null, [
    'model.dModel=16',
    'model.dFF=32',
    'model.heads=2',
    'model.dropout=0',
    'train.peakLr=5e-3',
    'train.warmupSteps=10',
    'train.maxTokensPerBatch=300',
    'train.evalEverySteps=0',
    'train.workers=1',
    ...sets,
  ]);
  const model = createTransformer(cfg.model, vocab, new Rng(5));
  const t = new Trainer({ config: cfg, model, train: pairs, valid: pairs.slice(0, 4), run: null });
  await t.run();
  t.dispose();
  return model;
}
