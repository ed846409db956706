/**
 * An export folder as `heads serve` serves it: the folder `heads export --format onnx` wrote (its onnx/
 * subfolder, or that subfolder itself), checked before the server starts: model.json readable and of the
 * layout ../onnx/layout.ts describes, both graphs and the tokenizer present and intact (the integrity
 * record), the tokenizer the one model.json names (sha256) with the model's vocabulary size. A problem is
 * one line naming the folder or file (DataError: exit 2).
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BpeTokenizer } from '../data/tokenizer.js';
import { ONNX_FILES, type OnnxExportMetadata, metadataProblems } from '../onnx/layout.js';
import { DataError } from '../util/errors.js';
import { readJsonFile, verifyFile } from '../util/fs.js';
import type { ServedModelInfo } from './model-info.js';

export interface ServedExport {
  /** what /models.json says about it (`base` is set by the server) */
  info: Omit<ServedModelInfo, 'base'>;
  /** URL file name -> path on disk: the only files of this export the server hands out */
  files: Map<string, string>;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The folder holding model.json: `<export>/onnx/` or the onnx folder itself. */
export function onnxFolderOf(folder: string): string {
  if (!isDirectory(folder)) throw new DataError(`${folder}: no such export folder (expected a folder written by heads export --format onnx)`);
  const nested = join(folder, 'onnx');
  if (isFile(join(nested, ONNX_FILES.metadata))) return nested;
  if (isFile(join(folder, ONNX_FILES.metadata))) return folder;
  throw new DataError(`${folder}: not an ONNX export: expected ${join(nested, ONNX_FILES.metadata)} (write one with heads export <run> --format onnx)`);
}

/** Read and check one export folder for serving. */
export function readServedExport(folder: string): ServedExport {
  const dir = onnxFolderOf(folder);
  const metaPath = join(dir, ONNX_FILES.metadata);
  const metadata = readJsonFile<OnnxExportMetadata>(metaPath, 'ONNX export metadata');
  const problems = metadataProblems(metadata);
  if (problems.length) throw new DataError(`${metaPath}: ${problems[0]}${problems.length > 1 ? ` (+${problems.length - 1} more)` : ''}`);
  const files = new Map<string, string>();
  let sizeBytes = 0;
  for (const name of [ONNX_FILES.encoder, ONNX_FILES.decoder]) {
    const path = join(dir, name);
    if (!isFile(path)) throw new DataError(`${path}: graph missing (the export in ${dir} is incomplete: export it again)`);
    verifyFile(path);
    sizeBytes += statSync(path).size;
    files.set(name, path);
  }
  const tokPath = join(dir, basename(metadata.tokenizer?.file ?? ONNX_FILES.tokenizer));
  if (!isFile(tokPath)) throw new DataError(`${tokPath}: tokenizer missing (the export in ${dir} is incomplete: export it again)`);
  const tokText = readFileSync(tokPath);
  verifyFile(tokPath, tokText);
  const sha = createHash('sha256').update(tokText).digest('hex');
  if (metadata.tokenizer?.sha256 && sha !== metadata.tokenizer.sha256) {
    throw new DataError(
      `${tokPath}: not the tokenizer ${metaPath} names (sha256 ${sha.slice(0, 12)}..., expected ${metadata.tokenizer.sha256.slice(0, 12)}...)`,
    );
  }
  const tokenizer = BpeTokenizer.load(tokPath);
  if (tokenizer.vocabSize !== metadata.vocabSize)
    throw new DataError(`${tokPath}: vocabulary of ${tokenizer.vocabSize} entries, but ${metaPath} says vocabSize ${metadata.vocabSize}`);
  files.set(ONNX_FILES.tokenizer, tokPath);
  // the export folder names the column: <export>/onnx -> <export>
  const root = basename(resolve(dir)) === 'onnx' ? dirname(resolve(dir)) : resolve(dir);
  return {
    info: {
      name: basename(root),
      folder: root,
      files: { encoder: ONNX_FILES.encoder, decoder: ONNX_FILES.decoder, tokenizer: basename(tokPath) },
      sizeBytes,
      metadata,
    },
    files,
  };
}
