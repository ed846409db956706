/**
 * Physical head pruning (Voita et al. 2019, §6; the weight surgery of HF's `prune_linear_layer`, see
 * shared/notes/anchor-pruning-peers.md §B.4): a head mask with ORIGINAL head ids is applied to a
 * (possibly already pruned, possibly gated) Transformer by deleting the pruned heads' dHead-wide column
 * blocks of W_Q, W_K, W_V and their biases, and the matching row blocks of W_O; b_O stays, so a layer left
 * with no heads still adds it (attention.ts). Before slicing, each kept head's deterministic test-time
 * gate is folded into its rows of W_O (context·g·W_O = context·(g·W_O)), so the pruned model computes what
 * the deterministic gated model with the mask applied computes. Pure array surgery on copies: the source
 * model is left untouched and nothing here allocates tensors beyond a read of the gates.
 * Layouts: w* are [dIn, dOut] (x @ W), head j of a layer occupies columns j*dHead..(j+1)*dHead of
 * wq/wk/wv/bq/bk/bv and rows j*dHead..(j+1)*dHead of wo.
 */
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_TYPES, type AttentionType, headKey } from '../config/head-id.js';
import type { ModelConfig } from '../config/schema.js';
import type { HeadGates } from '../gates/head-gates.js';
import { type PerHead, headLayout, headsPerLayer, originalMaskShape } from '../config/head-layout.js';
import { type GateTensors, Transformer, initParams } from '../model/transformer.js';
import type { ParamStore } from '../model/params.js';
import type { NamedArrays } from '../io/checkpoint.js';
import { CheckpointError } from '../util/errors.js';
import { Rng } from '../util/random.js';
import { type HeadMask, maskFromKeptSets, maskToKeptSets, validateMask } from '../io/head-mask.js';

/** A head whose deterministic gate is neither 0 nor 1 (its value matters beyond keep/remove). */
export interface FractionalGate {
  /** original-id key, e.g. `enc-self.3.5` */
  key: string;
  logAlpha: number;
  /** deterministic test-time gate clip(sigmoid(logAlpha)(zeta - gamma) + gamma, 0, 1) */
  testGate: number;
  /** kept by the paper's rule P(g = 1) > P(g = 0) */
  isKept: boolean;
}

/** A gate value multiplied into a kept head's rows of W_O. */
export interface FoldedGate {
  key: string;
  gate: number;
}

export interface PrunedModel {
  /** the model config with `keptHeads` (original ids per layer); null when nothing is pruned */
  config: ModelConfig;
  /** every parameter of the pruned model (gates excluded: they are folded) */
  params: NamedArrays;
  /** what the pruned model keeps, by original ids: the requested mask composed with the current layout */
  mask: HeadMask;
  /** gate values folded into W_O (values equal to 1 are not listed: folding them changes nothing) */
  foldedGates: FoldedGate[];
  /** things the caller should tell the user (heads kept with gate 0, heads already pruned, ...) */
  notes: string[];
  parameters: { before: number; after: number };
}

/** Deterministic gate values per stack, per layer, per POSITION (null: that stack is not gated). */
function readTestGates(gates: HeadGates, c: ModelConfig): Partial<Record<AttentionType, Float32Array[]>> {
  const shape = headsPerLayer(c);
  for (const stack of gates.config.attention) {
    const g = gates.shape[stack];
    if (g.length !== shape[stack].length || g.some((h, l) => h !== shape[stack][l])) {
      throw new CheckpointError(`gates: ${stack} has [${g.join(', ')}] heads per layer, the model has [${shape[stack].join(', ')}]`);
    }
  }
  const values = gates.testGates();
  try {
    const out: Partial<Record<AttentionType, Float32Array[]>> = {};
    for (const stack of ATTENTION_TYPES) {
      const list = values[stack];
      if (!list) continue;
      out[stack] = list.map((t, l) => (t ? Float32Array.from(t.dataSync()) : new Float32Array(shape[stack][l]!)));
    }
    return out;
  } finally {
    for (const list of Object.values(values)) for (const t of list ?? []) t?.dispose();
  }
}

