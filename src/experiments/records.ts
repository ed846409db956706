/**
 * Stage records: what a finished stage leaves that is small enough to commit, so a study can go on in a
 * later session on a fresh machine. A record is the top-level files of the stage folder (stage.json with
 * its hash, config.json with the seed, git.json with the commit, command.txt, env.json, compute.json,
 * mask.json, metrics.jsonl, gate trajectories, head reports) and an importance stage's masks/, without its
 * checkpoints, tokenizer, log or test translations (those go to `hyps/`). `heads experiment report --out
 * <dir>` writes them to `<dir>/stages/<stage folder name>/`, with the digest of the stage's model (`weights.json`), so a stage
 * run again in another session can be checked to give the same model; `heads experiment run --restore <dir>`
 * copies them back into a runs folder where a stage is not done, and marks them `restored.json`.
 *
 * A restored stage counts as done without its weights: a stage that needs only a parent's record (a
 * layout trained from scratch reads its parent's mask.json) runs on it, so the scratch layouts of Table 2
 * need neither the baseline nor the pruning run again; a stage that needs a parent's checkpoint (every
 * other kind) is refused before anything is written. The report keeps a restored stage's committed row
 * (`--merge`), because its test translations are in `<dir>/hyps/`, not in the folder.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { findModelCheckpoint } from '../io/checkpoint.js';
import { ConfigError } from '../util/errors.js';
import { INTEGRITY_FILE, readJsonFile, verifyFile, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { type ResolvedStage, safeName, stageState } from './stage.js';
import { equivalentMarker, knownHashes, matchFinished, otherRecords, readFinishedStage } from './equivalence.js';
import { RESTORED_MARKER } from './stage-files.js';

export const RECORDS_DIR = 'stages';
/** Left out of a record: weights, the tokenizer (a later stage trains or loads its own), logs, translations. */
const NOT_RECORDED = /(\.hyp|\.tmp)$|^(stage\.log|tokenizer\.json|restored\.json|weights\.json)$/;
/** A top-level file larger than this is not a record's business (nothing a stage writes there comes close). */
const MAX_RECORD_FILE_BYTES = 8_000_000;

/** Subfolders a record keeps: an importance stage's masks per pruning step (its children's layouts are read from them). */
const RECORDED_DIRS = ['masks'];

const isRecordable = (dir: string, name: string): boolean => {
  if (name === INTEGRITY_FILE || name.startsWith('.') || NOT_RECORDED.test(name)) return false;
  const st = statSync(join(dir, name));
  return st.isFile() && st.size <= MAX_RECORD_FILE_BYTES;
};

/** The files of a finished stage folder that go into its record, by path relative to it (`masks/step-04.json`). */
export function recordFiles(folder: string): string[] {
  const top = readdirSync(folder).filter((name) => isRecordable(folder, name));
  const nested = RECORDED_DIRS.filter((d) => existsSync(join(folder, d)) && statSync(join(folder, d)).isDirectory()).flatMap((d) =>
    readdirSync(join(folder, d))
      .filter((name) => isRecordable(join(folder, d), name))
      .map((name) => `${d}/${name}`),
  );
  return [...top, ...nested].sort();
}

/** Copy `names` from one folder to another, each checked against its source folder's integrity record. */
function copyVerified(fromDir: string, toDir: string, names: readonly string[]): void {
  for (const name of names) {
    const bytes = readFileSync(join(fromDir, name));
    verifyFile(join(fromDir, name), bytes);
    writeFileAtomic(join(toDir, name), bytes);
  }
}

/**
 * Where a finished stage's small file `name` is: its run folder when the stage is done here, else its
 * committed record under `<outDir>/stages/` (a report rebuilt without the run folders); null for neither.
 * `recordsOnly`: the committed record alone (a report rebuilt from hyps/ describes the committed stages).
 */
export function stageFile(s: ResolvedStage, outDir: string, name: string, opts: { recordsOnly?: boolean } = {}): string | null {
  const own = join(s.folder, name);
  if (!opts.recordsOnly && stageState(s) === 'done' && existsSync(own)) return own;
  const record = join(outDir, RECORDS_DIR, basename(s.folder), name);
  return existsSync(record) ? record : null;
}

/** Done here from a committed record (a restore killed before its stage.json landed is not). */
export function isRestored(s: ResolvedStage): boolean {
  return existsSync(join(s.folder, RESTORED_MARKER)) && stageState(s) === 'done';
}

/** The record's digest of the stage's model (the checkpoint its children load), or null for a stage without one. */
export const WEIGHTS_FILE = 'weights.json';
export interface WeightsDigest {
  checkpoint: string;
  bytes: number;
  sha256: string;
}

