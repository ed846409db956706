/**
 * Gradual magnitude pruning with fine-tuning (Zhu & Gupta 2017, "To prune, or not to prune", eq. 1):
 * s_t = s_f + (s_i − s_f)(1 − (t − t0)/(n·Δt))^3 for t0 ≤ t ≤ t0 + n·Δt, with s_i = 0, t0 = startStep,
 * t0 + n·Δt = endStep and Δt = everySteps; s_t = 0 before t0 and s_f after endStep. The masks are
 * recomputed after the update of every step t0 + k·Δt ≤ endStep and of endStep itself, by the one-shot
 * ranking of compress/magnitude-pruning.ts on the current weights (pruned weights are exactly 0, so they
 * rank first and stay pruned while the sparsity grows). Between mask updates the trainer zeroes the
 * pruned weights and their Adam moments after every optimizer update. Masks are checkpointed.
 */
import * as tf from '@tensorflow/tfjs';
import type { MagnitudePruningConfig } from '../config/schema.js';
import type { NamedArrays } from '../io/checkpoint.js';
import { type WeightMasks, magnitudePruningMasks } from '../compress/magnitude-pruning.js';

/** The cubic schedule's sparsity at step t (see the header). */
export function scheduledSparsity(t: number, c: Pick<MagnitudePruningConfig, 'sparsity' | 'startStep' | 'endStep'>): number {
  if (t < c.startStep) return 0;
  if (t >= c.endStep) return c.sparsity;
  const progress = (t - c.startStep) / (c.endStep - c.startStep);
  return c.sparsity * (1 - Math.pow(1 - progress, 3));
}

/** Whether the masks are recomputed after the update of step t (t >= 1: step 0 has no update). */
export function isPruningStep(t: number, c: Pick<MagnitudePruningConfig, 'startStep' | 'endStep' | 'everySteps'>): boolean {
  if (t < 1 || t < c.startStep || t > c.endStep) return false;
  return t === c.endStep || (t - c.startStep) % c.everySteps === 0;
}

/** The share of the masked tensors' weights that the masks zero (0 without masks). */
export function maskSparsity(masks: WeightMasks | null): number {
  if (!masks) return 0;
  let n = 0;
  let zeroed = 0;
  for (const m of Object.values(masks)) {
    n += m.length;
    for (let i = 0; i < m.length; i++) zeroed += 1 - m[i]!;
  }
  return n > 0 ? zeroed / n : 0;
}

/** Masks at step t's scheduled sparsity, from the current weights (the one-shot ranking). */
export function pruningMasksAt(t: number, params: NamedArrays, c: MagnitudePruningConfig): WeightMasks {
  return magnitudePruningMasks(params, { sparsity: scheduledSparsity(t, c), scope: c.scope, includeEmbeddings: c.includeEmbeddings }).masks;
}

/**
 * Masks as tfjs booleans, to hold pruned variables at zero after each in-process update. Owns its tensors
 * (`dispose()`).
 */
export class MaskTensors {
  private readonly keep = new Map<string, tf.Tensor>();

  constructor(masks: WeightMasks, shapeOf: (name: string) => readonly number[] | undefined) {
    for (const [name, m] of Object.entries(masks)) {
      const shape = shapeOf(name);
      if (shape) this.keep.set(name, tf.tensor(m, shape as number[], 'bool'));
    }
  }

  /** Set the masked entries of each named variable (a parameter, or an Adam moment of it) to 0. */
  apply(vars: ReadonlyMap<string, tf.Variable>): void {
    tf.tidy(() => {
      for (const [name, keep] of this.keep) {
        const v = vars.get(name);
        if (v) v.assign(tf.where(keep, v, tf.zerosLike(v)));
      }
    });
  }

  dispose(): void {
    for (const t of this.keep.values()) t.dispose();
    this.keep.clear();
  }
}

/** Zero the masked entries of a flat float32 layout (the workers' shared params and moments). */
export function zeroMaskedRange(arrays: Float32Array[], offset: number, mask: Uint8Array): void {
  for (let i = 0; i < mask.length; i++) if (!mask[i]) for (const a of arrays) a[offset + i] = 0;
}