/**
 * The paper's test-time rule (Voita et al. 2019, §6.1): keep a head iff P(g = 1) > P(g = 0), i.e. iff
 * logAlpha exceeds `argmaxOpenThreshold` (0 for the default stretch limits); for gates trained with an
 * exact head budget (`gates.targetHeads`), the budget's heads by P(open). Both come from
 * `HeadGates.keptPositions`, so the mask equals the one `heads prune` writes. Heads of ungated stacks are
 * kept. Positions of an already-pruned model are mapped to original ids through `config.keptHeads`, and
 * heads the model has already lost are listed as removed. Also returns every head whose deterministic
 * gate is strictly between 0 and 1: for a kept head that value is folded into W_O on export; for a removed
 * one it is the part of the gated model's output that binarisation discards.
 */
export function deriveMaskFromGates(gates: HeadGates, config: ModelConfig, source = 'gates'): { mask: HeadMask; fractional: FractionalGate[] } {
  const layout = headLayout(config).originalIds;
  const testGates = readTestGates(gates, config);
  const keptPositions = gates.keptPositions();
  const kept: PerHead = { 'enc-self': [], 'dec-self': [], 'dec-enc': [] };
  const fractional: FractionalGate[] = [];
  for (const stack of ATTENTION_TYPES) {
    layout[stack].forEach((ids, layer) => {
      const variable = gates.variables.get(`gate.${stack}.${layer}`);
      if (!gates.config.attention.includes(stack) || !variable || ids.length === 0) {
        kept[stack].push([...ids]);
        return;
      }
      const logAlpha = variable.dataSync();
      const tg = testGates[stack]![layer]!;
      const keepPositions = new Set(keptPositions[stack][layer] ?? []);
      const keep: number[] = [];
      ids.forEach((id, position) => {
        const la = logAlpha[position]!;
        const isKept = keepPositions.has(position);
        if (isKept) keep.push(id);
        const g = tg[position]!;
        if (g > 0 && g < 1) fractional.push({ key: headKey({ stack, layer, head: id }), logAlpha: la, testGate: g, isKept });
      });
      kept[stack].push(keep);
    });
  }
  return { mask: maskFromKeptSets(kept, originalMaskShape(config), source), fractional };
}

/**
 * What the exported model must reproduce: the gate tensors that turn the ORIGINAL model (with its own
 * current layout) into the masked model, i.e. deterministic gate (1 for ungated stacks) times the mask's
 * 0/1 per head position. The caller disposes the tensors (`disposeGates` in model/gate-tensors.ts).
 */
export function maskedGateTensors(model: Transformer, gates: HeadGates | null, mask: HeadMask, sourceName = mask.source): GateTensors {
  const shape = originalMaskShape(model.config);
  validateMask(mask, shape, sourceName);
  const layout = headLayout(model.config).originalIds;
  const keptSets = maskToKeptSets(mask, shape);
  const testGates = gates ? readTestGates(gates, model.config) : {};
  const out: Partial<Record<AttentionType, Array<tf.Tensor | null>>> = {};
  for (const stack of ATTENTION_TYPES) {
    out[stack] = layout[stack].map((ids, layer) => {
      if (ids.length === 0) return null;
      const keep = new Set(keptSets[stack][layer]);
      const g = testGates[stack]?.[layer];
      return tf.tensor1d(
        ids.map((id, position) => (keep.has(id) ? (g ? g[position]! : 1) : 0)),
        'float32',
      );
    });
  }
  return out;
}

/** Which attention a parameter name belongs to (`enc.3.self.wq` -> enc-self layer 3), or null. */
function attentionOf(name: string): { stack: AttentionType; layer: number; part: string } | null {
  const m = /^(enc|dec)\.(\d+)\.(self|cross)\.(wq|wk|wv|bq|bk|bv|wo|bo)$/.exec(name);
  if (!m) return null;
  const stack: AttentionType = m[1] === 'enc' ? 'enc-self' : m[3] === 'self' ? 'dec-self' : 'dec-enc';
  return { stack, layer: Number(m[2]), part: m[4]! };
}

