/**
 * Post-training int8 weight quantization, per output channel and symmetric (Jacob et al. 2018 without the
 * zero point; the weight scheme of PyTorch's per-channel qint8 and of LLM.int8's vector-wise scales):
 * for each output channel c, scale_c = max|W[.., c]| / 127 (float32), q = clamp(round(w / scale_c), -127,
 * 127) as int8, and w ≈ q · scale_c, so |w − q·scale_c| ≤ scale_c / 2. Only the matrices are quantized
 * (attention w{q,k,v,o}, FFN w1/w2, out.proj, embeddings); biases and layer norms stay float32. A channel
 * of zeros gets scale 0 and q = 0. Activations are not quantized: the loader dequantizes to float32 and
 * every product runs in float32 (weight-only int8; nothing about activations is simulated).
 *
 * Storage (safetensors, io/quantized-tensors.ts): the quantized matrix keeps its name with dtype I8 and its shape; its scales are
 * an F32 tensor named `<name>.scale` (toolkit names) or `<name>_scale` (PyTorch names) whose shape
 * broadcasts against the matrix: 1 on every axis but the channel axis, so `w = q * scale` needs no
 * metadata. Channel axis: toolkit linear maps [dIn, dOut] -> axis 1 (scale [1, dOut]); toolkit
 * embeddings [V, d] -> axis 0 (one scale per token, which is the output channel of the tied logits);
 * PyTorch tensors [out, in] -> axis 0 (scale [out, 1]).
 */
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
