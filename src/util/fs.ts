/**
 * Crash-safe file writes: every file the toolkit writes goes to a temp file in the same folder, is
 * fsynced, then renamed over the target, so a kill leaves either the old file or the new one, never a
 * half-written one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync, existsSync, readFileSync, statSync, appendFileSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { DataError } from './errors.js';

let tempCounter = 0;

/** Write `data` to `path` atomically (temp file + fsync + rename). Creates the folder if needed. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${tempCounter++}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  // fsync the folder so the rename itself survives a power loss
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* some filesystems refuse to open folders; the rename is still atomic */
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/** Append one line (JSONL logs). A crash can at worst lose or truncate the last line, which readers skip. */
export function appendLine(path: string, line: string): void {
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(path, line.endsWith('\n') ? line : line + '\n');
}

/** Read a UTF-8 text file with clear errors for a missing file, a folder, or invalid UTF-8. */
export function readTextFile(path: string, what = 'file'): string {
  if (!existsSync(path)) throw new DataError(`${path}: ${what} not found`);
  if (statSync(path).isDirectory()) throw new DataError(`${path}: expected a ${what}, found a directory`);
  const bytes = readFileSync(path);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const line = firstInvalidUtf8Line(bytes);
    throw new DataError(`${path}:${line}: invalid UTF-8 (expected UTF-8 text)`);
  }
}

/** 1-based line number of the first invalid UTF-8 sequence in `bytes`. */
export function firstInvalidUtf8Line(bytes: Uint8Array): number {
  const dec = new TextDecoder('utf-8', { fatal: true });
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      try {
        dec.decode(bytes.subarray(start, i));
      } catch {
        return line;
      }
      line++;
      start = i + 1;
    }
  }
  return line;
}

/** Read JSON with errors that name the file. */
export function readJsonFile<T = unknown>(path: string, what = 'JSON file'): T {
  const text = readTextFile(path, what);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new DataError(`${path}: invalid JSON (${(e as Error).message})`);
  }
}