/**
 * Keep the column blocks `positions` (each `dHead` wide) of a row-major [rows, h*dHead] matrix (or of a
 * [h*dHead] bias with rows = 1).
 */
function keepColumnBlocks(data: Float32Array, rows: number, h: number, dHead: number, positions: readonly number[]): Float32Array {
  const width = h * dHead;
  const out = new Float32Array(rows * positions.length * dHead);
  let o = 0;
  for (let r = 0; r < rows; r++) {
    for (const p of positions) {
      const start = r * width + p * dHead;
      out.set(data.subarray(start, start + dHead), o);
      o += dHead;
    }
  }
  return out;
}

/** Keep the row blocks `positions` (each `dHead` rows) of a row-major [h*dHead, cols] matrix, scaled. */
function keepRowBlocks(data: Float32Array, cols: number, dHead: number, positions: readonly number[], scales: readonly number[]): Float32Array {
  const out = new Float32Array(positions.length * dHead * cols);
  positions.forEach((p, i) => {
    const block = data.subarray(p * dHead * cols, (p + 1) * dHead * cols);
    const s = scales[i]!;
    if (s === 1) out.set(block, i * dHead * cols);
    // float64 product of two float32 values is exact; the Float32Array store rounds it once
    else for (let j = 0; j < block.length; j++) out[i * dHead * cols + j] = block[j]! * s;
  });
  return out;
}

function countParams(p: NamedArrays): number {
  let n = 0;
  for (const v of Object.values(p)) n += v.data.length;
  return n;
}

/**
 * Apply `mask` (original head ids, validated against the original shape; MaskError names the entry) to
 * `model`. With `gates`, each kept head's deterministic gate is folded into W_O first. Works on already
 * pruned models: a head survives iff the model still has it and the mask keeps it (HF's union of pruned
 * heads), so applying the same mask twice equals applying it once, and pruning m1 then m2 equals pruning
 * once with composeMasks(m1, m2).
 */
