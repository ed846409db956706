/**
 * Backend selection: `auto` tries tfjs-node-gpu, then tfjs-node, then wasm, then the pure-JS cpu
 * backend, and returns the first that loads. The two native packages are optional dependencies that
 * cannot install on machines without access to libtensorflow's download host, so their absence is normal.
 * Kernel fixes for the chosen backend are installed by `installBackendFixes` (backend/ops.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { installBackendFixes } from './ops.js';
import { configureNativeBlas } from './native-blas.js';
import type { RuntimeOptions } from '../config/runtime.js';
import { HeadsError } from '../util/errors.js';

export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** the tfjs backend name: tensorflow, wasm or cpu */
  name: string;
  /** which package provided it */
  packageName: string;
  /** what was asked for */
  requested: BackendChoice;
  /** kernel fixes installed on top of the stock backend */
  fixes: string[];
}

/** Why the last native package failed to load (for the error of an explicit --backend). */
let nativeFailure = '';

async function tryNative(pkg: string): Promise<boolean> {
  try {
    await import(pkg);
    return await tf.setBackend('tensorflow');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    nativeFailure = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' ? 'it is not installed' : String((e as Error).message ?? e).split('\n')[0]!;
    return false;
  }
}

async function tryWasm(): Promise<boolean> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    const ok = await tf.setBackend('wasm');
    if (ok) await tf.ready();
    return ok;
  } catch {
    return false;
  }
}

/**
 * Select and initialise a backend; throws when an explicitly requested backend cannot load. `runtime`
 * (the CLI: from HEADS_NATIVE_BLAS / HEADS_BLAS_THREADS) says whether native BLAS may load and its threads.
 */
export async function initBackend(requested: BackendChoice = 'auto', runtime: Pick<RuntimeOptions, 'nativeBlas' | 'blasThreads'> = {}): Promise<BackendInfo> {
  configureNativeBlas({ enabled: runtime.nativeBlas, threads: runtime.blasThreads });
  const order: Array<[BackendChoice, string, () => Promise<boolean>]> = [
    ['tensorflow-gpu', '@tensorflow/tfjs-node-gpu', () => tryNative('@tensorflow/tfjs-node-gpu')],
    ['tensorflow', '@tensorflow/tfjs-node', () => tryNative('@tensorflow/tfjs-node')],
    ['wasm', '@tensorflow/tfjs-backend-wasm', tryWasm],
    [
      'cpu',
      '@tensorflow/tfjs-backend-cpu',
      async () => {
        await tf.setBackend('cpu');
        await tf.ready();
        return true;
      },
    ],
  ];
  const candidates = requested === 'auto' ? order : order.filter(([c]) => c === requested);
  for (const [, packageName, load] of candidates) {
    if (await load()) {
      const name = tf.getBackend();
      const fixes = installBackendFixes(name);
      return { name, packageName, requested, fixes };
    }
  }
  // an explicit choice that cannot load is bad input (the user's command or config), not a crash
  const pkg = candidates[0]?.[1] ?? requested;
  const why = requested.startsWith('tensorflow') && nativeFailure ? nativeFailure : 'it failed to initialise';
  throw new HeadsError(`backend '${requested}': ${pkg} cannot be loaded (${why}); install it (npm install ${pkg}) or choose --backend wasm / auto`);
}
