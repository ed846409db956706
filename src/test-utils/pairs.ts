/** Synthetic encoded pairs for tests: the reverse task (target = source reversed). */
import type { EncodedPair } from '../data/batches.js';
import { Rng } from '../util/random.js';

/** `n` pairs of tokens 4..vocab-1 (below 4: specials), source lengths 3..8, seeded. */
export function reversePairs(n: number, seed: number, vocab = 24): EncodedPair[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, (_, index) => {
    const src = Array.from({ length: 3 + r.int(6) }, () => 4 + r.int(vocab - 4));
    return { src, tgt: [...src].reverse(), index };
  });
}
