/**
 * A/B of one kernel lever on the training step of the bench model, in one process: the same trainer
 * (1 worker, native BLAS 1 thread unless --threads) alternates steps with the default kernels (A) and with
 * the named BackendFixOptions switched off (B), so both see the same load on a shared machine. Prints the
 * median step ms, tokens/s and process CPU seconds per step of each, and the ratios A/B.
 *
 *   nice -n 10 npx tsx scripts/bench-ab.ts --off nativeLoss [--off fusedAttention ...] [--pairs 4] [--threads 1] [--set k=v]
 *
 * --off takes BackendFixOptions keys (src/backend/ops.ts): nativeLoss, fusedAttention, fusedLayerNorm,
 * fusedDropout, nativeSum, rowGather, sharedIdentity, fusedLoss, nativeFused, nativeBlas.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackendFromEnv } from '../src/cli/environment.js';
import { type BackendFixOptions, describeBackendFixes, installBackendFixes } from '../src/backend/ops.js';
import { loadConfig } from '../src/config/load.js';
import type { EncodedPair } from '../src/data/batches.js';
import { createTransformer } from '../src/model/transformer.js';
import { Trainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/random.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      off: { type: 'string', multiple: true, default: [] },
      pairs: { type: 'string', default: '4' },
      threads: { type: 'string', default: '1' },
      sentences: { type: 'string', default: '80' },
      length: { type: 'string', default: '24' },
      set: { type: 'string', multiple: true, default: [] },
    },
  });
  const off = values.off ?? [];
  if (off.length === 0) throw new Error('bench-ab: name at least one --off switch');
  const info = await initBackendFromEnv('wasm');
  const threads = Number(values.threads);
  const a: BackendFixOptions = { blasThreads: threads };
  const b: BackendFixOptions = { blasThreads: threads, ...Object.fromEntries(off.map((k) => [k, false])) };
  const sentences = Number(values.sentences);
  const length = Number(values.length);
  const vocab = 8000;
  const rng = new Rng(1);
  const pairs: EncodedPair[] = Array.from({ length: sentences * 4 }, (_, index) => ({
    src: Array.from({ length }, () => 4 + rng.int(vocab - 4)),
    tgt: Array.from({ length }, () => 4 + rng.int(vocab - 4)),
    index,
  }));
  const pairsN = Number(values.pairs);
  const cfg = loadConfig(null, [
    'model.encoderLayers=3',
    'model.decoderLayers=3',
    'model.heads=4',
    'model.dModel=256',
    'model.dFF=1024',
    'model.norm=post',
    'gates.attention=[enc-self,dec-self,dec-enc]',
    `train.maxTokensPerBatch=${sentences * (length + 1)}`,
    'train.accumulateSteps=1',
    'train.evalEverySteps=0',
    `train.maxSteps=${2 * pairsN + 4}`,
    'train.workers=1',
    ...(values.set ?? []),
  ]);
  const model = createTransformer(cfg.model, vocab, new Rng(2));
  const trainer = new Trainer({ config: cfg, model, train: pairs, valid: pairs.slice(0, 8), run: null });
  const res = { A: { ms: [] as number[], cpu: [] as number[] }, B: { ms: [] as number[], cpu: [] as number[] } };
  let tokens = 0;
  console.log(`A: ${(installBackendFixes(info.name, a), describeBackendFixes(info.name))}`);
  console.log(`B: ${(installBackendFixes(info.name, b), describeBackendFixes(info.name))}`);
  for (let s = 0; s < 2 * pairsN + 2; s++) {
    // ABBA order within each pair of pairs, after one warm-up step of each
    const which = s < 2 ? (s === 0 ? 'A' : 'B') : [0, 3].includes((s - 2) % 4) ? 'A' : 'B';
    installBackendFixes(info.name, which === 'A' ? a : b);
    const c0 = process.cpuUsage();
    const r = await trainer.trainStep();
    const c1 = process.cpuUsage(c0);
    tokens = r.tgtTokens;
    console.error(
      `${which}: step ${s + 1}${s < 2 ? ' (warm-up)' : ''}: ${r.elapsedMs.toFixed(0)} ms, ${((c1.user + c1.system) / 1e6).toFixed(2)} CPU s, loss ${r.loss.toFixed(3)}, load ${loadavg()[0]!.toFixed(1)}`,
    );
    if (s >= 2) {
      res[which].ms.push(r.elapsedMs);
      res[which].cpu.push((c1.user + c1.system) / 1e6);
    }
  }
  installBackendFixes(info.name);
  const ma = median(res.A.ms),
    mb = median(res.B.ms),
    ca = median(res.A.cpu),
    cb = median(res.B.cpu);
  console.log(
    `bench model (post-norm, gates), ${tokens} target tokens per step, 1 worker, native BLAS ${threads}T, ${pairsN} steps each (ABBA), load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log('| kernels | step ms (median) | target tokens/s | CPU s/step | tokens/CPU s |');
  console.log('|---|---|---|---|---|');
  console.log(`| A: defaults | ${ma.toFixed(0)} | ${((tokens / ma) * 1000).toFixed(0)} | ${ca.toFixed(2)} | ${(tokens / ca).toFixed(0)} |`);
  console.log(`| B: without ${off.join(', ')} | ${mb.toFixed(0)} | ${((tokens / mb) * 1000).toFixed(0)} | ${cb.toFixed(2)} | ${(tokens / cb).toFixed(0)} |`);
  console.log(`A / B: ${(mb / ma).toFixed(2)}x tokens/s, ${(cb / ca).toFixed(2)}x tokens per CPU second`);
  trainer.dispose();
  model.dispose();
  void tf;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
