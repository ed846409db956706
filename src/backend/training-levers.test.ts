/**
 * Issue 18's native training kernels change no training run beyond float32 rounding: a tiny post-norm
 * model with gates on every attention trains 6 steps (1 worker, same seeds) with the kernels (native loss
 * rows, fused attention, fused residual layer norm, native Adam) and without them, and the two loss curves and final
 * parameters agree. Dropout is 0 here: the fused layer norm draws its masks from dropout.ts's hash, not
 * tf.dropout's stream (that its masks are the hash's is tested in layer-norm-kernel.test.ts).
 * Skipped, with a message, when the addon (or its new functions) is not built.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installBackendFixes, restoreStockKernels } from './ops.js';
import { loadNativeBlas } from './native-blas.js';
import { nativeAttention } from './attention-kernel.js';
import { nativeXentRows } from './softmax-xent.js';
import { nativeLayerNorm } from './layer-norm-kernel.js';
import { loadConfig } from '../config/load.js';
import type { EncodedPair } from '../data/batches.js';
import { createTransformer } from '../model/transformer.js';
import { Trainer } from '../train/trainer.js';
import { Rng } from '../util/random.js';

const blas = loadNativeBlas().blas;
const available = nativeAttention(blas) !== null && nativeXentRows(blas) !== null && nativeLayerNorm(blas) !== null;
if (!available) console.warn('training-levers test skipped: the addon (or its attention / smoothedXent functions) is not built; run scripts/setup-native.sh');
const itNative = available ? it : it.skip;

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});
afterAll(() => {
  restoreStockKernels();
  installBackendFixes('wasm');
});

async function curve(kernels: boolean): Promise<{ losses: number[]; params: Float32Array; init: Float32Array }> {
  installBackendFixes('wasm', { nativeLoss: kernels, fusedAttention: kernels, fusedLayerNorm: kernels, nativeAdam: kernels, blasThreads: 1 });
  const rng = new Rng(3);
  const vocab = 40;
  const pairs: EncodedPair[] = Array.from({ length: 48 }, (_, index) => {
    const n = 3 + rng.int(6);
    return { src: Array.from({ length: n }, () => 4 + rng.int(vocab - 4)), tgt: Array.from({ length: n + rng.int(3) }, () => 4 + rng.int(vocab - 4)), index };
  });
  const cfg = loadConfig(null, [
    'model.encoderLayers=1',
    'model.decoderLayers=1',
    'model.heads=2',
    'model.dModel=16',
    'model.dFF=32',
    'model.norm=post',
    'model.dropout=0',
    'gates.attention=[enc-self,dec-self,dec-enc]',
    'train.maxTokensPerBatch=120',
    'train.workers=1',
    'train.evalEverySteps=0',
    'train.maxSteps=6',
    'train.warmupSteps=2',
  ]);
  const model = createTransformer(cfg.model, vocab, new Rng(5));
  // the key biases (*.bk) are left out: their true gradient is exactly 0 (softmax ignores a constant q.bk
  // added to a row of scores), so it is float noise either way, and Adam turns noise into steps of ~lr
  const flat = () =>
    Float32Array.from(tf.tidy(() => tf.concat([...model.params.vars].filter(([n]) => !n.endsWith('.bk')).map(([, t]) => t.reshape([-1])))).dataSync());
  const init = flat();
  const trainer = new Trainer({ config: cfg, model, train: pairs, valid: pairs.slice(0, 4), run: null });
  const losses: number[] = [];
  for (let s = 0; s < 6; s++) losses.push((await trainer.trainStep()).loss);
  const params = flat();
  trainer.dispose();
  model.dispose();
  return { losses, params, init };
}

itNative('the loss curve and the trained parameters with the native kernels equal those of the tfjs kernels', async () => {
  const ref = await curve(false);
  const got = await curve(true);
  for (let i = 0; i < ref.losses.length; i++) expect(Math.abs(got.losses[i]! - ref.losses[i]!)).toBeLessThan(1e-4 * Math.abs(ref.losses[i]!));
  // the run trains, and every parameter (but the key biases, see flat) ends where the tfjs kernels put it
  expect(ref.losses[5]!).toBeLessThan(ref.losses[0]!);
  expect(Array.from(got.init)).toEqual(Array.from(ref.init));
  let worst = 0,
    moved = 0;
  for (let i = 0; i < ref.params.length; i++) {
    worst = Math.max(worst, Math.abs(got.params[i]! - ref.params[i]!));
    moved = Math.max(moved, Math.abs(ref.params[i]! - ref.init[i]!));
  }
  expect(moved).toBeGreaterThan(1e-3);
  expect(worst).toBeLessThan(1e-5);
});
