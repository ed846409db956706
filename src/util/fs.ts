/**
 * Crash-safe file writes: every file the toolkit writes goes to a temp file in the same folder, is
 * fsynced, then renamed over the target, so a kill leaves either the old file or the new one, never a
 * half-written one.
 *
 * Integrity: each write also records the file's length and sha256 in its folder's `.heads-integrity.json`,
 * and every read through `readTextFile` / `readJsonFile` (and `verifyFile`) checks a recorded file against
 * it, so a file damaged or cut short after it was written is refused by name instead of read as a silent
 * wrong number. The record is two-phase (the new digest is added as `pending` before the rename and made
 * current after it), so a kill between the steps leaves a record that accepts whichever file survived.
 * Appended logs (metrics.jsonl) are not recorded: their readers skip a torn last line instead.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync, existsSync, readFileSync, statSync, appendFileSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { DataError } from './errors.js';

let tempCounter = 0;

export const INTEGRITY_FILE = '.heads-integrity.json';

export interface Digest {
  bytes: number;
  sha256: string;
}
interface IntegrityRecord {
  format: 'heads.integrity';
  version: 1;
  files: Record<string, Digest & { pending?: Digest }>;
}

function digestOf(buf: Uint8Array): Digest {
  return { bytes: buf.length, sha256: createHash('sha256').update(buf).digest('hex') };
}

/** The folder's integrity record; a missing or unreadable one is an empty record (for writing). */
function readRecord(dir: string): IntegrityRecord {
  const empty: IntegrityRecord = { format: 'heads.integrity', version: 1, files: {} };
  const p = join(dir, INTEGRITY_FILE);
  if (!existsSync(p)) return empty;
  try {
    const r = JSON.parse(readFileSync(p, 'utf8')) as IntegrityRecord;
    return r && r.format === 'heads.integrity' && typeof r.files === 'object' ? r : empty;
  } catch {
    return empty;
  }
}

function writeRecord(dir: string, r: IntegrityRecord): void {
  writeFileAtomic(join(dir, INTEGRITY_FILE), JSON.stringify(r, null, 1) + '\n', { integrity: false });
}

/**
 * Write `data` to `path` atomically (temp file + fsync + rename) and record its length and digest (unless
 * `integrity: false`). Creates the folder if needed. Returns the length and sha256 of what it wrote.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: { integrity?: boolean } = {}): Digest {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${tempCounter++}.tmp`);
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const fd = openSync(tmp, 'w');
  try {
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const isRecorded = opts.integrity !== false && basename(path) !== INTEGRITY_FILE;
  const name = basename(path);
  const digest = digestOf(buf);
  if (isRecorded) {
    const r = readRecord(dir);
    const prev = r.files[name];
    r.files[name] = prev && existsSync(path) ? { bytes: prev.bytes, sha256: prev.sha256, pending: digest } : { ...digest };
    writeRecord(dir, r);
  }
  renameSync(tmp, path);
  if (isRecorded) {
    const r = readRecord(dir);
    r.files[name] = digest;
    writeRecord(dir, r);
  }
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
  return digest;
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Check `bytes` (the content of `path`) against its folder's integrity record: a file recorded there must
 * have the recorded length and sha256 (or the pending ones of an interrupted write). Unrecorded files
 * pass. Throws a DataError naming the file, what was recorded and what was found.
 */
export function verifyFile(path: string, bytes?: Uint8Array): void {
  const dir = dirname(path);
  const recordPath = join(dir, INTEGRITY_FILE);
  if (!existsSync(recordPath)) return;
  const entry = readRecord(dir).files[basename(path)];
  if (!entry) return;
  const found = digestOf(bytes ?? readFileSync(path));
  const ok = (d: Digest | undefined) => d !== undefined && d.bytes === found.bytes && d.sha256 === found.sha256;
  if (ok(entry) || ok(entry.pending)) return;
  const what = found.bytes < entry.bytes ? `cut short: ${found.bytes} of ${entry.bytes} bytes` : found.bytes !== entry.bytes ? `${found.bytes} bytes, ${entry.bytes} recorded` : `same length, different content (sha256 ${found.sha256.slice(0, 12)}..., ${entry.sha256.slice(0, 12)}... recorded)`;
  throw new DataError(
    `${path}: damaged or changed since heads wrote it (${what}). If you edited it on purpose, remove its entry "${basename(path)}" from ${recordPath}`,
  );
}

/** Every recorded file in `dir` that is missing or fails `verifyFile`, as messages (empty: all good). */
export function verifyFolder(dir: string): { checked: number; problems: string[] } {
  const problems: string[] = [];
  let checked = 0;
  for (const name of Object.keys(readRecord(dir).files)) {
    const p = join(dir, name);
    if (!existsSync(p)) continue; // removed on purpose (e.g. an old checkpoint's files)
    checked++;
    try {
      verifyFile(p);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return { checked, problems };
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
  verifyFile(path, bytes);
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
