/**
 * Multi-head attention of one layer as ONE native kernel per direction (wasm + the OpenBLAS addon):
 * `HeadsAttention` computes, per sentence b and head h, P = softmax(scale Q K^T + bias) and
 * out = gate * (P V), reading q, k, v in the projections' own layout [B, T, heads * dHead] (no split or
 * merge transposes) and writing out in the same layout; `HeadsAttentionGrad` is its backward:
 *
 *   dC = gate * dOut            dGate = sum(dOut * C)        dV = P^T dC
 *   dP = dC V^T                 dS = P * (dP - rowsum(P * dP))
 *   dQ = scale dS K             dK = scale dS^T Q
 *
 * The tfjs computation it replaces (model/attention.ts `attend`): split heads (reshape + transpose) of q,
 * k, v, scale q, batched matMul, add bias, softmax, batched matMul, multiply by the gate, merge heads
 * (transpose + reshape) and, on the tape, about twice as many kernels backward. `fusedAttention` wraps
 * the pair in a tf.customGrad (q, k, v and the gate get gradients; the bias is a constant mask).
 *
 * Supported: float32; bias null or [1 | B, 1, 1 | Tq, Tk]; gate null, [h] or [B, h]; no dropout on the
 * weights. Anything else (per-token gates, attention dropout, analysis records) keeps the tfjs path, and
 * so do backends without the kernels (plain wasm without the addon, cpu, tfjs-node).
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import type { NativeBlas } from './native-blas.js';
import { type AnyKernelFunc, type KernelArgs, asWasmBackend, wasmHeapF32, wasmOffset4 } from './tfjs-internals.js';

export const ATTENTION_KERNEL = 'HeadsAttention';
export const ATTENTION_GRAD_KERNEL = 'HeadsAttentionGrad';

type AttentionFns = Required<Pick<NativeBlas, 'attentionForward' | 'attentionBackward'>>;

/** The addon's attention entry points, or null when this build lacks them. */
export function nativeAttention(blas: NativeBlas | null): AttentionFns | null {
  if (blas === null || typeof blas.attentionForward !== 'function' || typeof blas.attentionBackward !== 'function') return null;
  return { attentionForward: blas.attentionForward.bind(blas), attentionBackward: blas.attentionBackward.bind(blas) };
}

interface Layout {
  B: number;
  h: number;
  Tq: number;
  Tk: number;
  dh: number;
  bsb: number;
  bsq: number;
  gsb: number;
  hasBias: boolean;
  hasGate: boolean;
}

/** Bias strides for [1 | B, 1, 1 | Tq, Tk], or null when the shape is another broadcast. */
function biasStrides(shape: readonly number[], B: number, Tq: number, Tk: number): { bsb: number; bsq: number } | null {
  if (shape.length !== 4 || shape[1] !== 1 || shape[3] !== Tk) return null;
  const [bb, , tq] = shape as [number, number, number, number];
  if ((bb !== 1 && bb !== B) || (tq !== 1 && tq !== Tq)) return null;
  return { bsb: bb === 1 ? 0 : tq * Tk, bsq: tq === 1 ? 0 : Tk };
}

/** Gate stride over sentences: 0 for [h], h for [B, h]; null for other shapes. */
function gateStride(shape: readonly number[], B: number, h: number): number | null {
  if (shape.length === 1 && shape[0] === h) return 0;
  if (shape.length === 2 && shape[0] === B && shape[1] === h) return h;
  return null;
}

function layoutOf(q: readonly number[], k: readonly number[], heads: number, bias: readonly number[] | null, gate: readonly number[] | null): Layout | null {
  if (q.length !== 3 || k.length !== 3 || q[0] !== k[0] || q[2] !== k[2] || heads <= 0 || q[2]! % heads !== 0) return null;
  const [B, Tq, hd] = q as [number, number, number];
  const Tk = k[1]!;
  const bs = bias ? biasStrides(bias, B, Tq, Tk) : { bsb: 0, bsq: 0 };
  const gsb = gate ? gateStride(gate, B, heads) : 0;
  if (bs === null || gsb === null) return null;
  return { B, h: heads, Tq, Tk, dh: hd / heads, ...bs, gsb, hasBias: bias !== null, hasGate: gate !== null };
}

function dimsOf(l: Layout): Int32Array {
  const hd = l.h * l.dh;
  return Int32Array.from([l.B, l.h, l.Tq, l.Tk, l.dh, hd, hd, hd, l.bsb, l.bsq, l.gsb, l.hasBias ? 1 : 0, l.hasGate ? 1 : 0]);
}

function input(args: KernelArgs, name: string): TensorInfo {
  const t = args.inputs[name];
  if (t === undefined || t.dtype !== 'float32') throw new Error(`${ATTENTION_KERNEL}: float32 input ${name} is required`);
  return t;
}

function attrsOf(args: KernelArgs): { heads: number; scale: number } {
  return { heads: Number(args.attrs?.['heads'] ?? 0), scale: Number(args.attrs?.['scale'] ?? 1) };
}

