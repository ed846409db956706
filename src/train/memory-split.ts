/**
 * Keeping training steps inside the wasm heap (at most 4 GiB per thread, and it never shrinks). A
 * micro-batch whose estimated heap exceeds the budget is split by rows into smaller chunks whose
 * gradients are summed (train/workers/micro-batch.ts), instead of crashing mid-step; a heap failure that
 * still happens is reported as an OutOfMemoryError naming the batch (`guardWasmHeap`).
 *
 * The estimate is analytic, so it is deterministic (the split changes dropout seeds, so it must not depend
 * on which thread runs the batch or what ran before). It counts float32 values kept alive by a
 * training step per source and target position: the activations the tape keeps (linear outputs, layer
 * norm intermediates, dropout masks at 5 values per element, attention scores per key), the [N, V]
 * logits/gradient pair of the loss, plus 16 bytes per parameter (value, gradient, Adam's two moments).
 * Calibrated on tfjs-backend-wasm 4.22.0 with the kernel fixes (shared Identity, fused loss) by reading
 * the heap size after two steps in a fresh process (d_model 256 / 512, d_ff 1024 / 2048, 3 / 6 layers,
 * V 8000 / 16000, 1000-3000 tokens, lengths 25 / 50, dropout 0 / 0.1): the estimate is within -2 % / +3 %
 * of the measured heap (d_model 512 reached the 4 GiB ceiling, estimated 3.94 GiB); e.g. the bench model at
 * 1000 / 2000 / 3000 tokens: estimated 1.06 / 2.02 / 2.97 GiB, measured 1.07 / 1.98 / 2.91 GiB.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../config/schema.js';
import type { Batch } from '../data/batches.js';
import { OutOfMemoryError } from '../util/errors.js';

/** Largest wasm32 heap (4 GiB - 64 KiB). */
export const WASM_HEAP_MAX_BYTES = 4 * 2 ** 30 - 2 ** 16;
/** Share of the heap the estimate may use: the rest absorbs fragmentation and estimate error. */
export const WASM_HEAP_BUDGET_FRACTION = 0.85;

/** Fitted constants (see the header). */
const ACTIVATION_FACTOR = 2.0;
const ATTENTION_VALUES_PER_KEY = 9;
const LOSS_VALUES_PER_CLASS_FUSED = 3.25;
const LOSS_VALUES_PER_CLASS_OPS = 6;
const DROPOUT_VALUES_PER_ELEMENT = 5;
const BYTES_PER_PARAMETER = 16;

export interface HeapModel {
  model: Pick<ModelConfig, 'encoderLayers' | 'decoderLayers' | 'heads' | 'dModel' | 'dFF' | 'dropout' | 'attentionDropout'>;
  vocabSize: number;
  /** number of parameters */
  parameters: number;
  /** the fused loss kernel is in use (the ops loss keeps about twice as much per class) */
  fusedLoss?: boolean;
}

/** Estimated wasm heap in bytes for one training micro-batch of `rows` sentences padded to srcLen x tgtLen. */
export function estimateStepBytes(h: HeapModel, rows: number, srcLen: number, tgtLen: number): number {
  const { encoderLayers: le, decoderLayers: ld, heads, dModel: d, dFF: f } = h.model;
  const drop = h.model.dropout > 0 ? DROPOUT_VALUES_PER_ELEMENT : 0;
  const attDrop = h.model.attentionDropout > 0 ? DROPOUT_VALUES_PER_ELEMENT : 0;
  const S = srcLen;
  const T = tgtLen;
  const perSrc =
    ACTIVATION_FACTOR * (le * (31 * d + 3 * f) + ld * 6 * d + 3 * d) + (ATTENTION_VALUES_PER_KEY + attDrop) * heads * le * S + drop * (le * (2 * d + f) + d);
  const perTgt =
    ACTIVATION_FACTOR * (ld * (47 * d + 3 * f) + 3 * d) +
    (ATTENTION_VALUES_PER_KEY + attDrop) * heads * ld * (T + S) +
    (h.fusedLoss === false ? LOSS_VALUES_PER_CLASS_OPS : LOSS_VALUES_PER_CLASS_FUSED) * h.vocabSize +
    drop * (ld * (3 * d + f) + d);
  return 4 * rows * (S * perSrc + T * perTgt) + BYTES_PER_PARAMETER * h.parameters;
}

