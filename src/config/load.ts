/**
 * loadConfig(path, overrides): parse what the user wrote (YAML or JSON), merge it onto the defaults, apply
 * `--set a.b=value` overrides, and validate once. Returns a readonly ResolvedConfig or throws one
 * ConfigError listing every problem as `file: dot.path: expected ..., got ...`.
 */
import YAML from 'yaml';
import { z } from 'zod';
import { existsSync, statSync, readFileSync } from 'node:fs';
import { ConfigError } from '../util/errors.js';
import { DEFAULT_CONFIG } from './defaults.js';
import { HeadsConfigSchema, type HeadsConfig, type ResolvedConfig } from './schema.js';
import { sizeProblems } from './size-check.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge: objects merge key by key, everything else (arrays included) replaces. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (isPlainObject(base) && isPlainObject(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v;
    return out;
  }
  return over === undefined ? base : over;
}

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

export function didYouMean(key: string, candidates: Iterable<string>): string {
  let best = '';
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(key.toLowerCase(), c.toLowerCase());
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return bestD <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean '${best}'?)` : '';
}

function valueAt(obj: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v); // JSON would print null
  const s = JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function dotPath(path: ReadonlyArray<PropertyKey>): string {
  return (
    path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('')
      .replace(/^\./, '') || '(root)'
  );
}

/**
 * The keys the schema accepts at `path`: through nullable, optional and default wrappers, a record's values,
 * a list's items, the object member of a union, and the member of a discriminated union that the input
 * names (`kind: train`: the train stage's keys). For objects whose default is null, and for specs.
 */
function schemaKeysAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>, input?: unknown): string[] {
  let cur: z.ZodType = schema;
  let value: unknown = input;
  for (let i = 0; ; i++) {
    for (;;) {
      const def = (cur as unknown as { def: { type: string; innerType?: z.ZodType } }).def;
      if (['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch'].includes(def.type) && def.innerType) cur = def.innerType;
      else break;
    }
    if (cur instanceof z.ZodDiscriminatedUnion) {
      const key = (cur.def as { discriminator: string }).discriminator;
      const options = cur.options as z.ZodType[];
      const named = isPlainObject(value) ? value[key] : undefined;
      const picked = options.find((o) => o instanceof z.ZodObject && named !== undefined && (o.shape[key] as z.ZodType | undefined)?.safeParse(named).success);
      if (!picked) return i === path.length ? [...new Set(options.flatMap((o) => (o instanceof z.ZodObject ? Object.keys(o.shape) : [])))] : [];
      cur = picked;
    } else if (cur instanceof z.ZodUnion) cur = (cur.options as z.ZodType[]).find((o) => o instanceof z.ZodObject) ?? cur;
    if (i === path.length) return cur instanceof z.ZodObject ? Object.keys(cur.shape) : [];
    const step = path[i]!;
    value = isPlainObject(value) || Array.isArray(value) ? (value as Record<PropertyKey, unknown>)[step] : undefined;
    if (cur instanceof z.ZodRecord) cur = cur.valueType as z.ZodType;
    else if (cur instanceof z.ZodArray) cur = cur.element as z.ZodType;
    else if (cur instanceof z.ZodObject) {
      const next = (cur.shape as Record<PropertyKey, z.ZodType | undefined>)[step];
      if (!next) return [];
      cur = next;
    } else return [];
  }
}

/** Turn zod issues into `file: path: expected ..., got ...` lines. */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  file: string,
  defaults: unknown,
  schema: z.ZodType = HeadsConfigSchema,
): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    const where = `${file}: ${dotPath(issue.path)}`;
    if (issue.code === 'unrecognized_keys') {
      const parent = valueAt(defaults, issue.path);
      const known = isPlainObject(parent) ? Object.keys(parent) : schemaKeysAt(schema, issue.path, input);
      for (const key of issue.keys) {
        const p = dotPath([...issue.path, key]);
        out.push(`${file}: ${p}: unknown key${didYouMean(key, known)}; expected one of: ${known.join(', ')}`);
      }
      continue;
    }
    if (issue.code === 'invalid_key') {
      // a record key its pattern refuses (a stage or claim name): say what names may be, and name the key
      const why = (issue.issues as ReadonlyArray<{ message: string }>).map((x) => x.message).join('; ');
      out.push(`${where}: not a valid name (${why}), got '${String(issue.path[issue.path.length - 1])}'`);
      continue;
    }
    const value = valueAt(input, issue.path);
    if (typeof value === 'number' && !Number.isFinite(value)) {
      out.push(`${where}: expected a finite number, got ${value} (YAML .nan / .inf)`);
      continue;
    }
    const got = show(value);
    out.push(`${where}: ${issue.message.replace(/^Invalid input: /, '').replace(/, received \w+$/, '')}, got ${got}`);
  }
  return out;
}

/** Keys that would set an object's prototype instead of a value (`__proto__`) or shadow its machinery. */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Every path in a parsed value whose key is a prototype key, at any depth. */
export function prototypeKeyPaths(v: unknown, path: PropertyKey[] = []): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => prototypeKeyPaths(x, [...path, i]));
  if (!isPlainObject(v)) return [];
  return Object.keys(v).flatMap((k) => (PROTOTYPE_KEYS.has(k) ? [dotPath([...path, k])] : prototypeKeyPaths(v[k], [...path, k])));
}

export function refusePrototypeKeys(v: unknown, where: string): void {
  const bad = prototypeKeyPaths(v);
  if (bad.length)
    throw new ConfigError(
      bad.map((p) => `${where}: ${p}: '${p.split('.').pop()}' is not a config key (it would change an object's prototype instead of setting a value)`),
    );
}

