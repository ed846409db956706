/**
 * Loads the optional OpenBLAS addon (`@heads/native-blas`, packages/native-blas) and checks it with a
 * start-up self-test before any kernel uses it. The addon is an optional dependency: `npm ci` drops it on
 * machines without a C toolchain or libopenblas-dev, and then everything here reports "not available"
 * and the tfjs kernels stay as they are.
 *
 * Environment:
 * - `HEADS_NATIVE_BLAS=0` disables the native path (the addon is not even loaded);
 * - `HEADS_BLAS_THREADS=n` sets OpenBLAS's thread count (default: the number of cores).
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';

/** The addon's API (mirrors packages/native-blas/index.d.ts, which may be absent). */
export interface NativeBlas {
  sgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    A: Float32Array,
    lda: number,
    B: Float32Array,
    ldb: number,
    beta: number,
    C: Float32Array,
    ldc: number,
    offA?: number,
    offB?: number,
    offC?: number,
  ): void;
  sgemmBatched(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    A: Float32Array,
    offA: number,
    strideA: number,
    B: Float32Array,
    offB: number,
    strideB: number,
    beta: number,
    C: Float32Array,
    offC: number,
    strideC: number,
    batch: number,
    idxA?: Int32Array | null,
    idxB?: Int32Array | null,
  ): void;
  biasActivation(
    C: Float32Array,
    offC: number,
    rows: number,
    cols: number,
    bias: Float32Array | null,
    offBias: number,
    biasLen: number,
    activation: number,
    alpha?: number,
  ): void;
  /**
   * Label-smoothed softmax cross-entropy over logits L [n, v] (softmax-xent.ts's contract): per-row loss
   * into Loss, gradient into G (G null: the loss only, in builds since session 13). Absent in addons built
   * before it (then the JS kernel is used).
   */
  smoothedXent?(
    L: Float32Array,
    offL: number,
    Y: Int32Array,
    offY: number,
    W: Float32Array,
    offW: number,
    n: number,
    v: number,
    eps: number,
    G: Float32Array | null,
    offG: number,
    Loss: Float32Array,
    offLoss: number,
  ): void;
  /** smoothedXent's exponentials and dropout's masks by their scalar loops (true) or with AVX2 (false, the default; the same bits); absent in older builds. */
  scalarLoops?(on: boolean): boolean;
  /** One layer's multi-head attention forward / backward on one array (attention-kernel.ts); absent in older builds. */
  attentionForward?(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  attentionBackward?(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  /** Post-norm residual layer norm forward / backward on one array (layer-norm-kernel.ts); absent in older builds. */
  layerNormForward?(F: Float32Array, dims: Int32Array, offs: Float64Array, eps: number, rate: number, seed: number): void;
  layerNormBackward?(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  /** dropout.ts's dropout loop over n elements of one array: offs [x, y, mask, 0]; absent in older builds. */
  dropout?(F: Float32Array, n: number, offs: Float64Array, rate: number, seed: number): void;
  /** One Adam step over n elements on one array (adam-kernel.ts); absent in older builds. */
  adamUpdate?(F: Float32Array, n: number, offs: Float64Array, k: Float64Array): void;
  /** One beam-search step's log-softmax and best continuations on one array (beam-kernel.ts); absent in older builds. */
  beamTopk?(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  /** Decoder self-attention over preallocated caches (kv-cache-kernel.ts); absent in older builds. */
  cacheScores?(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  cacheContext?(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  cacheRows?(F: Float32Array, dims: Int32Array, offs: Float64Array, src: Int32Array): void;
  setThreads(n: number): number;
  getThreads(): number;
  config(): { config: string; corename: string; numProcs: number; threads: number };
}

export interface NativeBlasStatus {
  /** true when the addon loaded and passed the self-test */
  available: boolean;
  /** why it is not available (disabled, not built, self-test failure) */
  reason?: string;
  /** OpenBLAS's configuration string and core, when loaded */
  config?: string;
  corename?: string;
  threads?: number;
}

export const ADDON_PACKAGE = '@heads/native-blas';

let loaded: { blas: NativeBlas | null; status: NativeBlasStatus } | undefined;

/** True unless HEADS_NATIVE_BLAS is 0/false/off/no (the CLI passes its environment). */
export function nativeBlasEnabledByEnv(env: NodeJS.ProcessEnv): boolean {
  const v = env['HEADS_NATIVE_BLAS'];
  return v === undefined || !['0', 'false', 'off', 'no'].includes(v.trim().toLowerCase());
}

/** HEADS_BLAS_THREADS when it is a positive integer, else the number of cores (the CLI passes its environment). */
export function defaultBlasThreads(env: NodeJS.ProcessEnv): number {
  const v = env['HEADS_BLAS_THREADS'];
  if (v !== undefined && /^\s*\d+\s*$/.test(v) && Number(v) >= 1) return Number(v);
  return availableParallelism();
}

/** The process's native BLAS settings (initBackend sets them from its RuntimeOptions; default: enabled, all cores). */
let setting: { enabled: boolean; threads: number | undefined } = { enabled: true, threads: undefined };
export function configureNativeBlas(s: { enabled?: boolean | undefined; threads?: number | undefined }): void {
  setting = { enabled: s.enabled ?? true, threads: s.threads };
}

/** False when configureNativeBlas disabled the addon (the CLI's HEADS_NATIVE_BLAS=0). */
export function nativeBlasAllowed(): boolean {
  return setting.enabled;
}

/** The configured OpenBLAS thread count (default: the number of cores). */
export function nativeBlasThreads(): number {
  return setting.threads ?? availableParallelism();
}

function isNativeBlas(v: unknown): v is NativeBlas {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return ['sgemm', 'sgemmBatched', 'biasActivation', 'setThreads', 'getThreads', 'config'].every((f) => typeof o[f] === 'function');
}

/** Deterministic values in [-1, 1) (no dependence on tfjs's RNG). */
function lcg(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

/** Reference row-major op(A) @ op(B), in float64. */
export function referenceMatMul(tA: boolean, tB: boolean, m: number, n: number, k: number, a: Float32Array, b: Float32Array): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[tA ? p * m + i : i * k + p]! * b[tB ? j * k + p : p * n + j]!;
      c[i * n + j] = s;
    }
  }
  return c;
}

/** Start-up self-test: all transpose combinations, a broadcast batch, and the bounds check. Throws on failure. */
export function selfTest(blas: NativeBlas): void {
  const m = 7,
    n = 5,
    k = 6;
  for (const tA of [false, true]) {
    for (const tB of [false, true]) {
      const a = lcg(m * k, 1 + (tA ? 2 : 0) + (tB ? 1 : 0));
      const b = lcg(k * n, 11);
      const c = new Float32Array(m * n).fill(Number.NaN); // beta = 0 must overwrite garbage
      blas.sgemm(tA, tB, m, n, k, 1, a, tA ? m : k, b, tB ? k : n, 0, c, n);
      const ref = referenceMatMul(tA, tB, m, n, k, a, b);
      for (let i = 0; i < ref.length; i++) {
        if (!(Math.abs(c[i]! - ref[i]!) <= 1e-4 * (1 + Math.abs(ref[i]!)))) {
          throw new Error(`self-test sgemm(transA=${tA}, transB=${tB}) differs at ${i}: ${c[i]} vs ${ref[i]}`);
        }
      }
    }
  }
  // batch of 3 against one broadcast B, written at an offset
  const batch = 3;
  const a = lcg(batch * m * k, 5);
  const b = lcg(k * n, 6);
  const c = new Float32Array(4 + batch * m * n);
  blas.sgemmBatched(false, false, m, n, k, 1, a, 0, m * k, b, 0, 0, 0, c, 4, m * n, batch);
  for (let i = 0; i < batch; i++) {
    const ref = referenceMatMul(false, false, m, n, k, a.subarray(i * m * k, (i + 1) * m * k), b);
    for (let j = 0; j < ref.length; j++) {
      if (!(Math.abs(c[4 + i * m * n + j]! - ref[j]!) <= 1e-4 * (1 + Math.abs(ref[j]!)))) {
        throw new Error(`self-test sgemmBatched differs in batch ${i} at ${j}`);
      }
    }
  }
  let threw = false;
  try {
    blas.sgemm(false, false, m, n, k, 1, new Float32Array(m * k - 1), k, b, n, 0, new Float32Array(m * n), n);
  } catch (e) {
    threw = e instanceof RangeError || (e as { name?: string }).name === 'RangeError';
  }
  if (!threw) throw new Error('self-test: sgemm did not reject a too-short array with a RangeError');
}

/**
 * Loads the addon once (cached) and runs the self-test. Returns the addon only when it passed; never
 * throws. Disabled (`HEADS_NATIVE_BLAS=0`, configureNativeBlas) the addon is not loaded at all.
 */
export function loadNativeBlas(): { blas: NativeBlas | null; status: NativeBlasStatus } {
  if (loaded !== undefined) return loaded;
  if (!setting.enabled) {
    // not cached: the switch may be flipped later in the same process (A/B runs, tests)
    return { blas: null, status: { available: false, reason: 'disabled by HEADS_NATIVE_BLAS=0 (RuntimeOptions.nativeBlas false)' } };
  }
  let blas: NativeBlas | null = null;
  let status: NativeBlasStatus;
  try {
    const req = createRequire(import.meta.url);
    const mod = req(ADDON_PACKAGE) as { blas?: unknown; loadError?: unknown };
    if (mod.blas === null || mod.blas === undefined) {
      const why = mod.loadError instanceof Error ? mod.loadError.message.split('\n')[0] : 'unknown';
      status = { available: false, reason: `${ADDON_PACKAGE} is installed but its .node file did not load (${why}); run scripts/setup-native.sh` };
    } else if (!isNativeBlas(mod.blas)) {
      status = { available: false, reason: `${ADDON_PACKAGE} does not export the expected functions` };
    } else {
      selfTest(mod.blas);
      blas = mod.blas;
      const cfg = blas.config();
      status = { available: true, config: cfg.config, corename: cfg.corename, threads: blas.getThreads() };
    }
  } catch (e) {
    const err = e as { code?: string; message?: string };
    status =
      err.code === 'MODULE_NOT_FOUND'
        ? {
            available: false,
            reason: `${ADDON_PACKAGE} is not installed (npm dropped the optional addon: no C toolchain or libopenblas-dev; run scripts/setup-native.sh)`,
          }
        : { available: false, reason: `native BLAS rejected: ${String(err.message ?? e)}` };
    blas = null;
  }
  loaded = { blas, status };
  return loaded;
}

/** Sets OpenBLAS's thread count when the addon is loaded; returns the count in effect (0 without addon). */
export function setBlasThreads(n: number): number {
  const { blas } = loadNativeBlas();
  if (blas === null) return 0;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`BLAS threads must be a positive integer, got ${n}`);
  const t = blas.setThreads(n);
  if (loaded !== undefined) loaded.status.threads = t;
  return t;
}

/** Current status (loads the addon on first use). */
export function nativeBlasStatus(): NativeBlasStatus {
  const s = loadNativeBlas().status;
  return { ...s };
}
