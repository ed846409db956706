/**
 * Checkpoints: checkpoints/step-<N>/ holds model.safetensors (weights and gate log-alphas),
 * optimizer.safetensors (Adam moments), masks.safetensors (U8 0/1 weight masks of gradual magnitude pruning,
 * only when training keeps masks) and state.json (step, data position, config, and the sha256 and
 * byte length of both tensor files). state.json is written last, so a folder without a valid state.json
 * is incomplete; `latest.json` names the newest complete checkpoint, and `best.json` (early stopping) the
 * one a finished run delivers. Loading verifies lengths and hashes
 * (of the tensor files against state.json, of state.json against the folder's integrity record) and
 * refuses a checkpoint that fails, naming the file; a folder that cannot be read is refused with that
 * reason. A write the disk refuses removes the half-written folder and leaves the older ones valid.
 * Loading also removes the temp files a killed write left (util/fs.ts removeStaleTempFiles).
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, isHeadsError } from '../util/errors.js';
import { fileSystemError, removeQuietly, removeStaleTempFiles, statOrNull, verifyFile, writeJsonAtomic } from '../util/fs.js';
import { type NamedArrays, type SafeTensor, readSafetensors, writeSafetensors } from './safetensors.js';
import { dequantizeTensors } from './quantized-tensors.js';
import type { ResolvedConfig } from '../config/schema.js';

export type { NamedArrays };

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
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch (e) {
    throw fileSystemError(e, path, 'read');
  }
}

function toSafetensors(arrays: NamedArrays): Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> {
  const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [k, v] of Object.entries(arrays)) out[k] = { dtype: 'F32', shape: v.shape, data: v.data };
  return out;
}

function fromSafetensors(path: string): NamedArrays {
  const file = readSafetensors(path);
  // an int8 export (io/quantized-tensors.ts, compress/quantize.ts): I8 matrices with float32 scales, dequantized to float32 here
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

/**
 * Write a complete checkpoint folder, then point latest.json at it, then prune old ones (an old one that
 * cannot be removed is reported through `warn`). A refused write (full disk, no permission) throws a
 * FileSystemError naming the file, after removing the folder it was creating.
 */
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
  /** a step whose checkpoint survives pruning however old it is (early stopping's best step) */
  protectStep?: number | null,
  warn: (msg: string) => void = () => {},
): string {
  const dir = join(runPath, 'checkpoints', checkpointDirName(s.step));
  const isNew = !existsSync(dir);
  try {
    writeCheckpointFiles(dir, s, params, optimizer, encodeModel, masks);
  } catch (e) {
    // a folder without its state.json is no checkpoint: give its space back (an older folder is left as it was)
    if (isNew) removeQuietly(dir);
    throw e;
  }
  writeJsonAtomic(join(runPath, 'checkpoints', 'latest.json'), { step: s.step, dir: checkpointDirName(s.step) });
  pruneCheckpoints(runPath, keep, protectStep ?? null, warn);
  return dir;
}

function writeCheckpointFiles(
  dir: string,
  s: Omit<CheckpointState, 'format' | 'version' | 'files' | 'createdAt'>,
  params: NamedArrays,
  optimizer: NamedArrays,
  encodeModel?: (params: NamedArrays) => Record<string, SafeTensor>,
  masks?: Record<string, { shape: number[]; data: Uint8Array }>,
): void {
  const files: CheckpointState['files'] = {};
  for (const [name, arrays] of [
    ['model.safetensors', params],
    ['optimizer.safetensors', optimizer],
  ] as const) {
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
}

/** The run's `checkpoints/step-N` folders, newest first (nothing is read or written in them). */
export function listCheckpointDirs(runPath: string): Array<{ step: number; dir: string }> {
  const root = join(runPath, 'checkpoints');
  if (!statOrNull(root)) return [];
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (e) {
    throw fileSystemError(e, root, 'list the checkpoints in');
  }
  return names
    .map((d) => ({ d, m: /^step-(\d+)$/.exec(d) }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), dir: join(root, x.d) }))
    .sort((a, b) => b.step - a.step);
}

function pruneCheckpoints(runPath: string, keep: number, protectStep: number | null, warn: (msg: string) => void): void {
  for (const { step, dir } of listCheckpointDirs(runPath).slice(keep)) {
    if (step === protectStep) continue;
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      const err = fileSystemError(e, dir, 'remove the old checkpoint');
      warn(err instanceof Error ? err.message : String(err));
    }
  }
}

/**
 * Name the checkpoint a finished run delivers when it is not the newest (early stopping: the best step):
 * `checkpoints/best.json`, which findModelCheckpoint (and so loadModel and every later stage) follows.
 */
export function writeBestPointer(runPath: string, step: number): void {
  writeJsonAtomic(join(runPath, 'checkpoints', 'best.json'), { step, dir: checkpointDirName(step) });
}

/**
 * The checkpoint that holds a run's model: the one `checkpoints/best.json` names (a finished run with
 * early stopping), else the newest valid one. A checkpoint folder is read as it is. Resuming a run uses
 * findLatestValidCheckpoint instead (the newest state, not the best weights).
 */
