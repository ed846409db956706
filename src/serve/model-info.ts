/**
 * What the translator page is told about one served export (the server's /models.json): shared by the
 * server, which builds it from the export folder (served-export.ts), and the page, which draws it. No
 * Node imports: the page bundle includes this file.
 */
import type { OnnxExportMetadata } from '../onnx/layout.js';

export const ATTENTION_TYPES = ['enc-self', 'dec-self', 'dec-enc'] as const;

export interface ServedModelInfo {
  /** the export folder's name, as the page labels its column */
  name: string;
  /** the export folder's absolute path */
  folder: string;
  /** URL prefix of the files below (the server's /models/<i>/) */
  base: string;
  /** file names under `base` */
  files: { encoder: string; decoder: string; tokenizer: string };
  /** bytes of the two ONNX graphs the page downloads */
  sizeBytes: number;
  /** the export's model.json (../onnx/layout.ts): heads kept, decoding defaults, quantization */
  metadata: OnnxExportMetadata;
}

/** Heads kept and heads before pruning, over all layers and attention types. */
export function headsKept(info: Pick<ServedModelInfo, 'metadata'>): { kept: number; original: number } {
  let kept = 0;
  let original = 0;
  for (const t of ATTENTION_TYPES) {
    for (const ids of info.metadata.keptHeads[t]) {
      kept += ids.length;
      original += info.metadata.originalHeads;
    }
  }
  return { kept, original };
}

/** 301512 -> "301.5k", 6.1e7 -> "61.0M" (parameter counts). */
export function formatCount(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1e6) return `${(n / 1000).toFixed(1)}k`;
  return `${(n / 1e6).toFixed(1)}M`;
}

/** 1536 -> "1.54 kB", 3.2e6 -> "3.20 MB" (decimal units, as file managers show them). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB'];
  let v = bytes / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[u]}`;
}
