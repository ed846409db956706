/**
 * Readers of the result files the figures are drawn from, each a pure `parse*(text, sourceName)` plus a
 * `read*(path)`: metrics.jsonl (trainer), gate-trajectory.csv (HeadGates.logStep), head scores (head
 * report CSV/JSON of the analyzer, or the gate states in a run's results.json), pruning-curve.csv
 * (importance pruning), results.csv (experiments) and attention-map JSON. Readers are tolerant of extra
 * fields and columns; malformed content throws a DataError naming the file and line.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Papa from 'papaparse';
import { ATTENTION_TYPES, type AttentionType, type HeadId, isAttentionType, parseHeadKey } from '../config/head-id.js';
import type { HeadShape } from '../config/head-layout.js';
import { DataError } from '../util/errors.js';
import { readJsonFile, readTextFile } from '../util/fs.js';

// ---------------------------------------------------------------------------------------------------
// Small helpers

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function finiteOrUndefined(x: unknown): number | undefined {
  return typeof x === 'number' && Number.isFinite(x) ? x : undefined;
}

/**
 * A resumed run appends again from its checkpoint step, so a log can step backwards: the later lines
 * supersede every earlier record at or after the step they restart from.
 */
function supersede<T extends { step: number }>(records: readonly T[]): T[] {
  const out: T[] = [];
  for (const r of records) {
    while (out.length && out[out.length - 1]!.step >= r.step) out.pop();
    out.push(r);
  }
  return out;
}

/** Rows of a CSV text with their 1-based line numbers (blank lines skipped; no multi-line fields). */
function csvRows(text: string, sourceName: string): Array<{ line: number; cells: string[] }> {
  const parsed = Papa.parse<string[]>(text, { header: false, skipEmptyLines: false });
  const bad = parsed.errors.find((e) => e.code !== 'UndetectableDelimiter');
  if (bad) throw new DataError(`${sourceName}:${(bad.row ?? 0) + 1}: ${bad.message}`);
  return parsed.data.map((cells, i) => ({ line: i + 1, cells })).filter((r) => r.cells.some((c) => c.trim() !== ''));
}

/** A header -> column index map; missing required columns are one DataError. */
function columnIndex(header: readonly string[], required: readonly string[], sourceName: string, what: string): Map<string, number> {
  const idx = new Map(header.map((h, i) => [h.trim(), i] as const));
  const missing = required.filter((c) => !idx.has(c));
  if (missing.length)
    throw new DataError(`${sourceName}:1: ${what}: missing column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (found: ${header.join(', ')})`);
  return idx;
}

function numberCell(cell: string | undefined, sourceName: string, line: number, column: string): number | null {
  const t = (cell ?? '').trim();
  if (t === '') return null;
  const v = Number(t);
  if (!Number.isFinite(v)) throw new DataError(`${sourceName}:${line}: ${column}: expected a number, got ${JSON.stringify(t)}`);
  return v;
}

/**
 * The file to read when the user names a run folder: the first of `names` that exists in it. A file
 * path is returned as is.
 */
export function resolveInputFile(path: string, names: readonly string[], what: string): string {
  if (!existsSync(path)) throw new DataError(`${path}: not found (expected a run folder or a ${what} file)`);
  if (!statSync(path).isDirectory()) return path;
  for (const n of names) if (existsSync(join(path, n))) return join(path, n);
  throw new DataError(`${path}: no ${what} in this folder (looked for ${names.join(', ')})`);
}

// ---------------------------------------------------------------------------------------------------
// metrics.jsonl

