/**
 * `pytorch_model.bin` without executing it: torch.save's zip archive (`<prefix>/data.pkl`, the raw
 * storages `<prefix>/data/<key>`) read by a restricted unpickler. A checkpoint must never run code, so
 * the pickle machine below knows only the opcodes a plain tensor state dict uses (protocol 2: dicts,
 * lists, tuples, strings, ints, floats, booleans, None, memo, persistent ids, GLOBAL + REDUCE + BUILD)
 * and only these globals:
 *   collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
 *   torch.{Float,Half,BFloat16,Double}Storage (the storage types, named in the persistent ids).
 * Anything else (e.g. `os.system` or `builtins.eval` with REDUCE) is refused with one line naming the
 * global or the opcode and its byte offset (CLI exit 2). Storages are little-endian; half precision,
 * bfloat16 and float64 become float32. The legacy (pre-1.6, non-zip) format is refused.
 */
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import type { NamedArrays } from '../io/safetensors.js';
import { DataError } from '../util/errors.js';
import { bfloat16ToFloat, halfToFloat } from './tensors.js';

// ---- zip (stored or deflated entries; what torch.save writes) ----

export function readZip(buf: Uint8Array, where: string): Map<string, Uint8Array> {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (v.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0)
    throw new DataError(
      `${where}: not a zip archive (torch.save's format since PyTorch 1.6; the legacy format is not supported: save it again with torch.save or use model.safetensors)`,
    );
  let count = v.getUint16(eocd + 10, true);
  let cdOffset = v.getUint32(eocd + 16, true);
  if (cdOffset === 0xffffffff || count === 0xffff) {
    // zip64: the locator sits just before the end-of-central-directory record
    const loc = eocd - 20;
    if (loc < 0 || v.getUint32(loc, true) !== 0x07064b50) throw new DataError(`${where}: zip64 archive without its locator`);
    const rec = Number(v.getBigUint64(loc + 8, true));
    count = Number(v.getBigUint64(rec + 32, true));
    cdOffset = Number(v.getBigUint64(rec + 48, true));
  }
  const out = new Map<string, Uint8Array>();
  const dec = new TextDecoder();
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (v.getUint32(p, true) !== 0x02014b50) throw new DataError(`${where}: corrupt zip central directory at byte ${p}`);
    const method = v.getUint16(p + 10, true);
    let csize = v.getUint32(p + 20, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let local = v.getUint32(p + 42, true);
    const name = dec.decode(buf.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field: 64-bit sizes / offset for the fields that read 0xffffffff
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = v.getUint16(e, true);
      const len = v.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        const usize32 = v.getUint32(p + 24, true);
        if (usize32 === 0xffffffff) q += 8;
        if (csize === 0xffffffff) ((csize = Number(v.getBigUint64(q, true))), (q += 8));
        if (local === 0xffffffff) local = Number(v.getBigUint64(q, true));
      }
      e += 4 + len;
    }
    if (v.getUint32(local, true) !== 0x04034b50) throw new DataError(`${where}: corrupt zip entry ${name}`);
    const start = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    const raw = buf.subarray(start, start + csize);
    if (method === 0) out.set(name, raw);
    else if (method === 8) out.set(name, new Uint8Array(inflateRawSync(raw)));
    else throw new DataError(`${where}: zip entry ${name}: compression method ${method} not supported`);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

// ---- the restricted pickle machine ----

class Global {
  constructor(readonly name: string) {}
}
class Mark {}
const MARK = new Mark();

interface StorageRef {
  kind: 'storage';
  dtype: string;
  key: string;
  numel: number;
}
export interface TorchTensor {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  size: number[];
  stride: number[];
}

const STORAGES: Record<string, string> = {
  'torch.FloatStorage': 'float32',
  'torch.HalfStorage': 'float16',
  'torch.BFloat16Storage': 'bfloat16',
  'torch.DoubleStorage': 'float64',
};
const ALLOWED = new Set(['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter', ...Object.keys(STORAGES)]);

const OPCODE_NAMES: Record<number, string> = {
  0x80: 'PROTO',
  0x7d: 'EMPTY_DICT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x28: 'MARK',
  0x58: 'BINUNICODE',
  0x63: 'GLOBAL',
  0x51: 'BINPERSID',
  0x4b: 'BININT1',
  0x4d: 'BININT2',
  0x4a: 'BININT',
  0x8a: 'LONG1',
  0x74: 'TUPLE',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x29: 'EMPTY_TUPLE',
  0x89: 'NEWFALSE',
  0x88: 'NEWTRUE',
  0x4e: 'NONE',
  0x52: 'REDUCE',
  0x68: 'BINGET',
  0x6a: 'LONG_BINGET',
  0x75: 'SETITEMS',
  0x73: 'SETITEM',
  0x5d: 'EMPTY_LIST',
  0x65: 'APPENDS',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x2e: 'STOP',
  0x47: 'BINFLOAT',
  0x55: 'SHORT_BINSTRING',
  0x8c: 'SHORT_BINUNICODE',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
};

/** Unpickle `data` allowing only plain-tensor opcodes and globals; throws DataError naming what it refused. */
export function restrictedUnpickle(data: Uint8Array, where: string): unknown {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const dec = new TextDecoder();
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const refuse = (what: string): never => {
    throw new DataError(`${where}: ${what}: refused (a checkpoint may hold only plain tensors; nothing in it is executed)`);
  };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) refuse('pickle without a MARK');
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof Map)) return refuse('SETITEMS on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  for (;;) {
    if (p >= data.length) refuse('pickle ends without STOP');
    const at = p;
    const op = data[p++]!;
    switch (op) {
      case 0x80:
        p++;
        break; // PROTO n
      case 0x95:
        p += 8;
        break; // FRAME
      case 0x7d:
        stack.push(new Map());
        break;
      case 0x5d:
        stack.push([]);
        break;
      case 0x29:
        stack.push([]);
        break;
      case 0x28:
        stack.push(MARK);
        break;
      case 0x71:
        memo.set(data[p]!, stack[stack.length - 1]);
        p += 1;
        break;
      case 0x72:
        memo.set(v.getUint32(p, true), stack[stack.length - 1]);
        p += 4;
        break;
      case 0x94:
        memo.set(memo.size, stack[stack.length - 1]);
        break;
      case 0x68:
        stack.push(memo.get(data[p]!));
        p += 1;
        break;
      case 0x6a:
        stack.push(memo.get(v.getUint32(p, true)));
        p += 4;
        break;
      case 0x58: {
        const n = v.getUint32(p, true);
        stack.push(dec.decode(data.subarray(p + 4, p + 4 + n)));
        p += 4 + n;
        break;
      }
      case 0x8c: {
        const n = data[p]!;
        stack.push(dec.decode(data.subarray(p + 1, p + 1 + n)));
        p += 1 + n;
        break;
      }
      case 0x55: {
        const n = data[p]!;
        stack.push(dec.decode(data.subarray(p + 1, p + 1 + n)));
        p += 1 + n;
        break;
      }
      case 0x4b:
        stack.push(data[p]!);
        p += 1;
        break;
      case 0x4d:
        stack.push(v.getUint16(p, true));
        p += 2;
        break;
      case 0x4a:
        stack.push(v.getInt32(p, true));
        p += 4;
        break;
      case 0x8a: {
        const n = data[p]!;
        let x = 0n;
        for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(data[p + 1 + i]!);
        if (n > 0 && data[p + n]! & 0x80) x -= 1n << BigInt(8 * n);
        stack.push(Number(x));
        p += 1 + n;
        break;
      }
      case 0x47:
        stack.push(v.getFloat64(p, false));
        p += 8;
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x4e:
        stack.push(null);
        break;
      case 0x74:
        stack.push(popMark());
        break;
      case 0x85:
        stack.push(stack.splice(-1));
        break;
      case 0x86:
        stack.push(stack.splice(-2));
        break;
      case 0x87:
        stack.push(stack.splice(-3));
        break;
      case 0x63: {
        const nl1 = data.indexOf(0x0a, p);
        const nl2 = data.indexOf(0x0a, nl1 + 1);
        const name = `${dec.decode(data.subarray(p, nl1))}.${dec.decode(data.subarray(nl1 + 1, nl2))}`;
        p = nl2 + 1;
        if (!ALLOWED.has(name)) refuse(`global ${name} at byte ${at}`);
        stack.push(new Global(name));
        break;
      }
      case 0x51: {
        const pid = stack.pop();
        if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof Global) || !(pid[1].name in STORAGES))
          refuse(`persistent id at byte ${at} that is not a tensor storage`);
        const [, type, key, , numel] = pid as [string, Global, string, string, number];
        stack.push({ kind: 'storage', dtype: STORAGES[type.name]!, key: String(key), numel } satisfies StorageRef);
        break;
      }
      case 0x52: {
        const args = stack.pop();
        const f = stack.pop();
        if (!(f instanceof Global) || !Array.isArray(args)) return refuse(`REDUCE at byte ${at} on something that is not an allowed global`);
        if (f.name === 'collections.OrderedDict') stack.push(new Map());
        else if (f.name === 'torch._utils._rebuild_tensor_v2') {
          const [storage, offset, size, stride] = args as [StorageRef, number, number[], number[]];
          if (!storage || storage.kind !== 'storage') refuse(`_rebuild_tensor_v2 at byte ${at} without a storage`);
          stack.push({ kind: 'tensor', storage, offset, size, stride } satisfies TorchTensor);
        } else if (f.name === 'torch._utils._rebuild_parameter') stack.push(args[0]);
        else refuse(`REDUCE of ${f.name} at byte ${at}`);
        break;
      }
      case 0x62: {
        // BUILD: the state of an OrderedDict (torch's `_metadata`); nothing is set or called
        stack.pop();
        if (!(stack[stack.length - 1] instanceof Map)) refuse(`BUILD at byte ${at} on something that is not a dict`);
        break;
      }
      case 0x73: {
        const val = stack.pop();
        const key = stack.pop();
        setItems(stack[stack.length - 1], [key, val]);
        break;
      }
      case 0x75: {
        const items = popMark();
        setItems(stack[stack.length - 1], items);
        break;
      }
      case 0x61: {
        const x = stack.pop();
        (stack[stack.length - 1] as unknown[]).push(x);
        break;
      }
      case 0x65: {
        const items = popMark();
        const l = stack[stack.length - 1];
        if (!Array.isArray(l)) refuse('APPENDS on something that is not a list');
        (l as unknown[]).push(...items);
        break;
      }
      case 0x2e:
        return stack.pop();
      default:
        refuse(`opcode 0x${op.toString(16).padStart(2, '0')}${OPCODE_NAMES[op] ? ` (${OPCODE_NAMES[op]})` : ''} at byte ${at}`);
    }
  }
}

