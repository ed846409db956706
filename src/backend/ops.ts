/**
 * Backend kernel fixes, installed by `initBackend` (select.ts) right after a backend is chosen.
 *
 * - wasm: `UnsortedSegmentSum` (missing; the gradient of tf.gather) as a JS scatter-add, and a faster
 *   `BatchMatMul`: the OpenBLAS addon when it loads and passes its self-test (unless HEADS_NATIVE_BLAS=0),
 *   otherwise the transpose-materialising XNNPACK wrapper (wasm-matmul.ts).
 * - cpu: the pathological `UnsortedSegmentSum` replaced by the scatter-add, and native `BatchMatMul`
 *   when the addon is available.
 * - native `_FusedMatMul` (C bias/activation epilogue) only where scripts/bench-kernels.ts measured a gain, see
 *   NATIVE_FUSED_DEFAULT.
 * - wasm: `Identity` and same-dtype `Cast` share data instead of copying (shared-identity.ts; every tensor
 *   a gradient saves goes through a clone).
 * - wasm: `GatherV2` on axis 0 as row copies (gather-rows.ts): embedding lookups and the decoder's cache
 *   reordering, 30-100x faster than the stock kernel. (A JS `Sum` over leading axes was measured and
 *   dropped: the stock transpose + SIMD reduction is faster, 0.62 against 1.04 ms for [2000, 256].)
 * - wasm and cpu: the fused label-smoothed cross-entropy kernel `HeadsSmoothedXent` (softmax-xent.ts),
 *   its rows in C with the addon (`native-c`, unless nativeLoss is false) else in JS (`fused-js`),
 *   which train/objective.ts uses where it is registered, its loss alone `HeadsXentLoss` (the head
 *   ablations' NLL, analysis/batched-ablation.ts), and the fused dropout kernel `HeadsDropout`
 *   behind `fastDropout` (dropout.ts).
 * - wasm with the addon: multi-head attention as one native kernel per direction, `HeadsAttention` and
 *   `HeadsAttentionGrad` (attention-kernel.ts), which model/attention.ts uses where registered; layer
 *   norm with the post-norm residual and dropout, `HeadsLayerNorm(Grad)` (layer-norm-kernel.ts), used by
 *   model/layers.ts; one Adam step per parameter, `HeadsAdam` (adam-kernel.ts), used by train/adam.ts;
 *   a beam step's log-softmax and best continuations, `HeadsBeamTopk` (beam-kernel.ts), used by
 *   eval/fast-decode.ts fastBeam (with the native Sum only: its sums are that Sum's bits); the fast
 *   decoders' self-attention over preallocated caches, `HeadsCacheScores` / `HeadsCacheContext`
 *   (kv-cache-kernel.ts).
 *
 * Installing is idempotent (a kernel already carrying the requested fix is left alone; tfjs would warn
 * or throw on a double registration), `restoreStockKernels` undoes everything for A/B benchmarks and
 * tests, and `activeKernelFixes` lists what is registered right now.
 */
import { type InstalledFix, installKernelFix, listInstalledFixes, restoreAllKernels, restoreKernel } from './kernel-registry.js';
import { type NativeBlasStatus, loadNativeBlas, nativeBlasAllowed, nativeBlasStatus, nativeBlasThreads, setBlasThreads } from './native-blas.js';
import { cpuNativeBatchMatMul, cpuNativeFusedMatMul, wasmNativeBatchMatMul, wasmNativeFusedMatMul } from './native-matmul.js';
import { cpuUnsortedSegmentSum, wasmUnsortedSegmentSum } from './segment-sum.js';
import { wasmBatchMatMulWrapper } from './wasm-matmul.js';
import { wasmSharedCast, wasmSharedIdentity } from './shared-identity.js';
import {
  SMOOTHED_XENT_KERNEL,
  XENT_LOSS_KERNEL,
  cpuNativeSmoothedXent,
  cpuSmoothedXent,
  nativeXentLossRows,
  nativeXentRows,
  wasmNativeSmoothedXent,
  wasmSmoothedXent,
  xentLossKernel,
} from './softmax-xent.js';
import { wasmGatherRows } from './gather-rows.js';
import { wasmNativeSum } from './native-sum.js';
import { DROPOUT_KERNEL, cpuDropout, nativeDropoutLoop, wasmDropout, wasmNativeDropout } from './dropout.js';
import { ATTENTION_GRAD_KERNEL, ATTENTION_KERNEL, nativeAttention, wasmAttention, wasmAttentionGrad } from './attention-kernel.js';
import { ADAM_KERNEL, nativeAdam, wasmAdam } from './adam-kernel.js';
import { BEAM_TOPK_KERNEL, nativeBeamTopk, wasmBeamTopk } from './beam-kernel.js';
import { CACHE_CONTEXT_KERNEL, CACHE_SCORES_KERNEL, nativeKvCache, setCacheRows, wasmCacheContext, wasmCacheScores } from './kv-cache-kernel.js';
import { LAYER_NORM_GRAD_KERNEL, LAYER_NORM_KERNEL, nativeLayerNorm, wasmLayerNorm, wasmLayerNormGrad } from './layer-norm-kernel.js';

