/**
 * The training benchmark: a fixed model (d_model 256, 4 heads, 3+3 layers, d_ff 1024, vocab 8000) on
 * synthetic ~2000-token batches (80 sentences x 25 tokens), measured in one run: training target tokens/s,
 * the backend's plain matMul GFLOP/s, the model's analytic FLOPs per target token, the fraction of the
 * matMul rate the step achieves, and greedy / beam decoding steps/s.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../config/schema.js';
import { loadConfig } from '../config/load.js';
import { createTransformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { measureMatMul } from '../backend/matmul-bench.js';
import { greedyDecode, beamSearch } from '../eval/decode.js';
import type { EncodedPair } from '../data/batches.js';
import { Trainer } from './trainer.js';

export interface BenchOptions {
  steps: number;
  warmupSteps: number;
  sentences: number;
  length: number;
  vocab: number;
  /** extra --set style overrides of the model/train config */
  overrides: string[];
  log: (line: string) => void;
}

export interface BenchResult {
  backend: string;
  tokensPerStep: number;
  stepMsMedian: number;
  trainTokensPerSec: number;
  flopsPerTargetToken: number;
  achievedGflops: number;
  matMulGflops: number;
  fractionOfMatMul: number;
  greedyStepsPerSec: number;
  beamStepsPerSec: number;
}

/**
 * Matrix-product FLOPs of one forward pass per target token, with source and target length L
 * (2 m n k per product): encoder layers 8d^2 + 4 d dFF + 4 L d; decoder layers twice the attention
 * plus the FFN; the output layer 2 d V. Training is taken as 3x the forward (forward + 2 for backward).
 */
export function forwardFlopsPerToken(m: Pick<ModelConfig, 'encoderLayers' | 'decoderLayers' | 'dModel' | 'dFF'>, L: number, V: number): number {
  const d = m.dModel;
  const enc = 8 * d * d + 4 * d * m.dFF + 4 * L * d;
  const dec = 2 * (8 * d * d + 4 * L * d) + 4 * d * m.dFF;
  return m.encoderLayers * enc + m.decoderLayers * dec + 2 * d * V;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchTrain(o: BenchOptions): Promise<BenchResult> {
  const cfg = loadConfig(null, [
    'model.encoderLayers=3', 'model.decoderLayers=3', 'model.heads=4', 'model.dModel=256', 'model.dFF=1024',
    `train.maxTokensPerBatch=${o.sentences * (o.length + 1)}`, 'train.accumulateSteps=1', 'train.evalEverySteps=0', `train.maxSteps=${o.steps + o.warmupSteps}`,
    ...o.overrides,
  ]);
  const rng = new Rng(1);
  // equal lengths: every batch is exactly sentences x (length + 1) target tokens
  const pairs: EncodedPair[] = Array.from({ length: o.sentences * 4 }, (_, index) => ({
    src: Array.from({ length: o.length }, () => 4 + rng.int(o.vocab - 4)),
    tgt: Array.from({ length: o.length }, () => 4 + rng.int(o.vocab - 4)),
    index,
  }));
  const model = createTransformer(cfg.model, o.vocab, new Rng(2));
  const trainer = new Trainer({ config: cfg, model, train: pairs, valid: pairs.slice(0, 8), run: null });
  const times: number[] = [];
  let tokens = 0;
  for (let s = 0; s < o.warmupSteps + o.steps; s++) {
    const r = await trainer.trainStep();
    if (s >= o.warmupSteps) {
      times.push(r.elapsedMs);
      tokens = r.tgtTokens;
      o.log(`train step ${s + 1 - o.warmupSteps}/${o.steps}: ${r.elapsedMs.toFixed(0)} ms, ${((r.tgtTokens / r.elapsedMs) * 1000).toFixed(0)} tok/s`);
    }
  }
  const stepMs = median(times);
  const trainTokensPerSec = (tokens / stepMs) * 1000;
  const flops = forwardFlopsPerToken(cfg.model, o.length + 1, o.vocab);
  const achievedGflops = (trainTokensPerSec * 3 * flops) / 1e9;
  const mm = measureMatMul({ m: 2000, k: 256, n: 1024, reps: 5, warmup: 2 });
  o.log(`plain matMul 2000x256 @ 256x1024: ${mm.gflops.toFixed(1)} GFLOP/s`);

  // decoding: one batch of 32 sentences, fixed output length (EOS never wins on a random model... mostly)
  const B = 32;
  const src = new Int32Array(B * (o.length + 1));
  for (let b = 0; b < B; b++) for (let t = 0; t < o.length; t++) src[b * (o.length + 1) + t] = pairs[b]!.src[t]!;
  for (let b = 0; b < B; b++) src[b * (o.length + 1) + o.length] = 2;
  const dec = { lengthPenalty: 0.6, maxLenA: 0, maxLenB: o.length };
  const t0 = performance.now();
  const g = await greedyDecode(model, src, B, o.length + 1, { ...dec, beamSize: 1 });
  const greedyMs = performance.now() - t0;
  const t1 = performance.now();
  const bm = await beamSearch(model, src, B, o.length + 1, { ...dec, beamSize: 4 });
  const beamMs = performance.now() - t1;
  const greedySteps = Math.max(...g.map((x) => x.length)) + 1;
  const beamSteps = Math.max(...bm.map((x) => x.length)) + 1;
  trainer.dispose();
  model.dispose();
  return {
    backend: tf.getBackend(),
    tokensPerStep: tokens,
    stepMsMedian: stepMs,
    trainTokensPerSec,
    flopsPerTargetToken: 3 * flops,
    achievedGflops,
    matMulGflops: mm.gflops,
    fractionOfMatMul: achievedGflops / mm.gflops,
    greedyStepsPerSec: (greedySteps / greedyMs) * 1000,
    beamStepsPerSec: (beamSteps / beamMs) * 1000,
  };
}
