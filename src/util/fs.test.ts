/**
 * Integrity records of atomic writes: a recorded file that is cut short, grown or altered is refused by
 * name on read; an interrupted write (record pending, rename not done, or done) still reads; unrecorded
 * files and opted-out writes are not checked.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, truncateSync, existsSync, readdirSync, renameSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  INTEGRITY_FILE,
  STALE_TEMP_AGE_MS,
  appendLine,
  readJsonFile,
  readTextFile,
  removeStaleTempFiles,
  verifyFile,
  verifyFolder,
  writeFileAtomic,
  writeJsonAtomic,
} from './fs.js';
import { DataError, FileSystemError } from './errors.js';
import { Rng } from './random.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'heads-fs-'));

describe('integrity records', () => {
  it('records length and sha256 of every write and reads the file back unchanged', () => {
    const dir = fresh();
    writeJsonAtomic(join(dir, 'a.json'), { x: 1 });
    writeJsonAtomic(join(dir, 'a.json'), { x: 2, y: [1, 2] });
    const returned = writeFileAtomic(join(dir, 'b.csv'), 'h\n1\n');
    const rec = JSON.parse(readFileSync(join(dir, INTEGRITY_FILE), 'utf8'));
    // the digest returned is that of the bytes on disk, and the one recorded
    const onDisk = readFileSync(join(dir, 'b.csv'));
    expect(returned).toEqual({ bytes: onDisk.length, sha256: createHash('sha256').update(onDisk).digest('hex') });
    expect(rec.files['b.csv']).toEqual(returned);
    // an opted-out write returns its digest too, and records nothing
    const unrecorded = writeFileAtomic(join(dir, 'c.bin'), new Uint8Array([1, 2, 3]), { integrity: false });
    expect(unrecorded.bytes).toBe(3);
    expect(unrecorded.sha256).toBe(
      createHash('sha256')
        .update(new Uint8Array([1, 2, 3]))
        .digest('hex'),
    );
    expect(Object.keys(rec.files).sort()).toEqual(['a.json', 'b.csv']);
    expect(rec.files['a.json'].bytes).toBe(readFileSync(join(dir, 'a.json')).length);
    expect(rec.files['a.json'].pending).toBeUndefined();
    expect(readJsonFile(join(dir, 'a.json'))).toEqual({ x: 2, y: [1, 2] });
    expect(readTextFile(join(dir, 'b.csv'))).toBe('h\n1\n');
    // no temp files are left behind
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses every truncation and sampled byte flip, naming the file and what was found', () => {
    const dir = fresh();
    const path = join(dir, 'results.json');
    const value = { bleu: 12.34, rows: Array.from({ length: 30 }, (_, i) => ({ i, v: i * 0.5 })) };
    const rng = new Rng(3);
    const original = () => writeJsonAtomic(path, value);
    original();
    const size = readFileSync(path).length;
    let tried = 0;
    for (const cut of [0, 1, Math.floor(size / 2), size - 1]) {
      original();
      truncateSync(path, cut);
      expect(() => readJsonFile(path)).toThrow(DataError);
      expect(() => readJsonFile(path)).toThrow(`${path}: damaged or changed since heads wrote it (cut short: ${cut} of ${size} bytes)`);
      tried++;
    }
    for (let k = 0; k < 25; k++) {
      original();
      const b = readFileSync(path);
      const at = rng.int(b.length);
      b[at] = b[at]! === 0x20 ? 0x21 : 0x20;
      writeFileSync(path, b);
      expect(() => readTextFile(path)).toThrow(/same length, different content/);
      tried++;
    }
    original();
    writeFileSync(path, readFileSync(path, 'utf8') + ' ');
    expect(() => readJsonFile(path)).toThrow(`(${size + 1} bytes, ${size} recorded)`);
    expect(() => readJsonFile(path)).toThrow(`remove its entry "results.json" from ${join(dir, INTEGRITY_FILE)}`);
    expect(tried).toBe(29);
  });

  it('an interrupted write reads whichever file survived: before the rename (old) and after it (new)', () => {
    const dir = fresh();
    const path = join(dir, 'stage.json');
    writeJsonAtomic(path, { v: 'old' });
    const recordOld = readFileSync(join(dir, INTEGRITY_FILE), 'utf8');
    // replay a write by hand: pending record written, then a kill before or after the rename
    writeJsonAtomic(join(dir, 'scratch.json'), { v: 'new' });
    const rec = JSON.parse(recordOld);
    const newRec = JSON.parse(readFileSync(join(dir, INTEGRITY_FILE), 'utf8')).files['scratch.json'];
    rec.files['stage.json'] = { ...rec.files['stage.json'], pending: newRec };
    writeFileSync(join(dir, INTEGRITY_FILE), JSON.stringify(rec));
    expect(readJsonFile(path)).toEqual({ v: 'old' }); // killed before the rename
    renameSync(join(dir, 'scratch.json'), path);
    expect(readJsonFile(path)).toEqual({ v: 'new' }); // killed after the rename, before the record's second phase
  });

  it('does not check unrecorded files or opted-out writes; verifyFolder lists the damaged ones', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'hand.json'), '{"a":1}');
    writeFileAtomic(join(dir, 'out.txt'), 'x\n', { integrity: false });
    writeJsonAtomic(join(dir, 'kept.json'), { a: 1 });
    writeJsonAtomic(join(dir, 'bad.json'), { a: 2 });
    writeFileSync(join(dir, 'out.txt'), 'edited\n');
    expect(readJsonFile(join(dir, 'hand.json'))).toEqual({ a: 1 });
    expect(readTextFile(join(dir, 'out.txt'))).toBe('edited\n');
    expect(() => verifyFile(join(dir, 'kept.json'))).not.toThrow();
    writeFileSync(join(dir, 'bad.json'), '{"a":3}\n');
    const v = verifyFolder(dir);
    expect(v.checked).toBe(2);
    expect(v.problems).toHaveLength(1);
    expect(v.problems[0]).toContain(join(dir, 'bad.json'));
    expect(existsSync(join(dir, INTEGRITY_FILE))).toBe(true);
  });
});

describe('faults', () => {
  // a real full file system: a 64 KB tmpfs (root only; skipped with a message elsewhere)
  const mountTiny = (): string | null => {
    const dir = fresh();
    return spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]).status === 0 ? dir : null;
  };

  it('a write the full disk refuses throws one FileSystemError naming the file; the old file, its record and the folder stay as they were', () => {
    const dir = mountTiny();
    if (!dir) return console.warn('fs.test: skipping the ENOSPC case: mounting a tmpfs is not permitted here');
    try {
      const path = join(dir, 'results.json');
      writeJsonAtomic(path, { bleu: 1 });
      const before = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f)).toString('hex')]));
      let err: unknown;
      try {
        writeFileAtomic(path, new Uint8Array(200 * 1024)); // more than the whole disk
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FileSystemError);
      expect((err as Error).message).toBe(`${path}: cannot write: no space left on device (ENOSPC)`);
      expect(Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f)).toString('hex')]))).toEqual(before);
      expect(readJsonFile(path)).toEqual({ bleu: 1 });
      // an append that does not fit: named too, and the next line starts on a line of its own
      const log = join(dir, 'metrics.jsonl');
      appendLine(log, '{"step":1}');
      expect(() => appendLine(log, JSON.stringify({ pad: 'x'.repeat(200 * 1024) }))).toThrow(`${log}: cannot append to: no space left on device (ENOSPC)`);
      // whatever part of that line made it to the disk stays; free some space and go on
      rmSync(join(dir, 'results.json'));
      appendLine(log, '{"step":2}');
      const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean);
      expect(lines[0]).toBe('{"step":1}');
      expect(lines[lines.length - 1]).toBe('{"step":2}');
    } finally {
      spawnSync('umount', [dir]);
    }
  });

  it("removeStaleTempFiles removes the temp files of dead writers and old ones, never a live writer's fresh one", () => {
    const dir = fresh();
    const deadPid = Number(spawnSync('node', ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    const names = {
      dead: `.model.safetensors.${deadPid}.0.tmp`,
      live: `.state.json.${process.pid}.4.tmp`,
      liveOld: `.state.json.${process.pid}.5.tmp`,
      other: '.notes.12.tmp',
      target: 'model.safetensors',
    };
    for (const n of Object.values(names)) writeFileSync(join(dir, n), 'x');
    const t = (Date.now() - STALE_TEMP_AGE_MS - 60_000) / 1000;
    utimesSync(join(dir, names.liveOld), t, t);
    expect(removeStaleTempFiles(dir).sort()).toEqual([names.dead, names.liveOld].sort());
    expect(readdirSync(dir).sort()).toEqual([names.live, names.other, names.target].sort());
    expect(removeStaleTempFiles(join(dir, 'no-such-folder'))).toEqual([]);
  });
});
