/**
 * The training benchmark: a fixed model (d_model 256, 4 heads, 3+3 layers, d_ff 1024, vocab 8000) on
 * synthetic ~2000-token batches (80 sentences x 25 tokens), measured in one run for each supported
 * configuration side by side: in-process (1 worker) and data-parallel (N workers), each kernel path
 * (the wasm transpose wrapper on XNNPACK, native OpenBLAS matMul with 1 and N threads), plus the kernel
 * set as it was before the fused loss, shared Identity, row-copy Gather, native Sum and fused dropout. For each: training target tokens/s, the
 * achieved matMul GFLOP/s (analytic FLOPs per token x tokens/s) and its fraction of this machine's matMul
 * peak, measured in the same run (native plain matMul on 1 thread and on all cores). Then greedy and
 * beam-4 decoding steps/s. The machine's load average is printed with the figures: other processes
 * disturb them.
 */
import * as tf from '@tensorflow/tfjs';
import { availableParallelism, loadavg } from 'node:os';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ModelConfig } from '../config/schema.js';
import { loadConfig } from '../config/load.js';
import { createTransformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { measureMatMul } from '../backend/matmul-bench.js';
import { installBackendFixes, nativeBlasStatus } from '../backend/ops.js';
import { nativeBlasThreads } from '../backend/native-blas.js';
import { greedyDecode, beamSearch } from '../eval/decode.js';
import type { EncodedPair } from '../data/batches.js';
import { translateSentences, type TextCodec } from '../eval/translate.js';
import type { EvalConfig } from '../config/schema.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { setLossImplementation } from './objective.js';
import { Trainer } from './trainer.js';

export interface BenchOptions {
  steps: number;
  warmupSteps: number;
  sentences: number;
  length: number;
  vocab: number;
  /** extra --set style overrides of the model/train config */
  overrides: string[];
  /** ids of the configurations to run (default: all supported); see benchConfigurations */
  configs?: string[];
  /** workers of the data-parallel configurations (default: the number of cores) */
  workers?: number;
  /** add native BLAS 1T runs with each new kernel switched off in turn */
  ablation?: boolean;
  /** skip the decoding measurement */
  skipDecoding?: boolean;
  /** run the PyTorch peer (scripts/bench_train_torch.py) when torch imports (default true) */
  peer?: boolean;
  log: (line: string) => void;
}

/** One configuration of the training benchmark. */
export interface BenchConfig {
  id: string;
  label: string;
  workers: number;
  nativeBlas: boolean;
  /** OpenBLAS threads of an in-process run (workers always use 1 each) */
  blasThreads: number;
  /** the kernels added for training speed, each on or off (all off: the kernel set as it was before them) */
  kernels: NewKernels;
}

/** installBackendFixes switches of the kernels added for training speed. */
export interface NewKernels {
  fusedLoss: boolean;
  sharedIdentity: boolean;
  rowGather: boolean;
  nativeSum: boolean;
  fusedDropout: boolean;
  /** issue 18: the fused loss's rows in C, attention / residual layer norm / Adam as native kernels */
  nativeLoss: boolean;
  fusedAttention: boolean;
  fusedLayerNorm: boolean;
  nativeAdam: boolean;
}

const ALL_NEW: NewKernels = {
  fusedLoss: true,
  sharedIdentity: true,
  rowGather: true,
  nativeSum: true,
  fusedDropout: true,
  nativeLoss: true,
  fusedAttention: true,
  fusedLayerNorm: true,
  nativeAdam: true,
};
const NONE_NEW: NewKernels = {
  fusedLoss: false,
  sharedIdentity: false,
  rowGather: false,
  nativeSum: false,
  fusedDropout: false,
  nativeLoss: false,
  fusedAttention: false,
  fusedLayerNorm: false,
  nativeAdam: false,
};
/** the kernel set before issue 18's native kernels (fusedDropout then registered but unused by the model) */
const BEFORE_18: NewKernels = { ...ALL_NEW, nativeLoss: false, fusedAttention: false, fusedLayerNorm: false, nativeAdam: false, fusedDropout: false };

export interface BenchRow {
  config: BenchConfig;
  tokensPerStep: number;
  stepMsMedian: number;
  trainTokensPerSec: number;
  achievedGflops: number;
  /**
   * process CPU seconds (all threads) per step, median: with other load on the machine, target tokens
   * per CPU second is the figure that does not depend on how many cores this run actually got
   */
  cpuSecondsPerStep: number;
  tokensPerCpuSecond: number;
  /** achieved / the machine's matMul peak on all cores (null without native BLAS) */
  fractionOfPeak: number | null;
  /** 1-minute load average when the configuration finished */
  load: number;
  /** the error, when the configuration failed */
  error?: string;
}

export interface BenchResult {
  backend: string;
  cores: number;
  rows: BenchRow[];
  flopsPerTargetToken: number;
  /** native plain matMul GFLOP/s on 1 thread and on all cores (null without the addon) */
  peak: { oneThread: number; allThreads: number; threads: number; oneThreadPerCpuSecond: number } | null;
  /** plain matMul through the active non-native kernel (wasm XNNPACK / cpu JS) */
  wasmMatMulGflops: number;
  greedyStepsPerSec: number | null;
  beamStepsPerSec: number | null;
  loadBefore: number[];
  loadAfter: number[];
  /** the PyTorch peer's rows (1 thread and all cores), or why there are none */
  peer: { rows: PeerRow[]; note: string | null };
}

/** One thread count of the PyTorch peer (scripts/bench_train_torch.py's JSON line). */
export interface PeerRow {
  engine: string;
  threads: number;
  tokensPerStep: number;
  stepMsMedian: number;
  trainTokensPerSec: number;
  achievedGflops: number;
  cpuSecondsPerStep: number;
  flopsPerTargetToken: number;
  load: number;
}

/** The peer script, next to this package's scripts (src/train and dist/train are both two levels down). */
export const PEER_SCRIPT = fileURLToPath(new URL('../../scripts/bench_train_torch.py', import.meta.url));

/** The first of Debian's python3 and the one on PATH that imports torch (the pyenv shim here cannot), or null. */
export function findTorchPython(): string | null {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return py;
  }
  return null;
}

