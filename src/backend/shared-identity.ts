/**
 * wasm `Identity` and same-dtype `Cast` that share the input's data (one more reference) instead of
 * copying it, as the cpu backend's Identity already does.
 *
 * Why it matters: tfjs saves every tensor a gradient needs with `keep(clone(t))`, and `clone` runs the
 * Identity kernel, which on tfjs-backend-wasm 4.22.0 allocates a new buffer and copies. A training step
 * of the bench model makes ~950 such copies (~600 ms of kernel time in tf.profile under load, including a
 * [2000, 8000] logits copy), and each copy briefly doubles the saved tensor in the wasm heap. The gradient
 * of `clone` is a float32 -> float32 Cast, which the stock kernel also copies.
 *
 * Sharing is safe because tfjs tensors are immutable: no kernel writes into its inputs, variables
 * change by swapping their data id (assign), and the backend frees shared data when its reference count
 * drops to zero (the stock Reshape relies on the same mechanism).
 */
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { type AnyKernelFunc, asWasmBackend, callKernel } from './tfjs-internals.js';

function share(backend: unknown, x: TensorInfo): TensorInfo {
  asWasmBackend(backend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
}

/** Identity without a copy (string tensors go to the stock kernel). */
export function wasmSharedIdentity(stock: KernelConfig | null): AnyKernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    if (x === undefined) throw new Error('Identity: input x is required');
    if (x.dtype === 'string') {
      if (stock === null) throw new Error('Identity: no stock kernel for string tensors');
      return callKernel(stock, args);
    }
    return share(args.backend, x);
  };
}

/** Cast to the tensor's own dtype without a copy; real conversions go to the stock kernel. */
export function wasmSharedCast(stock: KernelConfig | null): AnyKernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    if (x === undefined) throw new Error('Cast: input x is required');
    if (x.dtype !== 'string' && args.attrs?.['dtype'] === x.dtype) return share(args.backend, x);
    if (stock === null) throw new Error('Cast: no stock kernel');
    return callKernel(stock, args);
  };
}
