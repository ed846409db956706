/**
 * The toolkit's one versioned head-mask format (`heads.head-mask`, version 1), plus conversions to the
 * two formats of the peers (shared/notes/anchor-pruning-peers.md):
 *   - Hugging Face `prune_heads` / `config.pruned_heads`: `{ "<layer>": [heads to prune] }` (§B.4), one
 *     dict per attention type, JSON string keys;
 *   - Michel et al. 2019 text descriptors `E:3:1,5 A:6:2 D:1:1` (§A.3): 1-based layer:heads to prune,
 *     E = enc-self, A = enc-dec (`dec-enc`), D = dec-self.
 *
 * A mask file:
 *   { "format": "heads.head-mask", "version": 1, "source": "gates",
 *     "model": { "headsPerLayer": { "enc-self": [8, 8, 8, 8, 8, 8], "dec-self": [...], "dec-enc": [...] } },
 *     "stacks": { "enc-self": { "layers": [ { "kept": [0, 2, 5], "removed": [1, 3, 4, 6, 7] }, ... ] } } }
 *
 * Rules:
 *   - Head ids are ORIGINAL ids: the index of the head in the unpruned model, 0-based. Every layer
 *     entry lists every original head exactly once, in `kept` or in `removed`, sorted ascending.
 *   - A stack missing from `stacks` is untouched (all its heads kept).
 *   - The shape a mask is checked against is always the ORIGINAL heads per layer (`model.headsPerLayer`, optional in the file,
 *     checked when present).
 *
 * Already-pruned models. A physically pruned model stores, per stack and layer, the sorted list of the
 * original head ids that remain (its "layout"); that layout is exactly `maskToKeptSets(mask, shape)` of
 * the mask that produced it, and `maskFromKeptSets(layout, shape)` turns it back into a mask. The head at
 * position j of a pruned layer is original head `layout[stack][layer][j]` (survivors keep their order,
 * as HF's `find_pruneable_heads_and_indices` shifts ids). Gates, importance scores and masks computed on
 * the pruned model are reported under those original ids, so pruning again is `composeMasks(current,
 * next)`: a head survives iff both keep it. Composition is idempotent (applying the same mask twice
 * equals applying it once) and commutative in its kept sets. `validateMask(..., { current })` refuses a
 * mask that would keep a head the model has already lost.
 */
import { ATTENTION_TYPES, isAttentionType, type AttentionType, type HeadId } from '../config/head-id.js';
import type { ModelConfig } from '../config/schema.js';
import { type HeadShape, type PerHead, headLayout } from '../config/head-layout.js';
import { MaskError } from '../util/errors.js';
import { readJsonFile, writeFileAtomic } from '../util/fs.js';

export const HEAD_MASK_FORMAT = 'heads.head-mask';
export const HEAD_MASK_VERSION = 1;

export interface HeadMaskLayer {
  kept: number[];
  removed: number[];
}

export interface HeadMaskStack {
  layers: HeadMaskLayer[];
}

export interface HeadMask {
  format: typeof HEAD_MASK_FORMAT;
  version: typeof HEAD_MASK_VERSION;
  /** Where the mask came from, e.g. 'gates', 'importance step 3', 'manual'. */
  source: string;
  /** The original model the mask was made for. */
  model?: { headsPerLayer: HeadShape };
  stacks: Partial<Record<AttentionType, HeadMaskStack>>;
}

/** HF `pruned_heads`-style dicts, one per attention type: layer (string key) → original heads to prune. */
export type HfPruneDicts = Partial<Record<AttentionType, Record<string, number[]>>>;

export interface ValidateOptions {
  /** The model's current layout as a mask (already-pruned model): kept heads must still exist. */
  current?: HeadMask;
}

const MAX_LISTED_PROBLEMS = 20;

const DESCRIPTOR_LETTER: Record<AttentionType, string> = { 'enc-self': 'E', 'dec-enc': 'A', 'dec-self': 'D' };
const DESCRIPTOR_STACK: Record<string, AttentionType> = { E: 'enc-self', A: 'dec-enc', D: 'dec-self' };
const DESCRIPTOR_ORDER: readonly AttentionType[] = ['enc-self', 'dec-enc', 'dec-self'];