/**
 * Runs the PyTorch peer on the bench model of `cfg` (same sentences, length, steps; post/pre-norm, gates
 * on all attentions or none) at each thread count; its progress goes to `log`.
 */
export function runTorchPeer(
  cfg: ModelConfig,
  gates: boolean,
  o: { steps: number; warmupSteps: number; sentences: number; length: number; vocab: number; threads: number[]; log: (l: string) => void },
): { rows: PeerRow[]; note: string | null } {
  if (!existsSync(PEER_SCRIPT)) return { rows: [], note: `no PyTorch peer: ${PEER_SCRIPT} not found` };
  const py = findTorchPython();
  if (py === null)
    return {
      rows: [],
      note: 'no PyTorch peer: neither /usr/bin/python3 nor python3 can import torch (Debian: apt-get install python3-torch libopenblas0-openmp)',
    };
  const rows: PeerRow[] = [];
  for (const t of o.threads) {
    const args = [
      PEER_SCRIPT,
      '--threads',
      String(t),
      '--steps',
      String(o.steps),
      '--warmup',
      String(o.warmupSteps),
      '--sentences',
      String(o.sentences),
      '--length',
      String(o.length),
      '--vocab',
      String(o.vocab),
      '--d-model',
      String(cfg.dModel),
      '--heads',
      String(cfg.heads),
      '--encoder-layers',
      String(cfg.encoderLayers),
      '--decoder-layers',
      String(cfg.decoderLayers),
      '--d-ff',
      String(cfg.dFF),
      '--dropout',
      String(cfg.dropout),
      '--norm',
      cfg.norm,
      gates ? '--gates' : '--no-gates',
    ];
    const r = spawnSync(py, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
    for (const line of (r.stderr ?? '').split('\n')) if (line.trim()) o.log(line);
    if (r.status !== 0) return { rows, note: `PyTorch peer failed (${py} exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop() ?? ''}` };
    for (const line of r.stdout.split('\n')) if (line.startsWith('{')) rows.push({ ...(JSON.parse(line) as Omit<PeerRow, 'load'>), load: loadavg()[0]! });
  }
  return { rows, note: null };
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

/** The configurations this machine supports, in print order. */
export function benchConfigurations(opts: { backend: string; native: boolean; cores: number; workers?: number; ablation?: boolean }): BenchConfig[] {
  const n = Math.max(2, opts.workers ?? opts.cores);
  const t = nativeBlasThreads();
  const base = { kernels: ALL_NEW };
  const out: BenchConfig[] = [];
  if (opts.backend === 'wasm') out.push({ id: 'wrapper', label: 'wasm XNNPACK + transpose wrapper', workers: 1, nativeBlas: false, blasThreads: 1, ...base });
  if (opts.native) {
    out.push({ id: 'native-before', label: `native BLAS ${t}T, earlier kernel set`, workers: 1, nativeBlas: true, blasThreads: t, kernels: NONE_NEW });
    out.push({ id: 'native-1t-before18', label: 'native BLAS 1T, kernels before issue 18', workers: 1, nativeBlas: true, blasThreads: 1, kernels: BEFORE_18 });
    out.push({ id: 'native-1t', label: 'native BLAS 1T', workers: 1, nativeBlas: true, blasThreads: 1, ...base });
    if (opts.ablation) {
      for (const k of Object.keys(ALL_NEW) as Array<keyof NewKernels>)
        out.push({
          id: `native-1t-no-${k}`,
          label: `native BLAS 1T without ${k}`,
          workers: 1,
          nativeBlas: true,
          blasThreads: 1,
          kernels: { ...ALL_NEW, [k]: false },
        });
    }
    if (t > 1) out.push({ id: `native-${t}t`, label: `native BLAS ${t}T`, workers: 1, nativeBlas: true, blasThreads: t, ...base });
  }
  if (opts.backend === 'wasm' || opts.backend === 'cpu') {
    if (opts.backend === 'wasm')
      out.push({ id: 'wrapper-workers', label: `${n} workers x wasm XNNPACK + wrapper`, workers: n, nativeBlas: false, blasThreads: 1, ...base });
    if (opts.native) out.push({ id: 'native-workers', label: `${n} workers x native BLAS 1T`, workers: n, nativeBlas: true, blasThreads: 1, ...base });
  }
  if (out.length === 0) out.push({ id: 'current', label: `${opts.backend} as configured`, workers: 1, nativeBlas: false, blasThreads: 1, ...base });
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function applyKernels(backend: string, c: BenchConfig): void {
  installBackendFixes(backend, { nativeBlas: c.nativeBlas, blasThreads: c.blasThreads, ...c.kernels });
  setLossImplementation(c.kernels.fusedLoss ? 'fused' : 'ops');
}

export async function benchTrain(o: BenchOptions): Promise<BenchResult> {
  const backend = tf.getBackend();
  const cores = availableParallelism();
  const loadBefore = loadavg();
  const native = nativeBlasStatus().available && (backend === 'wasm' || backend === 'cpu');
  const all = benchConfigurations({ backend, native, cores, ...(o.workers !== undefined ? { workers: o.workers } : {}), ablation: o.ablation ?? false });
  const configs = o.configs?.length ? all.filter((c) => o.configs!.includes(c.id)) : all;
  if (o.configs?.length && configs.length === 0)
    throw new Error(`bench: no configuration among ${o.configs.join(', ')}; available: ${all.map((c) => c.id).join(', ')}`);
  const restore = () => {
    installBackendFixes(backend);
    setLossImplementation('fused');
  };

  // the machine's matMul peak: native plain matMul, 1 thread and all cores (best of two shapes)
  let peak: BenchResult['peak'] = null;
  const peakOf = () =>
    Math.max(measureMatMul({ m: 1024, k: 1024, n: 1024, reps: 5, warmup: 2 }).gflops, measureMatMul({ m: 2000, k: 256, n: 1024, reps: 5, warmup: 2 }).gflops);
  // the same products per CPU second of this process: what one core does when it runs, whatever the load
  const cpuPeakOf = () => {
    let best = 0;
    for (const [m, k, n] of [
      [1024, 1024, 1024],
      [2000, 256, 1024],
    ] as const) {
      const a = tf.randomUniform([m, k], -1, 1, 'float32', 1);
      const b = tf.randomUniform([k, n], -1, 1, 'float32', 2);
      tf.matMul(a, b).dispose();
      const c0 = process.cpuUsage();
      for (let i = 0; i < 8; i++) tf.matMul(a, b).dispose();
      const c1 = process.cpuUsage(c0);
      best = Math.max(best, (8 * 2 * m * k * n) / ((c1.user + c1.system) / 1e6) / 1e9);
      tf.dispose([a, b]);
    }
    return best;
  };
  if (native) {
    installBackendFixes(backend, { nativeBlas: true, blasThreads: 1 });
    const oneThread = peakOf();
    const oneThreadPerCpuSecond = cpuPeakOf();
    installBackendFixes(backend, { nativeBlas: true, blasThreads: cores });
    const allThreads = peakOf();
    peak = { oneThread, allThreads, threads: cores, oneThreadPerCpuSecond };
    o.log(
      `matMul peak (native, plain 1024^3 / 2000x256x1024): ${oneThread.toFixed(1)} GFLOP/s on 1 thread, ${allThreads.toFixed(1)} on ${cores}; ${oneThreadPerCpuSecond.toFixed(1)} GFLOP per CPU second on 1 thread`,
    );
  }
  installBackendFixes(backend, { nativeBlas: false });
  const wasmMatMulGflops = measureMatMul({ m: 2000, k: 256, n: 1024, reps: 5, warmup: 2 }).gflops;
  o.log(`matMul without native BLAS (${backend}, 2000x256 @ 256x1024): ${wasmMatMulGflops.toFixed(1)} GFLOP/s`);

  const L = o.length + 1;
  const tokensBudget = o.sentences * L;
  const rng = new Rng(1);
  // equal lengths: every batch is exactly sentences x (length + 1) target tokens (split over workers)
  const pairs: EncodedPair[] = Array.from({ length: o.sentences * 4 }, (_, index) => ({
    src: Array.from({ length: o.length }, () => 4 + rng.int(o.vocab - 4)),
    tgt: Array.from({ length: o.length }, () => 4 + rng.int(o.vocab - 4)),
    index,
  }));
  // the bench model of the performance notes and issue 18: post-norm, tied embeddings, a Hard Concrete
  // gate on every head of every attention (sampled each step; no penalty), label-smoothed loss, Adam
  const baseSettings = [
    'model.encoderLayers=3',
    'model.decoderLayers=3',
    'model.heads=4',
    'model.dModel=256',
    'model.dFF=1024',
    'model.norm=post',
    'gates.attention=[enc-self,dec-self,dec-enc]',
    `train.maxTokensPerBatch=${tokensBudget}`,
    'train.accumulateSteps=1',
    'train.evalEverySteps=0',
    `train.maxSteps=${o.steps + o.warmupSteps}`,
  ];
  const benchCfg = loadConfig(null, [...baseSettings, ...o.overrides]);
  const flops = forwardFlopsPerToken(benchCfg.model, L, o.vocab);
  const rows: BenchRow[] = [];
  try {
    for (const c of configs) {
      applyKernels(backend, c);
      const cfg = loadConfig(null, [...baseSettings, `train.workers=${c.workers}`, ...o.overrides]);
      const model = createTransformer(cfg.model, o.vocab, new Rng(2));
      const trainer = new Trainer({ config: cfg, model, train: pairs, valid: pairs.slice(0, 8), run: null });
      const times: number[] = [];
      const cpu: number[] = [];
      let tokens = 0;
      try {
        for (let s = 0; s < o.warmupSteps + o.steps; s++) {
          const c0 = process.cpuUsage();
          const r = await trainer.trainStep();
          const c1 = process.cpuUsage(c0);
          if (s >= o.warmupSteps) {
            times.push(r.elapsedMs);
            cpu.push((c1.user + c1.system) / 1e6);
            tokens = r.tgtTokens;
          }
          const ph = trainer.lastWorkerPhases;
          const phases = ph
            ? ` (workers: compute ${ph.compute.toFixed(0)}, reduce ${ph.reduce.toFixed(0)}, update ${ph.update.toFixed(0)}, load ${ph.load.toFixed(0)} ms)`
            : '';
          o.log(
            `${c.id}: ${s < o.warmupSteps ? 'warm-up' : 'step'} ${s + 1}: ${r.elapsedMs.toFixed(0)} ms, ${((r.tgtTokens / r.elapsedMs) * 1000).toFixed(0)} tok/s${phases}`,
          );
        }
        const stepMs = median(times);
        const tps = (tokens / stepMs) * 1000;
        const achieved = (tps * 3 * flops) / 1e9;
        const cpuS = median(cpu);
        rows.push({
          config: c,
          tokensPerStep: tokens,
          stepMsMedian: stepMs,
          trainTokensPerSec: tps,
          achievedGflops: achieved,
          cpuSecondsPerStep: cpuS,
          tokensPerCpuSecond: tokens / cpuS,
          fractionOfPeak: peak ? achieved / peak.allThreads : null,
          load: loadavg()[0]!,
        });
      } catch (e) {
        rows.push({
          config: c,
          tokensPerStep: 0,
          stepMsMedian: NaN,
          trainTokensPerSec: NaN,
          achievedGflops: NaN,
          cpuSecondsPerStep: NaN,
          tokensPerCpuSecond: NaN,
          fractionOfPeak: null,
          load: loadavg()[0]!,
          error: e instanceof Error ? e.message : String(e),
        });
        o.log(`${c.id}: failed: ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        trainer.dispose();
        model.dispose();
      }
    }
  } finally {
    restore();
  }

  // the PyTorch peer, right after our configurations (same batch, steps and model)
  let peer: BenchResult['peer'] = { rows: [], note: 'PyTorch peer not run (--no-peer)' };
  if (o.peer ?? true) {
    const threads = [...new Set([1, cores])];
    peer = runTorchPeer(benchCfg.model, benchCfg.gates.attention.length > 0, {
      steps: o.steps,
      warmupSteps: o.warmupSteps,
      sentences: o.sentences,
      length: o.length,
      vocab: o.vocab,
      threads,
      log: o.log,
    });
  }

  let greedyStepsPerSec: number | null = null;
  let beamStepsPerSec: number | null = null;
  if (!o.skipDecoding) {
    // decoding (default kernels): one batch of 32 sentences, fixed output length (a random model rarely emits EOS)
    const cfg = loadConfig(null, [...baseSettings, ...o.overrides]);
    const model = createTransformer(cfg.model, o.vocab, new Rng(2));
    const B = 32;
    const src = new Int32Array(B * L);
    for (let b = 0; b < B; b++) for (let t = 0; t < o.length; t++) src[b * L + t] = pairs[b]!.src[t]!;
    for (let b = 0; b < B; b++) src[b * L + o.length] = 2;
    const dec = { lengthPenalty: 0.6, maxLenA: 0, maxLenB: o.length };
    const t0 = performance.now();
    const g = await greedyDecode(model, src, B, L, { ...dec, beamSize: 1 });
    const greedyMs = performance.now() - t0;
    const t1 = performance.now();
    const bm = await beamSearch(model, src, B, L, { ...dec, beamSize: 4 });
    const beamMs = performance.now() - t1;
    greedyStepsPerSec = ((Math.max(...g.map((x) => x.length)) + 1) / greedyMs) * 1000;
    beamStepsPerSec = ((Math.max(...bm.map((x) => x.length)) + 1) / beamMs) * 1000;
    model.dispose();
  }
  return {
    backend,
    cores,
    rows,
    flopsPerTargetToken: 3 * flops,
    peak,
    wasmMatMulGflops,
    greedyStepsPerSec,
    beamStepsPerSec,
    loadBefore,
    loadAfter: loadavg(),
    peer,
  };
}

/** The side-by-side table (markdown). */
export function formatBenchTable(r: BenchResult): string[] {
  const lines = [
    '| configuration | workers | step ms (median) | target tokens/s | GFLOP/s | % of machine peak | CPU s/step | tokens/CPU s | % of matMul FLOPs per CPU s | load (1 min) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  // load-independent efficiency: training FLOPs per CPU second against the 1-thread matMul's FLOPs per CPU second
  const perCpu = (tokensPerCpuS: number) =>
    r.peak ? `${(((tokensPerCpuS * r.flopsPerTargetToken) / 1e9 / r.peak.oneThreadPerCpuSecond) * 100).toFixed(0)}%` : 'n/a';
  for (const row of r.rows) {
    if (row.error !== undefined) {
      lines.push(`| ${row.config.label} | ${row.config.workers} | failed: ${row.error.slice(0, 60)} | | | | | | | ${row.load.toFixed(1)} |`);
      continue;
    }
    const pct = row.fractionOfPeak === null ? 'n/a' : `${(row.fractionOfPeak * 100).toFixed(0)}%`;
    lines.push(
      `| ${row.config.label} | ${row.config.workers} | ${row.stepMsMedian.toFixed(0)} | ${row.trainTokensPerSec.toFixed(0)} | ${row.achievedGflops.toFixed(1)} | ${pct} | ${row.cpuSecondsPerStep.toFixed(2)} | ${row.tokensPerCpuSecond.toFixed(0)} | ${perCpu(row.tokensPerCpuSecond)} | ${row.load.toFixed(1)} |`,
    );
  }
  for (const p of r.peer.rows) {
    const pct = r.peak ? `${((p.achievedGflops / r.peak.allThreads) * 100).toFixed(0)}%` : 'n/a';
    lines.push(
      `| PyTorch peer (${p.engine}), ${p.threads} thread${p.threads > 1 ? 's' : ''} | 1 | ${p.stepMsMedian.toFixed(0)} | ${p.trainTokensPerSec.toFixed(0)} | ${p.achievedGflops.toFixed(1)} | ${pct} | ${p.cpuSecondsPerStep.toFixed(2)} | ${(p.tokensPerStep / p.cpuSecondsPerStep).toFixed(0)} | ${perCpu(p.tokensPerStep / p.cpuSecondsPerStep)} | ${p.load.toFixed(1)} |`,
    );
  }
  const cmp = comparePeer(r);
  if (cmp !== null) lines.push('', cmp);
  else if (r.peer.note !== null) lines.push('', r.peer.note);
  return lines;
}

/** "ours best / PyTorch best" in one line, or null without peer rows or successful rows of ours. */
export function comparePeer(r: BenchResult): string | null {
  const ours = r.rows.filter((x) => x.error === undefined).sort((a, b) => b.trainTokensPerSec - a.trainTokensPerSec)[0];
  const theirs = [...r.peer.rows].sort((a, b) => b.trainTokensPerSec - a.trainTokensPerSec)[0];
  if (ours === undefined || theirs === undefined) return null;
  const share = (g: number) => (r.peak ? ` (${((g / r.peak.allThreads) * 100).toFixed(0)}% of peak)` : '');
  const ratio = ours.trainTokensPerSec / theirs.trainTokensPerSec;
  const cpuRatio = ours.tokensPerCpuSecond / (theirs.tokensPerStep / theirs.cpuSecondsPerStep);
  return `ours best: ${ours.config.label}, ${ours.trainTokensPerSec.toFixed(0)} tok/s${share(ours.achievedGflops)}; PyTorch best: ${theirs.threads} thread${theirs.threads > 1 ? 's' : ''}, ${theirs.trainTokensPerSec.toFixed(0)} tok/s${share(theirs.achievedGflops)}; ratio ${ratio.toFixed(2)}x (tokens per CPU second ${cpuRatio.toFixed(2)}x)`;
}

export interface DecodeBenchRow {
  beamSize: number;
  sentences: number;
  seconds: number;
  sentencesPerSec: number;
  outputTokens: number;
  /** FNV-1a hash of the outputs: equal hashes, equal translations (to compare implementations) */
  outputHash: string;
}

/** Translates `sentences` with each beam size and reports sentences/s (the load average is the caller's to print). */
export async function benchDecode(
  model: Transformer,
  codec: TextCodec,
  sentences: readonly string[],
  evalConfig: EvalConfig,
  beamSizes: number[],
  gates?: GateTensors,
): Promise<DecodeBenchRow[]> {
  const rows: DecodeBenchRow[] = [];
  for (const beamSize of beamSizes) {
    const { outputs, stats } = await translateSentences(model, codec, sentences, { ...evalConfig, beamSize, ...(gates ? { gates } : {}) });
    let h = 0x811c9dc5;
    for (const ch of outputs.join('\n')) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
    rows.push({
      beamSize,
      sentences: stats.sentences,
      seconds: stats.elapsedMs / 1000,
      sentencesPerSec: stats.sentencesPerSec,
      outputTokens: stats.outputTokens,
      outputHash: (h >>> 0).toString(16).padStart(8, '0'),
    });
  }
  return rows;
}
