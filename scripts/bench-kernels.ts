/**
 * matMul throughput (GFLOP/s) on the wasm backend for the model's shapes under each kernel
 * configuration: stock kernels, the transpose wrapper, and native OpenBLAS with 1 and 2 threads.
 * Not a test: prints a markdown table. Run with
 *
 *   npx tsx scripts/bench-kernels.ts [--reps 5] [--budget-ms 1500] [--extra]
 *
 * `--extra` adds the measurements behind two defaults: native _FusedMatMul (bias + relu in C) against
 * native matMul followed by the wasm Add and Relu kernels (NATIVE_FUSED_DEFAULT in src/backend/ops.ts), and the
 * wrapper's batched-loop threshold (LOOP_MIN_FLOPS in src/backend/wasm-matmul.ts).
 * Timings on the shared 2-core machine vary by +-20 %; stock configurations with ~1 GFLOP/s products take
 * a few seconds per shape (a slow first call is used as the single measurement).
 */
import { cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installBackendFixes, nativeBlasStatus, restoreStockKernels } from '../src/backend/ops.js';
import { type MatMulBenchOptions, measureMatMul, medianMs } from '../src/backend/matmul-bench.js';
import { setLoopMinFlops } from '../src/backend/wasm-matmul.js';

interface Shape extends MatMulBenchOptions {
  role: string;
}

const SHAPES: Shape[] = [
  { role: '1024^3', m: 1024, n: 1024, k: 1024 },
  { role: 'FFN up', m: 2000, n: 1024, k: 256 },
  { role: 'FFN down', m: 2000, n: 256, k: 1024 },
  { role: 'dX (transposeB)', m: 2000, n: 256, k: 1024, transposeB: true },
  { role: 'dW (transposeA)', m: 256, n: 1024, k: 2000, transposeA: true },
  { role: 'logits, tied E (transposeB)', m: 2000, n: 8000, k: 256, transposeB: true },
  { role: 'dlogits @ E', m: 2000, n: 256, k: 8000 },
  { role: 'dE (transposeA)', m: 8000, n: 256, k: 2000, transposeA: true },
  { role: 'attention QK^T', m: 25, n: 25, k: 64, batch: [320], transposeB: true },
  { role: 'attention PV', m: 25, n: 64, k: 25, batch: [320] },
  { role: 'attention dV (transposeA)', m: 25, n: 64, k: 25, batch: [320], transposeA: true },
];

interface Config {
  name: string;
  setup: () => boolean;
}

function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : fallback;
}

const reps = argValue('--reps', 5);
const budgetMs = argValue('--budget-ms', 1500);
const extra = process.argv.includes('--extra');

