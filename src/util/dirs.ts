/**
 * Output locations checked before the work that fills them (a translation, a training run), so that a
 * wrong path costs one line, not the work: `checkOutputFolder` (--runs-dir, --out), `checkOutputFile`
 * (translate -o). `makeDirs` creates folders one level at a time with a bounded number of steps: Node's
 * recursive mkdirSync never returns under /proc (mkdir there answers ENOENT for a parent that exists).
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, FileSystemError } from './errors.js';

function kind(path: string): 'dir' | 'file' | null {
  try {
    return statSync(path).isDirectory() ? 'dir' : 'file';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null; // ENOTDIR: a parent is a file (found going up)
    throw new FileSystemError(path, code ?? 'EIO', 'look at');
  }
}

/** The nearest existing ancestor of `path` (itself if it exists). */
function nearestExisting(path: string): string {
  let p = resolve(path);
  while (kind(p) === null && dirname(p) !== p) p = dirname(p);
  return p;
}

const KERNEL_FILE_SYSTEMS = ['/proc', '/sys', '/dev'];

/** Why folders cannot be created at `path`, or null when they can (or it already is a folder). */
function folderProblem(path: string): string | null {
  const abs = resolve(path);
  const k = kind(abs);
  if (k === 'dir') return null;
  if (k === 'file') return `${path} is a file; expected a folder`;
  const base = nearestExisting(abs);
  if (kind(base) !== 'dir') return `${base} is a file, so no folder can be created under it`;
  const fsRoot = KERNEL_FILE_SYSTEMS.find((r) => base === r || base.startsWith(`${r}/`));
  if (fsRoot) return `${base} is on the kernel's ${fsRoot} file system, where folders cannot be created`;
  try {
    accessSync(base, constants.W_OK);
  } catch (e) {
    return `cannot create folders in ${base} (${(e as NodeJS.ErrnoException).code ?? 'not writable'})`;
  }
  return null;
}

/** Refuse an output folder that cannot exist (a file, a path under a file, /proc, no permission). */
export function checkOutputFolder(path: string, flag: string): void {
  const problem = folderProblem(path);
  if (problem) throw new ConfigError([`${flag}: ${problem}`]);
}

/** Refuse an output file path that cannot be written (a folder, a parent that cannot exist). */
export function checkOutputFile(path: string, flag: string): void {
  const k = kind(resolve(path));
  if (k === 'dir') throw new ConfigError([`${flag}: ${path} is a folder; expected a file name`]);
  const problem = folderProblem(dirname(resolve(path)));
  if (problem) throw new ConfigError([`${flag}: ${path}: ${problem}`]);
  if (k === 'file') {
    try {
      accessSync(path, constants.W_OK);
    } catch (e) {
      throw new ConfigError([`${flag}: ${path}: not writable (${(e as NodeJS.ErrnoException).code ?? 'permission denied'})`]);
    }
  }
}

/** `mkdir -p` in at most one step per path component; a refusal is a FileSystemError naming the folder. */
export function makeDirs(path: string): void {
  const abs = resolve(path);
  const missing: string[] = [];
  for (let p = abs; kind(p) === null && dirname(p) !== p; p = dirname(p)) missing.unshift(p);
  for (const dir of missing) {
    try {
      mkdirSync(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'EEXIST' && kind(dir) === 'dir') continue; // made by someone else meanwhile
      throw new FileSystemError(dir, code, 'create the folder');
    }
  }
  if (kind(abs) !== 'dir') throw new FileSystemError(abs, 'ENOTDIR', 'create the folder');
}
