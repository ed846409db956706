/**
 * Structured pruning of FFN hidden units: unit j of a layer's FFN relu(x W1 + b1) W2 + b2 owns column j of
 * W1 [d, dFF], entry j of b1 and row j of W2 [dFF, d]. Its score is the L2 norm of those in + out weights,
 * sqrt(|W1[:, j]|² + |W2[j, :]|²) (b1 excluded). The k = round(fraction · n) lowest-scoring units are
 * removed per layer, or over all layers at once (`global`, never emptying a layer); ties fall to the
 * earlier layer (encoder before decoder, by index), then the lower unit index. Masking a unit (zeroing its
 * column, bias and row) and deleting it give the same function, so the shrunk model (per-layer widths in
 * `model.ffnWidths`) computes what the masked model computes. Pure array surgery on copies.
 */
import type { ModelConfig } from '../config/schema.js';
import { ffnWidth } from '../model/transformer.js';
import type { NamedArrays } from '../io/checkpoint.js';
import { CheckpointError, ConfigError } from '../util/errors.js';
import { type SparsityScope, checkFraction } from '../compress/magnitude-pruning.js';

export interface FfnPruningOptions {
  /** fraction of the FFN hidden units to remove, in [0, 1) */
  fraction: number;
  /** default `per-layer` */
  scope?: SparsityScope;
}

/** One FFN: `enc.0.ffn`, `dec.1.ffn`, ... with the units (current positions) it loses. */
export interface FfnLayerPlan {
  prefix: string;
  stack: 'encoder' | 'decoder';
  layer: number;
  width: number;
  removed: number[];
}

export interface FfnPruningReport {
  fraction: number;
  scope: SparsityScope;
  before: number;
  after: number;
  widthsBefore: { encoder: number[]; decoder: number[] };
  widthsAfter: { encoder: number[]; decoder: number[] };
}

function ffnLayers(c: ModelConfig): Array<Omit<FfnLayerPlan, 'removed'>> {
  const out: Array<Omit<FfnLayerPlan, 'removed'>> = [];
  for (let l = 0; l < c.encoderLayers; l++) out.push({ prefix: `enc.${l}.ffn`, stack: 'encoder', layer: l, width: ffnWidth(c, 'encoder', l) });
  for (let l = 0; l < c.decoderLayers; l++) out.push({ prefix: `dec.${l}.ffn`, stack: 'decoder', layer: l, width: ffnWidth(c, 'decoder', l) });
  return out;
}

function tensorOf(params: NamedArrays, name: string, shape: number[]): Float32Array {
  const a = params[name];
  if (!a) throw new CheckpointError(`FFN pruning: missing tensor ${name}`);
  if (a.shape.join(',') !== shape.join(',')) throw new CheckpointError(`FFN pruning: ${name} has shape [${a.shape}], expected [${shape}]`);
  return a.data;
}

/** L2 norm of each hidden unit's in + out weights: sqrt(sum_i W1[i,j]² + sum_o W2[j,o]²), per unit j. */
export function ffnUnitScores(params: NamedArrays, prefix: string, d: number, width: number): Float64Array {
  const w1 = tensorOf(params, `${prefix}.w1`, [d, width]);
  const w2 = tensorOf(params, `${prefix}.w2`, [width, d]);
  const s = new Float64Array(width);
  for (let i = 0; i < d; i++) for (let j = 0; j < width; j++) s[j] += w1[i * width + j]! ** 2;
  for (let j = 0; j < width; j++) for (let o = 0; o < d; o++) s[j] += w2[j * d + o]! ** 2;
  for (let j = 0; j < width; j++) s[j] = Math.sqrt(s[j]!);
  return s;
}

