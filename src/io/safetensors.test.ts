/**
 * Tests for the safetensors reader/writer: round trips of every dtype, the header parsed by hand from
 * the bytes, deterministic layout, table-driven refusal of truncated and corrupted files, and (when
 * python3 with numpy is installed) an independent reader written from the spec.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors, type SafeTensor } from './safetensors.js';
import { CheckpointError } from '../util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sample(): Record<string, SafeTensor> {
  return {
    'enc.0.attn.w_q': { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2.5, 3.25, 0, 1e-8, -7]) },
    'gates.log_alpha': { dtype: 'F32', shape: [8], data: new Float32Array([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.61, -0.612]) },
    step: { dtype: 'I64', shape: [], data: new BigInt64Array([123456789012345n]) },
    ids: { dtype: 'I32', shape: [3], data: new Int32Array([-1, 0, 2147483647]) },
    f64: { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -Math.E]) },
    half: { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) }, // 1.0, -2.0
    brain: { dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) }, // 1.0
    bytes: { dtype: 'U8', shape: [3], data: new Uint8Array([0, 7, 255]) }, // odd length before aligned types?
    signed: { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) },
    mask: { dtype: 'BOOL', shape: [2, 2], data: new Uint8Array([1, 0, 0, 1]) },
    u64: { dtype: 'U64', shape: [1], data: new BigUint64Array([18446744073709551615n]) },
    i16: { dtype: 'I16', shape: [1], data: new Int16Array([-300]) },
    u16: { dtype: 'U16', shape: [1], data: new Uint16Array([65535]) },
    u32: { dtype: 'U32', shape: [1], data: new Uint32Array([4294967295]) },
    empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  };
}

/** Hand-made file: 8-byte LE length, header text as given (no padding unless included), data. */
function build(headerText: string, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const h = Buffer.from(headerText, 'utf8');
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('round trip', () => {
  it('every dtype, scalar and empty shapes, metadata', () => {
    const path = join(dir, 'all.safetensors');
    const t = sample();
    writeSafetensors(path, t, { format: 'pt', 'heads.version': '0.1.0' });
    const back = readSafetensors(path);
    expect(back.metadata).toEqual({ format: 'pt', 'heads.version': '0.1.0' });
    expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(t).sort());
    for (const [name, want] of Object.entries(t)) {
      const got = back.tensors[name]!;
      expect(got.dtype).toBe(want.dtype);
      expect(got.shape).toEqual(want.shape);
      expect(got.data.constructor).toBe(want.data.constructor);
      expect(Array.from(got.data as ArrayLike<number | bigint>)).toEqual(Array.from(want.data as ArrayLike<number | bigint>));
    }
  });

  it('no metadata → no __metadata__ key, and an empty metadata object reads back as {}', () => {
    const bytes = encodeSafetensors({ a: { dtype: 'F32', shape: [1], data: new Float32Array([2]) } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(Object.keys(JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as object)).toEqual(['a']);
    expect(decodeSafetensors(bytes).metadata).toEqual({});
  });

  it('read tensors own their memory (aligned copies, not views of the file buffer)', () => {
    const bytes = encodeSafetensors(sample());
    const back = decodeSafetensors(bytes);
    const f = back.tensors['gates.log_alpha']!.data as Float32Array;
    expect(f.byteOffset).toBe(0);
    expect(f.buffer.byteLength).toBe(32);
    bytes.fill(0);
    expect(f[6]).toBeCloseTo(0.61, 6);
  });

  it('the output does not depend on insertion order', () => {
    const t = sample();
    const reversed = Object.fromEntries(Object.entries(t).reverse());
    expect(Buffer.from(encodeSafetensors(reversed, { a: '1' })).equals(Buffer.from(encodeSafetensors(t, { a: '1' })))).toBe(true);
  });

  it('matches the reference writer byte for byte on hand-built cases (spec test vectors)', () => {
    // no tensors, no metadata: "{}" padded with 6 spaces to 8 bytes
    expect(Array.from(encodeSafetensors({}))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32]);
    // metadata only: {"__metadata__":{"framework":"pt"}} is 35 bytes, padded to 40
    const meta = '{"__metadata__":{"framework":"pt"}}';
    expect(Buffer.from(encodeSafetensors({}, { framework: 'pt' })).equals(Buffer.from(build(meta + ' '.repeat(5), new Uint8Array(0))))).toBe(true);
    // one F32 [1,1,2,3] tensor 0..5: a 65-byte header padded to 72, then the 24 data bytes
    const text = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    expect(text.length).toBe(65);
    const data = new Float32Array([0, 1, 2, 3, 4, 5]);
    const want = build(text + ' '.repeat(7), new Uint8Array(data.buffer));
    expect(Buffer.from(encodeSafetensors({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data } })).equals(Buffer.from(want))).toBe(true);
  });

  it('writer refuses bad input', () => {
    expect(() => encodeSafetensors({ a: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow('tensor "a": shape [3] needs 3 values, got 2');
    expect(() => encodeSafetensors({ a: { dtype: 'F32', shape: [2], data: new Float64Array(2) } })).toThrow(
      /F32 data must be a Float32Array, got Float64Array/,
    );
    expect(() => encodeSafetensors({ a: { dtype: 'Q4' as never, shape: [1], data: new Uint8Array(1) } })).toThrow(/unknown dtype "Q4"/);
    expect(() => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } })).toThrow(/reserved/);
    expect(() => encodeSafetensors({ a: { dtype: 'U8', shape: [-1], data: new Uint8Array(0) } })).toThrow(/shape/);
  });
});

