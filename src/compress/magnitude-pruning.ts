/**
 * Unstructured magnitude pruning (Han et al. 2015; the one-shot baseline of Zhu & Gupta 2017 and Gale
 * et al. 2019): zero the k = round(sparsity · n) weights of smallest |w|, over all prunable matrices at
 * once (`global`) or within each matrix (`per-layer`: every matrix gets the same sparsity). Prunable
 * matrices are the linear maps (attention w{q,k,v,o}, FFN w1/w2, an untied `out.proj`); embeddings only
 * with `includeEmbeddings` (default off); biases, layer norms and gates never. Ties are broken
 * deterministically: by |w|, then by tensor name (byte order), then by element index. Pure array
 * functions on NamedArrays ([dIn, dOut] row-major, the toolkit's layout); nothing here allocates tensors.
 */
import { ConfigError } from '../util/errors.js';

/** Float32 weights by parameter name (the same shape as io/safetensors.ts's NamedArrays; compress/ imports nothing from io/). */
export type NamedArrays = Record<string, { shape: number[]; data: Float32Array }>;

export type SparsityScope = 'global' | 'per-layer';

export interface MagnitudePruningOptions {
  /** fraction of the prunable weights to zero, in [0, 1) */
  sparsity: number;
  /** default `global` */
  scope?: SparsityScope;
  /** also prune the embedding tables `emb.*` (default false) */
  includeEmbeddings?: boolean;
}

/** Per tensor: 1 keeps the weight, 0 zeroes it. */
export type WeightMasks = Record<string, Uint8Array>;

export interface MagnitudePruningReport {
  sparsity: number;
  scope: SparsityScope;
  includeEmbeddings: boolean;
  /** prunable weights, and how many were zeroed (= round(sparsity · prunable), per tensor for per-layer) */
  prunable: number;
  zeroed: number;
  /** per pruned tensor: size and zeroed count */
  tensors: Record<string, { size: number; zeroed: number }>;
}

const LINEAR_SUFFIX = /\.(wq|wk|wv|wo|w1|w2)$/;

/** Whether `name` is a matrix magnitude pruning touches. */
export function isPrunableWeight(name: string, includeEmbeddings = false): boolean {
  if (name.startsWith('gate.')) return false;
  if (name === 'out.proj' || LINEAR_SUFFIX.test(name)) return true;
  return includeEmbeddings && name.startsWith('emb.');
}

/** Refuse a sparsity outside [0, 1), naming `flag` (e.g. `--magnitude-sparsity`). */
export function checkFraction(value: number, flag: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value >= 1) {
    throw new ConfigError([`${flag}: expected a fraction in [0, 1) (0.5 zeroes half), got ${String(value)}`]);
  }
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * The k smallest-magnitude entries among `tensors` (in the given order), as [tensor index, element index]
 * pairs packed into one ordering: ties fall to the earlier tensor, then the lower element index.
 */
function zeroSmallest(tensors: Array<{ data: Float32Array; mask: Uint8Array }>, k: number): void {
  if (k <= 0) return;
  const n = tensors.reduce((a, t) => a + t.data.length, 0);
  const abs = new Float32Array(n);
  const owner = new Uint32Array(tensors.length + 1);
  let o = 0;
  tensors.forEach((t, i) => {
    owner[i] = o;
    for (let j = 0; j < t.data.length; j++) abs[o + j] = Math.abs(t.data[j]!);
    o += t.data.length;
  });
  owner[tensors.length] = n;
  // the flat index encodes (tensor order, element index), so sorting by (|w|, flat index) is the tie rule
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => abs[a]! - abs[b]! || a - b);
  let t = 0;
  const chosen = Array.from(order.subarray(0, k)).sort((a, b) => a - b);
  for (const flat of chosen) {
    while (flat >= owner[t + 1]!) t++;
    tensors[t]!.mask[flat - owner[t]!] = 0;
  }
}

/** Masks (1 keep, 0 zero) for every prunable tensor of `params`, with the report of what they remove. */
export function magnitudePruningMasks(params: NamedArrays, o: MagnitudePruningOptions): { masks: WeightMasks; report: MagnitudePruningReport } {
  checkFraction(o.sparsity, '--magnitude-sparsity');
  const scope = o.scope ?? 'global';
  const includeEmbeddings = o.includeEmbeddings ?? false;
  const names = Object.keys(params)
    .filter((n) => isPrunableWeight(n, includeEmbeddings))
    .sort(byteOrder);
  const masks: WeightMasks = {};
  for (const n of names) masks[n] = new Uint8Array(params[n]!.data.length).fill(1);
  const entries = names.map((n) => ({ data: params[n]!.data, mask: masks[n]! }));
  if (scope === 'global') zeroSmallest(entries, Math.round(o.sparsity * entries.reduce((a, e) => a + e.data.length, 0)));
  else for (const e of entries) zeroSmallest([e], Math.round(o.sparsity * e.data.length));
  const tensors: MagnitudePruningReport['tensors'] = {};
  let prunable = 0;
  let zeroed = 0;
  for (const n of names) {
    const m = masks[n]!;
    let z = 0;
    for (let i = 0; i < m.length; i++) z += 1 - m[i]!;
    tensors[n] = { size: m.length, zeroed: z };
    prunable += m.length;
    zeroed += z;
  }
  return { masks, report: { sparsity: o.sparsity, scope, includeEmbeddings, prunable, zeroed, tensors } };
}

/** A copy of `params` with the masked-out weights set to 0 (tensors without a mask are copied unchanged). */
export function applyWeightMasks(params: NamedArrays, masks: WeightMasks): NamedArrays {
  const out: NamedArrays = {};
  for (const [name, a] of Object.entries(params)) {
    const data = Float32Array.from(a.data);
    const m = masks[name];
    if (m) for (let i = 0; i < data.length; i++) if (!m[i]) data[i] = 0;
    out[name] = { shape: a.shape.slice(), data };
  }
  return out;
}

/** One-shot magnitude pruning: the pruned copy of `params` and the report. */
export function magnitudePrune(params: NamedArrays, o: MagnitudePruningOptions): { params: NamedArrays; masks: WeightMasks; report: MagnitudePruningReport } {
  const { masks, report } = magnitudePruningMasks(params, o);
  return { params: applyWeightMasks(params, masks), masks, report };
}
