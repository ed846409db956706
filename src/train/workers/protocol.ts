/**
 * Messages between the trainer (main thread) and its training workers, and the worker's start-up data.
 * Everything here is structured-cloneable: plain objects, typed arrays and SharedArrayBuffers.
 */
import type { GateConfig, ModelConfig, QuantAwareConfig } from '../../config/schema.js';
import type { HeadShape } from '../../config/head-layout.js';
import type { Batch } from '../../data/batches.js';
import type { RoutingCounts } from '../../model/moe.js';
import type { ParamLayout, SharedBuffers } from './shared-state.js';
import type { SerializedError } from '../../util/worker-threads.js';

export interface WorkerInit {
  index: number;
  workers: number;
  /** tfjs backend name (wasm or cpu) */
  backend: string;
  /** kernel choices, as installBackendFixes options (the worker always uses 1 BLAS thread) */
  nativeBlas: boolean;
  /** installBackendFixes options other than nativeBlas / blasThreads, as active on the main thread */
  kernels: { sharedIdentity: boolean; fusedLoss: boolean; rowGather: boolean; nativeSum: boolean; fusedDropout: boolean };
  modelConfig: ModelConfig;
  vocabSize: number;
  /** the HeadGates to rebuild for sampling (null: no gates) */
  gates: { config: GateConfig; shape: HeadShape } | null;
  layout: ParamLayout;
  buffers: SharedBuffers;
  /** config.seed, train.labelSmoothing, Adam's constants */
  seed: number;
  labelSmoothing: number;
  adam: { beta1: number; beta2: number; eps: number };
  /** train.quantAware: fake-quantize the matrices in the training forward pass */
  quantAware: QuantAwareConfig;
  /** test fault injection (RuntimeOptions.faultNonFinite) */
  faultNonFinite?: string | undefined;
}

export interface StepJob {
  /** the micro-batch's position in the step (its seeds derive from it) */
  index: number;
  batch: Batch;
  /** rows per chunk (memory split); >= batch size: no split */
  chunkRows: number;
}

export interface StepRequest {
  type: 'step';
  step: number;
  stepTgtTokens: number;
  jobs: StepJob[];
  /** reload parameters from shared memory first: all of them, or only the trainable ones */
  reload: 'all' | 'trainable' | null;
  /** add the `extra` gradient (gate penalty) into the sum */
  withExtra: boolean;
  lr: number;
  gateScale: number;
  clipNorm: number;
  /** Adam's step counter after this update */
  adamStep: number;
  /** gradual magnitude pruning: hold the weights whose shared `keep` entry is 0 at zero after the update */
  isMasked: boolean;
}

export { type SerializedError, serializeError } from '../../util/worker-threads.js';

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'init-error'; error: SerializedError }
  | {
      type: 'step-done';
      /** [micro-batch index, its cross-entropy / stepTgtTokens] */
      ces: Array<[number, number]>;
      /** MoE models: this worker's load-balancing term (summed over its micro-batches) and expert usage */
      moe?: { aux: number; routing: RoutingCounts };
      gradNorm: number;
      /** false when the loss or gradient was not finite (nothing was updated) */
      applied: boolean;
      ms: { compute: number; reduce: number; update: number; load: number };
    }
  | { type: 'step-error'; error: SerializedError; peer: boolean };