/**
 * Parse YAML text into plain values, refusing what the config format does not have: tags other than the
 * core ones (`!!js/function` is not run, and must not become a string), several documents, syntax
 * errors. Throws the problem as a plain message with its line.
 */
export function parseYamlStrict(text: string): unknown {
  const doc = YAML.parseDocument(text, { uniqueKeys: true });
  const first = doc.errors[0] ?? doc.warnings.find((w) => w.code === 'TAG_RESOLVE_FAILED') ?? doc.warnings[0];
  if (first) {
    const line = first.linePos?.[0]?.line;
    const tag = first.code === 'TAG_RESOLVE_FAILED' ? /Unresolved tag: (\S+)/.exec(first.message)?.[1] : undefined;
    const what = tag
      ? `unknown YAML tag ${tag.replace(/^tag:yaml\.org,2002:/, '!!')} (config values are plain numbers, strings, booleans, null, lists and mappings)`
      : first.message.split('\n')[0]!;
    throw new Error(line ? `line ${line}: ${what}` : what);
  }
  return doc.toJS({ maxAliasCount: 100 });
}

/** Parse a `--set key=value` value as a YAML scalar (numbers, booleans, null, lists). */
export function parseOverrideValue(raw: string): Json {
  const doc = YAML.parseDocument(raw);
  if (doc.warnings.some((w) => w.code === 'TAG_RESOLVE_FAILED'))
    throw new ConfigError([`--set: ${JSON.stringify(raw)}: unknown YAML tag (config values are plain numbers, strings, booleans, null, lists and mappings)`]);
  if (doc.errors.length) return raw;
  return doc.toJS({ maxAliasCount: 100 }) as Json;
}

/** Apply `a.b.c=value` overrides to a plain object (returns a new object). */
export function applyOverrides(obj: unknown, overrides: readonly string[], source = '--set'): unknown {
  let out = obj;
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new ConfigError([`${source}: expected key=value, got ${JSON.stringify(o)}`]);
    const keys = o.slice(0, eq).split('.');
    if (keys.some((k) => k.trim() === ''))
      throw new ConfigError([`${source}: ${JSON.stringify(o)}: expected a dotted key like train.maxSteps before '=', found an empty part`]);
    const proto = keys.find((k) => PROTOTYPE_KEYS.has(k));
    if (proto)
      throw new ConfigError([
        `${source}: ${o.slice(0, eq)}: '${proto}' is not a config key (it would change an object's prototype instead of setting a value)`,
      ]);
    const value = parseOverrideValue(o.slice(eq + 1));
    refusePrototypeKeys(value, `${source} ${o.slice(0, eq)}`);
    let patch: unknown = value;
    for (let i = keys.length - 1; i >= 0; i--) patch = { [keys[i]!]: patch };
    out = deepMerge(out, patch);
  }
  return out;
}