// ---------------------------------------------------------------------------------------------------
// Small helpers

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function ascending(a: number[]): number[] {
  return [...a].sort((x, y) => x - y);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isHeadIndex(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0;
}

function describeValue(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(x);
  if (Array.isArray(x)) return 'an array';
  if (x === null) return 'null';
  if (typeof x === 'object') return 'an object';
  return String(x);
}

function throwProblems(sourceName: string, problems: string[]): void {
  if (problems.length === 0) return;
  const lines = problems.slice(0, MAX_LISTED_PROBLEMS).map((p) => `${sourceName}: ${p}`);
  if (problems.length > MAX_LISTED_PROBLEMS) lines.push(`... and ${problems.length - MAX_LISTED_PROBLEMS} more`);
  throw new MaskError(lines.length === 1 ? lines[0]! : `${sourceName}: ${problems.length} problems in the head mask:\n  ${lines.join('\n  ')}`);
}

function checkShape(shape: HeadShape): void {
  for (const stack of ATTENTION_TYPES) {
    const layers = shape[stack];
    if (!Array.isArray(layers) || !layers.every((h) => isHeadIndex(h))) {
      throw new RangeError(`mask shape: ${stack} must be an array of non-negative head counts, got ${JSON.stringify(layers)}`);
    }
  }
}

function sameShape(a: HeadShape, b: HeadShape): boolean {
  return ATTENTION_TYPES.every((s) => a[s].length === b[s].length && a[s].every((h, i) => h === b[s][i]));
}

// ---------------------------------------------------------------------------------------------------
// Validation

/** Structural problems of a parsed-JSON value (no model needed), as `path: message` strings. */
function structuralProblems(value: unknown): string[] {
  const problems: string[] = [];
  if (!isRecord(value)) return [`expected a head-mask object, got ${describeValue(value)}`];
  for (const key of Object.keys(value)) {
    if (!['format', 'version', 'source', 'model', 'stacks'].includes(key)) problems.push(`${key}: unknown field`);
  }
  if (value.format !== HEAD_MASK_FORMAT) problems.push(`format: expected "${HEAD_MASK_FORMAT}", got ${describeValue(value.format)}`);
  if (value.version !== HEAD_MASK_VERSION) {
    const newer = typeof value.version === 'number' && value.version > HEAD_MASK_VERSION;
    problems.push(`version: expected ${HEAD_MASK_VERSION}, got ${describeValue(value.version)}${newer ? ' (written by a newer toolkit)' : ''}`);
  }
  if (typeof value.source !== 'string') problems.push(`source: expected a string, got ${describeValue(value.source)}`);
  if (value.model !== undefined) {
    const model = value.model;
    if (!isRecord(model) || !isRecord(model.headsPerLayer)) {
      problems.push('model: expected { "headsPerLayer": { "<attention type>": [heads per layer] } }');
    } else {
      for (const key of Object.keys(model)) if (key !== 'headsPerLayer') problems.push(`model.${key}: unknown field`);
      for (const [stack, counts] of Object.entries(model.headsPerLayer)) {
        if (!isAttentionType(stack)) problems.push(`model.headsPerLayer.${stack}: unknown attention type (expected ${ATTENTION_TYPES.join(', ')})`);
        else if (!Array.isArray(counts) || !counts.every(isHeadIndex)) {
          problems.push(`model.headsPerLayer.${stack}: expected an array of head counts, got ${JSON.stringify(counts)}`);
        }
      }
      for (const stack of ATTENTION_TYPES) {
        if (!(stack in model.headsPerLayer)) problems.push(`model.headsPerLayer.${stack}: missing (use [] for a stack with no layers)`);
      }
    }
  }
  if (!isRecord(value.stacks)) {
    problems.push(`stacks: expected an object keyed by attention type, got ${describeValue(value.stacks)}`);
    return problems;
  }
  for (const [stack, entry] of Object.entries(value.stacks)) {
    const path = `stacks.${stack}`;
    if (!isAttentionType(stack)) {
      problems.push(`${path}: unknown attention type (expected ${ATTENTION_TYPES.join(', ')})`);
      continue;
    }
    if (!isRecord(entry) || !Array.isArray(entry.layers)) {
      problems.push(`${path}: expected { "layers": [...] }`);
      continue;
    }
    for (const key of Object.keys(entry)) if (key !== 'layers') problems.push(`${path}.${key}: unknown field`);
    entry.layers.forEach((layer: unknown, i: number) => problems.push(...layerProblems(layer, `${path}.layers[${i}]`)));
  }
  return problems;
}

function layerProblems(layer: unknown, path: string): string[] {
  if (!isRecord(layer)) return [`${path}: expected { "kept": [...], "removed": [...] }, got ${describeValue(layer)}`];
  const problems: string[] = [];
  for (const key of Object.keys(layer)) if (key !== 'kept' && key !== 'removed') problems.push(`${path}.${key}: unknown field`);
  const seen = new Map<number, 'kept' | 'removed'>();
  for (const field of ['kept', 'removed'] as const) {
    const ids = layer[field];
    if (!Array.isArray(ids)) {
      problems.push(`${path}.${field}: expected an array of head ids, got ${describeValue(ids)}`);
      continue;
    }
    ids.forEach((id: unknown, j: number) => {
      if (!isHeadIndex(id)) {
        problems.push(`${path}.${field}[${j}]: expected a non-negative integer head id, got ${describeValue(id)}`);
        return;
      }
      const before = seen.get(id);
      if (before === field) problems.push(`${path}: head ${id} is listed twice in ${field}`);
      else if (before !== undefined) problems.push(`${path}: head ${id} is both kept and removed`);
      else seen.set(id, field);
    });
  }
  return problems;
}

/** Problems of a structurally sound mask against the model's original shape (and current layout). */
function shapeProblems(mask: HeadMask, shape: HeadShape, current?: HeadMask): string[] {
  const problems: string[] = [];
  if (mask.model && !sameShape(mask.model.headsPerLayer, shape)) {
    for (const stack of ATTENTION_TYPES) {
      const a = mask.model.headsPerLayer[stack];
      const b = shape[stack];
      if (a.length !== b.length || a.some((h, i) => h !== b[i])) {
        problems.push(`model.headsPerLayer.${stack}: the mask was made for [${a.join(', ')}], the model has [${b.join(', ')}]`);
      }
    }
  }
  for (const stack of ATTENTION_TYPES) {
    const entry = mask.stacks[stack];
    if (!entry) continue;
    const heads = shape[stack];
    const path = `stacks.${stack}.layers`;
    if (entry.layers.length > heads.length) {
      problems.push(`${path}[${heads.length}]: the model has ${heads.length} ${stack} layer${heads.length === 1 ? '' : 's'}`);
    } else if (entry.layers.length < heads.length) {
      problems.push(`${path}: the mask has ${entry.layers.length} layers, the model has ${heads.length}`);
    }
    const currentLayers = current?.stacks[stack]?.layers;
    entry.layers.forEach((layer, i) => {
      if (i >= heads.length) return;
      const h = heads[i]!;
      const where = `${path}[${i}]`;
      const listed = new Set<number>();
      for (const id of [...layer.kept, ...layer.removed]) {
        listed.add(id);
        if (id >= h) problems.push(h === 0 ? `${where}: head ${id} out of range (the layer has no heads)` : `${where}: head ${id} out of range 0..${h - 1}`);
      }
      const missing = range(h).filter((id) => !listed.has(id));
      if (missing.length > 0) {
        problems.push(`${where}: head${missing.length === 1 ? '' : 's'} ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} neither kept nor removed`);
      }
      const cur = currentLayers?.[i];
      if (cur) {
        const lost = layer.kept.filter((id) => cur.removed.includes(id));
        if (lost.length > 0) {
          problems.push(`${where}: keeps head${lost.length === 1 ? '' : 's'} ${lost.join(', ')}, which the model has already pruned`);
        }
      }
    });
  }
  return problems;
}

function normalized(mask: HeadMask): HeadMask {
  const stacks: Partial<Record<AttentionType, HeadMaskStack>> = {};
  for (const stack of ATTENTION_TYPES) {
    const entry = mask.stacks[stack];
    if (entry) stacks[stack] = { layers: entry.layers.map((l) => ({ kept: ascending(l.kept), removed: ascending(l.removed) })) };
  }
  const hp = mask.model?.headsPerLayer;
  // key order = file field order: format, version, source, model, stacks
  return {
    format: HEAD_MASK_FORMAT,
    version: HEAD_MASK_VERSION,
    source: mask.source,
    ...(hp ? { model: { headsPerLayer: { 'enc-self': [...hp['enc-self']], 'dec-self': [...hp['dec-self']], 'dec-enc': [...hp['dec-enc']] } } } : {}),
    stacks,
  };
}

/**
 * Check `value` (typically parsed JSON) as a head mask; with `shape`, also against the original model.
 * Throws a MaskError whose lines read `<sourceName>: <path>: <problem>`. Returns the mask normalised
 * (ids sorted, stacks in canonical order).
 */
export function parseHeadMask(value: unknown, sourceName: string, shape?: HeadShape, opts: ValidateOptions = {}): HeadMask {
  throwProblems(sourceName, structuralProblems(value));
  const mask = normalized(value as HeadMask);
  if (shape) {
    checkShape(shape);
    throwProblems(sourceName, shapeProblems(mask, shape, opts.current));
  }
  return mask;
}

/**
 * Throw a MaskError naming every entry of `mask` that does not fit the original model `shape`, e.g.
 * `mask.json: stacks.enc-self.layers[7]: the model has 6 enc-self layers` or
 * `mask.json: stacks.dec-enc.layers[2]: head 9 out of range 0..7`.
 */
export function validateMask(mask: HeadMask, shape: HeadShape, sourceName: string, opts: ValidateOptions = {}): void {
  parseHeadMask(mask, sourceName, shape, opts);
}

// ---------------------------------------------------------------------------------------------------
// Construction and queries

/** Every head kept, every stack present (a 0-layer stack has `layers: []`). */
export function createFullMask(shape: HeadShape, source = 'full'): HeadMask {
  checkShape(shape);
  return maskFromKeptSets({}, shape, source);
}

/**
 * A mask from the kept original head ids per layer. Stacks not in `kept` are fully kept. The result
 * lists all stacks and records `model.headsPerLayer`. Throws a MaskError on out-of-range or duplicate
 * ids and wrong layer counts.
 */
export function maskFromKeptSets(kept: Partial<PerHead>, shape: HeadShape, source: string): HeadMask {
  checkShape(shape);
  const stacks: Partial<Record<AttentionType, HeadMaskStack>> = {};
  const problems: string[] = [];
  for (const [key, layers] of Object.entries(kept)) {
    if (!isAttentionType(key)) problems.push(`stacks.${key}: unknown attention type (expected ${ATTENTION_TYPES.join(', ')})`);
    else if (!Array.isArray(layers) || !layers.every((l) => Array.isArray(l))) problems.push(`stacks.${key}: expected one array of head ids per layer`);
  }
  throwProblems(source, problems);
  for (const stack of ATTENTION_TYPES) {
    const given = kept[stack];
    const layers = given ?? shape[stack].map((h) => range(h));
    stacks[stack] = {
      layers: layers.map((ids, i) => {
        const keptIds = new Set(ids);
        return { kept: [...ids], removed: range(shape[stack][i] ?? 0).filter((id) => !keptIds.has(id)) };
      }),
    };
  }
  const mask: HeadMask = { format: HEAD_MASK_FORMAT, version: HEAD_MASK_VERSION, source, model: { headsPerLayer: shape }, stacks };
  return parseHeadMask(mask, source, shape);
}

/** Kept original ids per layer for every stack (stacks absent from the mask: all heads of `shape`). */
export function maskToKeptSets(mask: HeadMask, shape: HeadShape): PerHead {
  checkShape(shape);
  const out = {} as PerHead;
  for (const stack of ATTENTION_TYPES) {
    const entry = mask.stacks[stack];
    out[stack] = entry ? entry.layers.map((l) => ascending(l.kept)) : shape[stack].map((h) => range(h));
  }
  return out;
}

/** 0/1 multipliers per original head (index = original id), per layer, per stack. */
export function maskToGateValues(mask: HeadMask, shape: HeadShape): PerHead {
  const kept = maskToKeptSets(mask, shape);
  const out = {} as PerHead;
  for (const stack of ATTENTION_TYPES) {
    out[stack] = shape[stack].map((h, i) => {
      const k = new Set(kept[stack][i] ?? []);
      return range(h).map((id) => (k.has(id) ? 1 : 0));
    });
  }
  return out;
}

/** Whether the mask keeps an original head (stacks absent from the mask keep everything). */
export function isHeadKept(mask: HeadMask, id: HeadId): boolean {
  const entry = mask.stacks[id.stack];
  if (!entry) return true;
  const layer = entry.layers[id.layer];
  if (!layer) throw new MaskError(`${mask.source}: stacks.${id.stack} has no layer ${id.layer}`);
  if (layer.kept.includes(id.head)) return true;
  if (layer.removed.includes(id.head)) return false;
  throw new MaskError(`${mask.source}: stacks.${id.stack}.layers[${id.layer}] does not list head ${id.head}`);
}

/**
 * Number of kept heads. Stacks absent from the mask count as fully kept when `shape` is given and as 0
 * otherwise; pass `stack` to count one attention type.
 */
export function countKept(mask: HeadMask, shape?: HeadShape, stack?: AttentionType): number {
  let n = 0;
  for (const s of stack ? [stack] : ATTENTION_TYPES) {
    const entry = mask.stacks[s];
    if (entry) n += entry.layers.reduce((acc, l) => acc + l.kept.length, 0);
    else if (shape) n += shape[s].reduce((acc, h) => acc + h, 0);
  }
  return n;
}

/**
 * Apply mask `b` to a model already masked (or pruned) by `a`: a head is kept iff both keep it. Both
 * must cover the same original heads wherever both list a stack. The source becomes `a + b` (parts
 * already present are not repeated), so compose(m, m) equals m and compose(compose(base, m), m) equals
 * compose(base, m), source included.
 */
export function composeMasks(a: HeadMask, b: HeadMask): HeadMask {
  const problems: string[] = [];
  if (a.model && b.model && !sameShape(a.model.headsPerLayer, b.model.headsPerLayer)) {
    problems.push('model.headsPerLayer: the two masks were made for different models');
  }
  const stacks: Partial<Record<AttentionType, HeadMaskStack>> = {};
  for (const stack of ATTENTION_TYPES) {
    const ea = a.stacks[stack];
    const eb = b.stacks[stack];
    if (!ea || !eb) {
      const only = ea ?? eb;
      if (only) stacks[stack] = { layers: only.layers.map((l) => ({ kept: ascending(l.kept), removed: ascending(l.removed) })) };
      continue;
    }
    if (ea.layers.length !== eb.layers.length) {
      problems.push(`stacks.${stack}.layers: ${ea.layers.length} layers in "${a.source}", ${eb.layers.length} in "${b.source}"`);
      continue;
    }
    stacks[stack] = {
      layers: ea.layers.map((la, i) => {
        const lb = eb.layers[i]!;
        const all = ascending([...la.kept, ...la.removed]);
        const allB = ascending([...lb.kept, ...lb.removed]);
        if (all.length !== allB.length || all.some((id, j) => id !== allB[j])) {
          problems.push(`stacks.${stack}.layers[${i}]: "${a.source}" lists heads [${all.join(', ')}], "${b.source}" lists [${allB.join(', ')}]`);
        }
        const keptB = new Set(lb.kept);
        const kept = ascending(la.kept.filter((id) => keptB.has(id)));
        const keptSet = new Set(kept);
        return { kept, removed: all.filter((id) => !keptSet.has(id)) };
      }),
    };
  }
  throwProblems('composing head masks', problems);
  const out: HeadMask = {
    format: HEAD_MASK_FORMAT,
    version: HEAD_MASK_VERSION,
    source: composeSources(a.source, b.source),
    stacks,
  };
  const model = a.model ?? b.model;
  if (model) out.model = { headsPerLayer: model.headsPerLayer };
  return normalized(out);
}

/** The ordered union of the ' + '-joined parts: re-applying a mask does not grow the source. */
function composeSources(a: string, b: string): string {
  const parts = a.split(' + ');
  for (const p of b.split(' + ')) if (!parts.includes(p)) parts.push(p);
  return parts.join(' + ');
}

// ---------------------------------------------------------------------------------------------------
// Files

/** Read and validate a mask file (MaskError / DataError name the file and the entry). */
export function readHeadMask(path: string, shape?: HeadShape, opts: ValidateOptions = {}): HeadMask {
  const value = readJsonFile(path, 'head mask');
  return parseHeadMask(value, path, shape, opts);
}

/** Validate (structurally) and write atomically; the layer entries are kept on one line each. */
export function writeHeadMask(path: string, mask: HeadMask): void {
  const clean = parseHeadMask(mask, path);
  writeFileAtomic(path, formatHeadMask(clean));
}

/** The file text: indented JSON with each flat number array on one line. */
export function formatHeadMask(mask: HeadMask): string {
  const text = JSON.stringify(mask, null, 2);
  // Only arrays spread over several lines are collapsed; a JSON string can hold no raw newline, so text
  // inside `source` is never touched.
  return (
    text.replace(
      /\[\n[\d\s,-]*\]/g,
      (m) =>
        `[${m
          .slice(1, -1)
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0)
          .join(', ')}]`,
    ) + '\n'
  );
}

// ---------------------------------------------------------------------------------------------------
// Hugging Face `pruned_heads` dictionaries

/**
 * One `{ "<layer>": [original heads to prune] }` dict per attention type present in the mask (HF's
 * `prune_heads` argument / `config.pruned_heads`, JSON string keys); layers with nothing to prune are
 * left out, as HF does.
 */
export function maskToHfPruneDict(mask: HeadMask): HfPruneDicts {
  const out: HfPruneDicts = {};
  for (const stack of ATTENTION_TYPES) {
    const entry = mask.stacks[stack];
    if (!entry) continue;
    const dict: Record<string, number[]> = {};
    entry.layers.forEach((l, i) => {
      if (l.removed.length > 0) dict[String(i)] = ascending(l.removed);
    });
    out[stack] = dict;
  }
  return out;
}

/**
 * The inverse of `maskToHfPruneDict`. Keys must be non-negative integers written plainly ("3", not "03"
 * or "-1"); a head listed twice is pruned once (HF unions the lists as sets). All stacks are present in
 * the result.
 */
export function maskFromHfPruneDict(dicts: HfPruneDicts, shape: HeadShape, source = 'hf pruned_heads'): HeadMask {
  checkShape(shape);
  const problems: string[] = [];
  const kept: Partial<PerHead> = {};
  if (!isRecord(dicts)) throwProblems(source, [`expected an object keyed by attention type, got ${describeValue(dicts)}`]);
  for (const [stack, dict] of Object.entries(dicts as Record<string, unknown>)) {
    if (!isAttentionType(stack)) {
      problems.push(`${stack}: unknown attention type (expected ${ATTENTION_TYPES.join(', ')})`);
      continue;
    }
    if (!isRecord(dict)) {
      problems.push(`${stack}: expected { "<layer>": [heads] }, got ${describeValue(dict)}`);
      continue;
    }
    const heads = shape[stack];
    const pruned = heads.map(() => new Set<number>());
    for (const [key, ids] of Object.entries(dict)) {
      const path = `${stack}["${key}"]`;
      if (!/^(0|[1-9]\d*)$/.test(key)) {
        problems.push(`${path}: layer key must be a non-negative integer`);
        continue;
      }
      const layer = Number(key);
      if (layer >= heads.length) {
        problems.push(`${path}: layer ${layer} out of range 0..${heads.length - 1} (the model has ${heads.length} ${stack} layers)`);
        continue;
      }
      if (!Array.isArray(ids)) {
        problems.push(`${path}: expected an array of head ids, got ${describeValue(ids)}`);
        continue;
      }
      for (const id of ids as unknown[]) {
        if (!isHeadIndex(id)) problems.push(`${path}: expected non-negative integer head ids, got ${describeValue(id)}`);
        else if (id >= heads[layer]!) problems.push(`${path}: head ${id} out of range 0..${heads[layer]! - 1}`);
        else pruned[layer]!.add(id);
      }
    }
    kept[stack] = heads.map((h, i) => range(h).filter((id) => !pruned[i]!.has(id)));
  }
  throwProblems(source, problems);
  return maskFromKeptSets(kept, shape, source);
}

// ---------------------------------------------------------------------------------------------------
// Michel-style descriptors

/**
 * `E:3:1,5 A:6:2 D:1:1`: the REMOVED heads, 1-based layer and head numbers, stacks in the order E
 * (enc-self), A (dec-enc), D (dec-self), layers ascending; '' for a mask that removes nothing.
 */
export function maskToDescriptor(mask: HeadMask): string {
  const parts: string[] = [];
  for (const stack of DESCRIPTOR_ORDER) {
    const entry = mask.stacks[stack];
    if (!entry) continue;
    entry.layers.forEach((l, i) => {
      if (l.removed.length > 0)
        parts.push(
          `${DESCRIPTOR_LETTER[stack]}:${i + 1}:${ascending(l.removed)
            .map((h) => h + 1)
            .join(',')}`,
        );
    });
  }
  return parts.join(' ');
}

/**
 * Parse a descriptor (whitespace-separated `{E,A,D}:layer:head[,head...]`, 1-based, heads to remove).
 * Repeated entries for one layer are merged, as Michel's parser does (`E:1:1 E:1:2`), but a head named
 * twice is refused, as in a mask file. All stacks are present in the result.
 */
export function maskFromDescriptor(text: string, shape: HeadShape, source = `descriptor "${text.trim()}"`): HeadMask {
  checkShape(shape);
  const problems: string[] = [];
  const pruned = {} as Record<AttentionType, Array<Set<number>>>;
  for (const stack of ATTENTION_TYPES) pruned[stack] = shape[stack].map(() => new Set<number>());
  const tokens = text.split(/\s+/).filter((t) => t.length > 0);
  for (const token of tokens) {
    const m = /^([EAD]):(\d+):(\d+(?:,\d+)*)$/.exec(token);
    if (!m) {
      problems.push(`"${token}": expected {E,A,D}:layer:head[,head...] with 1-based numbers, e.g. E:3:1,5`);
      continue;
    }
    const stack = DESCRIPTOR_STACK[m[1]!]!;
    const layer = Number(m[2]);
    const n = shape[stack].length;
    if (layer < 1 || layer > n) {
      problems.push(n === 0 ? `"${token}": the model has no ${stack} layers` : `"${token}": layer ${layer} out of range 1..${n} (${stack}, 1-based)`);
      continue;
    }
    const h = shape[stack][layer - 1]!;
    for (const part of m[3]!.split(',')) {
      const head = Number(part);
      if (head < 1 || head > h) problems.push(`"${token}": head ${head} out of range 1..${h} (1-based)`);
      // as in a mask file (parseHeadMask): a head named twice is a mistake, not a request
      else if (pruned[stack][layer - 1]!.has(head - 1)) problems.push(`"${token}": head ${head} of ${DESCRIPTOR_LETTER[stack]}:${layer} is listed twice`);
      else pruned[stack][layer - 1]!.add(head - 1);
    }
  }
  throwProblems(source, problems);
  const kept: Partial<PerHead> = {};
  for (const stack of ATTENTION_TYPES) kept[stack] = shape[stack].map((h, i) => range(h).filter((id) => !pruned[stack][i]!.has(id)));
  return maskFromKeptSets(kept, shape, source);
}

/** The current layout as a mask over the original model (every head kept for an unpruned model). */
export function currentLayoutMask(c: ModelConfig, source = 'current layout'): HeadMask {
  const layout = headLayout(c);
  const kept: Partial<PerHead> = {};
  for (const stack of ATTENTION_TYPES) kept[stack] = layout.originalIds[stack].map(ascending);
  return maskFromKeptSets(kept, layout.originalShape, source);
}
