'use strict';
/**
 * Loader for the heads OpenBLAS addon. Never throws: `blas` is the addon (see index.d.ts) or null when
 * build/Release/native_blas.node is missing (not built: no toolchain or no libopenblas-dev) or cannot
 * be loaded (for example libopenblas.so.0 is gone); `loadError` then says why.
 */
let blas = null;
let loadError = null;
try {
  blas = require('./build/Release/native_blas.node');
} catch (err) {
  loadError = err instanceof Error ? err : new Error(String(err));
}
module.exports = { blas, loadError };
