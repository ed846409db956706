/**
 * The frame of a native-kernel test file: the wasm backend for the whole file, the stock kernels restored
 * (then the default fixes installed again) afterwards, and `describe` or, when the addon lacks the
 * kernel, `describe.skip` with the reason printed once.
 */
import { afterAll, beforeAll, describe } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installBackendFixes, restoreStockKernels } from '../backend/ops.js';

export function nativeKernelSuite(available: boolean, skipMessage: string): typeof describe | typeof describe.skip {
  if (!available) console.warn(skipMessage);
  beforeAll(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  });
  afterAll(() => {
    restoreStockKernels();
    installBackendFixes('wasm');
  });
  return available ? describe : describe.skip;
}
