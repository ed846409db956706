/**
 * The step on this thread (train.workers = 1, or gate providers the workers cannot rebuild): the
 * micro-batches one after another (workers/micro-batch.ts; lambda * penalty added to the first one's
 * loss), their gradients summed, then step.ts's applyUpdate; pruned weights and their Adam moments go
 * back to zero after the update (train.magnitudePruning).
 */
import type * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batches.js';
import { type RoutingCounts, addRoutingCounts } from '../model/moe.js';
import type { Adam } from './adam.js';
import type { MaskTensors } from './gradual-pruning.js';
import { type StepInput, type StepOutcome, type StepRunner, applyUpdate } from './step.js';
import { type MicroBatchContext, addGradients, microBatchGradients } from './workers/micro-batch.js';

export interface InProcessSetup {
  /** the micro-batch context without the per-step and per-batch fields */
  context: Omit<MicroBatchContext, 'step' | 'stepTgtTokens' | 'chunkRows' | 'penalty'>;
  trainable: Map<string, tf.Variable>;
  adam: Adam;
  clipNorm: number;
  /** gates.lrScale */
  gateScale: number;
  chunkRows: (b: Batch) => number;
  /** the current pruning masks (null: none) */
  masks: () => MaskTensors | null;
}

export class InProcessRunner implements StepRunner {
  constructor(private readonly o: InProcessSetup) {}

  async run(input: StepInput): Promise<StepOutcome> {
    const { step, batches, stepTgtTokens, lr } = input;
    let sum: Map<string, tf.Tensor> | null = null;
    let loss = 0;
    let penalty = 0;
    let moeAux: number | undefined;
    let routing: RoutingCounts | undefined;
    for (let i = 0; i < batches.length; i++) {
      const b = batches[i]!;
      const withPenalty = i === 0 && input.penalty ? { penalty: input.penalty } : {};
      const r = await microBatchGradients({ ...this.o.context, step, stepTgtTokens, chunkRows: this.o.chunkRows(b), ...withPenalty }, b, i);
      loss += r.ce;
      if (r.penalty !== undefined) penalty = r.penalty;
      if (r.aux !== undefined) moeAux = (moeAux ?? 0) + r.aux;
      if (r.routing !== undefined) routing = addRoutingCounts(routing ?? {}, r.routing);
      sum = addGradients(sum, r.grads);
    }
    const { norm, applied } = applyUpdate(this.o.adam, this.o.trainable, sum!, loss, { lr, clipNorm: this.o.clipNorm, gateScale: this.o.gateScale });
    // gradual magnitude pruning: pruned weights and their moments back to zero after the update
    const masks = this.o.masks();
    if (applied && masks) for (const vars of [this.o.trainable, this.o.adam.m, this.o.adam.v]) masks.apply(vars);
    return { loss, penalty, gradNorm: norm, applied, moeAux, routing };
  }

  syncMain(): void {}

  adamState(): ReturnType<StepRunner['adamState']> {
    return this.o.adam.state();
  }

  mainChanged(): void {}

  masksChanged(): void {}

  weightsPruned(): void {}

  dispose(): void {}
}
