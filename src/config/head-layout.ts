/**
 * Where every head of a model sits: the one layout gates, analysis, export, io and plots share.
 *
 * A physically pruned model (`config.model.keptHeads`) holds, per attention type and layer, the ORIGINAL
 * ids of its remaining heads in order; the head at position j of such a layer is original head
 * `keptHeads[stack][l][j]` (the head-mask convention of src/io/head-mask.ts). An unpruned model has
 * heads 0..heads-1 at positions 0..heads-1. Heads are named by their original id (`headKey`).
 */
import { ATTENTION_TYPES, type AttentionType, headKey, parseHeadKey } from './head-id.js';
import type { ModelConfig } from './schema.js';
import { CheckpointError, ConfigError } from '../util/errors.js';

/** Heads per layer, per attention type; a stack may have 0 layers. */
export type HeadShape = Record<AttentionType, number[]>;

/** Per attention type, per layer, per head position: one value (e.g. the original id of each head a layer keeps). */
export type PerHead<T = number> = Record<AttentionType, T[][]>;

export interface HeadLayout {
  /** heads per layer of the original (unpruned) model: `config.model.heads` in every layer */
  originalShape: HeadShape;
  /** per stack, per layer: the original id of the head at each position */
  originalIds: PerHead;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function layerCounts(c: Pick<ModelConfig, 'encoderLayers' | 'decoderLayers'>): Record<AttentionType, number> {
  return { 'enc-self': c.encoderLayers, 'dec-self': c.decoderLayers, 'dec-enc': c.decoderLayers };
}

/** Heads per layer of the ORIGINAL (unpruned) model: the shape every mask is written against. */
export function originalMaskShape(c: Pick<ModelConfig, 'encoderLayers' | 'decoderLayers' | 'heads'>): HeadShape {
  return {
    'enc-self': Array<number>(c.encoderLayers).fill(c.heads),
    'dec-self': Array<number>(c.decoderLayers).fill(c.heads),
    'dec-enc': Array<number>(c.decoderLayers).fill(c.heads),
  };
}

/**
 * The layout of a model config: `keptHeads` for a pruned model, 0..h-1 in every layer otherwise. Throws a
 * CheckpointError when `keptHeads` does not fit the layer counts.
 */
export function headLayout(c: ModelConfig): HeadLayout {
  const n = layerCounts(c);
  const originalIds = {} as PerHead;
  for (const stack of ATTENTION_TYPES) {
    const kept = c.keptHeads?.[stack];
    if (kept && kept.length !== n[stack]) throw new CheckpointError(`model.keptHeads.${stack}: ${kept.length} layers, the model has ${n[stack]}`);
    originalIds[stack] = kept ? kept.map((ids) => [...ids]) : range(n[stack]).map(() => range(c.heads));
  }
  return { originalShape: originalMaskShape(c), originalIds };
}

/** Heads per layer the model has (its layout's shape): fewer than `heads` where it was physically pruned. */
export function layoutShape(layout: HeadLayout): HeadShape {
  const out = {} as HeadShape;
  for (const stack of ATTENTION_TYPES) out[stack] = layout.originalIds[stack].map((ids) => ids.length);
  return out;
}

/** Heads per layer for each attention type, honouring physical pruning (`keptHeads`). */
export function headsPerLayer(c: ModelConfig): HeadShape {
  return layoutShape(headLayout(c));
}

/** A value for every head position of the layout. */
export function fillPerHead<T>(layout: HeadLayout, value: (stack: AttentionType, layer: number, position: number) => T): PerHead<T> {
  const out = {} as PerHead<T>;
  for (const stack of ATTENTION_TYPES) out[stack] = layout.originalIds[stack].map((ids, l) => ids.map((_, j) => value(stack, l, j)));
  return out;
}

/** The original id of the head at a position. */
export function originalId(layout: HeadLayout, stack: AttentionType, layer: number, position: number): number {
  return layout.originalIds[stack][layer]![position]!;
}

/** The key (`enc-self.3.5`, original id) of the head at a position. */
export function originalKey(layout: HeadLayout, stack: AttentionType, layer: number, position: number): string {
  return headKey({ stack, layer, head: originalId(layout, stack, layer, position) });
}

/** Position of an original head in its (possibly pruned) layer, or -1 when the model no longer has it. */
export function positionOf(layout: HeadLayout, stack: AttentionType, layer: number, originalId: number): number {
  return layout.originalIds[stack][layer]?.indexOf(originalId) ?? -1;
}

/** Every head the model has in `stacks`, with its position and original id, in stack/layer/position order. */
export function listHeads(
  layout: HeadLayout,
  stacks: readonly AttentionType[] = ATTENTION_TYPES,
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

/** The keys of every head of a shape, per stack and layer (position = head id: an original shape, or positions). */
export function shapeKeys(shape: HeadShape, stack: AttentionType): string[][] {
  return shape[stack].map((n, layer) => range(n).map((head) => headKey({ stack, layer, head })));
}