export function applyMaskToModel(model: Transformer, gates: HeadGates | null, mask: HeadMask, opts: { sourceName?: string } = {}): PrunedModel {
  const c = model.config;
  const shape = originalMaskShape(c);
  validateMask(mask, shape, opts.sourceName ?? mask.source);
  const layout = headLayout(c).originalIds;
  const requested = maskToKeptSets(mask, shape);
  const notes: string[] = [];
  const kept: PerHead = { 'enc-self': [], 'dec-self': [], 'dec-enc': [] };
  const alreadyPruned: string[] = [];
  for (const stack of ATTENTION_TYPES) {
    layout[stack].forEach((ids, layer) => {
      const want = new Set(requested[stack][layer]);
      const have = new Set(ids);
      kept[stack].push(ids.filter((id) => want.has(id)));
      for (const id of want) if (!have.has(id)) alreadyPruned.push(headKey({ stack, layer, head: id }));
    });
  }
  if (alreadyPruned.length) {
    notes.push(
      `the mask keeps ${alreadyPruned.length} head(s) the model had already pruned (they stay pruned): ${alreadyPruned.slice(0, 10).join(', ')}${alreadyPruned.length > 10 ? ', ...' : ''}`,
    );
  }

  const testGates = gates ? readTestGates(gates, c) : {};
  const dHead = model.dHead;
  const d = c.dModel;
  const foldedGates: FoldedGate[] = [];
  const zeroGateKept: string[] = [];
  // per attention: the positions to keep and the gate of each
  const plan = new Map<string, { positions: number[]; scales: number[]; h: number }>();
  for (const stack of ATTENTION_TYPES) {
    layout[stack].forEach((ids, layer) => {
      const keepSet = new Set(kept[stack][layer]);
      const positions: number[] = [];
      const scales: number[] = [];
      ids.forEach((id, position) => {
        if (!keepSet.has(id)) return;
        const g = testGates[stack]?.[layer]?.[position] ?? 1;
        positions.push(position);
        scales.push(g);
        const key = headKey({ stack, layer, head: id });
        if (g !== 1) foldedGates.push({ key, gate: g });
        if (g === 0) zeroGateKept.push(key);
      });
      plan.set(`${stack}.${layer}`, { positions, scales, h: ids.length });
    });
  }
  if (zeroGateKept.length) {
    notes.push(
      `the mask keeps ${zeroGateKept.length} head(s) whose deterministic gate is 0: they are kept with zeroed W_O rows (they contribute nothing; a mask derived from the gates would remove them): ${zeroGateKept.slice(0, 10).join(', ')}${zeroGateKept.length > 10 ? ', ...' : ''}`,
    );
  }

  const params: NamedArrays = {};
  let before = 0;
  for (const [name, v] of model.params.vars) {
    before += v.size;
    const data = v.dataSync() as Float32Array;
    const at = attentionOf(name);
    if (!at) {
      params[name] = { shape: v.shape.slice(), data: Float32Array.from(data) };
      continue;
    }
    const p = plan.get(`${at.stack}.${at.layer}`)!;
    const hNew = p.positions.length;
    switch (at.part) {
      case 'wq':
      case 'wk':
      case 'wv':
        params[name] = { shape: [d, hNew * dHead], data: keepColumnBlocks(data, d, p.h, dHead, p.positions) };
        break;
      case 'bq':
      case 'bk':
      case 'bv':
        params[name] = { shape: [hNew * dHead], data: keepColumnBlocks(data, 1, p.h, dHead, p.positions) };
        break;
      case 'wo':
        params[name] = { shape: [hNew * dHead, d], data: keepRowBlocks(data, d, dHead, p.positions, p.scales) };
        break;
      default: // bo: kept whole, as HF's prune_linear_layer(dim=1) keeps the full bias
        params[name] = { shape: v.shape.slice(), data: Float32Array.from(data) };
    }
  }

  const isPruned = ATTENTION_TYPES.some((s) => kept[s].some((ids) => ids.length !== c.heads));
  const config: ModelConfig = { ...c, keptHeads: isPruned ? { 'enc-self': kept['enc-self'], 'dec-self': kept['dec-self'], 'dec-enc': kept['dec-enc'] } : null };
  return {
    config,
    params,
    mask: maskFromKeptSets(kept, shape, mask.source),
    foldedGates,
    notes,
    parameters: { before, after: countParams(params) },
  };
}

/**
 * A Transformer holding `params` (e.g. a `PrunedModel`): every name and shape must match what `config`
 * builds, else a CheckpointError lists the first mismatches.
 */
export function createTransformerFromArrays(config: ModelConfig, vocabSize: number, params: NamedArrays): Transformer {
  // initParams' tf.variable(tensor) calls leave the initial tensors registered; under tidy they are
  // released and the variables (which tidy never disposes) keep their data
  let store!: ParamStore;
  tf.tidy(() => {
    store = initParams(config, vocabSize, new Rng(0));
  });
  const problems: string[] = [];
  for (const [name, v] of store.vars) {
    const a = params[name];
    if (!a) problems.push(`missing tensor ${name}`);
    else if (a.shape.join(',') !== v.shape.join(',')) problems.push(`${name}: shape [${a.shape.join(', ')}], the config needs [${v.shape.join(', ')}]`);
  }
  for (const name of Object.keys(params)) if (!store.has(name)) problems.push(`unexpected tensor ${name}`);
  if (problems.length) {
    store.dispose();
    throw new CheckpointError(
      `parameters do not fit the model config: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`,
    );
  }
  for (const name of store.names()) store.assign(name, params[name]!.shape, params[name]!.data);
  return new Transformer(config, vocabSize, store);
}

/** Heads per stack (summed over layers) of a model config. */
export function headCounts(c: ModelConfig): Record<AttentionType, number> {
  const s = headsPerLayer(c);
  return {
    'enc-self': s['enc-self'].reduce((a, b) => a + b, 0),
    'dec-self': s['dec-self'].reduce((a, b) => a + b, 0),
    'dec-enc': s['dec-enc'].reduce((a, b) => a + b, 0),
  };
}
