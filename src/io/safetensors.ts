/**
 * Reader and writer of the safetensors format (huggingface/safetensors, "Format" section of its
 * README; rules collected in shared/notes/probe-ts-ecosystem.md §7):
 *
 *   [8 bytes]  N, unsigned little-endian u64: the header length
 *   [N bytes]  UTF-8 JSON object { "<name>": { "dtype": "F32", "shape": [2, 3], "data_offsets": [b, e] },
 *              ..., "__metadata__": { "<str>": "<str>" } } (metadata optional), padded with spaces
 *   [rest]     the byte buffer: each tensor's raw little-endian row-major bytes at [b, e) relative to the
 *              start of the buffer
 *
 * Enforced on read (a CheckpointError names the file and what is wrong): the file holds at least the 8
 * length bytes; N ≤ 100 MB and 8 + N ≤ file size; the header is UTF-8 JSON, an object, starts with '{',
 * with no duplicate keys; every dtype is known; shapes are non-negative integers; e − b equals
 * product(shape) × dtype size; the offsets tile the buffer exactly (sorted by begin they start at 0, are
 * contiguous, no holes, no overlaps) and the buffer has no trailing bytes.
 *
 * Writer: the header is padded with spaces to a multiple of 8 so the buffer is 8-byte aligned, and
 * tensors are laid out in the reference writer's order — by descending dtype (the order of the Rust
 * `Dtype` enum, which puts wider types first, so every tensor stays aligned to its element size), then by
 * name (byte order). The output is therefore deterministic. `__metadata__` is written only when given.
 *
 * In-memory types: F64 Float64Array, F32 Float32Array, F16/BF16 raw bits in Uint16Array, I64
 * BigInt64Array, U64 BigUint64Array, I32 Int32Array, U32 Uint32Array, I16 Int16Array, U16 Uint16Array,
 * I8 Int8Array, U8 Uint8Array, BOOL Uint8Array (0/1). Read tensors own copies of their bytes.
 */
import { readFileSync, existsSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { CheckpointError } from '../util/errors.js';
import { type Digest, writeFileAtomic } from '../util/fs.js';

/** Float32 tensors by name, row-major: what a model, an optimizer or a checkpoint file holds in memory. */
export type NamedArrays = Record<string, { shape: number[]; data: Float32Array }>;

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'U64' | 'I32' | 'U32' | 'I16' | 'U16' | 'I8' | 'U8' | 'BOOL';

export type SafetensorsData =
  Float64Array | Float32Array | Uint16Array | BigInt64Array | BigUint64Array | Int32Array | Uint32Array | Int16Array | Int8Array | Uint8Array;

export interface SafeTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: SafetensorsData;
}

export interface SafetensorsFile {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** The reference reader refuses headers above 100 MB. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

interface DtypeInfo {
  size: number;
  /** Position in the reference `Dtype` enum; the writer orders tensors by descending rank. */
  rank: number;
  make: (buffer: ArrayBuffer) => SafetensorsData;
  accepts: (data: SafetensorsData) => boolean;
}

const DTYPES: Record<SafetensorsDtype, DtypeInfo> = {
  BOOL: { size: 1, rank: 0, make: (b) => new Uint8Array(b), accepts: (d) => d instanceof Uint8Array },
  U8: { size: 1, rank: 1, make: (b) => new Uint8Array(b), accepts: (d) => d instanceof Uint8Array },
  I8: { size: 1, rank: 2, make: (b) => new Int8Array(b), accepts: (d) => d instanceof Int8Array },
  I16: { size: 2, rank: 3, make: (b) => new Int16Array(b), accepts: (d) => d instanceof Int16Array },
  U16: { size: 2, rank: 4, make: (b) => new Uint16Array(b), accepts: (d) => d instanceof Uint16Array },
  F16: { size: 2, rank: 5, make: (b) => new Uint16Array(b), accepts: (d) => d instanceof Uint16Array },
  BF16: { size: 2, rank: 6, make: (b) => new Uint16Array(b), accepts: (d) => d instanceof Uint16Array },
  I32: { size: 4, rank: 7, make: (b) => new Int32Array(b), accepts: (d) => d instanceof Int32Array },
  U32: { size: 4, rank: 8, make: (b) => new Uint32Array(b), accepts: (d) => d instanceof Uint32Array },
  F32: { size: 4, rank: 9, make: (b) => new Float32Array(b), accepts: (d) => d instanceof Float32Array },
  F64: { size: 8, rank: 10, make: (b) => new Float64Array(b), accepts: (d) => d instanceof Float64Array },
  I64: { size: 8, rank: 11, make: (b) => new BigInt64Array(b), accepts: (d) => d instanceof BigInt64Array },
  U64: { size: 8, rank: 12, make: (b) => new BigUint64Array(b), accepts: (d) => d instanceof BigUint64Array },
};

export const SAFETENSORS_DTYPES = Object.keys(DTYPES) as SafetensorsDtype[];

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, s);
}

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

