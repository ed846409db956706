/**
 * From the data config to encoded training data: read the corpora (Moses pairs or TSV, or a generated
 * synthetic corpus when `data.train` is null), learn joint BPE on the training side (or reuse a saved
 * tokenizer), encode every split and drop over-long training pairs.
 */
import type { DataConfig } from '../config/schema.js';
import { type CorpusSpec, type SentencePair, readParallelCorpus } from './corpus.js';
import { BpeTokenizer } from './tokenizer.js';
import { type EncodedPair, filterByLength } from './batches.js';
import { generateSyntheticCorpus } from './synthetic.js';

export interface Corpora {
  train: SentencePair[];
  valid: SentencePair[];
  test: SentencePair[];
  /** where each split came from, for logs and run records */
  sources: { train: string; valid: string; test: string };
}

export interface PreparedData {
  tokenizer: BpeTokenizer;
  corpora: Corpora;
  train: EncodedPair[];
  valid: EncodedPair[];
  test: EncodedPair[];
  droppedTooLong: number;
}

/** A corpus path from the config: a `.tsv` file or a Moses prefix (`dir/train` -> dir/train.en + .de). */
export function corpusSpec(path: string, data: Pick<DataConfig, 'srcLang' | 'tgtLang'>): CorpusSpec {
  return /\.tsv$/i.test(path) ? { format: 'tsv', path } : { format: 'moses', prefix: path, srcLang: data.srcLang, tgtLang: data.tgtLang };
}

export function loadCorpora(data: DataConfig, seed: number): Corpora {
  if (data.train === null) {
    const s = data.synthetic;
    const c = generateSyntheticCorpus(s.task, { seed, trainPairs: s.trainPairs, validPairs: s.validPairs, testPairs: s.testPairs });
    const label = `synthetic:${s.task}(seed ${seed})`;
    return { train: c.train, valid: c.valid, test: c.test, sources: { train: label, valid: label, test: label } };
  }
  const read = (p: string | null) => (p === null ? [] : readParallelCorpus(corpusSpec(p, data)));
  return {
    train: read(data.train),
    valid: read(data.valid),
    test: read(data.test),
    sources: { train: data.train, valid: data.valid ?? '', test: data.test ?? '' },
  };
}

export function encodePairs(tok: BpeTokenizer, pairs: readonly SentencePair[]): EncodedPair[] {
  return pairs.map((p, index) => ({ src: tok.encode(p.src), tgt: tok.encodeTarget(p.tgt), index }));
}

export function prepareData(data: DataConfig, seed: number, opts: { tokenizer?: BpeTokenizer; onProgress?: (msg: string) => void } = {}): PreparedData {
  const log = opts.onProgress ?? (() => {});
  const corpora = loadCorpora(data, seed);
  log(`data: ${corpora.train.length} train / ${corpora.valid.length} valid / ${corpora.test.length} test pairs from ${corpora.sources.train}`);
  let tokenizer = opts.tokenizer;
  if (!tokenizer) {
    const t0 = performance.now();
    tokenizer = BpeTokenizer.learn(
      (function* () {
        for (const p of corpora.train) {
          yield p.src;
          yield p.tgt;
        }
      })(),
      { numMerges: data.bpeMerges },
    );
    log(`bpe: learned ${data.bpeMerges} joint merges, vocabulary ${tokenizer.vocabSize}, in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  }
  const { kept, dropped } = filterByLength(encodePairs(tokenizer, corpora.train), data.maxLen);
  return { tokenizer, corpora, train: kept, valid: encodePairs(tokenizer, corpora.valid), test: encodePairs(tokenizer, corpora.test), droppedTooLong: dropped };
}
