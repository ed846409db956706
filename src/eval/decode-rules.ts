/** What every decoder shares: the special ids (0 pad, 1 <s>, 2 </s>), the output length limit and GNMT's length penalty. */
export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;

/** Longest output allowed for a source of `srcLen` tokens. */
export function maxOutputLength(srcLen: number, o: { maxLenA: number; maxLenB: number }, maxPositions: number): number {
  return Math.max(1, Math.min(Math.floor(o.maxLenA * srcLen + o.maxLenB), maxPositions - 1));
}

/** GNMT length penalty ((5 + len) / 6)^alpha; a finished hypothesis scores logP / lengthPenalty. */
export function lengthPenalty(len: number, alpha: number): number {
  return Math.pow((5 + len) / 6, alpha);
}