export type { InstalledFix } from './kernel-registry.js';
export type { NativeBlasStatus } from './native-blas.js';
export { nativeBlasStatus, setBlasThreads } from './native-blas.js';
export { matMulRouteCounts, resetMatMulRouteCounts, type MatMulRouteCounts } from './wasm-matmul.js';

/**
 * Whether native `_FusedMatMul` (OpenBLAS + bias/activation epilogue in C) is registered by default.
 * wasm, scripts/bench-kernels.ts --extra, 2000x256 @ 256x1024 + bias + relu: native fused 6.0-6.8 ms against
 * 7.1 ms for native matMul + wasm Add + Relu on 1 thread (3.8-6.2 against 4.4-7.2 ms on 2), and 28 ms for
 * the stock wasm fused kernel. (tfjs fuses only bias-only layers while recording gradients.)
 */
export const NATIVE_FUSED_DEFAULT: Readonly<Record<'wasm' | 'cpu', boolean>> = { wasm: true, cpu: true };

export interface BackendFixOptions {
  /** use the OpenBLAS addon when available (default: true unless configureNativeBlas disabled it) */
  nativeBlas?: boolean;
  /** OpenBLAS threads (default: the configured count, see configureNativeBlas, else the number of cores) */
  blasThreads?: number;
  /** register native `_FusedMatMul` too (default: NATIVE_FUSED_DEFAULT) */
  nativeFused?: boolean;
  /** wasm: Identity / same-dtype Cast share data instead of copying (default true) */
  sharedIdentity?: boolean;
  /** register the fused label-smoothed cross-entropy kernel (default true) */
  fusedLoss?: boolean;
  /** with native BLAS: the fused loss's rows in C instead of JS (default true) */
  nativeLoss?: boolean;
  /** wasm with native BLAS: attention in one kernel per direction, HeadsAttention(Grad) (default true) */
  fusedAttention?: boolean;
  /** wasm with native BLAS: layer norm (+ post-norm residual and dropout) in one kernel per direction (default true) */
  fusedLayerNorm?: boolean;
  /** wasm with native BLAS: the fused dropout kernel's loop in C (default true) */
  nativeDropout?: boolean;
  /** wasm with native BLAS: each parameter's Adam step as one native kernel, HeadsAdam (default true) */
  nativeAdam?: boolean;
  /** wasm: GatherV2 on axis 0 as row copies (default true) */
  rowGather?: boolean;
  /** wasm with native BLAS: Sum over leading/trailing axes as a product with ones (default true) */
  nativeSum?: boolean;
  /** wasm with native BLAS and nativeSum: a beam step's log-softmax and best continuations in one kernel, HeadsBeamTopk (default true) */
  nativeBeam?: boolean;
  /** wasm with native BLAS: the fast decoders' self-attention over preallocated caches, HeadsCacheScores / HeadsCacheContext (default true) */
  nativeKvCache?: boolean;
  /** register the fused dropout kernel used by backend/dropout.ts fastDropout (default true) */
  fusedDropout?: boolean;
}

function fixLabel(kernel: string, fix: string): string {
  return `${kernel}:${fix}`;
}

/**
 * Installs the kernel fixes for `backendName` (wasm, cpu; others get none) and returns the names of the
 * fixes now active for it, e.g. `['UnsortedSegmentSum:js-scatter-add', 'BatchMatMul:native-blas']`.
 * Safe to call repeatedly; a call with other options swaps the affected fixes.
 */
