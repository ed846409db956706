/**
 * What multiplies every head during analysis. Gated models are analysed as they are tested: each head's
 * context is multiplied by its deterministic test-time gate (Voita et al. 2019, §6.1), and analysis
 * multiplies further (Michel's mask of ones, an ablated head's 0) on top of it. Multipliers are plain
 * numbers per position (`PerHead`, `[stack][layer][position]`) of the model's layout (../config/head-layout.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_TYPES, type AttentionType, headKey } from '../config/head-id.js';
import { type HeadLayout, type PerHead, fillPerHead } from '../config/head-layout.js';
import type { HeadGates, GateState } from '../gates/head-gates.js';
import type { GateTensors } from '../model/transformer.js';

/** Gate state per head position (null where the layer is not gated). */
export function gateStates(layout: HeadLayout, gates: HeadGates | null | undefined): PerHead<GateState | null> {
  // HeadGates is built on the model's shape, so its keys use positions, not original ids
  const byKey = new Map<string, GateState>();
  for (const s of gates?.states() ?? []) byKey.set(s.key, s);
  return fillPerHead(layout, (stack, layer, j) => byKey.get(headKey({ stack, layer, head: j })) ?? null);
}

/** The multipliers the model is tested with: the deterministic gate, 1 for ungated heads. */
export function testGateMultipliers(layout: HeadLayout, gates: HeadGates | null | undefined): PerHead {
  const states = gateStates(layout, gates);
  return fillPerHead(layout, (stack, layer, j) => states[stack][layer]![j]?.testGate ?? 1);
}

/** A copy of `m` with the heads at the given positions multiplied by 0. */
export function withHeadsRemoved(m: PerHead, removed: Iterable<{ stack: AttentionType; layer: number; position: number }>): PerHead {
  const out = {} as PerHead;
  for (const stack of ATTENTION_TYPES) out[stack] = m[stack].map((l) => [...l]);
  for (const r of removed) out[r.stack][r.layer]![r.position] = 0;
  return out;
}

/**
 * Gate tensors [h] for `forward` (null for layers whose multipliers are all 1, which is exactly the
 * ungated computation). The caller disposes them (`disposeGates`, ../model/gate-tensors.ts).
 */
export function gateTensorsOf(m: PerHead): GateTensors {
  const out: Partial<Record<AttentionType, Array<tf.Tensor | null>>> = {};
  for (const stack of ATTENTION_TYPES) out[stack] = m[stack].map((vals) => (vals.length && vals.some((v) => v !== 1) ? tf.tensor1d(vals) : null));
  return out;
}
