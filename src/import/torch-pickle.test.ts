/**
 * The restricted unpickler of pytorch_model.bin (torch-pickle.ts): pickles that would run code are refused
 * with one line naming the global or opcode (a hand-made os.system REDUCE, an INST opcode, and, with
 * python3-torch, a torch.save'd object whose __reduce__ calls os.system: its marker file never appears;
 * the CLI side is in cli/import-command.test.ts); tensors torch.save wrote in float32, float16,
 * bfloat16 and float64, contiguous or as strided views, read back as the float32 values torch gives.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataError } from '../util/errors.js';
import { readTorchCheckpoint, restrictedUnpickle } from './torch-pickle.js';
import { EVIL_SCRIPT, torchPython } from './marian.test-helpers.js';

const python = torchPython();
if (!python) console.warn('skipping the torch.save cross-checks: no python3 with torch (apt-get install python3-torch)');

const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

describe('restricted unpickler', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'heads-pickle-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a GLOBAL os.system + REDUCE before calling anything, naming it', () => {
    const evil = bytes('\x80\x02cos\nsystem\nq\x00X\x0c\x00\x00\x00touch /tmp/x\x85q\x01Rq\x02.');
    expect(() => restrictedUnpickle(evil, 'evil.pkl')).toThrow(DataError);
    expect(() => restrictedUnpickle(evil, 'evil.pkl')).toThrow('evil.pkl: global os.system at byte 2: refused');
    const evalCall = bytes('\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.');
    expect(() => restrictedUnpickle(evalCall, 'e.pkl')).toThrow('global builtins.eval');
  });

  it('refuses opcodes outside plain tensor storage (INST, OBJ, STACK_GLOBAL), naming the opcode', () => {
    expect(() => restrictedUnpickle(bytes('\x80\x02(ios\nsystem\n.'), 'i.pkl')).toThrow('i.pkl: opcode 0x69 at byte 3: refused');
    expect(() => restrictedUnpickle(bytes('\x80\x04\x93.'), 's.pkl')).toThrow('opcode 0x93 at byte 2');
  });

  it('reads dicts, lists, tuples, ints, floats, strings and memo references', () => {
    const p = bytes('\x80\x02}q\x00(X\x01\x00\x00\x00aK\x05X\x01\x00\x00\x00b]q\x01(G?\xf8\x00\x00\x00\x00\x00\x00\x88NeX\x01\x00\x00\x00ch\x01u.');
    const d = restrictedUnpickle(p, 'ok.pkl') as Map<string, unknown>;
    expect(d.get('a')).toBe(5);
    expect(d.get('b')).toEqual([1.5, true, null]);
    expect(d.get('c')).toBe(d.get('b'));
  });

  (python ? it : it.skip)('a torch.save with an os.system __reduce__ is refused and runs nothing', () => {
    const marker = join(dir, 'pwned-lib');
    const path = join(dir, 'evil.bin');
    execFileSync(python!, ['-c', EVIL_SCRIPT, path, marker]);
    expect(() => readTorchCheckpoint(path)).toThrow(/global (posix|os)\.system at byte \d+: refused/);
    expect(existsSync(marker)).toBe(false);
  });

  (python ? it : it.skip)('float32 / float16 / bfloat16 / float64 tensors and strided views read as torch gives them in float32', () => {
    const path = join(dir, 'dtypes.bin');
    const script = `import sys, json, torch
g = torch.Generator().manual_seed(1)
x = torch.randn(3, 5, generator=g)
sd = {"f32": x, "f16": x.half(), "bf16": x.bfloat16(), "f64": x.double(), "view": x.t(), "slice": x[1:, 2:]}
torch.save(sd, sys.argv[1])
json.dump({k: {"shape": list(v.shape), "data": v.float().contiguous().reshape(-1).tolist()} for k, v in sd.items()}, sys.stdout)`;
    const want = JSON.parse(execFileSync(python!, ['-c', script, path], { encoding: 'utf8' })) as Record<string, { shape: number[]; data: number[] }>;
    const got = readTorchCheckpoint(path);
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    for (const [k, w] of Object.entries(want)) {
      expect(got[k]!.shape).toEqual(w.shape);
      expect(Array.from(got[k]!.data)).toEqual(w.data.map((v) => Math.fround(v)));
    }
    expect(readdirSync(dir).length).toBeGreaterThan(0);
  });
});
