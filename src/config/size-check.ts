/**
 * Configs that cannot work, refused before anything is allocated: a model whose weights and optimizer
 * state cannot fit (model.dModel: 65536 spun for minutes in weight initialisation; 1e12 died in a typed
 * array), a single matrix beyond what a typed array holds, and a batch budget smaller than one sentence.
 *
 * The size estimate is a lower bound, so it never refuses a model that fits: the vocabulary is not known
 * before BPE has run on the data (data.bpeMerges is a ceiling on merges, not a count), so the embedding
 * counts only the 4 special tokens, and only the attention and FFN matrices, the embedding and the
 * position table are counted (biases and norms add ~1 %). Training keeps 16 bytes
 * per parameter (value, gradient, Adam's two moments; as train/memory-split.ts), and the wasm backend holds
 * everything in one 32-bit heap of at most 4 GiB.
 */
import type { HeadsConfig } from './schema.js';

/** Largest wasm32 heap (4 GiB - 64 KiB), as train/memory-split.ts. */
const WASM_HEAP_MAX_BYTES = 4 * 2 ** 30 - 2 ** 16;
const BYTES_PER_PARAMETER = 16;
/** The largest Float32Array V8 allocates (2^32 - 1 elements would be 16 GiB; tfjs indexes with int32). */
const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;

/** Parameters of the model a config describes (a lower bound; see the header). */
export function estimateParameters(c: HeadsConfig): {
  parameters: number;
  largestMatrix: { name: string; elements: number; key: string };
  positionValues: number;
} {
  const m = c.model;
  const d = m.dModel;
  const vocab = 4; // the special tokens: all the vocabulary known before BPE runs (see the header)
  const ffnCopies = (stack: 'encoder' | 'decoder') => (m.moe && (m.moe.layers === 'all' || m.moe.layers === stack) ? m.moe.experts : 1);
  const ffn = (stack: 'encoder' | 'decoder', layers: number) => {
    const widths = m.ffnWidths?.[stack];
    const units = widths ? widths.reduce((a, b) => a + b, 0) : layers * m.dFF;
    return 2 * d * units * ffnCopies(stack);
  };
  const parameters =
    vocab * d * (m.tieEmbeddings ? 1 : 2) +
    m.encoderLayers * 4 * d * d +
    ffn('encoder', m.encoderLayers) +
    m.decoderLayers * 8 * d * d +
    ffn('decoder', m.decoderLayers);
  const candidates = [
    // blamed on the factor furthest above its default (dModel 64, dFF 256, maxPositions 512)
    {
      name: 'an FFN matrix (model.dModel x model.dFF)',
      elements: d * Math.max(m.dFF, ...(m.ffnWidths ? [...m.ffnWidths.encoder, ...m.ffnWidths.decoder] : [])),
      key: d / 64 >= m.dFF / 256 ? 'model.dModel' : 'model.dFF',
    },
    {
      name: 'the position table (model.maxPositions x model.dModel)',
      elements: m.maxPositions * d,
      key: d / 64 >= m.maxPositions / 512 ? 'model.dModel' : 'model.maxPositions',
    },
  ];
  const largestMatrix = candidates.reduce((a, b) => (b.elements > a.elements ? b : a));
  return { parameters, largestMatrix, positionValues: m.maxPositions * d };
}

function gib(bytes: number): string {
  const g = bytes / 2 ** 30;
  return g >= 1000 ? `${g.toExponential(1)} GiB` : `${g.toFixed(g >= 10 ? 0 : 1)} GiB`;
}

function count(n: number): string {
  return n >= 1e9 ? n.toExponential(2) : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : String(Math.round(n));
}

/** Problems with the model's size and the batch budget, each naming the keys to change. */
export function sizeProblems(c: HeadsConfig, file: string): string[] {
  const p: string[] = [];
  const m = c.model;
  const { parameters, largestMatrix, positionValues } = estimateParameters(c);
  const shape = `model.dModel ${m.dModel}, model.dFF ${m.dFF}, ${m.encoderLayers}+${m.decoderLayers} layers`;
  if (largestMatrix.elements > MAX_TENSOR_ELEMENTS) {
    p.push(
      `${file}: ${largestMatrix.key}: ${largestMatrix.name} would have ${count(largestMatrix.elements)} values, more than one tensor can hold (${count(MAX_TENSOR_ELEMENTS)}); ${shape}`,
    );
  } else {
    const bytes = parameters * BYTES_PER_PARAMETER + 4 * positionValues;
    const onWasm = c.backend === 'wasm' || c.backend === 'auto';
    if (onWasm && bytes > WASM_HEAP_MAX_BYTES)
      p.push(
        `${file}: model.dModel: the model has at least ${count(parameters)} parameters (${shape}), whose weights, gradients and Adam moments (and the position table) need ${gib(bytes)}; the wasm backend's heap holds at most 4 GiB (backend: tensorflow, with @tensorflow/tfjs-node installed, has no such limit)`,
      );
  }
  // every pair up to data.maxLen tokens (+ </s>) may be drawn; a micro-batch budget below one of them is never met
  const t = c.train;
  const microBatches = typeof t.workers === 'number' && t.workers > 1 ? t.workers * Math.ceil(t.accumulateSteps / t.workers) : t.accumulateSteps;
  const need = (c.data.maxLen + 1) * microBatches;
  if (t.maxTokensPerBatch < need) {
    const split =
      microBatches > 1
        ? ` x ${microBatches} micro-batches (train.accumulateSteps${typeof t.workers === 'number' && t.workers > 1 ? ' over train.workers' : ''})`
        : '';
    p.push(
      `${file}: train.maxTokensPerBatch: ${t.maxTokensPerBatch} cannot hold one pair of data.maxLen = ${c.data.maxLen} tokens (+ </s>)${split}; expected at least ${need}, or lower data.maxLen`,
    );
  }
  return p;
}
