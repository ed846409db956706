/**
 * Sparse attention patterns as additive masks (issue 10): local windows for encoder self-attention
 * (|q - k| <= w, as in Longformer's sliding window), causal sliding windows for decoder self-attention
 * (q - w <= k <= q) and block-sparse attention (a query sees its own block and the two neighbouring ones,
 * as in BigBird's block-local part; causal in the decoder). A pattern is a bias of -1e9 where a
 * query-key pair is masked, added to the scores like the padding and causal biases, so it composes with
 * them, with head gates and with incremental decoding (the query row of the current step is used).
 * Shapes: bias [1, 1, Tq, Tk] with queries at positions qOffset..qOffset+Tq-1 and keys at 0..Tk-1.
 */
import * as tf from '@tensorflow/tfjs';
import type { AttentionType } from '../config/head-id.js';
import { ATTENTION_TYPES } from '../config/head-id.js';
import type { AttentionPattern, ModelConfig } from '../config/schema.js';

/** What masked scores get, as in `paddingBias` and `causalBias`. */
const MASKED = -1e9;

/**
 * The pattern `config` sets for one attention type, or null (dense). A config written before
 * `model.attentionPatterns` existed has no such key and is dense.
 */
export function patternOf(config: Pick<ModelConfig, 'attentionPatterns'>, type: AttentionType): AttentionPattern | null {
  const patterns = config.attentionPatterns as Partial<Record<AttentionType, AttentionPattern | null>> | null | undefined;
  return patterns?.[type] ?? null;
}

/** True when any attention type has a pattern (false for null, {} or all-null). */
export function hasAttentionPatterns(config: Pick<ModelConfig, 'attentionPatterns'>): boolean {
  return ATTENTION_TYPES.some((t) => patternOf(config, t) !== null);
}

/** Short label for logs: `local(4)`, `sliding(8)`, `block(16)`, `dense`. */
export function describePattern(p: AttentionPattern | null): string {
  if (!p) return 'dense';
  return p.kind === 'block' ? `block(${p.block})` : `${p.kind}(${p.window})`;
}

/**
 * The allowed keys of query position q (0-based) as one interval [first, last] (empty when first > last).
 * Every pattern allows a contiguous range, and decoder self-attention is causal (last <= q) with or
 * without a pattern. `Tk` is the number of keys.
 */
export function allowedKeyRange(type: AttentionType, p: AttentionPattern | null, q: number, Tk: number): [number, number] {
  let first = 0;
  let last = Tk - 1;
  if (type === 'dec-self') last = Math.min(last, q);
  if (p?.kind === 'local' || p?.kind === 'sliding') {
    first = Math.max(first, q - p.window);
    if (p.kind === 'local') last = Math.min(last, q + p.window);
  } else if (p?.kind === 'block') {
    // blocks qb-1, qb, qb+1 of size b cover positions (qb-1)*b .. (qb+2)*b-1
    const qb = Math.floor(q / p.block);
    first = Math.max(first, (qb - 1) * p.block);
    last = Math.min(last, (qb + 2) * p.block - 1);
  }
  return [first, last];
}

/** Whether query position q may attend key position k (< Tk). */
export function isAllowed(type: AttentionType, p: AttentionPattern | null, q: number, k: number, Tk: number): boolean {
  const [first, last] = allowedKeyRange(type, p, q, Tk);
  return k >= first && k <= last;
}

/**
 * The additive bias of a pattern [1, 1, Tq, Tk]: 0 where allowed, -1e9 where masked. Queries are at
 * positions qOffset..qOffset+Tq-1: a full sequence uses qOffset 0 and Tq = Tk; decoding step t uses
 * qOffset t, Tq 1 and Tk t + 1 (the cached keys and the current one). For dec-self the bias includes the
 * causal mask, so it replaces `causalBias`. The caller owns the tensor (inside a tidy it is freed with it).
 */
export function patternBias(type: AttentionType, p: AttentionPattern | null, Tq: number, Tk: number, qOffset = 0): tf.Tensor4D {
  const data = new Float32Array(Tq * Tk).fill(MASKED);
  for (let i = 0; i < Tq; i++) {
    const [first, last] = allowedKeyRange(type, p, qOffset + i, Tk);
    if (first <= last) data.fill(0, i * Tk + first, i * Tk + last + 1);
  }
  return tf.tensor4d(data, [1, 1, Tq, Tk]);
}