/** One training log line of metrics.jsonl (src/train/trainer.ts); gate fields only in gated runs. */
export interface TrainingRecord {
  step: number;
  /** mean training loss over the log window (label-smoothed cross-entropy, nats per target token) */
  loss?: number;
  /** lambda * E[L0] or the Lagrangian term, added to the loss */
  penalty?: number;
  lr?: number;
  gradNorm?: number;
  tgtTokensPerSec?: number;
  epoch?: number;
  elapsedMs?: number;
  expectedOpenHeads?: number;
  keptHeads?: number;
  closedHeads?: number;
  gatedHeads?: number;
  /** `expectedOpen.<attention type>`: sum of P(open) over the type's gated heads */
  expectedOpen: Partial<Record<AttentionType, number>>;
  /** `lambda1.<group>`: the Lagrange multiplier of each head-budget group */
  lambda1: Record<string, number>;
}

/** One evaluation line of metrics.jsonl. */
export interface EvalRecord {
  step: number;
  /** NLL per target token on the dev set, nats */
  devLoss?: number;
  devPerplexity?: number;
  /** greedy corpus BLEU on the first dev sentences */
  devBleu?: number;
  /** train.earlyStopping: the best evaluation's step so far, and the evaluations left before the run stops */
  bestStep?: number;
  patienceLeft?: number;
  /** train.earlyStopping.lrDecay: the learning-rate cuts made so far (after this evaluation's decision) */
  lrCuts?: number;
}

export interface MetricsLog {
  source: string;
  train: TrainingRecord[];
  eval: EvalRecord[];
}