describe('the bytes, parsed by hand', () => {
  const bytes = encodeSafetensors(sample(), { note: 'x' });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const headerText = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
  const header = JSON.parse(headerText) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  const SIZES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1 };

  it('header length is a multiple of 8, padded with spaces, valid JSON with the metadata', () => {
    expect(n % 8).toBe(0);
    expect(headerText.trimEnd()).toBe(JSON.stringify(header));
    expect(/^ *$/.test(headerText.slice(JSON.stringify(header).length))).toBe(true);
    expect(header['__metadata__']).toEqual({ note: 'x' });
  });

  it('offsets are contiguous from 0 to the end of the file, sizes = product(shape) × dtype size', () => {
    const entries = Object.entries(header).filter(([k]) => k !== '__metadata__') as Array<
      [string, { dtype: string; shape: number[]; data_offsets: [number, number] }]
    >;
    let pos = 0;
    for (const [, e] of entries) {
      expect(e.data_offsets[0]).toBe(pos);
      expect(e.data_offsets[1] - e.data_offsets[0]).toBe(e.shape.reduce((a, b) => a * b, 1) * SIZES[e.dtype]!);
      // every tensor starts at a multiple of its element size in the file (header is 8-aligned)
      expect((8 + n + e.data_offsets[0]) % SIZES[e.dtype]!).toBe(0);
      pos = e.data_offsets[1];
    }
    expect(8 + n + pos).toBe(bytes.length);
  });

  it('order: by dtype as the reference writer (wider types first), then by name', () => {
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(names).toEqual([
      'u64',
      'step',
      'f64',
      'empty',
      'enc.0.attn.w_q',
      'gates.log_alpha',
      'u32',
      'ids',
      'brain',
      'half',
      'u16',
      'i16',
      'signed',
      'bytes',
      'mask',
    ]);
  });

  it('F32 values are little-endian IEEE at the stated offsets', () => {
    const e = header['enc.0.attn.w_q'] as { data_offsets: [number, number] };
    const start = 8 + n + e.data_offsets[0];
    expect(view.getFloat32(start, true)).toBe(1);
    expect(view.getFloat32(start + 4, true)).toBe(-2.5);
    expect(view.getFloat32(start + 8, true)).toBe(3.25);
    const s = header['step'] as { data_offsets: [number, number] };
    expect(view.getBigInt64(8 + n + s.data_offsets[0], true)).toBe(123456789012345n);
  });
});