/** Allowed query-key pairs of one sentence: Tq queries at 0..Tq-1 over Tk keys. */
export function allowedPairs(type: AttentionType, p: AttentionPattern | null, Tq: number, Tk: number): number {
  let n = 0;
  for (let q = 0; q < Tq; q++) {
    const [first, last] = allowedKeyRange(type, p, q, Tk);
    n += Math.max(0, last - first + 1);
  }
  return n;
}

/** Attention work of one attention type over a batch. */
export interface AttentionWork {
  /** query-key pairs computed, summed over sentences (per head and layer) */
  pairs: number;
  /** FLOPs of the scores QK^T: 2 * dHead per pair, per head, summed over layers */
  scoreFlops: number;
  /** FLOPs of the context AV: 2 * dHead per pair, per head, summed over layers */
  contextFlops: number;
}

export type AttentionSavings = Record<AttentionType, { dense: AttentionWork; pattern: AttentionWork; patternLabel: string }>;

/** Sentence lengths of one example as the model sees them (source with </s>, target input with <s>). */
export interface SentenceLengths {
  src: number;
  tgt: number;
}

/**
 * The FLOPs of the two attention products (scores QK^T and context AV) of each attention type under the
 * configured patterns versus dense, for a batch given by its sentence lengths. Both columns count only
 * the query-key pairs that are allowed, without padding: what a sparse kernel would compute. The masked
 * dense kernels of this toolkit compute every pair (and more, padded), so this is the work a pattern
 * saves, not a measured speed-up. "Dense" decoder self-attention is causal (T(T+1)/2 pairs); each pair
 * costs dHead multiply-adds (2 * dHead FLOPs) per product. `heads` gives heads per layer of each type
 * (`headsPerLayer`, which honours physical pruning).
 */
export function attentionSavings(
  config: Pick<ModelConfig, 'attentionPatterns'>,
  heads: Readonly<Record<AttentionType, readonly number[]>>,
  dHead: number,
  lengths: Iterable<SentenceLengths>,
): AttentionSavings {
  const pairs = { dense: { 'enc-self': 0, 'dec-self': 0, 'dec-enc': 0 }, pattern: { 'enc-self': 0, 'dec-self': 0, 'dec-enc': 0 } };
  const count = (type: AttentionType, Tq: number, Tk: number) => {
    pairs.dense[type] += allowedPairs(type, null, Tq, Tk);
    pairs.pattern[type] += allowedPairs(type, patternOf(config, type), Tq, Tk);
  };
  for (const { src, tgt } of lengths) {
    count('enc-self', src, src);
    count('dec-self', tgt, tgt);
    count('dec-enc', tgt, src);
  }
  const work = (type: AttentionType, n: number): AttentionWork => {
    const totalHeads = heads[type].reduce((a, h) => a + h, 0);
    const flops = 2 * dHead * n * totalHeads;
    return { pairs: n, scoreFlops: flops, contextFlops: flops };
  };
  const out = {} as AttentionSavings;
  for (const t of ATTENTION_TYPES)
    out[t] = { dense: work(t, pairs.dense[t]), pattern: work(t, pairs.pattern[t]), patternLabel: describePattern(patternOf(config, t)) };
  return out;
}

/**
 * One line for logs: per patterned type its share of the dense attention-product FLOPs, then the total,
 * e.g. `attention patterns: enc-self local(4) 41% of dense; total 2.10 of 3.56 GFLOP QK^T+AV (59%)`.
 */
export function formatAttentionSavings(s: AttentionSavings, over = ''): string {
  const flops = (w: AttentionWork) => w.scoreFlops + w.contextFlops;
  const pct = (a: number, b: number) => `${b > 0 ? ((100 * a) / b).toFixed(0) : '100'}%`;
  const parts = ATTENTION_TYPES.filter((t) => s[t].patternLabel !== 'dense').map(
    (t) => `${t} ${s[t].patternLabel} ${pct(flops(s[t].pattern), flops(s[t].dense))} of dense`,
  );
  const pattern = ATTENTION_TYPES.reduce((a, t) => a + flops(s[t].pattern), 0);
  const dense = ATTENTION_TYPES.reduce((a, t) => a + flops(s[t].dense), 0);
  const g = (x: number) => (x / 1e9).toFixed(2);
  return `attention patterns: ${parts.join(', ')}; total ${g(pattern)} of ${g(dense)} GFLOP QK^T+AV (${pct(pattern, dense)})${over ? ` ${over}` : ''}`;
}