export function installBackendFixes(backendName: string, opts: BackendFixOptions = {}): string[] {
  if (backendName !== 'wasm' && backendName !== 'cpu') return [];
  lastOptions.set(backendName, { ...opts });
  const wantNative = (opts.nativeBlas ?? true) && nativeBlasAllowed();
  const blas = wantNative ? loadNativeBlas().blas : null;
  if (blas !== null) setBlasThreads(opts.blasThreads ?? nativeBlasThreads());
  const fused = opts.nativeFused ?? NATIVE_FUSED_DEFAULT[backendName];

  if (backendName === 'wasm') {
    installKernelFix('wasm', 'UnsortedSegmentSum', 'js-scatter-add', () => wasmUnsortedSegmentSum());
    if (blas !== null) {
      installKernelFix('wasm', 'BatchMatMul', 'native-blas', (stock) => wasmNativeBatchMatMul(blas, stock));
    } else {
      installKernelFix('wasm', 'BatchMatMul', 'transpose-wrapper', (stock) => {
        if (stock === null) throw new Error('wasm BatchMatMul is not registered');
        return wasmBatchMatMulWrapper(stock);
      });
    }
    if (blas !== null && fused) {
      installKernelFix('wasm', '_FusedMatMul', 'native-blas', (stock) => wasmNativeFusedMatMul(blas, stock));
    } else {
      restoreKernel('wasm', '_FusedMatMul');
    }
    if (opts.sharedIdentity ?? true) {
      installKernelFix('wasm', 'Identity', 'shared-data', (stock) => wasmSharedIdentity(stock));
      installKernelFix('wasm', 'Cast', 'shared-data', (stock) => wasmSharedCast(stock));
    } else {
      restoreKernel('wasm', 'Identity');
      restoreKernel('wasm', 'Cast');
    }
    if (blas !== null && (opts.nativeSum ?? true)) {
      installKernelFix('wasm', 'Sum', 'native-blas', (stock) => wasmNativeSum(blas, stock));
    } else {
      restoreKernel('wasm', 'Sum');
    }
    // its row sums are the native Sum's bits: only beside that Sum (else fastBeam's ops use the stock one)
    const beam = (opts.nativeBeam ?? true) && (opts.nativeSum ?? true) ? nativeBeamTopk(blas) : null;
    if (beam !== null) installKernelFix('wasm', BEAM_TOPK_KERNEL, 'native-c', () => wasmBeamTopk(beam));
    else restoreKernel('wasm', BEAM_TOPK_KERNEL);
    const kv = (opts.nativeKvCache ?? true) ? nativeKvCache(blas) : null;
    if (kv !== null) {
      installKernelFix('wasm', CACHE_SCORES_KERNEL, 'native-c', () => wasmCacheScores(kv));
      installKernelFix('wasm', CACHE_CONTEXT_KERNEL, 'native-c', () => wasmCacheContext(kv));
    } else {
      restoreKernel('wasm', CACHE_SCORES_KERNEL);
      restoreKernel('wasm', CACHE_CONTEXT_KERNEL);
    }
    setCacheRows(kv?.cacheRows ?? null);
    const attn = (opts.fusedAttention ?? true) ? nativeAttention(blas) : null;
    if (attn !== null) {
      installKernelFix('wasm', ATTENTION_KERNEL, 'native-c', () => wasmAttention(attn));
      installKernelFix('wasm', ATTENTION_GRAD_KERNEL, 'native-c', () => wasmAttentionGrad(attn));
    } else {
      restoreKernel('wasm', ATTENTION_KERNEL);
      restoreKernel('wasm', ATTENTION_GRAD_KERNEL);
    }
    const ln = (opts.fusedLayerNorm ?? true) ? nativeLayerNorm(blas) : null;
    if (ln !== null) {
      installKernelFix('wasm', LAYER_NORM_KERNEL, 'native-c', () => wasmLayerNorm(ln));
      installKernelFix('wasm', LAYER_NORM_GRAD_KERNEL, 'native-c', () => wasmLayerNormGrad(ln));
    } else {
      restoreKernel('wasm', LAYER_NORM_KERNEL);
      restoreKernel('wasm', LAYER_NORM_GRAD_KERNEL);
    }
    const adam = (opts.nativeAdam ?? true) ? nativeAdam(blas) : null;
    if (adam !== null) installKernelFix('wasm', ADAM_KERNEL, 'native-c', () => wasmAdam(adam));
    else restoreKernel('wasm', ADAM_KERNEL);
    if (opts.rowGather ?? true) {
      installKernelFix('wasm', 'GatherV2', 'js-row-copy', (stock) => wasmGatherRows(stock));
    } else {
      restoreKernel('wasm', 'GatherV2');
    }
  } else {
    installKernelFix('cpu', 'UnsortedSegmentSum', 'js-scatter-add', () => cpuUnsortedSegmentSum());
    if (blas !== null) {
      installKernelFix('cpu', 'BatchMatMul', 'native-blas', (stock) => cpuNativeBatchMatMul(blas, stock));
    } else {
      restoreKernel('cpu', 'BatchMatMul');
    }
    if (blas !== null && fused) {
      installKernelFix('cpu', '_FusedMatMul', 'native-blas', (stock) => cpuNativeFusedMatMul(blas, stock));
    } else {
      restoreKernel('cpu', '_FusedMatMul');
    }
  }
  const xentRows = (opts.nativeLoss ?? true) ? nativeXentRows(blas) : null;
  if ((opts.fusedLoss ?? true) && xentRows !== null) {
    installKernelFix(backendName, SMOOTHED_XENT_KERNEL, 'native-c', () =>
      backendName === 'wasm' ? wasmNativeSmoothedXent(xentRows) : cpuNativeSmoothedXent(xentRows),
    );
  } else if (opts.fusedLoss ?? true) {
    installKernelFix(backendName, SMOOTHED_XENT_KERNEL, 'fused-js', () => (backendName === 'wasm' ? wasmSmoothedXent() : cpuSmoothedXent()));
  } else {
    restoreKernel(backendName, SMOOTHED_XENT_KERNEL);
  }
  // the same rows' loss without the gradient (forward-only losses: head ablations)
  const lossRows = xentRows !== null ? nativeXentLossRows(blas) : null;
  if (opts.fusedLoss ?? true)
    installKernelFix(backendName, XENT_LOSS_KERNEL, lossRows !== null ? 'native-c' : 'fused-js', () => xentLossKernel(backendName, lossRows));
  else restoreKernel(backendName, XENT_LOSS_KERNEL);
  const dropLoop = backendName === 'wasm' && (opts.nativeDropout ?? true) ? nativeDropoutLoop(blas) : null;
  if ((opts.fusedDropout ?? true) && dropLoop !== null) {
    installKernelFix(backendName, DROPOUT_KERNEL, 'native-c', () => wasmNativeDropout(dropLoop));
  } else if (opts.fusedDropout ?? true) {
    installKernelFix(backendName, DROPOUT_KERNEL, 'fused-js', () => (backendName === 'wasm' ? wasmDropout() : cpuDropout()));
  } else {
    restoreKernel(backendName, DROPOUT_KERNEL);
  }
  return listInstalledFixes(backendName).map((f) => fixLabel(f.kernel, f.fix));
}

