/**
 * Where a training step of the bench model spends its time: one in-process step (1 worker, native BLAS
 * at HEADS_BLAS_THREADS threads, default kernels) under tf.profile, kernel times summed by kernel name,
 * BatchMatMul / _FusedMatMul also by shape, and the step's wall time against the sum of kernel times
 * (the rest is JS/tfjs overhead: tape, gradient bookkeeping, Adam's JS loop). Not a test: prints markdown.
 *
 *   HEADS_BLAS_THREADS=1 nice -n 10 npx tsx scripts/bench-profile.ts [--sentences 80] [--length 24] [--set k=v ...]
 *
 * Kernels that wrap others (customGrad's `forward`/`backward` wrappers, tf.dropout's inner ops) appear
 * both as themselves and as their inner kernels; "leaf ms" leaves out the names listed in WRAPPERS.
 */
import * as tf from '@tensorflow/tfjs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { initBackendFromEnv } from '../src/cli/environment.js';
import { describeBackendFixes } from '../src/backend/ops.js';
import { loadConfig } from '../src/config/load.js';
import type { EncodedPair } from '../src/data/batches.js';
import { createTransformer } from '../src/model/transformer.js';
import { Trainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/random.js';

const WRAPPERS = new Set(['forward', 'backward']);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sentences: { type: 'string', default: '80' },
      length: { type: 'string', default: '24' },
      set: { type: 'string', multiple: true, default: [] },
      backend: { type: 'string', default: 'wasm' },
    },
  });
  const info = await initBackendFromEnv(values.backend as 'wasm');
  console.log(describeBackendFixes(info.name));
  const sentences = Number(values.sentences);
  const length = Number(values.length);
  const vocab = 8000;
  const rng = new Rng(1);
  const pairs: EncodedPair[] = Array.from({ length: sentences * 4 }, (_, index) => ({
    src: Array.from({ length }, () => 4 + rng.int(vocab - 4)),
    tgt: Array.from({ length }, () => 4 + rng.int(vocab - 4)),
    index,
  }));
  const cfg = loadConfig(null, [
    'model.encoderLayers=3',
    'model.decoderLayers=3',
    'model.heads=4',
    'model.dModel=256',
    'model.dFF=1024',
    `train.maxTokensPerBatch=${sentences * (length + 1)}`,
    'train.accumulateSteps=1',
    'train.evalEverySteps=0',
    'train.maxSteps=10',
    'train.workers=1',
    ...(values.set ?? []),
  ]);
  const model = createTransformer(cfg.model, vocab, new Rng(2));
  const trainer = new Trainer({ config: cfg, model, train: pairs, valid: pairs.slice(0, 8), run: null });
  for (let s = 0; s < 2; s++) {
    const r = await trainer.trainStep();
    console.error(`warm-up step ${s + 1}: ${r.elapsedMs.toFixed(0)} ms`);
  }
  const plain = await trainer.trainStep();
  let stepMs = 0;
  const prof = await tf.profile(async () => {
    const r = await trainer.trainStep();
    stepMs = r.elapsedMs;
  });
  const byName = new Map<string, { ms: number; calls: number }>();
  const byShape = new Map<string, { ms: number; calls: number; flops: number }>();
  let leaf = 0;
  for (const k of prof.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const e = byName.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += ms;
    e.calls++;
    byName.set(k.name, e);
    if (!WRAPPERS.has(k.name)) leaf += ms;
    if (k.name === 'BatchMatMul' || k.name === '_FusedMatMul') {
      const shapes = k.inputShapes
        .slice(0, 2)
        .map((s) => `[${s?.join(',')}]`)
        .join('x');
      const a = k.outputShapes[0] ?? [];
      const sa = k.inputShapes[0] ?? [];
      const sb = k.inputShapes[1] ?? [];
      // k = the contracted size: the dim of a that is not in the output's last two
      const outSize = a.reduce((x, y) => x * y, 1);
      const aSize = sa.reduce((x, y) => x * y, 1);
      const bSize = sb.reduce((x, y) => x * y, 1);
      const m = a[a.length - 2] ?? 1;
      const n = a[a.length - 1] ?? 1;
      const batch = outSize / (m * n);
      const kk = Math.round(Math.sqrt((aSize * bSize) / (batch * batch * m * n)));
      const key = `${k.name} ${shapes}`;
      const s = byShape.get(key) ?? { ms: 0, calls: 0, flops: 0 };
      s.ms += ms;
      s.calls++;
      s.flops += 2 * outSize * kk;
      byShape.set(key, s);
    }
  }
  console.log(
    `bench model, ${sentences} x ${length + 1} target tokens, 1 worker; load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `unprofiled step: ${plain.elapsedMs.toFixed(0)} ms (${((plain.tgtTokens / plain.elapsedMs) * 1000).toFixed(0)} tok/s); profiled step: ${stepMs.toFixed(0)} ms; leaf kernel time ${leaf.toFixed(0)} ms (${((leaf / stepMs) * 100).toFixed(0)}%), ${prof.kernels.length} kernel calls`,
  );
  console.log('| kernel | calls | ms | share of leaf kernel time |');
  console.log('|---|---|---|---|');
  for (const [name, e] of [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms)) {
    if (e.ms < 0.005 * leaf) continue;
    console.log(`| ${name}${WRAPPERS.has(name) ? ' (wrapper)' : ''} | ${e.calls} | ${e.ms.toFixed(0)} | ${((e.ms / leaf) * 100).toFixed(1)}% |`);
  }
  console.log('');
  console.log('| matMul (inputs) | calls | ms | GFLOP/s |');
  console.log('|---|---|---|---|');
  for (const [key, s] of [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms)) {
    if (s.ms < 0.005 * leaf) continue;
    console.log(`| ${key} | ${s.calls} | ${s.ms.toFixed(0)} | ${(s.flops / s.ms / 1e6).toFixed(1)} |`);
  }
  trainer.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