export function findModelCheckpoint(path: string, warn: (msg: string) => void = () => {}): LoadedCheckpoint {
  const pointer = join(path, 'checkpoints', 'best.json');
  if (existsSync(join(path, 'state.json')) || !existsSync(pointer)) return findLatestValidCheckpoint(path, warn);
  let best: { dir?: unknown };
  try {
    best = JSON.parse(readFileSync(pointer, 'utf8')) as { dir?: unknown };
  } catch (e) {
    throw new CheckpointError(`${pointer}: corrupt (${(e as Error).message})`);
  }
  if (typeof best.dir !== 'string' || !/^step-\d+$/.test(best.dir))
    throw new CheckpointError(`${pointer}: expected { "dir": "step-N" }, found ${JSON.stringify(best.dir)}`);
  for (const d of [path, join(path, 'checkpoints'), join(path, 'checkpoints', best.dir)]) removeStaleTempFiles(d);
  return readCheckpoint(join(path, 'checkpoints', best.dir));
}

/**
 * Before a resume from `fromStep` trains anything: a newer checkpoint folder that training will write
 * again (`willWrite(step)`) but cannot (no permission) is refused now, in one line, not at that step.
 */
export function checkWritableAfter(runPath: string, fromStep: number, willWrite: (step: number) => boolean): void {
  for (const { step, dir } of listCheckpointDirs(runPath)) {
    if (step <= fromStep || !willWrite(step)) continue;
    try {
      accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch (e) {
      const err = fileSystemError(e, dir, 'write the checkpoint into');
      if (err instanceof Error)
        err.message += `; resuming from step ${fromStep} would write step ${step} there: fix its permissions or move it out of ${join(runPath, 'checkpoints')}, then resume`;
      throw err;
    }
  }
}

/** Read and verify one checkpoint folder; throws CheckpointError naming the file that fails. */
export function readCheckpoint(dir: string): LoadedCheckpoint {
  try {
    return readCheckpointFiles(dir);
  } catch (e) {
    // a file that cannot be read (permission, I/O) or fails its integrity record makes the checkpoint invalid
    if (isHeadsError(e) && !(e instanceof CheckpointError)) throw new CheckpointError(e.message);
    throw e;
  }
}

function readCheckpointFiles(dir: string): LoadedCheckpoint {
  const statePath = join(dir, 'state.json');
  if (!statOrNull(statePath)) throw new CheckpointError(`${dir}: not a complete checkpoint (no state.json)`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(statePath);
  } catch (e) {
    throw fileSystemError(e, statePath, 'read');
  }
  let state: CheckpointState;
  try {
    state = JSON.parse(bytes.toString('utf8')) as CheckpointState;
  } catch (e) {
    throw new CheckpointError(`${statePath}: corrupt (${(e as Error).message})`);
  }
  // its step, data position and config decide every later loss: it must be what heads wrote
  verifyFile(statePath, bytes);
  if (state.format !== 'heads.checkpoint' || state.version !== 1)
    throw new CheckpointError(`${statePath}: expected format heads.checkpoint version 1, got ${String(state.format)} ${String(state.version)}`);
  for (const [name, want] of Object.entries(state.files ?? {})) {
    const p = join(dir, name);
    const st = statOrNull(p);
    if (!st) throw new CheckpointError(`${p}: missing`);
    if (st.size !== want.bytes) throw new CheckpointError(`${p}: expected ${want.bytes} bytes, found ${st.size} (truncated or overwritten)`);
    if (sha256(p) !== want.sha256) throw new CheckpointError(`${p}: checksum mismatch (corrupt file)`);
  }
  const out: LoadedCheckpoint = {
    path: dir,
    state,
    params: fromSafetensors(join(dir, 'model.safetensors')),
    optimizer: fromSafetensors(join(dir, 'optimizer.safetensors')),
  };
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
 * skipped, and so is a `latest.json` naming a checkpoint that is missing. Accepts a run folder or a
 * checkpoint folder. Removes stale temp files (of killed writes) from the folders it looks at.
 */
export function findLatestValidCheckpoint(path: string, warn: (msg: string) => void = () => {}): LoadedCheckpoint {
  if (statOrNull(join(path, 'state.json'))) {
    removeStaleTempFiles(path);
    return readCheckpoint(path);
  }
  for (const d of [path, join(path, 'checkpoints')]) removeStaleTempFiles(d);
  const dirs = listCheckpointDirs(path);
  for (const { dir } of dirs) removeStaleTempFiles(dir);
  if (!dirs.length) throw new CheckpointError(`${path}: no checkpoints found (expected ${join(path, 'checkpoints', 'step-N')})`);
  const named = latestNamed(path);
  const problems: string[] = [];
  if (named !== null && !dirs.some((d) => d.step === named))
    problems.push(`${join(path, 'checkpoints', 'latest.json')} names step ${named}, but ${join(path, 'checkpoints', checkpointDirName(named))} is missing`);
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

/** The step latest.json names (null: no latest.json, or one that does not name a step). */
function latestNamed(runPath: string): number | null {
  const p = join(runPath, 'checkpoints', 'latest.json');
  try {
    if (!statOrNull(p)) return null;
    const v = JSON.parse(readFileSync(p, 'utf8')) as { step?: unknown };
    return typeof v.step === 'number' && Number.isInteger(v.step) ? v.step : null;
  } catch {
    return null;
  }
}