/** The options of the last installBackendFixes call for each backend (what a worker thread installs again). */
const lastOptions = new Map<string, BackendFixOptions>();

/** The options `backendName`'s fixes were last installed with (null: never installed in this thread). */
export function installedFixOptions(backendName: string): BackendFixOptions | null {
  const o = lastOptions.get(backendName);
  return o ? { ...o } : null;
}

/** The fixes registered right now (optionally for one backend). */
export function activeKernelFixes(backendName?: string): InstalledFix[] {
  return listInstalledFixes(backendName);
}

/** Puts every stock kernel back (optionally for one backend); returns what was removed. */
export function restoreStockKernels(backendName?: string): InstalledFix[] {
  return restoreAllKernels(backendName);
}

/** Summary line for logs: backend, fixes, native BLAS state. */
export function describeBackendFixes(backendName: string): string {
  const fixes = listInstalledFixes(backendName).map((f) => fixLabel(f.kernel, f.fix));
  const s: NativeBlasStatus = nativeBlasStatus();
  const native = s.available ? `native BLAS: ${s.corename ?? '?'}, ${s.threads ?? '?'} threads` : `native BLAS: off (${s.reason ?? 'unavailable'})`;
  return `${backendName}: ${fixes.length > 0 ? fixes.join(', ') : 'no kernel fixes'}; ${native}`;
}
