/**
 * Post-training int8 weight quantization, per output channel and symmetric (Jacob et al. 2018 without the
 * zero point; the weight scheme of PyTorch's per-channel qint8 and of LLM.int8's vector-wise scales):
 * for each output channel c, scale_c = max|W[.., c]| / 127 (float32), q = clamp(round(w / scale_c), -127,
 * 127) as int8, and w ≈ q · scale_c, so |w − q·scale_c| ≤ scale_c / 2. Only the matrices are quantized
 * (attention w{q,k,v,o}, FFN w1/w2, out.proj, embeddings); biases and layer norms stay float32. A channel
 * of zeros gets scale 0 and q = 0. Activations are not quantized: the loader dequantizes to float32 and
 * every product runs in float32 (weight-only int8; nothing about activations is simulated).
 *
 * Storage (safetensors): the quantized matrix keeps its name with dtype I8 and its shape; its scales are
 * an F32 tensor named `<name>.scale` (toolkit names) or `<name>_scale` (PyTorch names) whose shape
 * broadcasts against the matrix: 1 on every axis but the channel axis, so `w = q * scale` needs no
 * metadata. Channel axis: toolkit linear maps [dIn, dOut] -> axis 1 (scale [1, dOut]); toolkit
 * embeddings [V, d] -> axis 0 (one scale per token, which is the output channel of the tied logits);
 * PyTorch tensors [out, in] -> axis 0 (scale [out, 1]).
 */
import { CheckpointError } from '../util/errors.js';
import type { NamedArrays, SafeTensor } from './safetensors.js';

export const INT8_QMAX = 127;

export type TensorLayout = 'heads' | 'pytorch';

export interface Int8Tensor {
  q: Int8Array;
  /** one float32 scale per channel, laid out in `scaleShape` */
  scale: Float32Array;
  scaleShape: number[];
}

/** The scale tensor's name for a quantized matrix. */
export function scaleNameOf(name: string, layout: TensorLayout): string {
  return layout === 'heads' ? `${name}.scale` : `${name}_scale`;
}

/** The channel axis of a matrix: its output features (see the module header). */
export function channelAxisOf(name: string, layout: TensorLayout): 0 | 1 {
  if (layout === 'pytorch') return 0;
  return name.startsWith('emb.') ? 0 : 1;
}

/** Whether a tensor is quantized: every matrix (rank 2) except gates; vectors stay float32. */
export function isQuantizable(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && !name.startsWith('gate.');
}

/** Quantize a row-major [rows, cols] matrix per channel along `axis` (0: per row, 1: per column). */
export function quantizeInt8(data: Float32Array, shape: readonly number[], axis: 0 | 1): Int8Tensor {
  if (shape.length !== 2) throw new Error(`quantizeInt8: expected a matrix, got shape [${shape}]`);
  const [rows, cols] = shape as [number, number];
  const channels = axis === 0 ? rows : cols;
  const ch = (i: number) => (axis === 0 ? Math.floor(i / cols) : i % cols);
  const maxAbs = new Float64Array(channels);
  for (let i = 0; i < data.length; i++) maxAbs[ch(i)] = Math.max(maxAbs[ch(i)]!, Math.abs(data[i]!));
  const scale = Float32Array.from(maxAbs, (m) => m / INT8_QMAX);
  const q = new Int8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const s = scale[ch(i)]!;
    q[i] = s === 0 ? 0 : Math.max(-INT8_QMAX, Math.min(INT8_QMAX, Math.round(data[i]! / s)));
  }
  return { q, scale, scaleShape: axis === 0 ? [rows, 1] : [1, cols] };
}

/** q · scale as float32, broadcasting the scale (shape [rows, 1] or [1, cols]). */
export function dequantizeInt8(q: Int8Array, shape: readonly number[], scale: Float32Array, scaleShape: readonly number[]): Float32Array {
  const cols = shape[1]!;
  const perRow = scaleShape[1] === 1 && scaleShape[0] === shape[0];
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = q[i]! * scale[perRow ? Math.floor(i / cols) : i % cols]!;
  return out;
}

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
export function quantizeTensors(tensors: Record<string, { shape: number[]; data: Float32Array }>, layout: TensorLayout): { tensors: Record<string, SafeTensor>; report: QuantizationReport } {
  const out: Record<string, SafeTensor> = {};
  const r: QuantizationReport = { tensors: 0, int8Parameters: 0, float32Parameters: 0, scales: 0, payloadBytesBefore: 0, payloadBytesAfter: 0, maxAbsError: 0, maxErrorInScales: 0 };
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
    if (t.dtype !== 'I8' || !(t.data instanceof Int8Array)) throw new CheckpointError(`${where}: tensor ${name}: expected F32 (or I8 with a scale tensor), found ${t.dtype}`);
    const sName = [scaleNameOf(name, 'heads'), scaleNameOf(name, 'pytorch')].find((n) => tensors[n]);
    if (!sName) throw new CheckpointError(`${where}: tensor ${name} is I8 but has no scale tensor (expected ${scaleNameOf(name, 'heads')} or ${scaleNameOf(name, 'pytorch')})`);
    const s = tensors[sName]!;
    const [rows, cols] = t.shape as [number, number];
    const fits = t.shape.length === 2 && s.dtype === 'F32' && s.shape.length === 2 && ((s.shape[0] === rows && s.shape[1] === 1) || (s.shape[0] === 1 && s.shape[1] === cols));
    if (!fits || !(s.data instanceof Float32Array)) {
      throw new CheckpointError(`${where}: scale ${sName}: expected F32 of shape [${rows}, 1] or [1, ${cols}] for I8 matrix ${name} [${t.shape}], found ${s.dtype} [${s.shape}]`);
    }
    out[name] = { shape: t.shape.slice(), data: dequantizeInt8(t.data, t.shape, s.data, s.shape) };
  }
  return out;
}