/** Which units of every FFN layer to remove (see the module header for the rule and ties). */
export function planFfnPruning(params: NamedArrays, c: ModelConfig, o: FfnPruningOptions): FfnLayerPlan[] {
  checkFraction(o.fraction, '--ffn-prune');
  const scope = o.scope ?? 'per-layer';
  const layers = ffnLayers(c);
  const scores = layers.map((L) => ffnUnitScores(params, L.prefix, c.dModel, L.width));
  const plans: FfnLayerPlan[] = layers.map((L) => ({ ...L, removed: [] }));
  const byScore = (s: Float64Array) => Array.from(s.keys()).sort((a, b) => s[a]! - s[b]! || a - b);
  if (scope === 'per-layer') {
    plans.forEach((p, i) => {
      const k = Math.round(o.fraction * p.width);
      p.removed = byScore(scores[i]!)
        .slice(0, k)
        .sort((a, b) => a - b);
    });
    return plans;
  }
  const total = layers.reduce((a, L) => a + L.width, 0);
  const k = Math.round(o.fraction * total);
  if (k > total - layers.length)
    throw new ConfigError([
      `--ffn-prune: ${o.fraction} globally removes ${k} of ${total} units, which would empty a layer (at most ${total - layers.length} can go: every layer keeps one)`,
    ]);
  const all: Array<{ s: number; layer: number; unit: number }> = [];
  scores.forEach((s, layer) => s.forEach((v, unit) => all.push({ s: v, layer, unit })));
  all.sort((a, b) => a.s - b.s || a.layer - b.layer || a.unit - b.unit);
  let taken = 0;
  for (const u of all) {
    if (taken === k) break;
    const p = plans[u.layer]!;
    if (p.removed.length === p.width - 1) continue; // a layer keeps at least one unit
    p.removed.push(u.unit);
    taken++;
  }
  for (const p of plans) p.removed.sort((a, b) => a - b);
  return plans;
}

/** A copy of `params` with the removed units masked: W1 column, b1 entry and W2 row set to zero. */
export function maskFfnUnits(params: NamedArrays, c: ModelConfig, plans: readonly FfnLayerPlan[]): NamedArrays {
  const out: NamedArrays = {};
  for (const [n, a] of Object.entries(params)) out[n] = { shape: a.shape.slice(), data: Float32Array.from(a.data) };
  const d = c.dModel;
  for (const p of plans) {
    const w1 = out[`${p.prefix}.w1`]!.data;
    const b1 = out[`${p.prefix}.b1`]!.data;
    const w2 = out[`${p.prefix}.w2`]!.data;
    for (const j of p.removed) {
      for (let i = 0; i < d; i++) w1[i * p.width + j] = 0;
      b1[j] = 0;
      w2.fill(0, j * d, (j + 1) * d);
    }
  }
  return out;
}

/** Delete the removed units: the shrunk params and the config with per-layer `ffnWidths`. */
export function pruneFfnUnits(
  params: NamedArrays,
  c: ModelConfig,
  plans: readonly FfnLayerPlan[],
): { config: ModelConfig; params: NamedArrays; report: Omit<FfnPruningReport, 'fraction' | 'scope'> } {
  const d = c.dModel;
  const out: NamedArrays = {};
  for (const [n, a] of Object.entries(params)) out[n] = { shape: a.shape.slice(), data: Float32Array.from(a.data) };
  const widthsAfter = { encoder: [] as number[], decoder: [] as number[] };
  const widthsBefore = { encoder: [] as number[], decoder: [] as number[] };
  for (const p of plans) {
    const gone = new Set(p.removed);
    const keep = Array.from({ length: p.width }, (_, j) => j).filter((j) => !gone.has(j));
    const w = keep.length;
    const w1 = tensorOf(params, `${p.prefix}.w1`, [d, p.width]);
    const b1 = tensorOf(params, `${p.prefix}.b1`, [p.width]);
    const w2 = tensorOf(params, `${p.prefix}.w2`, [p.width, d]);
    const nw1 = new Float32Array(d * w);
    for (let i = 0; i < d; i++) keep.forEach((j, jj) => (nw1[i * w + jj] = w1[i * p.width + j]!));
    const nw2 = new Float32Array(w * d);
    keep.forEach((j, jj) => nw2.set(w2.subarray(j * d, (j + 1) * d), jj * d));
    out[`${p.prefix}.w1`] = { shape: [d, w], data: nw1 };
    out[`${p.prefix}.b1`] = { shape: [w], data: Float32Array.from(keep, (j) => b1[j]!) };
    out[`${p.prefix}.w2`] = { shape: [w, d], data: nw2 };
    widthsBefore[p.stack].push(p.width);
    widthsAfter[p.stack].push(w);
  }
  const sum = (x: { encoder: number[]; decoder: number[] }) => [...x.encoder, ...x.decoder].reduce((a, b) => a + b, 0);
  const uniform = [...widthsAfter.encoder, ...widthsAfter.decoder].every((w) => w === c.dFF);
  const config: ModelConfig = { ...c, ffnWidths: uniform ? null : widthsAfter };
  return { config, params: out, report: { before: sum(widthsBefore), after: sum(widthsAfter), widthsBefore, widthsAfter } };
}
