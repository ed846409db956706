/**
 * Checkpoints: checkpoints/step-<N>/ holds model.safetensors (weights and gate log-alphas),
 * optimizer.safetensors (Adam moments), masks.safetensors (U8 0/1 weight masks of gradual magnitude pruning,
 * only when training keeps masks) and state.json (step, data position, config, and the sha256 and
 * byte length of both tensor files). state.json is written last, so a folder without a valid state.json
 * is incomplete; `latest.json` names the newest complete checkpoint. Loading verifies lengths and hashes
 * and refuses a checkpoint that fails, naming the file.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';
import { type SafeTensor, readSafetensors, writeSafetensors } from '../export/safetensors.js';
import { dequantizeTensors } from '../export/quantize.js';
import type { ResolvedConfig } from '../config/schema.js';

export type NamedArrays = Record<string, { shape: number[]; data: Float32Array }>;

export interface DataPosition {
  epoch: number;
  /** index of the next batch within the epoch's plan */
  batch: number;
}

export interface CheckpointState {
  format: 'heads.checkpoint';
  version: 1;
  step: number;
  dataPosition: DataPosition;
  adamStep: number;
  config: ResolvedConfig;
  /** extra trainer state (e.g. Lagrange multipliers) */
  extra: Record<string, number>;
  files: Record<string, { bytes: number; sha256: string }>;
  createdAt: string;
}

export interface LoadedCheckpoint {
  path: string;
  state: CheckpointState;
  params: NamedArrays;
  optimizer: NamedArrays;
  /** gradual magnitude pruning's masks (1 keep, 0 pruned), when the checkpoint has masks.safetensors */
  masks?: Record<string, Uint8Array>;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function toSafetensors(arrays: NamedArrays): Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> {
  const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [k, v] of Object.entries(arrays)) out[k] = { dtype: 'F32', shape: v.shape, data: v.data };
  return out;
}

function fromSafetensors(path: string): NamedArrays {
  const file = readSafetensors(path);
  // an int8 export (export/quantize.ts): I8 matrices with float32 scales, dequantized to float32 here
  if (Object.values(file.tensors).some((t) => t.dtype === 'I8')) return dequantizeTensors(file.tensors, path);
  const out: NamedArrays = {};
  for (const [k, t] of Object.entries(file.tensors)) {
    if (t.dtype !== 'F32' || !(t.data instanceof Float32Array)) throw new CheckpointError(`${path}: tensor ${k}: expected F32, found ${t.dtype}`);
    out[k] = { shape: t.shape.slice(), data: t.data };
  }
  return out;
}