/** Reverse each `size`-byte element in place (only on big-endian hosts). */
function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function compareNames(a: string, b: string): number {
  const ba = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return Buffer.compare(ba, bb);
}

// ---------------------------------------------------------------------------------------------------
// Writing

/** Serialise to bytes (see the module header for layout and order). Throws CheckpointError on bad input. */
export function encodeSafetensors(tensors: Record<string, SafeTensor>, metadata?: Record<string, string>, what = 'safetensors'): Uint8Array {
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name]!;
    const where = `${what}: tensor "${name}"`;
    if (name === METADATA_KEY) throw new CheckpointError(`${what}: "${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (name.length === 0) throw new CheckpointError(`${what}: a tensor has an empty name`);
    if (!isDtype(t.dtype)) throw new CheckpointError(`${where}: unknown dtype ${JSON.stringify(t.dtype)} (expected one of ${SAFETENSORS_DTYPES.join(', ')})`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CheckpointError(`${where}: shape must be non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    const info = DTYPES[t.dtype];
    if (!info.accepts(t.data))
      throw new CheckpointError(`${where}: ${t.dtype} data must be a ${info.make(new ArrayBuffer(0)).constructor.name}, got ${t.data.constructor.name}`);
    const n = elementCount(t.shape);
    if (t.data.length !== n) throw new CheckpointError(`${where}: shape [${t.shape.join(', ')}] needs ${n} values, got ${t.data.length}`);
  }
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new CheckpointError(`${what}: metadata "${k}" must be a string, got ${typeof v}`);
    }
  }
  const order = [...names].sort((a, b) => DTYPES[tensors[b]!.dtype].rank - DTYPES[tensors[a]!.dtype].rank || compareNames(a, b));

  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header[METADATA_KEY] = { ...metadata };
  let offset = 0;
  for (const name of order) {
    const t = tensors[name]!;
    const nbytes = t.data.length * DTYPES[t.dtype].size;
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let pos = 8 + padded;
  for (const name of order) {
    const t = tensors[name]!;
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, pos);
    if (!LITTLE_ENDIAN_HOST) swapBytes(out.subarray(pos, pos + bytes.length), DTYPES[t.dtype].size);
    pos += bytes.length;
  }
  return out;
}

/** Write a safetensors file atomically; returns its length and sha256. */
export function writeSafetensors(path: string, tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): Digest {
  return writeFileAtomic(path, encodeSafetensors(tensors, metadata, path));
}

// ---------------------------------------------------------------------------------------------------
// Reading

/**
 * Object keys that occur twice in any object of the JSON text (JSON.parse silently keeps the last).
 * The text must already be valid JSON.
 */
function duplicateKeys(text: string): string[] {
  const dups: string[] = [];
  // one entry per open container: a Set for objects, null for arrays
  const stack: Array<Set<string> | null> = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top) {
        let k = j + 1;
        while (k < text.length && /\s/.test(text[k]!)) k++;
        if (text[k] === ':') {
          const key = JSON.parse(text.slice(i, j + 1)) as string;
          if (top.has(key)) dups.push(key);
          top.add(key);
        }
      }
      i = j + 1;
      continue;
    }
    if (c === '{') stack.push(new Set());
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    i++;
  }
  return dups;
}

/**
 * Parse safetensors bytes; `what` names the source in errors (the file path for `readSafetensors`).
 * Throws CheckpointError for every format violation listed in the module header.
 */