function storageFloats(bytes: Uint8Array, dtype: string): Float32Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'float32') {
    const out = new Float32Array(bytes.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = v.getFloat32(4 * i, true);
    return out;
  }
  if (dtype === 'float64') return Float32Array.from({ length: bytes.length / 8 }, (_, i) => v.getFloat64(8 * i, true));
  const f = dtype === 'float16' ? halfToFloat : bfloat16ToFloat;
  return Float32Array.from({ length: bytes.length / 2 }, (_, i) => f(v.getUint16(2 * i, true)));
}

/** Read a torch.save'd state dict of float tensors: HF name -> float32 tensor (views copied out). */
export function readTorchCheckpoint(path: string): NamedArrays {
  const buf = new Uint8Array(readFileSync(path));
  const zip = readZip(buf, path);
  const pkl = [...zip.keys()].find((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
  if (!pkl) throw new DataError(`${path}: no data.pkl in the archive (not a torch.save checkpoint)`);
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const root = restrictedUnpickle(zip.get(pkl)!, `${path}: ${pkl}`);
  if (!(root instanceof Map)) throw new DataError(`${path}: expected a state dict (a dict of tensors) at the top of ${pkl}`);
  const storages = new Map<string, Float32Array>();
  const out: NamedArrays = {};
  for (const [name, t] of root) {
    const tensor = t as TorchTensor;
    if (typeof name !== 'string' || !tensor || tensor.kind !== 'tensor') throw new DataError(`${path}: entry ${String(name)}: expected a tensor`);
    let s = storages.get(tensor.storage.key);
    if (!s) {
      const bytes = zip.get(`${prefix}data/${tensor.storage.key}`);
      if (!bytes) throw new DataError(`${path}: tensor ${name}: storage ${prefix}data/${tensor.storage.key} is missing`);
      s = storageFloats(bytes, tensor.storage.dtype);
      storages.set(tensor.storage.key, s);
    }
    const n = tensor.size.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const rank = tensor.size.length;
    const idx = new Array<number>(rank).fill(0);
    for (let i = 0; i < n; i++) {
      let off = tensor.offset;
      for (let k = 0; k < rank; k++) off += idx[k]! * tensor.stride[k]!;
      if (off >= s.length) throw new DataError(`${path}: tensor ${name}: reads past the end of its storage`);
      data[i] = s[off]!;
      for (let k = rank - 1; k >= 0; k--) {
        if (++idx[k]! < tensor.size[k]!) break;
        idx[k] = 0;
      }
    }
    out[name] = { shape: tensor.size.slice(), data };
  }
  return out;
}