/** The heap budget for a backend: `budgetMB` when given (RuntimeOptions.heapBudgetMB), else 85 % of 4 GiB on wasm, unlimited elsewhere. */
export function heapBudgetBytes(backend: string, budgetMB?: number): number {
  if (budgetMB !== undefined && budgetMB > 0) return budgetMB * 2 ** 20;
  return backend === 'wasm' ? WASM_HEAP_BUDGET_FRACTION * WASM_HEAP_MAX_BYTES : Infinity;
}

/**
 * Rows per chunk for a micro-batch: its own size when the estimate fits the budget, else the size of the
 * fewest equal chunks that fit (at least 1 row).
 */
export function chunkRowsFor(h: HeapModel, b: Pick<Batch, 'batchSize' | 'srcLen' | 'tgtLen'>, budgetBytes: number): number {
  const fits = (rows: number) => estimateStepBytes(h, rows, b.srcLen, b.tgtLen) <= budgetBytes;
  if (!Number.isFinite(budgetBytes) || fits(b.batchSize)) return b.batchSize;
  for (let k = 2; k <= b.batchSize; k++) {
    const rows = Math.ceil(b.batchSize / k);
    if (fits(rows)) return rows;
  }
  return 1;
}

/** Rows [r0, r1) of a batch, with the padding trimmed to the longest sentence kept. */
export function sliceBatchRows(b: Batch, r0: number, r1: number): Batch {
  const n = r1 - r0;
  const lenOf = (ids: Int32Array, width: number, r: number) => {
    let last = 0;
    for (let t = 0; t < width; t++) if (ids[r * width + t] !== 0) last = t + 1;
    return last;
  };
  let srcLen = 1;
  let tgtLen = 1;
  for (let r = r0; r < r1; r++) {
    srcLen = Math.max(srcLen, lenOf(b.src, b.srcLen, r));
    tgtLen = Math.max(tgtLen, lenOf(b.tgtIn, b.tgtLen, r), lenOf(b.tgtOut, b.tgtLen, r));
  }
  const src = new Int32Array(n * srcLen);
  const tgtIn = new Int32Array(n * tgtLen);
  const tgtOut = new Int32Array(n * tgtLen);
  let srcTokens = 0;
  let tgtTokens = 0;
  for (let i = 0; i < n; i++) {
    const r = r0 + i;
    src.set(b.src.subarray(r * b.srcLen, r * b.srcLen + srcLen), i * srcLen);
    tgtIn.set(b.tgtIn.subarray(r * b.tgtLen, r * b.tgtLen + tgtLen), i * tgtLen);
    tgtOut.set(b.tgtOut.subarray(r * b.tgtLen, r * b.tgtLen + tgtLen), i * tgtLen);
  }
  for (const x of src) if (x !== 0) srcTokens++;
  for (const x of tgtOut) if (x !== 0) tgtTokens++;
  return { src, tgtIn, tgtOut, batchSize: n, srcLen, tgtLen, indices: b.indices.slice(r0, r1), srcTokens, tgtTokens };
}

/**
 * The wasm heap (4 GiB at most) fails mid-kernel with a RuntimeError ("memory access out of bounds",
 * "Aborted()"), which leaves the backend unusable: report it as an out-of-memory error naming the batch.
 */
export function guardWasmHeap<T>(b: Batch, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if ((e instanceof Error && e.name === 'RuntimeError') || /memory access out of bounds|Aborted\(|table index is out of bounds/.test(String(e)))
      throw new OutOfMemoryError(
        `out of memory in the ${tf.getBackend()} heap on a micro-batch of ${b.batchSize} sentences x ${Math.max(b.srcLen, b.tgtLen)} tokens ` +
          `(${b.batchSize * Math.max(b.srcLen, b.tgtLen)} padded tokens): lower train.maxTokensPerBatch or raise train.accumulateSteps (${String(e).slice(0, 80)})`,
      );
    throw e;
  }
}