export function weightsDigest(folder: string): WeightsDigest | null {
  if (!existsSync(join(folder, 'checkpoints'))) return null;
  const dir = findModelCheckpoint(folder).path;
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  return { checkpoint: basename(dir), bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Write the record of every stage done here (restored ones came from a record already) to
 * `<outDir>/stages/<folder name>/`, with the digest of its model (`weights.json`); records of other stages
 * already there are kept. A stage run again here whose model differs from its committed record's (other
 * code, other arithmetic) is named in `changed`: stages that other sessions ran on the committed model are
 * then not comparable with stages run on this one.
 */
export function writeStageRecords(stages: readonly ResolvedStage[], outDir: string): { written: number; changed: string[]; superseded: string[] } {
  let written = 0;
  const changed: string[] = [];
  const superseded: string[] = [];
  for (const s of stages) {
    const dest = join(outDir, RECORDS_DIR, basename(s.folder));
    // a restored stage came from a record; it is written again only under a new hash (restored as equivalent)
    if (stageState(s) !== 'done' || (isRestored(s) && existsSync(join(dest, 'stage.json')))) continue;
    const weights = weightsDigest(s.folder);
    const before = existsSync(join(dest, WEIGHTS_FILE)) ? readJsonFile<WeightsDigest>(join(dest, WEIGHTS_FILE), 'stage record') : null;
    if (before && weights && before.sha256 !== weights.sha256)
      changed.push(
        `${s.instance.id}: its model (${weights.checkpoint}, sha256 ${weights.sha256.slice(0, 12)}...) is not the one of its committed record (${before.checkpoint}, sha256 ${before.sha256.slice(0, 12)}...); stages run on the committed model in other sessions are not comparable with stages run on this one`,
      );
    copyVerified(s.folder, dest, recordFiles(s.folder));
    // the record of the same computation under its old hash is superseded: its weights digest moves here
    const from = readJsonFile<{ equivalentTo?: { from?: unknown } }>(join(s.folder, 'stage.json'), 'stage marker').equivalentTo?.from;
    const oldName = typeof from === 'string' ? basename(from) : null;
    const oldDir = oldName && oldName !== basename(dest) && oldName.startsWith(`${safeName(s.instance.id)}-`) ? join(outDir, RECORDS_DIR, oldName) : null;
    const oldWeights = oldDir && existsSync(join(oldDir, WEIGHTS_FILE)) ? readJsonFile<WeightsDigest>(join(oldDir, WEIGHTS_FILE), 'stage record') : null;
    if (weights ?? oldWeights) writeJsonAtomic(join(dest, WEIGHTS_FILE), weights ?? oldWeights);
    if (oldDir && existsSync(oldDir)) {
      rmSync(oldDir, { recursive: true, force: true });
      superseded.push(`${basename(oldDir)} -> ${basename(dest)}`);
    }
    written++;
  }
  return { written, changed, superseded };
}

/** A kind of stage that reads its parent's checkpoint (all but a layout trained from scratch, which reads its mask). */
export function needsParentCheckpoint(s: ResolvedStage): boolean {
  return s.parent !== null && s.instance.spec.kind !== 'train';
}

export interface RestorePlan {
  /** stages to restore, with the record folder each comes from (`marker`: the stage.json to write instead of the record's, for a record under another hash that is the same computation) */
  restore: Array<{ stage: ResolvedStage; from: string; files: string[]; marker?: Record<string, unknown> }>;
  /** stages with a record that are partly run here: they resume instead */
  partial: ResolvedStage[];
  /** records of a stage under another hash that are not its computation: why each runs again */
  notes: string[];
}

/**
 * Which of `stages` to restore from `fromDir` (the --out folder of an earlier report): every stage not
 * done here whose record is there. Nothing is written. ConfigError (the folder, file and field) when
 * `fromDir` holds no records or a record does not belong to its stage.
 */
export function planRestore(stages: readonly ResolvedStage[], fromDir: string): RestorePlan {
  const recordsDir = join(fromDir, RECORDS_DIR);
  if (!existsSync(recordsDir) || !statSync(recordsDir).isDirectory())
    throw new ConfigError([
      `--restore: ${fromDir} has no ${RECORDS_DIR}/ folder (expected the --out folder of an earlier 'heads experiment report', which writes the stage records there)`,
    ]);
  const problems: string[] = [];
  const plan: RestorePlan = { restore: [], partial: [], notes: [] };
  // the record hash each planned stage is restored from (its own, or the old one of an equivalent record)
  const plannedAs = new Map<string, string[]>();
  for (const s of stages) {
    const from = join(recordsDir, basename(s.folder));
    const marker = join(from, 'stage.json');
    const state = stageState(s);
    if (state === 'done') continue;
    if (!existsSync(marker)) {
      if (state === 'partial') continue;
      const known = s.parent ? knownHashes(s.parent) : new Set<string>();
      for (const h of s.parent ? (plannedAs.get(s.parent.instance.id) ?? []) : []) known.add(h);
      for (const other of otherRecords(s, recordsDir)) {
        let m: ReturnType<typeof matchFinished>;
        let theirs: ReturnType<typeof readFinishedStage>;
        try {
          theirs = readFinishedStage(other);
          m = matchFinished(s, theirs, known);
        } catch (e) {
          problems.push(`--restore: ${(e as Error).message}`);
          break;
        }
        if (m.kind === 'equivalent') {
          const files = recordFiles(other);
          problems.push(...recordProblems(other, files));
          plan.restore.push({ stage: s, from: other, files, marker: equivalentMarker(s, theirs, m.note) });
          plannedAs.set(s.instance.id, [theirs.hash, theirs.ranAs.hash]);
          break;
        }
        plan.notes.push(
          m.kind === 'continue'
            ? `[${s.instance.id}] ${other} ${m.note.rule ? 'would train on under the new stopping rule' : `reached its cap of ${m.note.cap.then}`}; it continues to ${m.note.cap.now} from its checkpoint, which a record does not hold: adopt its run folder (heads experiment adopt --id '${s.instance.id}' --run <folder>) where it is, or it trains again`
            : `[${s.instance.id}] runs again: ${m.kind === 'different' ? m.reason : 'same hash'}`,
        );
      }
      continue;
    }
    let hash: unknown;
    try {
      hash = readJsonFile<{ hash?: unknown }>(marker, 'stage record').hash;
    } catch (e) {
      problems.push(`--restore: ${(e as Error).message}`);
      continue;
    }
    if (hash !== s.hash) {
      problems.push(`--restore: ${marker}: field hash: expected ${s.hash} (stage ${s.instance.id} as the spec resolves it), found ${JSON.stringify(hash)}`);
      continue;
    }
    if (state === 'partial') plan.partial.push(s);
    else {
      const files = recordFiles(from);
      problems.push(...recordProblems(from, files));
      plan.restore.push({ stage: s, from, files });
      plannedAs.set(s.instance.id, [s.hash]);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return plan;
}

/**
 * What is wrong with the files of one record before any is copied: a file damaged since heads wrote it
 * (its integrity entry) or a JSON / JSON-lines file that does not parse, each one line naming the file
 * (and the line). A restore copies nothing unless every record it needs reads.
 */
function recordProblems(from: string, files: readonly string[]): string[] {
  const problems: string[] = [];
  for (const name of files) {
    const path = join(from, name);
    let text: string;
    try {
      const bytes = readFileSync(path);
      verifyFile(path, bytes);
      text = bytes.toString('utf8');
    } catch (e) {
      problems.push(`--restore: ${(e as Error).message}`);
      continue;
    }
    const lines = name.endsWith('.jsonl') ? text.split('\n').map((l, i) => [l, i + 1] as const) : name.endsWith('.json') ? [[text, 0] as const] : [];
    for (const [line, no] of lines) {
      if (no > 0 && line.trim() === '') continue;
      try {
        JSON.parse(line);
      } catch (e) {
        problems.push(
          `--restore: ${path}${no > 0 ? `:${no}` : ''}: expected ${no > 0 ? 'a JSON object per line' : 'JSON'}, found text that does not parse (${(e as Error).message})`,
        );
        break;
      }
    }
  }
  return problems;
}

/**
 * Stages that would run on a parent restored without its checkpoint (`restoring`: ids about to be
 * restored; folders restored earlier count too): one message each, naming the stage and the parent.
 */
export function restoredParentProblems(stages: readonly ResolvedStage[], restoring: ReadonlySet<string>): string[] {
  const restored = (s: ResolvedStage) => restoring.has(s.instance.id) || isRestored(s);
  return stages
    .filter((s) => !restored(s) && stageState(s) !== 'done' && s.parent !== null && restored(s.parent) && needsParentCheckpoint(s))
    .map(
      (s) =>
        `stage ${s.instance.id} needs the checkpoint of ${s.parent!.instance.id}, which is restored from its committed record without weights: run ${s.parent!.instance.id} here (without --restore, in a runs folder where it was not restored), or leave ${s.instance.id} out with --only`,
    );
}

/** Copy each planned record into its stage folder and mark it restored. */
export function applyRestore(plan: RestorePlan, log: (line: string) => void = () => {}): void {
  for (const { stage, from, files, marker } of plan.restore) {
    // stage.json last: until it is in place the stage is not done, so a kill mid-copy restores it again
    copyVerified(
      from,
      stage.folder,
      files.filter((name) => name !== 'stage.json'),
    );
    writeJsonAtomic(join(stage.folder, RESTORED_MARKER), {
      from,
      files,
      at: new Date().toISOString(),
      checkpoints: false,
      ...(marker ? { equivalentTo: marker['equivalentTo'] } : {}),
    });
    if (marker) writeJsonAtomic(join(stage.folder, 'stage.json'), marker);
    else copyVerified(from, stage.folder, ['stage.json']);
    const because = marker ? ` as the same computation: ${(marker['equivalentTo'] as { because: string }).because}` : '';
    log(`[${stage.instance.id}] restored from ${from} (its record, no checkpoints)${because}`);
  }
  for (const s of plan.partial) log(`[${s.instance.id}] partly run here: it resumes instead of being restored`);
  for (const n of plan.notes) log(n);
}
