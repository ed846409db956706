/**
 * Quantization-aware fine-tuning (Jacob et al. 2018, §3): with `train.quantAware: { bits: 8 }` the training
 * forward pass sees every matrix the int8 export quantizes (compress/quantize.ts: all rank-2 weights but
 * gates, per output channel) through its fake quantization (fake-quant.ts: quantize-dequantize forward,
 * straight-through gradient), so training adapts to the rounding the export will apply. The float32
 * weights stay the ones Adam updates. Evaluation, dev BLEU and decoding use the float32 weights unchanged:
 * the int8 model itself is measured after `heads export --int8`.
 */
import type { QuantAwareConfig } from '../config/schema.js';
import type { WeightView } from '../model/transformer.js';
import { channelAxisOf, isQuantizable } from '../compress/quantize.js';
import { fakeQuantInt8 } from './fake-quant.js';

/** The weight view of a training forward under `train.quantAware` (undefined when it is off). */
export function quantAwareWeights(q: QuantAwareConfig): WeightView | undefined {
  if (q === false) return undefined;
  return (name, w) => (isQuantizable(name, w.shape) ? fakeQuantInt8(w, channelAxisOf(name, 'heads')) : w);
}