describe('truncated or corrupted files are refused with a clear message', () => {
  const good = encodeSafetensors(
    { a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }, b: { dtype: 'I32', shape: [1], data: new Int32Array([3]) } },
    { k: 'v' },
  );
  const n = Number(new DataView(good.buffer).getBigUint64(0, true));

  const truncations: Array<[number, RegExp]> = [
    [0, /truncated: 0 bytes, too short for the 8-byte header length/],
    [5, /truncated: 5 bytes/],
    [8, /header length \d+ goes beyond the end of the file \(8 bytes\)/],
    [8 + Math.floor(n / 2), /goes beyond the end of the file/],
    [8 + n, /truncated: the header needs 12 data bytes after the header, the file has 0/],
    [good.length - 1, /truncated: the header needs 12 data bytes after the header, the file has 11/],
  ];
  it.each(truncations)('truncated to %p bytes', (len, message) => {
    const path = join(dir, `trunc-${len}.safetensors`);
    writeFileSync(path, good.subarray(0, len));
    expect(() => readSafetensors(path)).toThrow(CheckpointError);
    expect(() => readSafetensors(path)).toThrow(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (.*)?${message.source}`));
  });

  it('every truncation point (not just the table) is refused', () => {
    for (let len = 0; len < good.length; len++) expect(() => decodeSafetensors(good.subarray(0, len))).toThrow(CheckpointError);
  });

  const flips: Array<[string, (b: Uint8Array) => void, RegExp]> = [
    ['first header byte', (b) => (b[8] = 0x78), /header must start with '\{'/],
    ['a quote in the header', (b) => (b[9] = 0x27), /header is not valid JSON/],
    ['invalid UTF-8', (b) => (b[10] = 0xff), /not valid UTF-8/],
    ['length high byte', (b) => (b[7] = 0x01), /above the 100 MB limit/],
    ['length +8 (beyond file)', (b) => new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true), /goes beyond the end of the file/],
  ];
  it.each(flips)('flipped: %s', (_name, flip, message) => {
    const b = good.slice();
    flip(b);
    expect(() => decodeSafetensors(b, 'bad.safetensors')).toThrow(new RegExp(`^bad\\.safetensors: (.*)?${message.source}`));
  });

  it('flipping any header bit: only CheckpointErrors; every flip in a dtype, shape or offset is refused', () => {
    // safetensors has no checksum, so a flipped letter in a name or in the metadata is undetectable;
    // everything that decides how bytes are interpreted is cross-checked and must be caught
    const text = Buffer.from(good.subarray(8, 8 + n)).toString('latin1');
    const guarded = new Set<number>();
    for (const m of text.matchAll(/"(dtype|shape|data_offsets)":("[A-Z0-9]+"|\[[0-9,]*\])/g)) {
      const at = m.index ?? 0;
      const valueStart = at + m[0].length - m[2]!.length;
      for (let k = valueStart; k < at + m[0].length; k++) if (/[A-Z0-9]/.test(text[k]!)) guarded.add(8 + k);
    }
    expect(guarded.size).toBeGreaterThan(10);
    for (let i = 8; i < 8 + n; i++) {
      for (const bit of [0x01, 0x02, 0x10]) {
        const b = good.slice();
        b[i] = b[i]! ^ bit;
        let refused = false;
        try {
          decodeSafetensors(b);
        } catch (e) {
          if (!(e instanceof CheckpointError)) throw e;
          refused = true;
        }
        if (guarded.has(i) && !refused) throw new Error(`flipping bit ${bit} of header byte ${i} (${JSON.stringify(text[i - 8])}) was accepted`);
      }
    }
  });

  const data12 = new Uint8Array(12);
  const headers: Array<[string, string, Uint8Array, RegExp]> = [
    ['unknown dtype', '{"a":{"dtype":"F8","shape":[3],"data_offsets":[0,12]}}', data12, /tensor "a": unknown dtype "F8"/],
    [
      'size mismatch',
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}',
      data12,
      /tensor "a": F32 \[2\] needs 8 bytes but data_offsets \[0, 12\] hold 12/,
    ],
    [
      'overlap',
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
      data12,
      /tensor "b": data_offsets \[4, 12\] overlap tensor "a"/,
    ],
    [
      'hole',
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
      data12,
      /hole in the data: no tensor covers bytes \[4, 8\)/,
    ],
    ['not starting at 0', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', data12, /hole in the data: no tensor covers bytes \[0, 4\)/],
    ['trailing bytes', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', data12, /4 trailing bytes after the last tensor/],
    [
      'duplicate key',
      '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}',
      data12,
      /duplicate key "a"/,
    ],
    ['duplicate nested key', '{"a":{"dtype":"F32","dtype":"I32","shape":[3],"data_offsets":[0,12]}}', data12, /duplicate key "dtype"/],
    ['end before begin', '{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}', data12, /end before they begin/],
    ['negative shape', '{"a":{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}}', data12, /shape must be an array of non-negative integers/],
    ['offsets not a pair', '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0]}}', data12, /data_offsets must be \[begin, end\]/],
    [
      'metadata not strings',
      '{"__metadata__":{"epoch":3},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}',
      data12,
      /__metadata__\.epoch must be a string/,
    ],
    ['array header', '[1, 2]', new Uint8Array(0), /header must start with '\{'/],
    ['unknown field', '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12],"stride":[1]}}', data12, /tensor "a": unknown field stride/],
  ];
  it.each(headers)('%s', (_name, text, data, message) => {
    expect(() => decodeSafetensors(build(text, data), 'x.safetensors')).toThrow(new RegExp(`^x\\.safetensors: (.*)?${message.source}`));
  });

  it('a hand-made valid file with an unpadded header and a key with escapes is accepted', () => {
    const data = new Uint8Array(new Float32Array([1.5]).buffer);
    const r = decodeSafetensors(build('{"we\\"ird":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', data));
    expect(Array.from(r.tensors['we"ird']!.data as Float32Array)).toEqual([1.5]);
  });

  it('missing file and directory', () => {
    expect(() => readSafetensors(join(dir, 'nope.safetensors'))).toThrow(/nope\.safetensors: safetensors file not found/);
    expect(() => readSafetensors(dir)).toThrow(/found a directory/);
  });
});

describe('independent reader (python3 + numpy, skipped when absent)', () => {
  // /usr/bin/python3 first, then whatever python3 is on PATH; the first that can import numpy
  const python = ['/usr/bin/python3', 'python3'].find(
    (p) => (p.startsWith('/') ? existsSync(p) : true) && spawnSync(p, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0,
  );
  const hasNumpy = python !== undefined;
  (hasNumpy ? it : it.skip)('numpy reads the F32, I64 and BOOL tensors and the metadata written here', () => {
    const path = join(dir, 'py.safetensors');
    writeSafetensors(path, sample(), { written_by: 'heads' });
    const script = [
      'import json, struct, sys',
      'import numpy as np',
      'raw = open(sys.argv[1], "rb").read()',
      'n = struct.unpack("<Q", raw[:8])[0]',
      'h = json.loads(raw[8:8 + n])',
      'buf = raw[8 + n:]',
      'def get(name, dt):',
      '    e = h[name]',
      '    b, end = e["data_offsets"]',
      '    return np.frombuffer(buf[b:end], dtype=dt).reshape(e["shape"])',
      'out = {',
      '  "w": get("enc.0.attn.w_q", "<f4").astype(float).tolist(),',
      '  "step": int(get("step", "<i8")),',
      '  "mask": get("mask", "u1").astype(bool).tolist(),',
      '  "meta": h["__metadata__"],',
      '}',
      'print(json.dumps(out))',
    ].join('\n');
    const r = spawnSync(python!, ['-c', script, path], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { w: number[][]; step: number; mask: boolean[][]; meta: Record<string, string> };
    const want = sample()['enc.0.attn.w_q']!.data as Float32Array;
    expect(out.w).toEqual([
      [want[0], want[1], want[2]],
      [want[3], want[4], want[5]],
    ]);
    expect(out.step).toBe(123456789012345);
    expect(out.mask).toEqual([
      [true, false],
      [false, true],
    ]);
    expect(out.meta).toEqual({ written_by: 'heads' });
  });

  it('readFileSync of what the writer produced matches encodeSafetensors byte for byte', () => {
    const path = join(dir, 'same.safetensors');
    writeSafetensors(path, sample());
    expect(Buffer.from(readFileSync(path)).equals(Buffer.from(encodeSafetensors(sample())))).toBe(true);
  });
});
