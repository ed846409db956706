/**
 * One folder per command run, never overwritten: runs/<yyyymmdd-hhmmss>-<name>/ holding the resolved
 * config, the argv, the seed, the git commit, the environment (node, tfjs, backend), metrics.jsonl, the
 * checkpoints and the results. Every file is written atomically. A command that fails before its run
 * folder holds anything but the provenance removes it again (`removeIfHalfMade`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { INTEGRITY_FILE, appendLine, fileSystemError, writeJsonAtomic, writeFileAtomic } from './fs.js';
import { checkOutputFolder, makeDirs } from './dirs.js';

export interface GitInfo {
  commit: string | null;
  branch: string | null;
  isDirty: boolean | null;
}

export function readGitInfo(cwd = process.cwd()): GitInfo {
  const git = (...args: string[]) => {
    try {
      return execFileSync('git', args, { cwd, stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim();
    } catch {
      return null;
    }
  };
  const commit = git('rev-parse', 'HEAD');
  const status = commit ? git('status', '--porcelain', '--untracked-files=no') : null;
  return { commit, branch: git('rev-parse', '--abbrev-ref', 'HEAD'), isDirty: status === null ? null : status.length > 0 };
}

function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** What a run folder holds before it has produced anything: provenance, the parent, the tokenizer. */
const SETUP_FILES = new Set(['config.json', 'command.txt', 'git.json', 'env.json', 'parent.json', 'tokenizer.json', INTEGRITY_FILE]);

export class RunFolder {
  private constructor(readonly path: string) {}

  /** Create a new run folder under `root` (a suffix keeps two runs started in the same second apart). */
  static create(root: string, name: string): RunFolder {
    const base = join(root, `${timestamp()}-${name.replace(/[^A-Za-z0-9_.-]+/g, '-')}`);
    let path = base;
    for (let i = 2; existsSync(path); i++) path = `${base}-${i}`;
    checkOutputFolder(root, '--runs-dir');
    try {
      makeDirs(path); // bounded: a recursive mkdirSync never returns under /proc
    } catch (e) {
      throw fileSystemError(e, path, 'create the run folder');
    }
    return new RunFolder(resolve(path));
  }

  /** Open an existing run folder (for --resume, analysis, export). */
  static open(path: string): RunFolder {
    return new RunFolder(resolve(path));
  }

  file(...parts: string[]): string {
    return join(this.path, ...parts);
  }

  /** Record what made this run: config, argv, seed, git, environment. */
  writeProvenance(p: { config: unknown; argv: readonly string[]; seed: number; env: Record<string, unknown> }): void {
    writeJsonAtomic(this.file('config.json'), p.config);
    writeFileAtomic(this.file('command.txt'), p.argv.map((a) => (/[\s"'$]/.test(a) ? JSON.stringify(a) : a)).join(' ') + '\n');
    writeJsonAtomic(this.file('git.json'), readGitInfo());
    writeJsonAtomic(this.file('env.json'), { seed: p.seed, node: process.version, platform: `${process.platform}-${process.arch}`, ...p.env });
  }

  /**
   * A resumed run: record the config it continues with (it may differ, e.g. train.maxSteps) and append
   * the resuming command line to command.txt, keeping the original ones.
   */
  recordResume(config: unknown, argv: readonly string[]): void {
    writeJsonAtomic(this.file('config.json'), config);
    const prev = existsSync(this.file('command.txt')) ? readFileSync(this.file('command.txt'), 'utf8') : '';
    writeFileAtomic(this.file('command.txt'), prev + argv.map((a) => (/[\s"'$]/.test(a) ? JSON.stringify(a) : a)).join(' ') + '\n');
  }

  /**
   * Remove the folder if it holds nothing but what `writeProvenance` (and a command's set-up) wrote: no
   * metrics, no checkpoint, no result. A failed command calls it so that it leaves no half-made run.
   */
  removeIfHalfMade(): boolean {
    let names: string[];
    try {
      names = readdirSync(this.path);
    } catch {
      return false;
    }
    if (!names.every((n) => SETUP_FILES.has(n) || /^\..+\.\d+\.\d+\.tmp$/.test(n))) return false;
    rmSync(this.path, { recursive: true, force: true });
    return true;
  }

  writeJson(name: string, value: unknown): void {
    writeJsonAtomic(this.file(name), value);
  }

  appendMetrics(record: Record<string, unknown>): void {
    appendLine(this.file('metrics.jsonl'), JSON.stringify(record));
  }

  /** metrics.jsonl records; a torn last line (a kill mid-append) is skipped. */
  readMetrics(): Array<Record<string, unknown>> {
    const path = this.file('metrics.jsonl');
    if (!existsSync(path)) return [];
    const out: Array<Record<string, unknown>> = [];
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* torn line */
      }
    }
    return out;
  }
}