/** Parse metrics.jsonl text. A torn last line (a kill mid-append) is skipped; any other bad line throws. */
export function parseMetrics(text: string, sourceName: string): MetricsLog {
  const lines = text.split('\n');
  let last = lines.length - 1;
  while (last >= 0 && lines[last]!.trim() === '') last--;
  const train: TrainingRecord[] = [];
  const evals: EvalRecord[] = [];
  lines.forEach((raw, i) => {
    if (!raw.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      if (i === last) return; // torn last line
      throw new DataError(`${sourceName}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
    if (!isRecord(v)) throw new DataError(`${sourceName}:${i + 1}: expected a JSON object per line`);
    const step = v.step;
    if (typeof step !== 'number' || !Number.isFinite(step)) throw new DataError(`${sourceName}:${i + 1}: step: expected a number, got ${JSON.stringify(step)}`);
    if ('devLoss' in v || 'devBleu' in v) {
      const cuts = finiteOrUndefined(v.lrCuts);
      const stopping = {
        bestStep: finiteOrUndefined(v.bestStep),
        patienceLeft: finiteOrUndefined(v.patienceLeft),
        ...(cuts !== undefined ? { lrCuts: cuts } : {}),
      };
      evals.push({
        step,
        devLoss: finiteOrUndefined(v.devLoss),
        devPerplexity: finiteOrUndefined(v.devPerplexity),
        devBleu: finiteOrUndefined(v.devBleu),
        ...(stopping.bestStep !== undefined ? stopping : {}),
      });
      return;
    }
    if (!('loss' in v)) return; // another kind of record: not drawn
    const expectedOpen: Partial<Record<AttentionType, number>> = {};
    const lambda1: Record<string, number> = {};
    for (const [k, x] of Object.entries(v)) {
      const n = finiteOrUndefined(x);
      if (n === undefined) continue;
      if (k.startsWith('expectedOpen.')) {
        const t = k.slice('expectedOpen.'.length);
        if (isAttentionType(t)) expectedOpen[t] = n;
      } else if (k.startsWith('lambda1.')) lambda1[k.slice('lambda1.'.length)] = n;
    }
    train.push({
      step,
      loss: finiteOrUndefined(v.loss),
      penalty: finiteOrUndefined(v.penalty),
      lr: finiteOrUndefined(v.lr),
      gradNorm: finiteOrUndefined(v.gradNorm),
      tgtTokensPerSec: finiteOrUndefined(v.tgtTokensPerSec),
      epoch: finiteOrUndefined(v.epoch),
      elapsedMs: finiteOrUndefined(v.elapsedMs),
      expectedOpenHeads: finiteOrUndefined(v.expectedOpenHeads),
      keptHeads: finiteOrUndefined(v.keptHeads),
      closedHeads: finiteOrUndefined(v.closedHeads),
      gatedHeads: finiteOrUndefined(v.gatedHeads),
      expectedOpen,
      lambda1,
    });
  });
  return { source: sourceName, train: supersede(train), eval: supersede(evals) };
}

/** Read a run's metrics.jsonl (a run folder or the file). */
export function readMetrics(path: string): MetricsLog {
  const file = resolveInputFile(path, ['metrics.jsonl'], 'metrics.jsonl');
  return parseMetrics(readTextFile(file, 'metrics file'), file);
}

// ---------------------------------------------------------------------------------------------------
// gate-trajectory.csv

export interface HeadTrajectory {
  key: string;
  id: HeadId;
  /** P(gate open) = P(g != 0) at each step of `GateTrajectory.steps` */
  pOpen: number[];
}

export interface GateTrajectory {
  source: string;
  steps: number[];
  heads: HeadTrajectory[];
}

/** Parse gate-trajectory.csv: `step,<head key>,...`, one row per log step of P(open) per head. */
export function parseGateTrajectory(text: string, sourceName: string): GateTrajectory {
  const rows = csvRows(text, sourceName);
  const header = rows[0];
  if (!header) throw new DataError(`${sourceName}: empty gate trajectory (expected a header "step,enc-self.0.0,...")`);
  if (header.cells[0]?.trim() !== 'step')
    throw new DataError(`${sourceName}:${header.line}: first column: expected "step", got ${JSON.stringify(header.cells[0] ?? '')}`);
  const keys = header.cells.slice(1).map((k) => k.trim());
  const ids = keys.map((k) => {
    const id = parseHeadKey(k);
    if (!id) throw new DataError(`${sourceName}:${header.line}: column ${JSON.stringify(k)}: expected a head key like enc-self.3.5`);
    return id;
  });
  const parsed: Array<{ step: number; values: number[] }> = [];
  for (const r of rows.slice(1)) {
    if (r.cells.length !== header.cells.length) throw new DataError(`${sourceName}:${r.line}: expected ${header.cells.length} columns, got ${r.cells.length}`);
    const step = numberCell(r.cells[0], sourceName, r.line, 'step');
    if (step === null) throw new DataError(`${sourceName}:${r.line}: step: expected a number, got an empty cell`);
    const values = keys.map((k, j) => {
      const v = numberCell(r.cells[j + 1], sourceName, r.line, k);
      if (v === null || v < 0 || v > 1)
        throw new DataError(`${sourceName}:${r.line}: ${k}: expected a probability in [0, 1], got ${JSON.stringify(r.cells[j + 1] ?? '')}`);
      return v;
    });
    parsed.push({ step, values });
  }
  const kept = supersede(parsed);
  return {
    source: sourceName,
    steps: kept.map((r) => r.step),
    heads: keys.map((key, j) => ({ key, id: ids[j]!, pOpen: kept.map((r) => r.values[j]!) })),
  };
}

export function readGateTrajectory(path: string): GateTrajectory {
  const file = resolveInputFile(path, ['gate-trajectory.csv'], 'gate-trajectory.csv');
  return parseGateTrajectory(readTextFile(file, 'gate trajectory'), file);
}

// ---------------------------------------------------------------------------------------------------
// Per-head scores

/** Every numeric column of a per-head table, keyed by head key. */
export interface HeadScoreTable {
  source: string;
  /** numeric columns, in file order */
  columns: string[];
  rows: Record<string, Record<string, number>>;
  /** original heads per layer when the file says (head report JSON, run config) */
  shape: HeadShape | null;
}

/** One score of every head, what `headHeatmap` draws. */
export interface HeadScores {
  /** column name, e.g. `importance_per_token` */
  name: string;
  /** what the colour bar says, with units where there are any */
  label: string;
  /** by head key `enc-self.3.5`; null or missing: no value (drawn empty) */
  values: Record<string, number | null>;
  /** original heads per layer; without it the grid spans the heads present */
  shape?: HeadShape | null;
  /** the score's natural range (probabilities: [0, 1]); default: the values' extent */
  range?: [number, number];
}

/** Labels (and ranges) of the scores heads writes: gate states of results.json and the head report. */
export const KNOWN_SCORES: Readonly<Record<string, { label: string; range?: [number, number] }>> = {
  pOpen: { label: 'P(gate open) = P(g ≠ 0)', range: [0, 1] },
  pOne: { label: 'P(gate = 1)', range: [0, 1] },
  pZero: { label: 'P(gate = 0)', range: [0, 1] },
  testGate: { label: 'test-time gate value', range: [0, 1] },
  logAlpha: { label: 'log α (gate location)' },
  'gate.pOpen': { label: 'P(gate open) = P(g ≠ 0)', range: [0, 1] },
  'gate.pOne': { label: 'P(gate = 1)', range: [0, 1] },
  'gate.testGate': { label: 'test-time gate value', range: [0, 1] },
  gate_p_open: { label: 'P(gate open) = P(g ≠ 0)', range: [0, 1] },
  gate_p_one: { label: 'P(gate = 1)', range: [0, 1] },
  gate_test: { label: 'test-time gate value', range: [0, 1] },
  confidence: { label: 'confidence (max attention weight)', range: [0, 1] },
  'attention.confidence': { label: 'confidence (max attention weight)', range: [0, 1] },
  entropy: { label: 'attention entropy (nats)' },
  'attention.entropy': { label: 'attention entropy (nats)' },
  importance_per_token: { label: 'importance |∂L/∂ξ| (per token)' },
  'importance.perToken': { label: 'importance |∂L/∂ξ| (per token)' },
};

const NOT_SCORES = new Set(['layer', 'head', 'position']);

/**
 * Parse a per-head CSV (the analyzer's head-report.csv, or any CSV with a `key` column of head keys):
 * every column whose non-empty cells are all numbers becomes a score column.
 */
export function parseHeadScoresCsv(text: string, sourceName: string): HeadScoreTable {
  const rows = csvRows(text, sourceName);
  const header = rows[0];
  if (!header) throw new DataError(`${sourceName}: empty file (expected a header with a "key" column)`);
  const names = header.cells.map((c) => c.trim());
  const idx = columnIndex(names, ['key'], sourceName, 'per-head CSV');
  const keyCol = idx.get('key')!;
  const isNumeric = names.map(
    (n, j) => j !== keyCol && !NOT_SCORES.has(n) && rows.slice(1).every((r) => (r.cells[j] ?? '').trim() === '' || Number.isFinite(Number(r.cells[j]))),
  );
  const columns = names.filter((_, j) => isNumeric[j] && rows.slice(1).some((r) => (r.cells[j] ?? '').trim() !== ''));
  const out: Record<string, Record<string, number>> = {};
  for (const r of rows.slice(1)) {
    const key = (r.cells[keyCol] ?? '').trim();
    if (!parseHeadKey(key)) throw new DataError(`${sourceName}:${r.line}: key: expected a head key like enc-self.3.5, got ${JSON.stringify(key)}`);
    const row: Record<string, number> = {};
    names.forEach((n, j) => {
      const t = (r.cells[j] ?? '').trim();
      if (isNumeric[j] && t !== '') row[n] = Number(t);
    });
    out[key] = row;
  }
  return { source: sourceName, columns, rows: out, shape: null };
}

/** Numeric leaves of an object as dot paths (`importance.perToken`), arrays left out. */
function flattenNumbers(value: unknown, prefix: string, out: Record<string, number>): void {
  if (typeof value === 'number' && Number.isFinite(value)) out[prefix] = value;
  else if (isRecord(value)) for (const [k, v] of Object.entries(value)) flattenNumbers(v, prefix ? `${prefix}.${k}` : k, out);
}

function shapeOf(value: unknown): HeadShape | null {
  if (!isRecord(value)) return null;
  const out = {} as HeadShape;
  for (const t of ATTENTION_TYPES) {
    const counts = value[t];
    if (!Array.isArray(counts) || !counts.every((c): c is number => typeof c === 'number' && Number.isInteger(c) && c >= 0)) return null;
    out[t] = counts;
  }
  return out;
}

/**
 * The gate settings that decide which heads a run keeps (config.json `gates.beta`, `gates.targetHeads`),
 * from the config.json beside `path` (a run folder or a file in it); {} when there is none.
 */
export function readGateSettings(path: string): { beta?: number; targetHeads?: number | Partial<Record<AttentionType, number>> | null } {
  const folder = existsSync(path) && statSync(path).isDirectory() ? path : join(path, '..');
  const file = join(folder, 'config.json');
  if (!existsSync(file)) return {};
  const cfg = readJsonFile(file, 'run config');
  const g = isRecord(cfg) && isRecord(cfg.gates) ? cfg.gates : {};
  const t = g.targetHeads;
  const targetHeads =
    typeof t === 'number'
      ? t
      : isRecord(t)
        ? (Object.fromEntries(Object.entries(t).filter(([k, v]) => isAttentionType(k) && typeof v === 'number')) as Partial<Record<AttentionType, number>>)
        : null;
  return { ...(typeof g.beta === 'number' ? { beta: g.beta } : {}), targetHeads };
}

/** Original heads per layer from a run's resolved config (config.json `model`), or null. */
export function shapeFromConfig(config: unknown): HeadShape | null {
  if (!isRecord(config) || !isRecord(config.model)) return null;
  const m = config.model;
  const enc = m.encoderLayers;
  const dec = m.decoderLayers;
  const heads = m.heads;
  if (typeof enc !== 'number' || typeof dec !== 'number' || typeof heads !== 'number') return null;
  return { 'enc-self': Array<number>(enc).fill(heads), 'dec-self': Array<number>(dec).fill(heads), 'dec-enc': Array<number>(dec).fill(heads) };
}

/**
 * Parse per-head scores from JSON: a head report (`format: "heads.head-report"`, heads keyed by head
 * key, scores as dot paths such as `importance.perToken`), or a run's results.json (`gates.heads`: the
 * gate states `pOpen`, `pOne`, `pZero`, `testGate`, `logAlpha` of a gated run).
 */
export function parseHeadScoresJson(value: unknown, sourceName: string): HeadScoreTable {
  if (!isRecord(value)) throw new DataError(`${sourceName}: expected a JSON object (a head report or a run's results.json)`);
  const rows: Record<string, Record<string, number>> = {};
  let shape: HeadShape | null = null;
  if (isRecord(value.heads) && !Array.isArray(value.heads)) {
    for (const [key, entry] of Object.entries(value.heads)) {
      if (!parseHeadKey(key)) throw new DataError(`${sourceName}: heads.${key}: expected a head key like enc-self.3.5`);
      const row: Record<string, number> = {};
      flattenNumbers(entry, '', row);
      for (const n of NOT_SCORES) delete row[n];
      rows[key] = row;
    }
    shape = isRecord(value.model) ? shapeOf(value.model.headsPerLayer) : null;
  } else if (isRecord(value.gates) && Array.isArray(value.gates.heads)) {
    value.gates.heads.forEach((h: unknown, i: number) => {
      if (!isRecord(h) || typeof h.key !== 'string' || !parseHeadKey(h.key))
        throw new DataError(`${sourceName}: gates.heads[${i}]: expected { key: "enc-self.0.1", pOpen, ... }`);
      const row: Record<string, number> = {};
      flattenNumbers({ ...h, key: undefined }, '', row);
      rows[h.key] = row;
    });
  } else if (isRecord(value) && 'gates' in value && value.gates === null) {
    throw new DataError(`${sourceName}: this run has no gates (results.json gates: null); give a head report or a pruning run`);
  } else {
    throw new DataError(`${sourceName}: expected a head report (heads: { "enc-self.0.0": {...} }) or a run's results.json with gates.heads`);
  }
  const columns: string[] = [];
  for (const r of Object.values(rows)) for (const c of Object.keys(r)) if (!columns.includes(c)) columns.push(c);
  return { source: sourceName, columns, rows, shape };
}

/**
 * Read per-head scores from a file (head-report.csv / .json, results.json) or a run folder (the same
 * files, in that order; the folder's config.json supplies the model shape when the file does not).
 */
export function readHeadScores(path: string): HeadScoreTable {
  const file = resolveInputFile(path, ['head-report.csv', 'head-report.json', 'results.json'], 'head report');
  const text = readTextFile(file, 'head scores');
  let table: HeadScoreTable;
  if (file.endsWith('.csv')) table = parseHeadScoresCsv(text, file);
  else {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new DataError(`${file}: invalid JSON (${(e as Error).message})`);
    }
    table = parseHeadScoresJson(v, file);
  }
  if (!table.shape) {
    const cfg = join(file, '..', 'config.json');
    if (existsSync(cfg)) {
      try {
        table.shape = shapeFromConfig(JSON.parse(readTextFile(cfg, 'config')));
      } catch {
        /* the shape is optional: the grid then spans the heads present */
      }
    }
  }
  return table;
}

/**
 * One column of a score table (label and range from KNOWN_SCORES unless given); an unknown column
 * throws a DataError listing the available ones.
 */
export function selectScore(table: HeadScoreTable, column: string, label?: string): HeadScores {
  if (!table.columns.includes(column)) throw new DataError(`${table.source}: no score "${column}" (available: ${table.columns.join(', ') || 'none'})`);
  const values: Record<string, number | null> = {};
  for (const [k, r] of Object.entries(table.rows)) values[k] = r[column] ?? null;
  const known = KNOWN_SCORES[column];
  return { name: column, label: label ?? known?.label ?? column, values, shape: table.shape, range: known?.range };
}

/**
 * One score of an in-memory per-head table, e.g. a HeadReport's `heads` with one of its SCORE_COLUMNS
 * (`{ name, label, get }`): what a notebook uses when it holds the report object.
 */
export function headScoresOf<E>(
  heads: Readonly<Record<string, E>>,
  column: { name: string; label: string; get: (e: E) => number | null },
  shape?: HeadShape | null,
): HeadScores {
  const values: Record<string, number | null> = {};
  for (const [k, e] of Object.entries(heads)) values[k] = column.get(e);
  return { name: column.name, label: column.label, values, shape: shape ?? null, range: KNOWN_SCORES[column.name]?.range };
}

// ---------------------------------------------------------------------------------------------------
// pruning-curve.csv (importance pruning) and results.csv (experiments)

/** One step of heuristic pruning (src/analysis/importance-pruning.ts writes pruning-curve.csv). */
export interface PruningCurveRow {
  step: number;
  /** heads kept in the pruned pool (the attention types being pruned) */
  headsKept: number;
  headsRemoved: number | null;
  /** heads kept in the whole model */
  headsKeptTotal: number | null;
  percentPruned: number | null;
  bleu: number;
  /** NLL per target token, nats */
  loss: number | null;
  maskFile: string | null;
  removed: string[];
  isConstrained: boolean;
}

export function parsePruningCurve(text: string, sourceName: string): PruningCurveRow[] {
  const rows = csvRows(text, sourceName);
  const header = rows[0];
  if (!header) throw new DataError(`${sourceName}: empty pruning curve`);
  const idx = columnIndex(
    header.cells.map((c) => c.trim()),
    ['step', 'heads_kept', 'bleu'],
    sourceName,
    'pruning curve',
  );
  const cell = (r: { cells: string[] }, c: string): string | undefined => (idx.has(c) ? r.cells[idx.get(c)!] : undefined);
  return rows.slice(1).map((r) => {
    const num = (c: string) => numberCell(cell(r, c), sourceName, r.line, c);
    const need = (c: string) => {
      const v = num(c);
      if (v === null) throw new DataError(`${sourceName}:${r.line}: ${c}: expected a number, got an empty cell`);
      return v;
    };
    const removed = (cell(r, 'removed') ?? '').trim();
    return {
      step: need('step'),
      headsKept: need('heads_kept'),
      headsRemoved: num('heads_removed'),
      headsKeptTotal: num('heads_kept_total'),
      percentPruned: num('percent_pruned'),
      bleu: need('bleu'),
      loss: num('loss'),
      maskFile: (cell(r, 'mask_file') ?? '').trim() || null,
      removed: removed ? removed.split(/\s+/) : [],
      isConstrained: (cell(r, 'constrained') ?? '').trim() === 'true',
    };
  });
}

export function readPruningCurve(path: string): PruningCurveRow[] {
  const file = resolveInputFile(path, ['pruning-curve.csv'], 'pruning-curve.csv');
  return parsePruningCurve(readTextFile(file, 'pruning curve'), file);
}

/**
 * One row of an experiment's results.csv: one stage (a trained, pruned or evaluated model). The columns
 * `stage`, `method` and `bleu` are required; the others may be empty or absent.
 */
export interface ExperimentResultRow {
  stage: string;
  /** stage instance id (a sweep point, or `stage#masks/step-03.json` for a point of a pruning curve) */
  id: string | null;
  /** `train`, `prune`, `analyze`, `export`, ... */
  kind: string | null;
  /** e.g. `baseline`, `l0`, `l0-budget`, `importance`, `confidence`, `random` */
  method: string;
  /** pruned attention types, e.g. `enc-self` or `enc-self+dec-self+dec-enc` */
  attention: string;
  lambda: number | null;
  /** the head budget as written (`10`, `enc-self=10`) */
  targetHeads: string | null;
  keptEnc: number | null;
  keptDecSelf: number | null;
  keptDecEnc: number | null;
  /** test BLEU (sacreBLEU, detokenized) */
  bleu: number | null;
  /** tokenized lower-cased BLEU (Voita et al.'s number) */
  bleuTokLc: number | null;
  /** dev BLEU (greedy) when the stage reports one */
  devBleu: number | null;
  /** the run folder behind the row */
  run: string | null;
  /** export stages: parameters of the exported model, and those that are not zero (optional: rows built in code before these columns existed) */
  params?: number | null;
  nonZeroParams?: number | null;
  /** export stages: bytes of the exported weights file (model.safetensors) */
  modelBytes?: number | null;
  /** export stages: best wall time (s) of decoding a fixed batch of test sentences (src/experiments/export-stage.ts) */
  decodeSeconds?: number | null;
}

/**
 * The columns src/experiments/report.ts writes (only stage, method and bleu are required here; files
 * written before a column existed read it as empty).
 */
export const EXPERIMENT_RESULT_COLUMNS = [
  'stage',
  'id',
  'kind',
  'method',
  'attention',
  'lambda',
  'targetHeads',
  'keptEnc',
  'keptDecSelf',
  'keptDecEnc',
  'bleu',
  'bleuTokLc',
  'devBleu',
  'run',
  'params',
  'nonZeroParams',
  'modelBytes',
  'decodeSeconds',
] as const;

export function parseExperimentResults(text: string, sourceName: string): ExperimentResultRow[] {
  const rows = csvRows(text, sourceName);
  const header = rows[0];
  if (!header) throw new DataError(`${sourceName}: empty results table`);
  const idx = columnIndex(
    header.cells.map((c) => c.trim()),
    ['stage', 'method', 'bleu'],
    sourceName,
    'experiment results',
  );
  const cell = (r: { cells: string[] }, c: string): string => (idx.has(c) ? (r.cells[idx.get(c)!] ?? '').trim() : '');
  return rows.slice(1).map((r) => {
    const num = (c: string) => numberCell(cell(r, c), sourceName, r.line, c);
    return {
      stage: cell(r, 'stage'),
      id: cell(r, 'id') || null,
      kind: cell(r, 'kind') || null,
      method: cell(r, 'method'),
      attention: cell(r, 'attention'),
      lambda: num('lambda'),
      targetHeads: cell(r, 'targetHeads') || null,
      keptEnc: num('keptEnc'),
      keptDecSelf: num('keptDecSelf'),
      keptDecEnc: num('keptDecEnc'),
      bleu: num('bleu'),
      bleuTokLc: num('bleuTokLc'),
      devBleu: num('devBleu'),
      run: cell(r, 'run') || null,
      params: num('params'),
      nonZeroParams: num('nonZeroParams'),
      modelBytes: num('modelBytes'),
      decodeSeconds: num('decodeSeconds'),
    };
  });
}

export function readExperimentResults(path: string): ExperimentResultRow[] {
  const file = resolveInputFile(path, ['results.csv'], 'results.csv');
  return parseExperimentResults(readTextFile(file, 'experiment results'), file);
}

// ---------------------------------------------------------------------------------------------------
// Attention maps

/** One head's attention over one sentence (the analyzer's AttentionMap has the same fields). */
export interface AttentionMapData {
  /** head key, e.g. `dec-enc.1.3` */
  key: string;
  queryTokens: string[];
  keyTokens: string[];
  /** [query][key], rows sum to 1 */
  weights: number[][];
  /** which sentence (an index into the split, or a label) */
  sentence?: number | string;
}

/** Check one parsed attention map (or an array of them). */
export function parseAttentionMaps(value: unknown, sourceName: string): AttentionMapData[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((m: unknown, i: number): AttentionMapData => {
    const at = Array.isArray(value) ? `[${i}]` : '';
    if (!isRecord(m)) throw new DataError(`${sourceName}: ${at || 'map'}: expected { key, queryTokens, keyTokens, weights }`);
    const strings = (x: unknown, f: string): string[] => {
      if (!Array.isArray(x) || !x.every((t): t is string => typeof t === 'string'))
        throw new DataError(`${sourceName}: ${at}${at ? '.' : ''}${f}: expected an array of strings`);
      return x;
    };
    if (typeof m.key !== 'string' || !parseHeadKey(m.key))
      throw new DataError(`${sourceName}: ${at}${at ? '.' : ''}key: expected a head key like enc-self.3.5, got ${JSON.stringify(m.key)}`);
    const queryTokens = strings(m.queryTokens, 'queryTokens');
    const keyTokens = strings(m.keyTokens, 'keyTokens');
    const w = m.weights;
    const isGrid =
      Array.isArray(w) &&
      w.length === queryTokens.length &&
      w.every(
        (row: unknown) => Array.isArray(row) && row.length === keyTokens.length && row.every((x: unknown) => typeof x === 'number' && Number.isFinite(x)),
      );
    if (!isGrid)
      throw new DataError(`${sourceName}: ${at}${at ? '.' : ''}weights: expected ${queryTokens.length} rows of ${keyTokens.length} numbers (queries x keys)`);
    const sentence = typeof m.sentence === 'number' || typeof m.sentence === 'string' ? m.sentence : undefined;
    return { key: m.key, queryTokens, keyTokens, weights: w as number[][], sentence };
  });
}

export function readAttentionMaps(path: string): AttentionMapData[] {
  const file = resolveInputFile(path, ['attention-maps.json'], 'attention-map JSON');
  const text = readTextFile(file, 'attention maps');
  try {
    return parseAttentionMaps(JSON.parse(text), file);
  } catch (e) {
    if (e instanceof SyntaxError) throw new DataError(`${file}: invalid JSON (${e.message})`);
    throw e;
  }
}
