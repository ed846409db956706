/**
 * How much of a text a model's vocabulary covers: the share of its tokens that encode as <unk>. The
 * tokenizer keeps every character of the training text, so text in the model's languages has almost
 * none; text of another vocabulary (another script, a corpus of another language pair) is mostly <unk>,
 * and every score computed on it (a rare-token head, attention, BLEU) describes <unk>s.
 */
import { UNK_ID } from './tokenizer.js';

export interface Coverage {
  tokens: number;
  unknown: number;
  /** unknown / tokens (0 for no tokens) */
  rate: number;
}

export function unknownTokenRate(codec: { encode(text: string): number[] }, texts: Iterable<string>): Coverage {
  let tokens = 0;
  let unknown = 0;
  for (const t of texts) {
    const ids = codec.encode(t);
    tokens += ids.length;
    for (const id of ids) if (id === UNK_ID) unknown++;
  }
  return { tokens, unknown, rate: tokens ? unknown / tokens : 0 };
}

/** Above this share of <unk> tokens, analysing is refused and translating warns. */
export const FOREIGN_TEXT_UNKNOWN_RATE = 0.2;

export function describeCoverage(c: Coverage): string {
  return `${(100 * c.rate).toFixed(1)}% of its ${c.tokens} tokens (${c.unknown}) are unknown to the model's vocabulary (<unk>)`;
}
