/**
 * Narrow views of tfjs backend internals (tfjs 4.22.0) that the kernel fixes need. The kernel API types
 * a kernel's `backend` argument as `{}`, so each fix casts it once, through `asWasmBackend` /
 * `asCpuBackend`, to the few members it actually uses (checked against the 4.22.0 sources of
 * tfjs-backend-wasm/dist/backend_wasm.js and tfjs-backend-cpu/dist/backend_cpu.js).
 */
import type { BackendValues, DataId, DataType, KernelConfig, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';

/** One entry of the wasm backend's `dataIdMap`. */
export interface WasmTensorData {
  id: number;
  /** byte offset of the tensor's data in the wasm heap */
  memoryOffset: number;
  shape: number[];
  dtype: DataType;
  refCount: number;
}

/** The members of tfjs-backend-wasm's `BackendWasm` used here. */
export interface WasmBackendInternals {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: DataId): WasmTensorData | undefined };
  /** allocates on the wasm heap (which may grow and detach earlier views of it) */
  makeOutput(shape: number[], dtype: DataType, memoryOffset?: number, values?: BackendValues): TensorInfo;
  disposeData(dataId: DataId, force?: boolean): boolean;
  /** one more reference to a tensor's data (Reshape uses it to share data without a copy) */
  incRef(dataId: DataId): void;
}

/** The members of tfjs-backend-cpu's `MathBackendCPU` used here. */
export interface CpuBackendInternals {
  data: { get(dataId: DataId): { values?: BackendValues } | undefined };
  makeTensorInfo(shape: number[], dtype: DataType, values?: BackendValues): TensorInfo;
  incRef(dataId: DataId): void;
}

/** The kernel function argument, with the backend left opaque as tfjs types it. */
export interface KernelArgs {
  inputs: { [name: string]: TensorInfo | undefined };
  backend: unknown;
  attrs?: NamedAttrMap;
}

/** A kernel function as stored in a KernelConfig, called with our own argument objects. */
export type AnyKernelFunc = (args: KernelArgs) => TensorInfo | TensorInfo[];

export function asWasmBackend(backend: unknown): WasmBackendInternals {
  // tfjs passes its BackendWasm instance typed as `{}`; we use only the members declared above.
  return backend as WasmBackendInternals;
}

export function asCpuBackend(backend: unknown): CpuBackendInternals {
  // tfjs passes its MathBackendCPU instance typed as `{}`; we use only the members declared above.
  return backend as CpuBackendInternals;
}

/** Calls a registered kernel's function with our argument object (KernelFunc's params are typed `backend: {}`). */
export function callKernel(config: KernelConfig, args: KernelArgs): TensorInfo {
  const out = (config.kernelFunc as unknown as AnyKernelFunc)(args);
  if (Array.isArray(out)) throw new Error(`kernel ${config.kernelName} returned several outputs; expected one`);
  return out;
}

/** Whole-heap Float32Array view. Take it only AFTER every allocation of the current kernel call. */
export function wasmHeapF32(backend: WasmBackendInternals): Float32Array {
  return new Float32Array(backend.wasm.HEAPU8.buffer);
}

/** Whole-heap Int32Array view (same rule as wasmHeapF32). */
export function wasmHeapI32(backend: WasmBackendInternals): Int32Array {
  return new Int32Array(backend.wasm.HEAPU8.buffer);
}

/** Element offset (4-byte units) of a tensor in the wasm heap. */
export function wasmOffset4(backend: WasmBackendInternals, t: TensorInfo): number {
  const d = backend.dataIdMap.get(t.dataId);
  if (d === undefined) throw new Error('wasm tensor data not found (disposed?)');
  if (d.memoryOffset % 4 !== 0) throw new Error(`wasm tensor at unaligned byte offset ${d.memoryOffset}`);
  return d.memoryOffset / 4;
}

/** The stored values of a cpu-backend tensor. */
export function cpuValues(backend: CpuBackendInternals, t: TensorInfo): BackendValues {
  const v = backend.data.get(t.dataId)?.values;
  if (v === undefined) throw new Error('cpu tensor data not found (disposed?)');
  return v;
}

/** True for a Float32Array from any realm (jest runs tfjs in a vm context). */
export function isFloat32Array(v: unknown): v is Float32Array {
  return Object.prototype.toString.call(v) === '[object Float32Array]';
}

export function isInt32Array(v: unknown): v is Int32Array {
  return Object.prototype.toString.call(v) === '[object Int32Array]';
}

/** A TensorInfo for the same data under another shape (no copy, no refcount change). */
export function viewAs(t: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

export function sizeOf(shape: readonly number[]): number {
  let s = 1;
  for (const d of shape) s *= d;
  return s;
}

export function boolAttr(attrs: NamedAttrMap | undefined, name: string): boolean {
  return Boolean(attrs?.[name]);
}