/** Read a YAML or JSON file into a plain object, with errors naming the file. */
export function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ConfigError([`${path}: config file not found`]);
  if (statSync(path).isDirectory()) throw new ConfigError([`${path}: expected a config file, found a directory`]);
  const text = readFileSync(path, 'utf8');
  let parsed: unknown;
  try {
    parsed = path.endsWith('.json') ? JSON.parse(text) : parseYamlStrict(text);
  } catch (e) {
    throw new ConfigError([`${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`]);
  }
  // an empty file is a mistake (a wrong path, a file not yet written), not a request for the defaults
  if (parsed === null || parsed === undefined)
    throw new ConfigError([`${path}: empty config file; expected a mapping of config keys (without -c the defaults are used)`]);
  refusePrototypeKeys(parsed, path);
  if (!isPlainObject(parsed)) throw new ConfigError([`${path}: expected a mapping of config keys at the top level, got ${show(parsed)}`]);
  return parsed;
}

/** Rules that span fields; each problem names the keys involved. */
export function crossFieldProblems(c: HeadsConfig, file: string): string[] {
  const p: string[] = [];
  const m = c.model;
  if (m.dModel % m.heads !== 0) p.push(`${file}: model.dModel: ${m.dModel} is not divisible by model.heads = ${m.heads}`);
  if (m.keptHeads) {
    const layers = { 'enc-self': m.encoderLayers, 'dec-self': m.decoderLayers, 'dec-enc': m.decoderLayers } as const;
    for (const [stack, n] of Object.entries(layers) as Array<[keyof typeof layers, number]>) {
      const kept = m.keptHeads[stack];
      if (kept.length !== n) p.push(`${file}: model.keptHeads.${stack}: expected ${n} layers, got ${kept.length}`);
      kept.forEach((ids, l) => {
        const bad = ids.find((h) => h >= m.heads);
        if (bad !== undefined) p.push(`${file}: model.keptHeads.${stack}[${l}]: head ${bad} out of range 0..${m.heads - 1}`);
        if (new Set(ids).size !== ids.length) p.push(`${file}: model.keptHeads.${stack}[${l}]: duplicate head ids`);
      });
    }
  }
  if (m.ffnWidths) {
    if (m.ffnWidths.encoder.length !== m.encoderLayers)
      p.push(`${file}: model.ffnWidths.encoder: expected ${m.encoderLayers} layers (model.encoderLayers), got ${m.ffnWidths.encoder.length}`);
    if (m.ffnWidths.decoder.length !== m.decoderLayers)
      p.push(`${file}: model.ffnWidths.decoder: expected ${m.decoderLayers} layers (model.decoderLayers), got ${m.ffnWidths.decoder.length}`);
  }
  if (m.moe) {
    if (m.moe.topK > m.moe.experts) p.push(`${file}: model.moe.topK: ${m.moe.topK} is more than model.moe.experts = ${m.moe.experts}`);
    if (m.moe.layers === 'encoder' && m.encoderLayers === 0) p.push(`${file}: model.moe.layers: 'encoder', but model.encoderLayers is 0`);
    // FFN-neuron pruning (export/ffn-pruning.ts) knows plain FFNs only
    if (m.ffnWidths)
      p.push(`${file}: model.moe: mixture-of-experts layers cannot be combined with model.ffnWidths (FFN-neuron pruning); set one of them to null`);
  }
  const mp = c.train.magnitudePruning;
  if (mp) {
    if (mp.endStep < mp.startStep)
      p.push(`${file}: train.magnitudePruning.endStep: ${mp.endStep} is before train.magnitudePruning.startStep = ${mp.startStep}`);
    if (mp.endStep > c.train.maxSteps)
      p.push(
        `${file}: train.magnitudePruning.endStep: ${mp.endStep} is after train.maxSteps = ${c.train.maxSteps} (the target sparsity would never be reached)`,
      );
  }
  const es = c.train.earlyStopping;
  if (es) {
    if (c.train.evalEverySteps === 0)
      p.push(`${file}: train.earlyStopping: set, but train.evalEverySteps is 0 (early stopping decides at evaluations; set it > 0)`);
    if (es.metric === 'devBleu' && c.train.devBleuSentences === 0)
      p.push(`${file}: train.earlyStopping.metric: devBleu, but train.devBleuSentences is 0 (no dev BLEU is computed; use devLoss or set it > 0)`);
  }
  if (c.gates.settle && !c.gates.attention.length) p.push(`${file}: gates.settle: set, but gates.attention is empty (no gates to settle)`);
  if (c.model.encoderLayers === 0 && c.gates.attention.includes('enc-self'))
    p.push(`${file}: gates.attention: 'enc-self' is gated but model.encoderLayers is 0`);
  const t = c.gates.targetHeads;
  if (t !== null) {
    if (!c.gates.attention.length) p.push(`${file}: gates.targetHeads: set, but gates.attention is empty (no heads are gated)`);
    const perType = typeof t === 'number' ? null : t;
    if (perType)
      for (const [stack, n] of Object.entries(perType)) {
        if (!c.gates.attention.includes(stack as 'enc-self')) p.push(`${file}: gates.targetHeads.${stack}: ${stack} is not in gates.attention`);
        const layers = stack === 'enc-self' ? c.model.encoderLayers : c.model.decoderLayers;
        if (n !== undefined && n > layers * c.model.heads)
          p.push(`${file}: gates.targetHeads.${stack}: ${n} is more than the ${layers * c.model.heads} heads of ${stack}`);
      }
    else {
      const total = c.gates.attention.reduce((a, s) => a + (s === 'enc-self' ? c.model.encoderLayers : c.model.decoderLayers) * c.model.heads, 0);
      if ((t as number) > total) p.push(`${file}: gates.targetHeads: ${t} is more than the ${total} gated heads`);
    }
  }
  if (c.data.train === null && (c.data.valid !== null || c.data.test !== null))
    p.push(`${file}: data.train: null (synthetic data) but data.valid/data.test are set; set data.train too`);
  if (c.data.train !== null && c.data.valid === null) p.push(`${file}: data.valid: expected a dev set path when data.train is set, got null`);
  p.push(...sizeProblems(c, file));
  return p;
}

