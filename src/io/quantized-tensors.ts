/**
 * Weight-only int8 models as safetensors tensors (the storage scheme of compress/quantize.ts): each
 * quantizable matrix as I8 with its F32 scale tensor (`<name>.scale` or `<name>_scale`), everything else
 * F32; and back to float32 arrays when a checkpoint or export is loaded.
 */
import { CheckpointError } from '../util/errors.js';
import { type TensorLayout, channelAxisOf, dequantizeInt8, isQuantizable, quantizeInt8, scaleNameOf } from '../compress/quantize.js';
import type { NamedArrays, SafeTensor } from './safetensors.js';

export interface QuantizationReport {
  /** matrices stored as int8 */
  tensors: number;
  /** weights stored as int8, and those left float32 (biases, norms) */
  int8Parameters: number;
  float32Parameters: number;
  /** float32 scales added */
  scales: number;
  /** tensor payload bytes before (all float32) and after (int8 + scales + float32 rest) */
  payloadBytesBefore: number;
  payloadBytesAfter: number;
  /** largest |w − dequantized w| over all weights, and the largest one relative to its channel's scale */
  maxAbsError: number;
  maxErrorInScales: number;
}

/**
 * The safetensors tensors of a weight-only int8 model: matrices as I8 + F32 scales, everything else F32.
 * `tensors` are float32 in `layout` (toolkit [dIn, dOut] names, or PyTorch [out, in] names).
 */
export function quantizeTensors(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  layout: TensorLayout,
): { tensors: Record<string, SafeTensor>; report: QuantizationReport } {
  const out: Record<string, SafeTensor> = {};
  const r: QuantizationReport = {
    tensors: 0,
    int8Parameters: 0,
    float32Parameters: 0,
    scales: 0,
    payloadBytesBefore: 0,
    payloadBytesAfter: 0,
    maxAbsError: 0,
    maxErrorInScales: 0,
  };
  for (const [name, t] of Object.entries(tensors)) {
    r.payloadBytesBefore += 4 * t.data.length;
    if (!isQuantizable(name, t.shape)) {
      out[name] = { dtype: 'F32', shape: t.shape.slice(), data: t.data };
      r.float32Parameters += t.data.length;
      r.payloadBytesAfter += 4 * t.data.length;
      continue;
    }
    const scaleName = scaleNameOf(name, layout);
    if (tensors[scaleName]) throw new CheckpointError(`int8: tensor ${scaleName} already exists; cannot store the scales of ${name}`);
    const qt = quantizeInt8(t.data, t.shape, channelAxisOf(name, layout));
    out[name] = { dtype: 'I8', shape: t.shape.slice(), data: qt.q };
    out[scaleName] = { dtype: 'F32', shape: qt.scaleShape, data: qt.scale };
    const deq = dequantizeInt8(qt.q, t.shape, qt.scale, qt.scaleShape);
    const cols = t.shape[1]!;
    for (let i = 0; i < deq.length; i++) {
      const e = Math.abs(t.data[i]! - deq[i]!);
      r.maxAbsError = Math.max(r.maxAbsError, e);
      const s = qt.scale[qt.scaleShape[0] === 1 ? i % cols : Math.floor(i / cols)]!;
      if (s > 0) r.maxErrorInScales = Math.max(r.maxErrorInScales, e / s);
    }
    r.tensors++;
    r.int8Parameters += t.data.length;
    r.scales += qt.scale.length;
    r.payloadBytesAfter += t.data.length + 4 * qt.scale.length;
  }
  return { tensors: out, report: r };
}

/**
 * Float32 arrays from a safetensors file's tensors, dequantizing every I8 matrix with its scale tensor
 * (`<name>.scale` or `<name>_scale`). Throws a CheckpointError naming `where` for a missing or misshaped
 * scale, or a dtype other than F32 / I8.
 */
export function dequantizeTensors(tensors: Record<string, SafeTensor>, where: string): NamedArrays {
  const scales = new Set<string>();
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'I8') continue;
    const s = [scaleNameOf(name, 'heads'), scaleNameOf(name, 'pytorch')].find((n) => tensors[n]);
    if (s) scales.add(s);
  }
  const out: NamedArrays = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (scales.has(name)) continue;
    if (t.dtype === 'F32' && t.data instanceof Float32Array) {
      out[name] = { shape: t.shape.slice(), data: t.data };
      continue;
    }
    if (t.dtype !== 'I8' || !(t.data instanceof Int8Array))
      throw new CheckpointError(`${where}: tensor ${name}: expected F32 (or I8 with a scale tensor), found ${t.dtype}`);
    const sName = [scaleNameOf(name, 'heads'), scaleNameOf(name, 'pytorch')].find((n) => tensors[n]);
    if (!sName)
      throw new CheckpointError(
        `${where}: tensor ${name} is I8 but has no scale tensor (expected ${scaleNameOf(name, 'heads')} or ${scaleNameOf(name, 'pytorch')})`,
      );
    const s = tensors[sName]!;
    const [rows, cols] = t.shape as [number, number];
    const fits =
      t.shape.length === 2 &&
      s.dtype === 'F32' &&
      s.shape.length === 2 &&
      ((s.shape[0] === rows && s.shape[1] === 1) || (s.shape[0] === 1 && s.shape[1] === cols));
    if (!fits || !(s.data instanceof Float32Array)) {
      throw new CheckpointError(
        `${where}: scale ${sName}: expected F32 of shape [${rows}, 1] or [1, ${cols}] for I8 matrix ${name} [${t.shape}], found ${s.dtype} [${s.shape}]`,
      );
    }
    out[name] = { shape: t.shape.slice(), data: dequantizeInt8(t.data, t.shape, s.data, s.shape) };
  }
  return out;
}
