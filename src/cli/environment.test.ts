import { availableParallelism } from 'node:os';
import { jest } from '@jest/globals';
import { forwardStopSignals, runtimeFromEnv } from './environment.js';

describe('runtimeFromEnv (the one reader of the HEADS_* variables)', () => {
  it('an empty environment gives the defaults', () => {
    expect(runtimeFromEnv({})).toEqual({ nativeBlas: true, blasThreads: availableParallelism(), fusedLoss: true, cores: availableParallelism() });
  });
  it('reads each variable into its typed field', () => {
    const env = {
      HEADS_NATIVE_BLAS: 'off',
      HEADS_BLAS_THREADS: '3',
      HEADS_FUSED_LOSS: ' No ',
      HEADS_CORES: '2',
      HEADS_HEAP_BUDGET_MB: '2.5',
      HEADS_FAULT_NONFINITE: '3,7:1',
    };
    expect(runtimeFromEnv(env)).toEqual({ nativeBlas: false, blasThreads: 3, fusedLoss: false, cores: 2, heapBudgetMB: 2.5, faultNonFinite: '3,7:1' });
  });
  it('malformed values fall back to the defaults, as the old readers did', () => {
    const r = runtimeFromEnv({ HEADS_BLAS_THREADS: 'x', HEADS_CORES: '0', HEADS_HEAP_BUDGET_MB: '-1', HEADS_FUSED_LOSS: '1', HEADS_FAULT_NONFINITE: '' });
    expect(r).toEqual({ nativeBlas: true, blasThreads: availableParallelism(), fusedLoss: true, cores: availableParallelism() });
  });
});

describe("forwardStopSignals (the experiment runner's signals)", () => {
  it('hands the first signal to the handler, exits 130 on the second, and unsubscribes', () => {
    const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const seen: string[] = [];
    const off = forwardStopSignals((sig) => seen.push(sig));
    try {
      expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual([before[0]! + 1, before[1]! + 1]);
      process.emit('SIGTERM', 'SIGTERM');
      expect(seen).toEqual(['SIGTERM']);
      expect(exit).not.toHaveBeenCalled();
      process.emit('SIGINT', 'SIGINT');
      expect(exit).toHaveBeenCalledWith(130);
    } finally {
      off();
      exit.mockRestore();
    }
    expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual(before);
  });
});