/** Validate a merged raw object into a ResolvedConfig. */
export function validateConfig(merged: unknown, file: string): ResolvedConfig {
  const r = HeadsConfigSchema.safeParse(merged);
  if (!r.success) throw new ConfigError(describeIssues(r.error.issues, merged, file, DEFAULT_CONFIG));
  const cross = crossFieldProblems(r.data, file);
  if (cross.length) throw new ConfigError(cross);
  return deepFreeze(r.data);
}

/**
 * Load a config: defaults <- file (if any) <- overrides, validated once.
 * `path` null means the embedded default (the quickstart).
 */
export function loadConfig(path: string | null, overrides: readonly string[] = []): ResolvedConfig {
  const user = path ? readConfigFile(path) : {};
  const merged = applyOverrides(deepMerge(DEFAULT_CONFIG, user), overrides);
  const label = path ?? '(defaults)';
  return validateConfig(merged, overrides.length ? `${label} + --set` : label);
}

/**
 * Load a config on top of another resolved config instead of the defaults (a pruning run starts from its
 * parent's config): base <- file (if any) <- overrides, validated once.
 */
export function loadConfigOn(base: ResolvedConfig, path: string | null, overrides: readonly string[] = [], label = 'parent config'): ResolvedConfig {
  const user = path ? readConfigFile(path) : {};
  // the base goes over the defaults, so a checkpoint written before a key existed still loads
  const merged = applyOverrides(deepMerge(deepMerge(DEFAULT_CONFIG, JSON.parse(JSON.stringify(base))), user), overrides);
  return validateConfig(merged, [label, path, overrides.length ? '--set' : null].filter(Boolean).join(' + '));
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** A mutable deep copy (for building derived configs). */
export function cloneConfig(c: ResolvedConfig): HeadsConfig {
  return JSON.parse(JSON.stringify(c)) as HeadsConfig;
}
