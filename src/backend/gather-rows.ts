/**
 * wasm `GatherV2` along axis 0 (embedding lookups, beam/cache row selection) as row copies inside the
 * heap. The stock kernel reads the indices back to JS to check them, reshapes, and gathers element by
 * element in C: ~12 ms for 2000 rows of an [8000, 256] embedding under load, against well under a
 * millisecond for 2000 `copyWithin` row copies. Other axes, batchDims, empty tensors and dtypes other
 * than float32/int32 go to the stock kernel. Out-of-range indices throw, as the stock kernel does.
 */
import type { KernelConfig } from '@tensorflow/tfjs';
import { type AnyKernelFunc, asWasmBackend, callKernel, sizeOf, wasmHeapI32, wasmOffset4 } from './tfjs-internals.js';

export function wasmGatherRows(stock: KernelConfig | null): AnyKernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    const indices = args.inputs['indices'];
    if (x === undefined || indices === undefined) throw new Error('GatherV2: inputs x and indices are required');
    const rawAxis = Number(args.attrs?.['axis'] ?? 0);
    const axis = rawAxis < 0 ? rawAxis + x.shape.length : rawAxis;
    const batchDims = Number(args.attrs?.['batchDims'] ?? 0);
    const simple = axis === 0 && batchDims === 0 && x.shape.length >= 1 && (x.dtype === 'float32' || x.dtype === 'int32') && indices.dtype === 'int32';
    if (!simple || sizeOf(x.shape) === 0 || sizeOf(indices.shape) === 0) {
      if (stock === null) throw new Error('GatherV2: no stock kernel');
      return callKernel(stock, args);
    }
    const rows = x.shape[0]!;
    const row = sizeOf(x.shape.slice(1));
    const n = sizeOf(indices.shape);
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    // one Int32 view serves float32 too: a row copy moves bits, whatever their type
    const heap = wasmHeapI32(backend);
    const xo = wasmOffset4(backend, x);
    const io = wasmOffset4(backend, indices);
    const oo = wasmOffset4(backend, out);
    for (let i = 0; i < n; i++) {
      const r = heap[io + i]!;
      if (r < 0 || r >= rows) {
        backend.disposeData(out.dataId);
        throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`);
      }
      heap.copyWithin(oo + i * row, xo + r * row, xo + (r + 1) * row);
    }
    return out;
  };
}