export function decodeSafetensors(bytes: Uint8Array, what = 'safetensors'): SafetensorsFile {
  function fail(msg: string): never {
    throw new CheckpointError(`${what}: ${msg}`);
  }
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, too short for the 8-byte header length`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) fail(`header length ${n64} is above the 100 MB limit (not a safetensors file, or corrupt)`);
  const n = Number(n64);
  if (8 + n > bytes.length) fail(`header length ${n} goes beyond the end of the file (${bytes.length} bytes): truncated or corrupt`);
  if (n < 2) fail(`header length ${n} is too small for a JSON object`);
  const headerBytes = bytes.subarray(8, 8 + n);
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail('header is not valid UTF-8');
  }
  if (text[0] !== '{') fail(`header must start with '{', found ${JSON.stringify(text.slice(0, 16))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header must be a JSON object');
  const dups = duplicateKeys(text);
  if (dups.length > 0) fail(`header has duplicate key${dups.length === 1 ? '' : 's'} ${dups.map((d) => JSON.stringify(d)).join(', ')}`);

  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const entries = Object.entries(header as Record<string, unknown>);
  const metadata: Record<string, string> = {};
  const spans: Array<{ name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }> = [];
  for (const [name, raw] of entries) {
    if (name === METADATA_KEY) {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`${METADATA_KEY} must be an object of strings`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`${METADATA_KEY}.${k} must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`${where}: expected { dtype, shape, data_offsets }`);
    const info = raw as Record<string, unknown>;
    const extra = Object.keys(info).filter((k) => k !== 'dtype' && k !== 'shape' && k !== 'data_offsets');
    if (extra.length > 0) fail(`${where}: unknown field${extra.length === 1 ? '' : 's'} ${extra.join(', ')}`);
    const { dtype, shape, data_offsets: offsets } = info;
    if (!isDtype(dtype)) fail(`${where}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${SAFETENSORS_DTYPES.join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(`${where}: data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    const d = dtype as SafetensorsDtype;
    const s = shape as number[];
    const want = elementCount(s) * DTYPES[d].size;
    if (end - begin !== want) {
      fail(`${where}: ${d} [${s.join(', ')}] needs ${want} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    spans.push({ name, dtype: d, shape: s, begin, end });
  }

  // the spans must tile [0, dataLength) exactly
  const byBegin = [...spans].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous = '';
  for (const sp of byBegin) {
    if (sp.begin < expected) fail(`tensor "${sp.name}": data_offsets [${sp.begin}, ${sp.end}] overlap tensor "${previous}" (which ends at ${expected})`);
    if (sp.begin > expected) fail(`hole in the data: no tensor covers bytes [${expected}, ${sp.begin}) before tensor "${sp.name}"`);
    expected = sp.end;
    previous = sp.name;
  }
  if (expected > dataLength) {
    fail(`truncated: the header needs ${expected} data bytes after the header, the file has ${dataLength}`);
  }
  if (expected < dataLength) fail(`${dataLength - expected} trailing bytes after the last tensor (data ends at ${expected} of ${dataLength})`);

  const tensors: Record<string, SafeTensor> = {};
  for (const sp of spans) {
    // copy out: the source offset need not be aligned for the typed array (and a Buffer's slice would
    // share memory with the whole file)
    const copy = new Uint8Array(sp.end - sp.begin);
    copy.set(bytes.subarray(dataStart + sp.begin, dataStart + sp.end));
    if (!LITTLE_ENDIAN_HOST) swapBytes(copy, DTYPES[sp.dtype].size);
    tensors[sp.name] = { dtype: sp.dtype, shape: sp.shape, data: DTYPES[sp.dtype].make(copy.buffer) };
  }
  return { tensors, metadata };
}

/** Read and validate a safetensors file. */
export function readSafetensors(path: string): SafetensorsFile {
  if (!existsSync(path)) throw new CheckpointError(`${path}: safetensors file not found`);
  if (statSync(path).isDirectory()) throw new CheckpointError(`${path}: expected a safetensors file, found a directory`);
  const buf = readFileSync(path);
  return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}
