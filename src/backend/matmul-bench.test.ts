/** The timing helpers: median arithmetic and budgets (with a fake clock-free workload), and a tiny matMul measurement. */
import { describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { measureMatMul, measureMatMulGflops, medianMs } from './matmul-bench.js';

describe('medianMs', () => {
  test('runs warm-up plus reps and returns a finite median', () => {
    let calls = 0;
    const ms = medianMs(
      () => {
        calls++;
      },
      { reps: 4, warmup: 2 },
    );
    expect(calls).toBe(6);
    expect(Number.isFinite(ms)).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(0);
  });

  test('a budget stops early; a slow warm-up is the measurement', () => {
    let calls = 0;
    const busy = (ms: number) => {
      const t = Date.now();
      while (Date.now() - t < ms) {
        /* spin */
      }
    };
    const ms = medianMs(
      () => {
        calls++;
        busy(15);
      },
      { reps: 50, warmup: 1, budgetMs: 10 },
    );
    expect(calls).toBe(1);
    expect(ms).toBeGreaterThanOrEqual(14);
  });
});

describe('measureMatMul', () => {
  test('reports shape, flops and GFLOP/s on the cpu backend', async () => {
    await tf.setBackend('cpu');
    const before = tf.memory().numTensors;
    const r = measureMatMul({ m: 16, n: 8, k: 4, transposeB: true, batch: [2], reps: 2 });
    expect(r.backend).toBe('cpu');
    expect(r.shape).toBe('2x[16x4 @ (8x4)^T]');
    expect(r.flops).toBe(2 * 16 * 8 * 4 * 2);
    expect(r.gflops).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    expect(measureMatMulGflops({ m: 8, n: 8, k: 8, reps: 1 })).toBeGreaterThan(0);
  });
});
