/**
 * One served export opened in the browser: its two graphs as onnxruntime-web sessions, its tokenizer (the
 * toolkit's own BPE, ../../data/tokenizer.ts, from the exported tokenizer.json), and the toolkit's decode
 * loop over them (../../onnx/decode.ts, the same code `heads translate --engine onnx` runs in Node).
 */
import type * as Ort from 'onnxruntime-web';
import { BpeTokenizer } from '../../data/tokenizer.js';
import { type OnnxModel, type OrtTensorClass, translateWithOnnx } from '../../onnx/decode.js';
import type { ServedModelInfo } from '../model-info.js';

export interface Translator {
  /** the execution provider asked for first (webgpu or wasm) */
  executionProvider: string;
  /** ms to download and create both sessions, and to run the first (warm-up) translation */
  loadMs: number;
  warmUpMs: number;
  translate(sentence: string, beamSize: number): Promise<string>;
}

async function fetchOk(url: string): Promise<Response> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res;
}

export async function loadTranslator(ort: typeof Ort, info: ServedModelInfo, providers: string[]): Promise<Translator> {
  const t0 = performance.now();
  const [encoderBytes, decoderBytes, tokenizerJson] = await Promise.all([
    fetchOk(info.base + info.files.encoder).then((r) => r.arrayBuffer()),
    fetchOk(info.base + info.files.decoder).then((r) => r.arrayBuffer()),
    fetchOk(info.base + info.files.tokenizer).then((r) => r.json() as Promise<unknown>),
  ]);
  const tokenizer = BpeTokenizer.fromJSON(tokenizerJson, `${info.name}/${info.files.tokenizer}`);
  // errors only: onnxruntime-web prints its warnings (e.g. "some nodes were not assigned to the preferred
  // execution providers", normal with WebGPU, where shape ops run on the CPU) through console.error
  const options: Ort.InferenceSession.SessionOptions = { executionProviders: providers, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const encoder = await ort.InferenceSession.create(new Uint8Array(encoderBytes), options);
  const decoder = await ort.InferenceSession.create(new Uint8Array(decoderBytes), options);
  const model: OnnxModel = { encoder, decoder, metadata: info.metadata, Tensor: ort.Tensor as unknown as OrtTensorClass };
  const g = info.metadata.generation;
  const translate = async (sentence: string, beamSize: number): Promise<string> => {
    // one sentence per call: the latency shown is that sentence's
    const { outputs } = await translateWithOnnx(model, tokenizer, [sentence], {
      ...g,
      beamSize,
      batchSentences: 1,
      maxTokensPerBatch: Number.MAX_SAFE_INTEGER,
    });
    return outputs[0]!;
  };
  const loadMs = performance.now() - t0;
  // the first run compiles kernels and allocates: not a sentence's latency
  const t1 = performance.now();
  await translate('warm up .', 1);
  return { executionProvider: providers[0]!, loadMs, warmUpMs: performance.now() - t1, translate };
}
