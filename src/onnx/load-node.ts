/**
 * Open an ONNX export folder in onnxruntime-node (an optional dependency, imported on first use): check the
 * folder (model.json, both graphs, tokenizer.json; recorded files against their digests), create the two
 * sessions, and check their input/output names against the per-layer head counts. Every problem is a
 * CheckpointError naming the file, so the CLI prints one line and exits 2.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BpeTokenizer } from '../data/tokenizer.js';
import { CheckpointError, HeadsError } from '../util/errors.js';
import { readJsonFile, verifyFile } from '../util/fs.js';
import type { OnnxModel, OrtSessionLike, OrtTensorClass } from './decode.js';
import { ONNX_FILES, ONNX_NAMES, type OnnxExportMetadata, cachedLayers, metadataProblems } from './layout.js';

type OrtModule = typeof import('onnxruntime-node');

let ortModule: Promise<OrtModule> | null = null;

/** onnxruntime-node, or a CheckpointError saying how to install it. */
export async function loadOnnxRuntime(): Promise<OrtModule> {
  ortModule ??= import('onnxruntime-node').catch((e: unknown) => {
    ortModule = null;
    throw new CheckpointError(
      `onnxruntime-node is not installed (an optional dependency of heads: npm install onnxruntime-node@1.30.0): ${(e as Error).message.split('\n')[0]}`,
    );
  });
  return ortModule;
}

/** The folder holding model.json: `dir` itself, or `dir/onnx` (an export folder written with --format onnx). */
export function onnxFolderOf(dir: string): string {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new CheckpointError(`${dir}: no such export folder (-m expects the folder heads export wrote, or its onnx/ subfolder)`);
  if (existsSync(join(dir, ONNX_FILES.metadata))) return dir;
  if (existsSync(join(dir, 'onnx', ONNX_FILES.metadata))) return join(dir, 'onnx');
  throw new CheckpointError(
    `${dir}: not an ONNX export folder (expected ${ONNX_FILES.metadata} in it or in ${join(dir, 'onnx')}; export one with heads export <run> --format onnx)`,
  );
}

/** Whether `dir` is (or holds) an ONNX export folder. */
export function isOnnxExportFolder(dir: string): boolean {
  return existsSync(join(dir, ONNX_FILES.metadata)) || existsSync(join(dir, 'onnx', ONNX_FILES.metadata));
}

export interface LoadedOnnxModel extends OnnxModel {
  tokenizer: BpeTokenizer;
  folder: string;
  files: { encoderBytes: number; decoderBytes: number };
}

export interface OnnxSessionOptions {
  /** ORT's intra-op threads (default: ORT's choice, all cores) */
  threads?: number;
}

/** Open `dir` (an export folder or its onnx/ subfolder) in onnxruntime-node. */
export async function loadOnnxModel(dir: string, opts: OnnxSessionOptions = {}): Promise<LoadedOnnxModel> {
  const folder = onnxFolderOf(dir);
  const metaPath = join(folder, ONNX_FILES.metadata);
  let meta: unknown;
  try {
    meta = readJsonFile(metaPath, 'ONNX export metadata');
  } catch (e) {
    throw e instanceof HeadsError ? new CheckpointError(e.message) : e;
  }
  const problems = metadataProblems(meta);
  if (problems.length) throw new CheckpointError(`${metaPath}: not a heads ONNX export: ${problems.slice(0, 3).join('; ')}`);
  const metadata = meta as OnnxExportMetadata;
  const read = (file: string): Uint8Array => {
    const path = join(folder, file);
    if (!existsSync(path)) throw new CheckpointError(`${path}: missing (an ONNX export folder holds ${Object.values(ONNX_FILES).join(', ')})`);
    const bytes = readFileSync(path);
    try {
      verifyFile(path, bytes);
    } catch (e) {
      throw e instanceof HeadsError ? new CheckpointError(e.message) : e;
    }
    return bytes;
  };
  const encoderBytes = read(ONNX_FILES.encoder);
  const decoderBytes = read(ONNX_FILES.decoder);
  read(ONNX_FILES.tokenizer);
  let tokenizer: BpeTokenizer;
  try {
    tokenizer = BpeTokenizer.load(join(folder, ONNX_FILES.tokenizer));
  } catch (e) {
    throw e instanceof HeadsError ? new CheckpointError(e.message) : e;
  }
  if (tokenizer.vocabSize !== metadata.vocabSize)
    throw new CheckpointError(`${join(folder, ONNX_FILES.tokenizer)}: ${tokenizer.vocabSize} tokens, but ${metaPath} says vocabSize ${metadata.vocabSize}`);
  const ort = await loadOnnxRuntime();
  const options = { graphOptimizationLevel: 'all' as const, ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}) };
  const open = async (bytes: Uint8Array, file: string): Promise<OrtSessionLike> => {
    try {
      return await ort.InferenceSession.create(bytes, options);
    } catch (e) {
      throw new CheckpointError(
        `${join(folder, file)}: not a valid ONNX model (onnxruntime-node: ${String((e as Error).message ?? e)
          .split('\n')[0]!
          .slice(0, 300)})`,
      );
    }
  };
  const encoder = await open(encoderBytes, ONNX_FILES.encoder);
  const decoder = await open(decoderBytes, ONNX_FILES.decoder);
  checkNames(encoder, expectedNames(metadata, 'encoder'), join(folder, ONNX_FILES.encoder));
  checkNames(decoder, expectedNames(metadata, 'decoder'), join(folder, ONNX_FILES.decoder));
  return {
    encoder,
    decoder,
    metadata,
    Tensor: ort.Tensor as unknown as OrtTensorClass,
    tokenizer,
    folder,
    files: { encoderBytes: encoderBytes.byteLength, decoderBytes: decoderBytes.byteLength },
  };
}

/** The input and output names a graph must have for the head counts of model.json. */
export function expectedNames(m: OnnxExportMetadata, graph: 'encoder' | 'decoder'): { inputs: string[]; outputs: string[] } {
  const N = ONNX_NAMES;
  const { self, cross } = cachedLayers(m);
  const crossNames = cross.flatMap((l) => [N.crossKey(l), N.crossValue(l)]);
  if (graph === 'encoder') return { inputs: [N.srcIds], outputs: [N.srcBias, ...crossNames] };
  return {
    inputs: [N.tokens, N.position, N.beamRows, N.srcBias, ...self.flatMap((l) => [N.pastKey(l), N.pastValue(l)]), ...crossNames],
    outputs: [N.logits, N.logProbs, ...self.flatMap((l) => [N.presentKey(l), N.presentValue(l)])],
  };
}

function checkNames(s: OrtSessionLike, want: { inputs: string[]; outputs: string[] }, path: string): void {
  const diff = (found: readonly string[], expected: string[]) => {
    const missing = expected.filter((n) => !found.includes(n));
    const extra = found.filter((n) => !expected.includes(n));
    return [...missing.map((n) => `missing ${n}`), ...extra.map((n) => `unexpected ${n}`)];
  };
  // log_probs came after the first exports: without it beam search normalises the logits itself
  const problems = [...diff(s.inputNames, want.inputs).map((p) => `input ${p}`), ...diff(s.outputNames, want.outputs).map((p) => `output ${p}`)].filter(
    (p) => p !== `output missing ${ONNX_NAMES.logProbs}`,
  );
  if (problems.length) throw new CheckpointError(`${path}: does not fit its model.json (head counts per layer): ${problems.slice(0, 4).join('; ')}`);
}
