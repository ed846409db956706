/**
 * The environment, read once, here at the edge: the process settings (config/runtime.ts) every command
 * passes down, and the single place that knows the HEADS_* variable names below the CLI's own flags.
 *   HEADS_NATIVE_BLAS=0      stock kernels instead of the OpenBLAS addon
 *   HEADS_BLAS_THREADS=n     OpenBLAS threads
 *   HEADS_FUSED_LOSS=0       the ops cross-entropy instead of the fused kernel
 *   HEADS_CORES=n            the cores this process may use (the experiment runner sets it for its stages)
 *   HEADS_HEAP_BUDGET_MB=m   the memory splitter's heap budget
 *   HEADS_FAULT_NONFINITE=…  tests of the non-finite guard (train/workers/micro-batch.ts)
 */
import type { RuntimeOptions } from '../config/runtime.js';
import { defaultBlasThreads, nativeBlasEnabledByEnv } from '../backend/native-blas.js';
import { type BackendChoice, type BackendInfo, initBackend } from '../backend/select.js';
import { setLossImplementation } from '../train/objective.js';
import { coresForThisProcess } from '../train/workers/pool.js';

const OFF = ['0', 'false', 'off', 'no'];

/** The RuntimeOptions an environment describes (unset or malformed variables give the defaults, as before). */
export function runtimeFromEnv(env: NodeJS.ProcessEnv): RuntimeOptions {
  const heap = env['HEADS_HEAP_BUDGET_MB'];
  const faults = env['HEADS_FAULT_NONFINITE'];
  return {
    nativeBlas: nativeBlasEnabledByEnv(env),
    blasThreads: defaultBlasThreads(env),
    fusedLoss: !OFF.includes((env['HEADS_FUSED_LOSS'] ?? '').trim().toLowerCase()),
    cores: coresForThisProcess(env),
    ...(heap !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(heap) && Number(heap) > 0 ? { heapBudgetMB: Number(heap) } : {}),
    ...(faults ? { faultNonFinite: faults } : {}),
  };
}

let cached: RuntimeOptions | undefined;

/** This process's RuntimeOptions (read from process.env on first use). */
export function runtimeOptions(): RuntimeOptions {
  cached ??= runtimeFromEnv(process.env);
  return cached;
}

/** What every command and script starts with: initBackend with this process's RuntimeOptions, and the loss they select. */
export async function initBackendFromEnv(requested: BackendChoice): Promise<BackendInfo> {
  const runtime = runtimeOptions();
  const info = await initBackend(requested, runtime);
  setLossImplementation(runtime.fusedLoss === false ? 'ops' : 'fused');
  return info;
}

/**
 * SIGINT/SIGTERM for a long-running library call (the experiment runner): the first signal goes to
 * `handler`, a second ends the process at once (exit 130). Returns the unsubscribe.
 */
export function forwardStopSignals(handler: (sig: NodeJS.Signals) => void): () => void {
  let received = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (received++ > 0) process.exit(130);
    handler(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