/** wasm forward: inputs q, k, v[, bias][, gate]; outputs [out, p] or, with a gate, [out, p, ctx (ungated)]. */
export function wasmAttention(fns: AttentionFns): AnyKernelFunc {
  return (args) => {
    const q = input(args, 'q'),
      k = input(args, 'k'),
      v = input(args, 'v');
    const bias = args.inputs['bias'] ?? null;
    const gate = args.inputs['gate'] ?? null;
    const { heads, scale } = attrsOf(args);
    const l = layoutOf(q.shape, k.shape, heads, bias?.shape ?? null, gate?.shape ?? null);
    if (l === null || v.shape.join() !== k.shape.join())
      throw new Error(
        `${ATTENTION_KERNEL}: unsupported shapes q [${q.shape}] k [${k.shape}] v [${v.shape}] bias [${bias?.shape ?? ''}] gate [${gate?.shape ?? ''}]`,
      );
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput(q.shape, 'float32');
    const p = backend.makeOutput([l.B, l.h, l.Tq, l.Tk], 'float32');
    const ctx = l.hasGate ? backend.makeOutput(q.shape, 'float32') : null;
    const heap = wasmHeapF32(backend); // after the allocations (heap growth detaches older views)
    const off = (t: TensorInfo | null) => (t ? wasmOffset4(backend, t) : 0);
    fns.attentionForward(heap, dimsOf(l), Float64Array.from([off(q), off(k), off(v), off(bias), off(gate), off(out), off(p), off(ctx), scale]));
    return ctx ? [out, p, ctx] : [out, p];
  };
}

/** wasm backward: inputs dy, q, k, v, p[, ctx, gate]; outputs [dq, dk, dv] or [dq, dk, dv, dgate ([h] or [B, h])]. */
export function wasmAttentionGrad(fns: AttentionFns): AnyKernelFunc {
  return (args) => {
    const dy = input(args, 'dy'),
      q = input(args, 'q'),
      k = input(args, 'k'),
      v = input(args, 'v'),
      p = input(args, 'p');
    const ctx = args.inputs['ctx'] ?? null;
    const gate = args.inputs['gate'] ?? null;
    const { heads, scale } = attrsOf(args);
    const l = layoutOf(q.shape, k.shape, heads, null, gate?.shape ?? null);
    if (l === null || (gate !== null && ctx === null)) throw new Error(`${ATTENTION_GRAD_KERNEL}: unsupported inputs`);
    const backend = asWasmBackend(args.backend);
    const dq = backend.makeOutput(q.shape, 'float32');
    const dk = backend.makeOutput(k.shape, 'float32');
    const dv = backend.makeOutput(v.shape, 'float32');
    const dg = gate ? backend.makeOutput(gate.shape, 'float32') : null;
    const heap = wasmHeapF32(backend);
    const off = (t: TensorInfo | null) => (t ? wasmOffset4(backend, t) : 0);
    fns.attentionBackward(
      heap,
      dimsOf(l),
      Float64Array.from([off(dy), off(q), off(k), off(v), off(p), off(ctx), off(gate), off(dq), off(dk), off(dv), off(dg), scale]),
    );
    return dg ? [dq, dk, dv, dg] : [dq, dk, dv];
  };
}

/** True when both attention kernels are registered for the active backend. */
export function hasFusedAttention(): boolean {
  const b = tf.getBackend();
  return tf.getKernel(ATTENTION_KERNEL, b) !== undefined && tf.getKernel(ATTENTION_GRAD_KERNEL, b) !== undefined;
}

/** Whether fusedAttention takes these shapes (q [B, Tq, h*dHead], k/v [B, Tk, h*dHead]). */
export function fusedAttentionSupports(
  qShape: readonly number[],
  kShape: readonly number[],
  heads: number,
  bias: tf.Tensor | null,
  gate: tf.Tensor | null,
): boolean {
  if ((bias && bias.dtype !== 'float32') || (gate && gate.dtype !== 'float32')) return false;
  return layoutOf(qShape, kShape, heads, bias?.shape ?? null, gate?.shape ?? null) !== null;
}

/**
 * gate * softmax(scale q k^T + bias) v per head, q [B, Tq, h*dHead], k and v [B, Tk, h*dHead] -> [B, Tq,
 * h*dHead], with gradients for q, k, v and the gate. Needs hasFusedAttention() and fusedAttentionSupports().
 * `noGrad` (inference only): the same kernel without its gradient wrapper (tf.customGrad costs about as
 * much as the kernel at analysis shapes), so the same numbers and no gradient.
 */
export function fusedAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  bias: tf.Tensor | null,
  gate: tf.Tensor | null,
  heads: number,
  scale: number,
  noGrad = false,
): tf.Tensor3D {
  const attrs = { heads, scale };
  const run = (inputs: Record<string, tf.Tensor>) => tf.engine().runKernel(ATTENTION_KERNEL, inputs as unknown as tf.NamedTensorMap, attrs) as tf.Tensor[];
  const back = (inputs: Record<string, tf.Tensor>) =>
    tf.engine().runKernel(ATTENTION_GRAD_KERNEL, inputs as unknown as tf.NamedTensorMap, attrs) as tf.Tensor[];
  const withBias = (m: Record<string, tf.Tensor>) => (bias ? { ...m, bias } : m);
  if (noGrad) {
    const [out, ...rest] = run(withBias(gate === null ? { q, k, v } : { q, k, v, gate }));
    tf.dispose(rest);
    return out as tf.Tensor3D;
  }
  if (gate === null) {
    const f = tf.customGrad(((qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor, save: tf.GradSaveFunc) => {
      const [out, p] = run(withBias({ q: qi, k: ki, v: vi }));
      save([qi, ki, vi, p!]);
      return {
        value: out!,
        gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => back({ dy, q: s[0]!, k: s[1]!, v: s[2]!, p: s[3]! }),
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(q, k, v) as tf.Tensor3D;
  }
  const f = tf.customGrad(((qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor, gi: tf.Tensor, save: tf.GradSaveFunc) => {
    const [out, p, ctx] = run(withBias({ q: qi, k: ki, v: vi, gate: gi }));
    save([qi, ki, vi, p!, ctx!, gi]);
    return {
      value: out!,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => back({ dy, q: s[0]!, k: s[1]!, v: s[2]!, p: s[3]!, ctx: s[4]!, gate: s[5]! }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(q, k, v, gate) as tf.Tensor3D;
}
