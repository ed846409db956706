/** Float tensors of other widths as float32 (half precision and bfloat16 widen exactly; float64 rounds). */
import type { SafetensorsData, SafetensorsDtype } from '../io/safetensors.js';
import { DataError } from '../util/errors.js';

/** IEEE half (binary16) bits -> the float32 value (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits -> the float32 value (exact: the upper half of a float32). */
export function bfloat16ToFloat(b: number): number {
  const v = new DataView(new ArrayBuffer(4));
  v.setUint32(0, b << 16);
  return v.getFloat32(0);
}

export function toFloat32(dtype: SafetensorsDtype, data: SafetensorsData, where: string): Float32Array {
  if (dtype === 'F32') return data as Float32Array;
  if (dtype === 'F64') return Float32Array.from(data as Float64Array);
  if (dtype === 'F16' || dtype === 'BF16') {
    const src = data as Uint16Array;
    const out = new Float32Array(src.length);
    const f = dtype === 'F16' ? halfToFloat : bfloat16ToFloat;
    for (let i = 0; i < src.length; i++) out[i] = f(src[i]!);
    return out;
  }
  throw new DataError(`${where}: expected a float tensor (F32, F16, BF16 or F64), found ${dtype}`);
}
