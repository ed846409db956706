/**
 * Swapping tfjs kernels in and out, reversibly. tfjs keeps one global registry keyed by
 * backend + kernel name, and the engine looks a kernel up on every call, so replacing an entry takes
 * effect at once. `registerKernel` must not see an existing key (it warns, and older versions throw),
 * so each swap unregisters first. The stock config is remembered the first time a kernel is replaced,
 * so fixes can be swapped for one another and `restoreStock` can put the original back (or remove a
 * kernel the backend never had). The bookkeeping lives on globalThis under a Symbol.for key so that
 * two loaded copies of this module (src under tsx and dist, say) agree on what is installed.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc } from '@tensorflow/tfjs';
import type { AnyKernelFunc } from './tfjs-internals.js';

export interface InstalledFix {
  backend: string;
  kernel: string;
  /** the fix's name, e.g. `js-scatter-add`, `transpose-wrapper`, `native-blas` */
  fix: string;
}

interface Entry extends InstalledFix {
  /** the stock config, or null when the backend had no such kernel */
  stock: KernelConfig | null;
  func: KernelFunc;
}

interface Store {
  entries: Map<string, Entry>;
}

const STORE_KEY: unique symbol = Symbol.for('heads.backend.kernelFixes');

function store(): Store {
  const g = globalThis as typeof globalThis & { [STORE_KEY]?: Store };
  let s = g[STORE_KEY];
  if (s === undefined) {
    s = { entries: new Map() };
    g[STORE_KEY] = s;
  }
  return s;
}

function key(backend: string, kernel: string): string {
  return `${backend}_${kernel}`;
}

/** Our entry for this kernel, if it is the one registered right now. */
function liveEntry(backend: string, kernel: string): Entry | undefined {
  const e = store().entries.get(key(backend, kernel));
  if (e === undefined) return undefined;
  const current = tf.getKernel(kernel, backend);
  return current !== undefined && current.kernelFunc === e.func ? e : undefined;
}

/** The stock kernel config (the one before any of our fixes); null when the backend has none. */
export function stockKernel(backend: string, kernel: string): KernelConfig | null {
  const e = liveEntry(backend, kernel);
  if (e !== undefined) return e.stock;
  return tf.getKernel(kernel, backend) ?? null;
}

/** Name of our fix currently registered for this kernel, if any. */
export function installedFix(backend: string, kernel: string): string | undefined {
  return liveEntry(backend, kernel)?.fix;
}

/**
 * Registers `make(stock)` as the kernel, unless the same fix is already registered (idempotent).
 * Replaces a different fix of ours, keeping the stock config. Returns true when something changed.
 */
export function installKernelFix(backend: string, kernel: string, fix: string, make: (stock: KernelConfig | null) => AnyKernelFunc): boolean {
  const live = liveEntry(backend, kernel);
  if (live !== undefined && live.fix === fix) return false;
  const stock = live !== undefined ? live.stock : (tf.getKernel(kernel, backend) ?? null);
  // Our kernels take our own KernelArgs (backend typed `unknown`); tfjs types it `{}`.
  const func = make(stock) as unknown as KernelFunc;
  if (tf.getKernel(kernel, backend) !== undefined) tf.unregisterKernel(kernel, backend);
  const config: KernelConfig = { kernelName: kernel, backendName: backend, kernelFunc: func };
  // Keep the stock setup/dispose hooks: the stock kernel function we delegate to relies on them
  // (the wasm kernels bind their C functions in setupFunc when the backend initialises).
  if (stock?.setupFunc !== undefined) config.setupFunc = stock.setupFunc;
  if (stock?.disposeFunc !== undefined) config.disposeFunc = stock.disposeFunc;
  tf.registerKernel(config);
  store().entries.set(key(backend, kernel), { backend, kernel, fix, stock, func });
  return true;
}

/** Puts the stock kernel back (or removes a kernel the backend did not have). */
export function restoreKernel(backend: string, kernel: string): boolean {
  const k = key(backend, kernel);
  const e = store().entries.get(k);
  if (e === undefined) return false;
  store().entries.delete(k);
  const current = tf.getKernel(kernel, backend);
  if (current === undefined || current.kernelFunc !== e.func) return false; // someone else replaced it since
  tf.unregisterKernel(kernel, backend);
  if (e.stock !== null) tf.registerKernel(e.stock);
  return true;
}

/** Our fixes that are registered right now, optionally for one backend. */
export function listInstalledFixes(backend?: string): InstalledFix[] {
  const out: InstalledFix[] = [];
  for (const e of store().entries.values()) {
    if (backend !== undefined && e.backend !== backend) continue;
    if (liveEntry(e.backend, e.kernel) !== undefined) out.push({ backend: e.backend, kernel: e.kernel, fix: e.fix });
  }
  return out;
}

/** Restores every kernel we replaced (optionally for one backend); returns what was restored. */
export function restoreAllKernels(backend?: string): InstalledFix[] {
  const restored: InstalledFix[] = [];
  for (const e of [...store().entries.values()]) {
    if (backend !== undefined && e.backend !== backend) continue;
    if (restoreKernel(e.backend, e.kernel)) restored.push({ backend: e.backend, kernel: e.kernel, fix: e.fix });
  }
  return restored;
}
