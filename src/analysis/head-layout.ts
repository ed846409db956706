/**
 * Where every head of a model sits and what multiplies it during analysis. A physically pruned model
 * (`config.model.keptHeads`) holds, per attention type and layer, the ORIGINAL ids of its remaining heads
 * in order; the head at position j of such a layer is reported as original head `keptHeads[stack][l][j]`
 * (the head-mask convention of src/io/head-mask.ts). Gated models are analysed as they are tested:
 * each head's context is multiplied by its deterministic test-time gate (Voita et al. 2019, §6.1), and
 * analysis multiplies further (Michel's mask of ones, an ablated head's 0) on top of it.
 * Multipliers are plain numbers per position: `[stack][layer][position]`.
 */
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_TYPES, type AttentionType, headKey, parseHeadKey } from '../config/head-id.js';
import type { ModelConfig } from '../config/schema.js';
import type { HeadGates, GateState } from '../gates/head-gates.js';
import type { GateTensors } from '../model/transformer.js';
import { type MaskShape, originalMaskShape } from '../io/head-mask.js';
import { ConfigError } from '../util/errors.js';

/** Per attention type, per layer, per head position: one number. */
export type PerHead<T = number> = Record<AttentionType, T[][]>;

export interface HeadLayout {
  /** heads per layer of the original (unpruned) model: `config.model.heads` in every layer */
  originalShape: MaskShape;
  /** per stack, per layer: the original id of the head at each position */
  originalIds: PerHead;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

export function headLayout(c: ModelConfig): HeadLayout {
  const layers: Record<AttentionType, number> = { 'enc-self': c.encoderLayers, 'dec-self': c.decoderLayers, 'dec-enc': c.decoderLayers };
  const originalShape = originalMaskShape(c);
  const originalIds = {} as PerHead;
  for (const stack of ATTENTION_TYPES) {
    originalIds[stack] = c.keptHeads ? c.keptHeads[stack].map((ids) => [...ids]) : range(layers[stack]).map(() => range(c.heads));
  }
  return { originalShape, originalIds };
}

/** A value for every head position of the layout. */
export function fillPerHead<T>(layout: HeadLayout, value: (stack: AttentionType, layer: number, position: number) => T): PerHead<T> {
  const out = {} as PerHead<T>;
  for (const stack of ATTENTION_TYPES) out[stack] = layout.originalIds[stack].map((ids, l) => ids.map((_, j) => value(stack, l, j)));
  return out;
}

/** The key (`enc-self.3.5`, original id) of the head at a position. */
export function originalKey(layout: HeadLayout, stack: AttentionType, layer: number, position: number): string {
  return headKey({ stack, layer, head: layout.originalIds[stack][layer]![position]! });
}

/** Position of an original head in its (possibly pruned) layer, or -1 when the model no longer has it. */
export function positionOf(layout: HeadLayout, stack: AttentionType, layer: number, originalId: number): number {
  return layout.originalIds[stack][layer]?.indexOf(originalId) ?? -1;
}

/** Every head the model has in `stacks`, with its position and original id, in stack/layer/id order. */
export function listHeads(
  layout: HeadLayout,
  stacks: readonly AttentionType[],
): Array<{ stack: AttentionType; layer: number; position: number; head: number; key: string }> {
  const out: Array<{ stack: AttentionType; layer: number; position: number; head: number; key: string }> = [];
  for (const stack of ATTENTION_TYPES) {
    if (!stacks.includes(stack)) continue;
    layout.originalIds[stack].forEach((ids, layer) =>
      ids.forEach((head, position) => out.push({ stack, layer, position, head, key: headKey({ stack, layer, head }) })),
    );
  }
  return out;
}

/** Parse `enc-self.0.1,dec-enc.1.0` into keys of heads the model has; ConfigError names unknown ones. */
export function parseHeadList(text: string, layout: HeadLayout, what = '--heads'): string[] {
  const keys = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const problems: string[] = [];
  for (const k of keys) {
    const id = parseHeadKey(k);
    if (!id) problems.push(`${what}: "${k}" is not a head key like enc-self.3.5`);
    else if (positionOf(layout, id.stack, id.layer, id.head) < 0) problems.push(`${what}: the model has no head ${k}`);
  }
  if (problems.length) throw new ConfigError(problems);
  return keys;
}

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
 * ungated computation). The caller disposes them (`disposeGateTensors`).
 */
export function gateTensorsOf(m: PerHead): GateTensors {
  const out: Partial<Record<AttentionType, Array<tf.Tensor | null>>> = {};
  for (const stack of ATTENTION_TYPES) out[stack] = m[stack].map((vals) => (vals.length && vals.some((v) => v !== 1) ? tf.tensor1d(vals) : null));
  return out;
}

export function disposeGateTensors(g: GateTensors | undefined): void {
  if (!g) return;
  for (const list of Object.values(g)) for (const t of list ?? []) t?.dispose();
}
