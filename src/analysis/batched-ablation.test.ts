import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSpec } from '../experiments/spec.js';
import { ConfigError } from '../util/errors.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import type { SentencePair } from '../data/corpus.js';
import { createTransformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { useTestBackend } from '../test-utils/backend.js';
import { translateSentences } from '../eval/translate.js';
import { analyzeHeads } from './analyze.js';
import { batchedAblationLosses } from './batched-ablation.js';
import { devLoss, greedyBleu } from './dev-metrics.js';
import { fillPerHead, headLayout, listHeads } from '../config/head-layout.js';
import { gateTensorsOf, withHeadsRemoved } from './multipliers.js';
import { disposeGates } from '../model/gate-tensors.js';
import { randomPairs, tinyConfig, tinyModel } from './test-fixtures.js';
import { hasXentLossKernel } from '../backend/softmax-xent.js';

beforeAll(async () => {
  await useTestBackend();
});

describe('batchedAblationLosses', () => {
  // 3 encoder + 2 decoder layers of 3 heads: 21 heads; sentences of different lengths, so batches have padding
  const shape = { encoderLayers: 3, decoderLayers: 2, heads: 3, dModel: 12, dFF: 16 };
  const config = tinyConfig(shape);
  const layout = headLayout(config.model);
  const vocab = 23;
  const pairs = randomPairs(vocab, [
    [5, 3],
    [9, 7],
    [2, 4],
    [7, 9],
    [4, 2],
    [8, 8],
    [3, 6],
  ]);
  // test-time multipliers with a half-open and a closed head, as a gated model has
  const base = fillPerHead(layout, (s, l, j) => (s === 'enc-self' && l === 1 && j === 2 ? 0.5 : s === 'dec-enc' && l === 0 && j === 1 ? 0 : 1));
  const heads = listHeads(layout, ['enc-self', 'dec-self', 'dec-enc']);

  it('gives each head the dev loss of masking that head alone, with several heads per pass and several passes per batch', async () => {
    const model = tinyModel(vocab, shape, 5);
    // the ablations take their NLL from the loss-only kernel, the reference (devLoss) from logSumExp
    expect(hasXentLossKernel()).toBe(true);
    try {
      const reference: number[] = [];
      for (const h of heads) {
        const g = gateTensorsOf(withHeadsRemoved(base, [h]));
        reference.push(await devLoss(model, pairs, g, 40));
        disposeGates(g);
      }
      const gb = gateTensorsOf(base);
      const baseLoss = await devLoss(model, pairs, gb, 40);
      disposeGates(gb);
      const before = tf.memory().numTensors;
      let passes = 0;
      // 4 heads per pass, encoder heads apart: 3 passes for the 9 encoder heads (4, 4, 1), 3 for the 12 others
      const got = await batchedAblationLosses(model, pairs, base, heads, { maxTokensPerBatch: 40, masksPerPass: 4, onPass: () => passes++ });
      expect(tf.memory().numTensors).toBe(before);
      expect(got).toHaveLength(heads.length);
      for (const [i, v] of got.entries()) expect(Math.abs(v - reference[i]!)).toBeLessThan(1e-5 * reference[i]!);
      // the deltas are not all alike: removing heads moves the loss by different amounts, the closed head by nothing
      const deltas = got.map((v) => v - baseLoss);
      expect(Math.max(...deltas.map(Math.abs))).toBeGreaterThan(1e-3);
      expect(Math.abs(deltas[heads.findIndex((h) => h.key === 'dec-enc.0.1')]!)).toBeLessThan(1e-5);
      expect(passes % Math.ceil(heads.length / 4)).toBe(0);
      expect(passes).toBeGreaterThan(Math.ceil(heads.length / 4)); // more than one batch
      // one head per pass (the memory bound at its smallest) gives the same numbers
      const single = await batchedAblationLosses(model, pairs, base, heads, { maxTokensPerBatch: 40, maxLogits: 1 });
      for (const [i, v] of single.entries()) expect(Math.abs(v - reference[i]!)).toBeLessThan(1e-5 * reference[i]!);
    } finally {
      model.dispose();
    }
  });
});

describe('analyzeHeads ablation metrics', () => {
  const letters = 'abcdefgh';
  const rng = new Rng(9);
  const word = (n: number) => Array.from({ length: n }, () => letters[rng.int(letters.length)]).join('');
  const sources = Array.from({ length: 5 }, () => `${word(4)} ${word(3)}`);
  const tokenizer = BpeTokenizer.learn(sources.concat([letters]), { numMerges: 0 });
  const config = tinyConfig({ heads: 2, dModel: 8 });

  it("--ablation bleu: every head's BLEU is greedy BLEU with that head removed, as head by head before; loss: the same losses, no BLEU", async () => {
    const model = createTransformer(config.model, tokenizer.vocabSize, new Rng(4));
    try {
      // references = the full model's own greedy translations: unablated BLEU 100, so removing a head that
      // changes a translation lowers it (a random model scores 0 against any other text)
      const { outputs } = await translateSentences(model, tokenizer, sources, { ...config.eval, beamSize: 1 });
      const pairs: SentencePair[] = sources.map((src, i) => ({ src, tgt: outputs[i]! }));
      const bleus: number[] = [];
      const common = { model, tokenizer, config, split: { name: 'dev', source: 'test pairs', pairs }, lrp: { enabled: false } };
      const withBleu = await analyzeHeads({ ...common, ablation: { metric: 'bleu', bleuSentences: 4 } });
      const lossOnly = await analyzeHeads({ ...common });
      const layout = headLayout(config.model);
      const ones = fillPerHead(layout, () => 1);
      const bleuPairs = pairs.slice(0, 4);
      for (const h of listHeads(layout, ['enc-self', 'dec-self', 'dec-enc'])) {
        const g = gateTensorsOf(withHeadsRemoved(ones, [h]));
        const bleu = await greedyBleu(model, tokenizer, bleuPairs, g, config);
        disposeGates(g);
        expect(withBleu.heads[h.key]!.ablation!.bleu).toBe(bleu);
        bleus.push(bleu);
        expect(lossOnly.heads[h.key]!.ablation!.bleu).toBeNull();
        expect(lossOnly.heads[h.key]!.ablation!.deltaBleu).toBeNull();
        expect(lossOnly.heads[h.key]!.ablation!.loss).toBe(withBleu.heads[h.key]!.ablation!.loss);
      }
      expect(withBleu.settings.ablation).toMatchObject({ metric: 'bleu', bleuSentences: 4 });
      expect(lossOnly.settings.ablation).toMatchObject({ metric: 'loss', bleuSentences: 0, lossSentences: 5 });
      expect(lossOnly.baseline!.devBleu).toBeNull();
      expect(withBleu.baseline!.devBleu).toBeCloseTo(100, 6);
      expect(new Set(bleus).size).toBeGreaterThan(2); // the comparison is between distinct numbers
    } finally {
      model.dispose();
    }
  });
});

describe('ablation on analyze stages of an experiment spec', () => {
  const dir = mkdtempSync(join(tmpdir(), 'heads-ablation-spec-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const spec = (file: string, stage: string) => {
    const p = join(dir, `${file}.yaml`);
    writeFileSync(p, `name: ${file}\nset: { data.synthetic.task: reverse }\nstages:\n  b: { kind: train }\n  an: { kind: analyze, of: b${stage} }\n`);
    return p;
  };

  it('takes loss or bleu, leaves it out by default, and refuses anything else in one line naming the file and key', () => {
    expect(loadSpec(spec('bleu', ', ablation: bleu')).stages['an']).toMatchObject({ ablation: 'bleu' });
    expect(loadSpec(spec('plain', '')).stages['an']).not.toHaveProperty('ablation');
    const p = spec('bad', ', ablation: perplexity');
    let problems: string[] = [];
    try {
      loadSpec(p);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      problems = (e as ConfigError).problems;
    }
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(p);
    expect(problems[0]).toMatch(/stages\.an\.ablation.*"perplexity"/);
  });
});
