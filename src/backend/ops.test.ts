/**
 * installBackendFixes / activeKernelFixes / restoreStockKernels: idempotency, swapping fixes, restoring
 * the stock kernels, the HEADS_NATIVE_BLAS switch, and the integration with initBackend.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { activeKernelFixes, describeBackendFixes, installBackendFixes, nativeBlasStatus, restoreStockKernels } from './ops.js';
import { initBackend } from './select.js';
import { configureNativeBlas } from './native-blas.js';

const nativeAvailable = nativeBlasStatus().available;

let stockWasmMatMul: unknown;
let stockCpuSegmentSum: unknown;

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  restoreStockKernels();
  stockWasmMatMul = tf.getKernel('BatchMatMul', 'wasm').kernelFunc;
  stockCpuSegmentSum = tf.getKernel('UnsortedSegmentSum', 'cpu').kernelFunc;
});

afterEach(() => {
  configureNativeBlas({});
});

afterAll(() => {
  restoreStockKernels();
});

describe('installBackendFixes', () => {
  test('is idempotent: a second call changes nothing and returns the same list', () => {
    const first = installBackendFixes('wasm');
    const func = tf.getKernel('BatchMatMul', 'wasm').kernelFunc;
    const segFunc = tf.getKernel('UnsortedSegmentSum', 'wasm').kernelFunc;
    const second = installBackendFixes('wasm');
    expect(second).toEqual(first);
    expect(tf.getKernel('BatchMatMul', 'wasm').kernelFunc).toBe(func);
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm').kernelFunc).toBe(segFunc);
    expect(first).toContain('UnsortedSegmentSum:js-scatter-add');
    expect(first).toContain(nativeAvailable ? 'BatchMatMul:native-blas' : 'BatchMatMul:transpose-wrapper');
  });

  test('cpu gets the scatter-add (and native matMul when available)', () => {
    const fixes = installBackendFixes('cpu');
    expect(fixes).toContain('UnsortedSegmentSum:js-scatter-add');
    expect(fixes.includes('BatchMatMul:native-blas')).toBe(nativeAvailable);
    expect(installBackendFixes('cpu')).toEqual(fixes);
  });

  test('other backends get no fixes', () => {
    expect(installBackendFixes('tensorflow')).toEqual([]);
    expect(installBackendFixes('webgl')).toEqual([]);
  });

  test('native BLAS disabled (HEADS_NATIVE_BLAS=0 at the CLI) selects the transpose wrapper on wasm', () => {
    configureNativeBlas({ enabled: false });
    const fixes = installBackendFixes('wasm');
    expect(fixes).toContain('BatchMatMul:transpose-wrapper');
    expect(fixes).not.toContain('_FusedMatMul:native-blas');
    expect(activeKernelFixes('wasm').find((f) => f.kernel === 'BatchMatMul')?.fix).toBe('transpose-wrapper');
  });

  test('switching fixes keeps the stock kernel: restore brings back the original function', () => {
    installBackendFixes('wasm', { nativeBlas: false });
    installBackendFixes('wasm');
    installBackendFixes('cpu');
    expect(tf.getKernel('BatchMatMul', 'wasm').kernelFunc).not.toBe(stockWasmMatMul);
    const restored = restoreStockKernels();
    expect(restored.length).toBeGreaterThanOrEqual(3);
    expect(activeKernelFixes()).toEqual([]);
    expect(tf.getKernel('BatchMatMul', 'wasm').kernelFunc).toBe(stockWasmMatMul);
    expect(tf.getKernel('UnsortedSegmentSum', 'cpu').kernelFunc).toBe(stockCpuSegmentSum);
    // wasm had no UnsortedSegmentSum: restoring removes it again
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeUndefined();
    expect(tf.getKernel('_FusedMatMul', 'wasm')).toBeDefined();
  });

  test('restoreStockKernels for one backend leaves the other alone', () => {
    installBackendFixes('wasm');
    installBackendFixes('cpu');
    restoreStockKernels('cpu');
    expect(activeKernelFixes('cpu')).toEqual([]);
    expect(activeKernelFixes('wasm').length).toBeGreaterThanOrEqual(2);
    restoreStockKernels();
  });

  test('describeBackendFixes summarises fixes and the native state', () => {
    installBackendFixes('wasm');
    expect(describeBackendFixes('wasm')).toMatch(/^wasm: UnsortedSegmentSum:js-scatter-add/);
    expect(describeBackendFixes('wasm')).toMatch(/native BLAS: /);
    restoreStockKernels();
  });
});

describe('initBackend', () => {
  test('wasm: installs the fixes and reports them', async () => {
    const info = await initBackend('wasm');
    expect(info.name).toBe('wasm');
    expect(info.fixes).toContain('UnsortedSegmentSum:js-scatter-add');
    expect(info.fixes.some((f) => f.startsWith('BatchMatMul:'))).toBe(true);
    // a second init is harmless
    const again = await initBackend('wasm');
    expect(again.fixes).toEqual(info.fixes);
  });
});