function fmt(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

async function main(): Promise<void> {
  await tf.setBackend('wasm');
  await tf.ready();
  const native = nativeBlasStatus();
  console.log(`# matMul GFLOP/s on tfjs wasm (${tf.version.tfjs})`);
  console.log(`machine: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores; node ${process.version}`);
  console.log(`native BLAS: ${native.available ? `${native.config} (core ${native.corename})` : `unavailable: ${native.reason}`}`);
  console.log(`median of up to ${reps} calls after 1 warm-up (10 for batched shapes), budget ${budgetMs} ms per shape\n`);

  const configs: Config[] = [
    {
      name: 'wasm stock',
      setup: () => {
        restoreStockKernels('wasm');
        return true;
      },
    },
    {
      name: 'wasm + wrapper',
      setup: () => {
        restoreStockKernels('wasm');
        installBackendFixes('wasm', { nativeBlas: false });
        return true;
      },
    },
    { name: 'wasm + native 1T', setup: () => native.available && installBackendFixes('wasm', { blasThreads: 1 }).includes('BatchMatMul:native-blas') },
    { name: 'wasm + native 2T', setup: () => native.available && installBackendFixes('wasm', { blasThreads: 2 }).includes('BatchMatMul:native-blas') },
  ];

  const table: string[][] = SHAPES.map((s) => [s.role, measureMatMulShapeLabel(s)]);
  for (const c of configs) {
    const ok = c.setup();
    for (let i = 0; i < SHAPES.length; i++) {
      if (!ok) {
        table[i]!.push('n/a');
        continue;
      }
      // batched shapes need ~10 calls of JIT warm-up before they settle (the first ones run 2-8x slower)
      const r = measureMatMul({ ...SHAPES[i], reps, budgetMs, warmup: SHAPES[i]!.batch !== undefined ? 10 : 1 });
      table[i]!.push(`${fmt(r.gflops)}`);
      process.stderr.write(`${c.name}: ${r.shape}: ${fmt(r.gflops)} GFLOP/s (${r.medianMs.toFixed(1)} ms)\n`);
    }
  }
  console.log(`| role | shape | ${configs.map((c) => c.name).join(' | ')} |`);
  console.log(`|---|---|${configs.map(() => '---:').join('|')}|`);
  for (const row of table) console.log(`| ${row.join(' | ')} |`);

  if (extra) await extraMeasurements(native.available);
  restoreStockKernels();
}

function measureMatMulShapeLabel(s: Shape): string {
  // the label measureMatMul would print, without running it
  const a = s.transposeA ? `(${s.k}x${s.m})^T` : `${s.m}x${s.k}`;
  const b = s.transposeB ? `(${s.n}x${s.k})^T` : `${s.k}x${s.n}`;
  return s.batch !== undefined ? `${s.batch.join('x')}x[${a} @ ${b}]` : `${a} @ ${b}`;
}

/** The measurements behind NATIVE_FUSED_DEFAULT and the wrapper's internal choices. */
async function extraMeasurements(nativeAvailable: boolean): Promise<void> {
  console.log('\n## native _FusedMatMul (bias + relu in C) vs native matMul + wasm Add + Relu, 2000x256 @ 256x1024');
  if (nativeAvailable) {
    const a = tf.randomUniform([2000, 256], -1, 1, 'float32', 1);
    const b = tf.randomUniform([256, 1024], -1, 1, 'float32', 2);
    const bias = tf.randomUniform([1024], -1, 1, 'float32', 3);
    const fused = () => tf.fused.matMul({ a, b, bias, activation: 'relu' }).dispose();
    const unfused = () =>
      tf.tidy(() => {
        tf.relu(tf.add(tf.matMul(a, b), bias));
      });
    for (const threads of [1, 2]) {
      installBackendFixes('wasm', { blasThreads: threads, nativeFused: true });
      const f = medianMs(fused, { reps: reps * 2 });
      const u = medianMs(unfused, { reps: reps * 2 });
      installBackendFixes('wasm', { blasThreads: threads, nativeFused: false });
      const s = medianMs(fused, { reps: reps * 2 }); // stock wasm fused kernel (XNNPACK + its own epilogue)
      console.log(`${threads}T: native fused ${f.toFixed(1)} ms | native matMul + Add + Relu ${u.toFixed(1)} ms | stock wasm _FusedMatMul ${s.toFixed(1)} ms`);
    }
    tf.dispose([a, b, bias]);
  } else {
    console.log('native BLAS unavailable');
  }

  restoreStockKernels('wasm');
  installBackendFixes('wasm', { nativeBlas: false });
  console.log('\n## transpose wrapper: batched loop vs stock loop, small matrices (ms)');
  for (const [m, k, batch] of [
    [8, 8, 1000],
    [16, 32, 610],
    [12, 64, 543],
    [25, 64, 320],
  ] as const) {
    const opts = { m, n: m, k, batch: [batch], transposeB: true, reps, budgetMs, warmup: 10 };
    restoreStockKernels('wasm');
    const stock = measureMatMul(opts).medianMs;
    installBackendFixes('wasm', { nativeBlas: false });
    setLoopMinFlops(0); // force the per-matrix loop even below LOOP_MIN_FLOPS
    const wrapped = measureMatMul(opts).medianMs;
    setLoopMinFlops();
    console.log(`${batch}x[${m}x${k} @ (${m}x${k})^T] (${2 * m * m * k} flop/matrix): stock ${stock.toFixed(2)} ms, wrapper ${wrapped.toFixed(2)} ms`);
  }
}

await main();
