/**
 * Settings of one process that are not part of an experiment's config: they change speed, memory use or
 * inject test faults, never what is computed. The CLI reads them from the environment once
 * (cli/environment.ts: HEADS_NATIVE_BLAS, HEADS_BLAS_THREADS, HEADS_FUSED_LOSS, HEADS_CORES,
 * HEADS_HEAP_BUDGET_MB, HEADS_FAULT_NONFINITE) and passes them down; a script or notebook passes them as
 * options. An absent field means the default named beside it.
 */
export interface RuntimeOptions {
  /** use the native OpenBLAS addon when it loads (default true) */
  nativeBlas?: boolean;
  /** OpenBLAS threads on the main thread (default: the number of cores) */
  blasThreads?: number;
  /** the fused softmax-cross-entropy kernel instead of the ops version (default true) */
  fusedLoss?: boolean;
  /** the cores this process may use, e.g. a share given by the experiment runner (default: all) */
  cores?: number;
  /** the heap budget a micro-batch's estimate must fit, in MB (default: 85 % of 4 GiB on wasm, unlimited elsewhere) */
  heapBudgetMB?: number;
  /** tests of the non-finite guard: "3,7:1" makes the loss NaN at step 3 and at micro-batch 1 of step 7 */
  faultNonFinite?: string;
}