export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(7, '0')}`;
}

/** Write a complete checkpoint folder, then point latest.json at it, then prune old ones. */
export function writeCheckpoint(
  runPath: string,
  s: Omit<CheckpointState, 'format' | 'version' | 'files' | 'createdAt'>,
  params: NamedArrays,
  optimizer: NamedArrays,
  keep: number,
  /** how model.safetensors stores `params` (default: every tensor F32; an int8 export passes quantizeTensors) */
  encodeModel?: (params: NamedArrays) => Record<string, SafeTensor>,
  /** weight masks to checkpoint (gradual magnitude pruning): name -> mask shaped like the parameter */
  masks?: Record<string, { shape: number[]; data: Uint8Array }>,
): string {
  const dir = join(runPath, 'checkpoints', checkpointDirName(s.step));
  const files: CheckpointState['files'] = {};
  for (const [name, arrays] of [['model.safetensors', params], ['optimizer.safetensors', optimizer]] as const) {
    const p = join(dir, name);
    // the digest of the bytes just written (not a second read and hash of the file)
    files[name] = writeSafetensors(p, name === 'model.safetensors' && encodeModel ? encodeModel(arrays) : toSafetensors(arrays), { step: String(s.step) });
  }
  if (masks) {
    const p = join(dir, 'masks.safetensors');
    const tensors: Record<string, SafeTensor> = {};
    for (const [k, m] of Object.entries(masks)) tensors[k] = { dtype: 'U8', shape: m.shape, data: m.data };
    files['masks.safetensors'] = writeSafetensors(p, tensors, { step: String(s.step) });
  }
  const state: CheckpointState = { format: 'heads.checkpoint', version: 1, ...s, files, createdAt: new Date().toISOString() };
  writeJsonAtomic(join(dir, 'state.json'), state);
  writeJsonAtomic(join(runPath, 'checkpoints', 'latest.json'), { step: s.step, dir: checkpointDirName(s.step) });
  pruneCheckpoints(runPath, keep);
  return dir;
}

function listCheckpointDirs(runPath: string): Array<{ step: number; dir: string }> {
  const root = join(runPath, 'checkpoints');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((d) => ({ d, m: /^step-(\d+)$/.exec(d) }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), dir: join(root, x.d) }))
    .sort((a, b) => b.step - a.step);
}

function pruneCheckpoints(runPath: string, keep: number): void {
  for (const { dir } of listCheckpointDirs(runPath).slice(keep)) rmSync(dir, { recursive: true, force: true });
}

/** Read and verify one checkpoint folder; throws CheckpointError naming the file that fails. */
export function readCheckpoint(dir: string): LoadedCheckpoint {
  const statePath = join(dir, 'state.json');
  if (!existsSync(statePath)) throw new CheckpointError(`${dir}: not a complete checkpoint (no state.json)`);
  let state: CheckpointState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as CheckpointState;
  } catch (e) {
    throw new CheckpointError(`${statePath}: corrupt (${(e as Error).message})`);
  }
  if (state.format !== 'heads.checkpoint' || state.version !== 1) throw new CheckpointError(`${statePath}: expected format heads.checkpoint version 1, got ${String(state.format)} ${String(state.version)}`);
  for (const [name, want] of Object.entries(state.files ?? {})) {
    const p = join(dir, name);
    if (!existsSync(p)) throw new CheckpointError(`${p}: missing`);
    const bytes = statSync(p).size;
    if (bytes !== want.bytes) throw new CheckpointError(`${p}: expected ${want.bytes} bytes, found ${bytes} (truncated or overwritten)`);
    if (sha256(p) !== want.sha256) throw new CheckpointError(`${p}: checksum mismatch (corrupt file)`);
  }
  const out: LoadedCheckpoint = { path: dir, state, params: fromSafetensors(join(dir, 'model.safetensors')), optimizer: fromSafetensors(join(dir, 'optimizer.safetensors')) };
  if (state.files?.['masks.safetensors']) out.masks = readMasks(join(dir, 'masks.safetensors'));
  return out;
}

function readMasks(path: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const [k, t] of Object.entries(readSafetensors(path).tensors)) {
    if (t.dtype !== 'U8' || !(t.data instanceof Uint8Array)) throw new CheckpointError(`${path}: mask ${k}: expected U8, found ${t.dtype}`);
    out[k] = t.data;
  }
  return out;
}

/**
 * The newest checkpoint of a run that verifies; invalid newer ones are reported through `warn` and
 * skipped. Accepts a run folder or a checkpoint folder.
 */
export function findLatestValidCheckpoint(path: string, warn: (msg: string) => void = () => {}): LoadedCheckpoint {
  if (existsSync(join(path, 'state.json'))) return readCheckpoint(path);
  const dirs = listCheckpointDirs(path);
  if (!dirs.length) throw new CheckpointError(`${path}: no checkpoints found (expected ${join(path, 'checkpoints', 'step-N')})`);
  const problems: string[] = [];
  for (const { dir } of dirs) {
    try {
      const c = readCheckpoint(dir);
      if (problems.length) warn(`skipped invalid checkpoint(s): ${problems.join('; ')}; using ${dir}`);
      return c;
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      problems.push(e.message);
    }
  }
  throw new CheckpointError(`${path}: no valid checkpoint: ${problems.join('; ')}`);
}
