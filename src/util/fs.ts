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
 *
 * Faults: a write the file system refuses (full disk, no permission, read-only) throws a FileSystemError
 * naming the file and the reason, after removing its temp file; the old file and its record are
 * untouched. Temp files are named `.<name>.<pid>.<n>.tmp`; `removeStaleTempFiles` removes those a kill
 * left behind (writer no longer alive, or older than an hour), never one a live process is writing.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  openSync,
  renameSync,
  writeSync,
  existsSync,
  readFileSync,
  statSync,
  appendFileSync,
  readSync,
  readdirSync,
  rmSync,
  type Stats,
} from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { makeDirs } from './dirs.js';
import { DataError, FileSystemError } from './errors.js';

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

/** An error from the file system (it has an errno code) as a FileSystemError naming `path`; others unchanged. */
export function fileSystemError(e: unknown, path: string, action: string): unknown {
  if (e instanceof FileSystemError) return e;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? new FileSystemError(path, code, action) : e;
}

/** `statSync`, with null for a missing file and a FileSystemError for one that cannot be looked at. */
export function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fileSystemError(e, path, 'read');
  }
}

/**
 * Write `data` to `path` atomically (temp file + fsync + rename) and record its length and digest (unless
 * `integrity: false`). Creates the folder if needed. Returns the length and sha256 of what it wrote. A
 * refused write throws a FileSystemError naming `path`, leaving no temp file and the old file intact.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: { integrity?: boolean } = {}): Digest {
  const dir = dirname(path);
  makeDirs(dir);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${tempCounter++}.tmp`);
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const isRecorded = opts.integrity !== false && basename(path) !== INTEGRITY_FILE;
  const name = basename(path);
  const digest = digestOf(buf);
  try {
    const fd = openSync(tmp, 'w');
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (isRecorded) {
      const r = readRecord(dir);
      const prev = r.files[name];
      r.files[name] = prev && existsSync(path) ? { bytes: prev.bytes, sha256: prev.sha256, pending: digest } : { ...digest };
      writeRecord(dir, r);
    }
    renameSync(tmp, path);
  } catch (e) {
    removeQuietly(tmp);
    throw fileSystemError(e, path, 'write');
  }
  if (isRecorded) {
    // the file is in place; a refused second phase leaves `pending`, which accepts it
    try {
      const r = readRecord(dir);
      r.files[name] = digest;
      writeRecord(dir, r);
    } catch (e) {
      throw fileSystemError(e, path, 'write');
    }
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

/** Remove a file or folder if it can be; a failure to (no permission) is not the error to report. */
export function removeQuietly(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    /* left behind: removeStaleTempFiles retries on the next load */
  }
}

/** What `writeFileAtomic` names its temp files: `.<name>.<pid>.<n>.tmp`. */
const TEMP_NAME = /^\.(.+)\.(\d+)\.(\d+)\.tmp$/;
/** A temp file older than this is stale even if a process with its pid is alive (a reused pid). */
export const STALE_TEMP_AGE_MS = 60 * 60 * 1000;

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by someone else
  }
}

/**
 * Remove the temp files of interrupted writes in `dir` (not recursive): those whose writer (the pid in
 * the name) is no longer alive, and those older than STALE_TEMP_AGE_MS. A file a live process may be
 * writing is never touched. Best effort: a folder or file that cannot be removed is left. Returns the
 * names removed.
 */
export function removeStaleTempFiles(dir: string, now = Date.now()): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const p = join(dir, name);
    try {
      const st = statSync(p);
      if (!st.isFile()) continue;
      if (isAlive(Number(m[2])) && now - st.mtimeMs < STALE_TEMP_AGE_MS) continue;
      rmSync(p, { force: true });
      removed.push(name);
    } catch {
      /* gone meanwhile, or not ours to remove */
    }
  }
  return removed;
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
  const what =
    found.bytes < entry.bytes
      ? `cut short: ${found.bytes} of ${entry.bytes} bytes`
      : found.bytes !== entry.bytes
        ? `${found.bytes} bytes, ${entry.bytes} recorded`
        : `same length, different content (sha256 ${found.sha256.slice(0, 12)}..., ${entry.sha256.slice(0, 12)}... recorded)`;
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
  makeDirs(dirname(path));
  let text = line.endsWith('\n') ? line : line + '\n';
  try {
    // a torn last line (a kill or a full disk mid-append) stays a line of its own, not glued to this one
    if (endsWithoutNewline(path)) text = '\n' + text;
    appendFileSync(path, text);
  } catch (e) {
    throw fileSystemError(e, path, 'append to');
  }
}

function endsWithoutNewline(path: string): boolean {
  const st = statOrNull(path);
  if (!st || st.size === 0) return false;
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, st.size - 1);
    return b[0] !== 0x0a;
  } finally {
    closeSync(fd);
  }
}

/** Read a UTF-8 text file with clear errors for a missing file, a folder, or invalid UTF-8. */
export function readTextFile(path: string, what = 'file'): string {
  const st = statOrNull(path);
  if (!st) throw new DataError(`${path}: ${what} not found`);
  if (st.isDirectory()) throw new DataError(`${path}: expected a ${what}, found a directory`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw fileSystemError(e, path, 'read');
  }
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
