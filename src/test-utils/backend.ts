/** Tests run on wasm with the kernel fixes when it loads (about 50x faster than cpu), else on cpu. */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/select.js';

export async function useTestBackend(prefer: 'wasm' | 'cpu' = 'wasm'): Promise<string> {
  tf.env().set('PROD', true);
  try {
    return (await initBackend(prefer)).name;
  } catch {
    return (await initBackend('cpu')).name;
  }
}

/** max |a - b| over two equally long arrays */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
