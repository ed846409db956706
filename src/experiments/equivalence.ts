/**
 * When a finished stage computed under another config is the computation a stage of the spec asks for.
 *
 * Raising a study's `train.maxSteps` (the cap of its early-stopping baselines) changes the hash of every
 * stage, since each hash holds its parent's. Most finished stages are still the same computation:
 * - a run that its own rule stopped (early stopping, settled gates) before both caps made every decision
 *   the other cap makes;
 * - a stage that does not train (analysis, importance scoring, export) never reads the cap;
 * - a stage whose config is unchanged and whose parent is such a stage.
 * Such a stage is `equivalent`: it is adopted or restored under its new hash, its stage.json noting the
 * hash it had, what differs and why that changes nothing (`equivalentTo`). A train run that reached the
 * lower cap is the first part of the run with the higher one: it `continue`s from its checkpoint at the cap
 * (the learning-rate schedule does not depend on the cap). Anything else is `different` and runs again.
 *
 * A changed stopping rule (`train.earlyStopping`: another metric, patience, minDelta or lrDecay) changes no step of
 * training, only where it ends and which checkpoint is the model, unless it cuts the learning rate at
 * other evaluations than the run's rule did (lrDecay): then it is `different`. The new rule is replayed on the run's own
 * evaluations (metrics.jsonl), after the old rule's replay has reproduced the run's recorded end and best
 * step: if the new rule ends the run where it ended with the same best step, it is `equivalent`; if it would
 * not have stopped it yet, the run `continue`s from its last checkpoint with the new rule's state; if it
 * would have stopped it earlier, it is `different`.
 *
 * A run stopped before its end (a signal, a kill: a stage folder with checkpoints and no stage.json) whose
 * rule or cap changed is matched the same way from its newest readable checkpoint: it `continue`s from
 * there under the new hash if the new rule, replayed on its evaluations up to that step, would not have
 * stopped it and cut its learning rate at the same evaluations as the old one (matchInterrupted);
 * `experiment run` does that by itself before it would start such a stage from step 0 (continueStoppedRun).
 *
 * Each finished stage must first reproduce its own recorded hash from its config.json and its parent's
 * hash under the spec's kind and settings: that proves the settings are the spec's and the config is the
 * one it ran with; only then are the configs compared key by key.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmdirSync, rmSync, symlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadConfigOn } from '../config/load.js';
import { checkpointDirName, listCheckpointDirs, readCheckpoint } from '../io/checkpoint.js';
import type { EarlyStoppingConfig, ResolvedConfig } from '../config/schema.js';
import { CheckpointError, HeadsError } from '../util/errors.js';
import { readJsonFile, writeJsonAtomic } from '../util/fs.js';
import { RunFolder } from '../util/run-folder.js';
import { EarlyStopping, type DevEval, isEarlyStoppingState } from '../train/early-stopping.js';
import { type ResolvedStage, adoptRun, configDiffs, folderLockHolder, hashedIdentity, safeName, stageHash, stageState } from './stage.js';
import { CONTINUED_FILE } from './stage-files.js';

/** The config keys whose difference can leave a stage the same computation: the cap and the stopping rule. */
const CAP = 'train.maxSteps';
const RULE = 'train.earlyStopping';

/** A finished stage folder (a run folder here or a committed record), as much of it as a match needs. */
export interface FinishedStage {
  folder: string;
  id: string;
  hash: string;
  /** the hash of the stage it started from (the suffix of stage.json's parent folder); null for a root stage */
  parentHash: string | null;
  /** the hash and parent hash its config.json ran under: these, or for a stage adopted or restored as equivalent, its `equivalentTo`'s */
  ranAs: { hash: string; parentHash: string | null };
  config: ResolvedConfig;
  /** results.json of a stage that trained: the last step, the rule that ended it (null: the cap) and its early-stopping best step (null: no rule) */
  ended: { steps: number; stoppedBy: string | null; bestStep: number | null } | null;
  /** stage.json as written */
  marker: Record<string, unknown>;
}

/** Why a finished stage under another hash is this stage's computation (stage.json's `equivalentTo`). */
export interface EquivalenceNote {
  /** the hash its config.json ran under, and its parent's then */
  hash: string;
  parentHash: string | null;
  /** the folder (or record) it was adopted or restored from */
  from: string;
  differs: Record<string, { stage: unknown; record: unknown }>;
  because: string;
}

/** A train run that reached a lower cap, continued under this stage's (stage.json's `continuedFrom`). */
export interface ContinuationNote {
  hash: string;
  from: string;
  fromStep: number;
  cap: { then: number; now: number };
  /** a changed stopping rule: the rules, and the new rule's state replayed on the run's evaluations (checkpoint numbers) */
  rule?: { then: EarlyStoppingConfig | null; now: EarlyStoppingConfig | null; bestStep: number | null; state: Record<string, number> };
}

export type Match =
  { kind: 'same' } | { kind: 'equivalent'; note: EquivalenceNote } | { kind: 'continue'; note: ContinuationNote } | { kind: 'different'; reason: string };

const HASH_SUFFIX = /-([0-9a-f]{10})$/;

/** Read a finished stage folder; HeadsError naming the file and field when it is not one. */
export function readFinishedStage(folder: string): FinishedStage {
  const markerPath = join(folder, 'stage.json');
  const cfgPath = join(folder, 'config.json');
  if (!existsSync(markerPath)) throw new HeadsError(`${folder}: not a finished stage (no stage.json)`);
  if (!existsSync(cfgPath)) throw new HeadsError(`${folder}: no config.json (the config the stage ran with)`);
  const marker = readJsonFile<Record<string, unknown>>(markerPath, 'stage marker');
  const { hash, id, parent } = marker;
  if (typeof hash !== 'string' || !/^[0-9a-f]{10}$/.test(hash))
    throw new HeadsError(`${markerPath}: field hash: expected 10 hex digits, found ${JSON.stringify(hash)}`);
  if (typeof id !== 'string') throw new HeadsError(`${markerPath}: field id: expected the stage instance id, found ${JSON.stringify(id)}`);
  let parentHash: string | null = null;
  if (parent !== null && parent !== undefined) {
    const m = typeof parent === 'string' ? HASH_SUFFIX.exec(basename(parent)) : null;
    if (!m) throw new HeadsError(`${markerPath}: field parent: expected a stage folder ending in -<10 hex digits>, found ${JSON.stringify(parent)}`);
    parentHash = m[1]!;
  }
  let ranAs = { hash, parentHash };
  const eq = marker['equivalentTo'] as { hash?: unknown; parentHash?: unknown } | undefined;
  if (eq !== undefined) {
    if (typeof eq?.hash !== 'string' || !(eq.parentHash === null || typeof eq.parentHash === 'string'))
      throw new HeadsError(`${markerPath}: field equivalentTo: expected { hash, parentHash, ... } of the computation it ran as, found ${JSON.stringify(eq)}`);
    ranAs = { hash: eq.hash, parentHash: eq.parentHash };
  }
  const config = loadConfigOn(readJsonFile<ResolvedConfig>(cfgPath, 'stage config'), null, [], cfgPath);
  const resPath = join(folder, 'results.json');
  let ended: FinishedStage['ended'] = null;
  if (existsSync(resPath)) {
    const r = readJsonFile<{ steps?: unknown; stoppedBy?: unknown; earlyStopping?: { best?: { step?: unknown } | null } | null }>(resPath, 'stage results');
    const best = r.earlyStopping?.best?.step;
    if (typeof r.steps === 'number')
      ended = { steps: r.steps, stoppedBy: typeof r.stoppedBy === 'string' ? r.stoppedBy : null, bestStep: typeof best === 'number' ? best : null };
  }
  return { folder, id, hash, parentHash, ranAs, config, ended, marker };
}

/** Whether a stage trains (and so reads train.maxSteps): train, finetune, and L0 or fixed-mask pruning. */
export function trains(s: ResolvedStage): boolean {
  const st = s.instance.spec;
  return st.kind === 'train' || st.kind === 'finetune' || (st.kind === 'prune' && (st.method === 'l0' || st.method === 'fixed-mask'));
}

/**
 * The hashes a done stage is known by: its own and, where it was adopted or restored as equivalent, the
 * one it had before (a finished stage that started from either started from it).
 */
export function knownHashes(s: ResolvedStage): Set<string> {
  const out = new Set([s.hash]);
  const marker = join(s.folder, 'stage.json');
  if (stageState(s) === 'done' && existsSync(marker)) {
    const eq = readJsonFile<{ equivalentTo?: { hash?: unknown } }>(marker, 'stage marker').equivalentTo;
    if (typeof eq?.hash === 'string') out.add(eq.hash);
  }
  return out;
}

const isRule = (path: string) => path === RULE || path.startsWith(`${RULE}.`);

/** Where stage `s`'s config and `theirs` differ, and why that is another computation (null: only the cap and the rule differ). */
function compareConfigs(s: ResolvedStage, theirs: ResolvedConfig, label: 'record' | 'run') {
  const diffs = configDiffs(hashedIdentity(s.instance, s.config), hashedIdentity(s.instance, theirs));
  const other = diffs.filter((d) => d.path !== CAP && !isRule(d.path));
  const otherKeys = other.length
    ? `its config differs in ${other
        .slice(0, 4)
        .map((d) => `${d.path} (stage ${JSON.stringify(d.ours)}, ${label} ${JSON.stringify(d.theirs)})`)
        .join('; ')}`
    : null;
  return { diffs, otherKeys };
}

/** Why two replays' learning-rate cuts before step `last` trained other runs (null: the same cuts). */
function cutsDiffer(oldCuts: readonly number[], freshCuts: readonly number[], last: number, rules: string): string | null {
  const before = (c: readonly number[]) => c.filter((x) => x < last);
  const a = before(oldCuts),
    b = before(freshCuts);
  if (a.length === b.length && a.every((c, i) => c === b[i])) return null;
  const cutSteps = (c: number[]) => (c.length ? `step ${c.join(', ')}` : 'no step');
  return `its learning rate was cut after ${cutSteps(a)} and the new stopping rule ${rules} cuts it after ${cutSteps(b)}, so the steps after the first difference ran at another rate`;
}

/**
 * How the finished stage `theirs` relates to stage `s`. `parentKnownAs`: the hashes `s.parent` is known by
 * (its own, and any it is equivalent to); unused for a root stage.
 */
export function matchFinished(s: ResolvedStage, theirs: FinishedStage, parentKnownAs: ReadonlySet<string>): Match {
  const different = (reason: string): Match => ({
    kind: 'different',
    reason: `${theirs.folder} (hash ${theirs.hash}) is not stage ${s.instance.id}: ${reason}`,
  });
  if (theirs.hash === s.hash) return { kind: 'same' };
  // no id check: specs that share a stage share its hash under other ids (sparsity-methods' `baseline` is
  // voita2019-ddtp-ende's `baseline[seed=1]`); the hash below covers kind, settings, config and parent
  if (stageHash(s.instance, theirs.config, theirs.ranAs.parentHash) !== theirs.ranAs.hash)
    return different(
      `its config.json and parent do not give its hash under this stage's kind and settings (the stage's settings in the spec changed, or config.json is not the one it ran with)`,
    );
  if ((s.parent === null) !== (theirs.parentHash === null)) return different(s.parent ? 'it has no parent' : 'it has a parent, this stage none');
  if (s.parent && !parentKnownAs.has(theirs.parentHash!) && !parentKnownAs.has(theirs.ranAs.parentHash!))
    return different(
      `it started from ${theirs.parentHash}, and ${s.parent.instance.id} is ${[...parentKnownAs].join(' or ')} (adopt or restore the parent first; a parent that changed makes every stage after it run again)`,
    );
  const { diffs, otherKeys } = compareConfigs(s, theirs.config, 'record');
  if (otherKeys) return different(otherKeys);
  const note = (because: string): Match => ({
    kind: 'equivalent',
    note: {
      hash: theirs.ranAs.hash,
      parentHash: theirs.ranAs.parentHash,
      from: theirs.folder,
      differs: Object.fromEntries(diffs.map((d) => [d.path, { stage: d.ours, record: d.theirs }])),
      because,
    },
  });
  if (!diffs.length) return note(`its config is this stage's; only its parent's hash changed, and its parent is the same computation`);
  const now = s.config.train.maxSteps;
  const then = theirs.config.train.maxSteps;
  if (!trains(s))
    return note(
      `a ${s.instance.spec.kind} stage does not train: ${diffs.some((d) => isRule(d.path)) ? `${CAP} and ${RULE} are` : `${CAP} (${then} then, ${now} now) is`} never read`,
    );
  if (!theirs.ended) return different(`it trained, and has no results.json saying where its training ended`);
  if (diffs.some((d) => isRule(d.path))) return matchUnderNewRule(s, theirs, theirs.ended, note, different);
  const g = s.config.gates;
  if (g.attention.length && g.targetHeads !== null && g.targetWarmupSteps === null)
    return different(`its gates' target warm-up is half of ${CAP} (gates.targetWarmupSteps is null), so the cap changes the training`);
  const { steps, stoppedBy } = theirs.ended;
  if (stoppedBy !== null && steps < Math.min(now, then))
    return note(
      `its ${stoppedBy} rule stopped it at step ${steps}, before both caps (${then} then, ${now} now): the other cap makes no decision it did not make`,
    );
  if (stoppedBy === null && steps === then && then < now) {
    // the capped run evaluated and checkpointed at its last step; the longer run does so there only on its schedule
    const t = s.config.train;
    if (t.earlyStopping && (t.evalEverySteps <= 0 || then % t.evalEverySteps !== 0))
      return different(
        `its cap (step ${then}) is not an evaluation step of train.evalEverySteps = ${t.evalEverySteps}, so its last evaluation is one the longer run does not make`,
      );
    if (g.settle) return different(`gates.settle: the capped run did not check its gates at its last step, the longer run does`);
    return { kind: 'continue', note: { hash: theirs.hash, from: theirs.folder, fromStep: then, cap: { then, now } } };
  }
  return different(
    stoppedBy === null
      ? `it reached its cap at step ${steps} (${CAP} ${then}), and this stage's cap is ${now}`
      : `it trained to step ${steps}, past this stage's cap of ${now}`,
  );
}

/**
 * The dev evaluations of a finished run (metrics.jsonl lines with a dev loss), in step order; a step logged
 * twice (a run resumed from a checkpoint before an evaluation it had logged) counts once, as last logged.
 */
export function runEvaluations(folder: string): Array<{ step: number } & DevEval> {
  const path = join(folder, 'metrics.jsonl');
  if (!existsSync(path)) return [];
  const byStep = new Map<number, { step: number } & DevEval>();
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.includes('"devLoss"')) return;
      let r: { step?: unknown; devLoss?: unknown; devBleu?: unknown };
      try {
        r = JSON.parse(line) as typeof r;
      } catch (e) {
        throw new HeadsError(`${path}:${i + 1}: expected a JSON object per line, found text that does not parse (${(e as Error).message})`);
      }
      if (typeof r.step !== 'number' || typeof r.devLoss !== 'number') return;
      byStep.set(r.step, { step: r.step, devLoss: r.devLoss, ...(typeof r.devBleu === 'number' ? { devBleu: r.devBleu } : {}) });
    });
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/**
 * A rule replayed on evaluations up to `last`: where it stops (null: not by then), its best step, its state,
 * and the evaluation steps after which it cut the learning rate (lrDecay; the steps after them ran at the
 * lower rate, so two rules that cut at different steps trained different runs).
 */
function replay(rule: EarlyStoppingConfig | null, evals: ReadonlyArray<{ step: number } & DevEval>, last: number) {
  const cuts: number[] = [];
  if (!rule) return { stopsAt: null, bestStep: null, state: {} as Record<string, number>, cuts };
  const es = new EarlyStopping(rule);
  for (const e of evals) {
    if (e.step > last) break;
    if (es.observe(e.step, e).cut) cuts.push(e.step);
    if (es.shouldStop) return { stopsAt: e.step, bestStep: es.bestEval?.step ?? null, state: es.toExtra(), cuts };
  }
  return { stopsAt: null, bestStep: es.bestEval?.step ?? null, state: es.toExtra(), cuts };
}

const ruleText = (r: EarlyStoppingConfig | null) =>
  r
    ? `${r.metric}, patience ${r.patience}, minDelta ${r.minDelta}${r.lrDecay ? `, learning rate x${r.lrDecay.factor} up to ${r.lrDecay.times} times` : ''}`
    : 'none';

/** A train run whose stopping rule (and perhaps cap) changed: the new rule replayed on its evaluations. */
function matchUnderNewRule(
  s: ResolvedStage,
  theirs: FinishedStage,
  ended: NonNullable<FinishedStage['ended']>,
  note: (because: string) => Match,
  different: (reason: string) => Match,
): Match {
  const t = s.config.train;
  const thenRule = theirs.config.train.earlyStopping;
  const nowRule = t.earlyStopping;
  const now = t.maxSteps;
  const then = theirs.config.train.maxSteps;
  const { steps } = ended;
  if (s.config.gates.settle || theirs.config.gates.settle) return different(`gates.settle: settling ends the run too, and the rules are not replayed with it`);
  const evals = runEvaluations(theirs.folder);
  // the old rule on the run's own evaluations must give the end and the best step it recorded
  const old = replay(thenRule, evals, steps);
  const endsBy = (stopsAt: number | null) => (stopsAt !== null ? 'early-stopping' : null);
  if ((old.stopsAt ?? steps) !== steps || endsBy(old.stopsAt) !== ended.stoppedBy || old.bestStep !== ended.bestStep)
    return different(
      `its metrics.jsonl (${evals.length} evaluations) does not reproduce how its rule (${ruleText(thenRule)}) ended it: step ${steps}, best ${ended.bestStep ?? '-'} recorded, step ${old.stopsAt ?? steps}, best ${old.bestStep ?? '-'} replayed`,
    );
  const fresh = replay(nowRule, evals, Math.min(steps, now));
  const rules = `(${ruleText(thenRule)} then, ${ruleText(nowRule)} now)`;
  // the learning rate of every step it trained must be the one the new rule gives (its cuts, if any, at the same evaluations)
  const cuts = cutsDiffer(old.cuts, fresh.cuts, fresh.stopsAt ?? Math.min(steps, now), rules);
  if (cuts) return different(cuts);
  const modelStep = (bestStep: number | null, end: number) => bestStep ?? end;
  if (fresh.stopsAt !== null) {
    if (fresh.stopsAt === steps && modelStep(fresh.bestStep, steps) === modelStep(ended.bestStep, steps))
      return note(
        `the new stopping rule ${rules}, replayed on its evaluations, ends it at the same step ${steps} with the same best step ${modelStep(fresh.bestStep, steps)}`,
      );
    return different(
      `the new stopping rule ${rules} would have stopped it at step ${fresh.stopsAt} (best step ${fresh.bestStep ?? '-'}); it ran to step ${steps} (best ${ended.bestStep ?? '-'})`,
    );
  }
  if (steps > now) return different(`it trained to step ${steps}, past this stage's cap of ${now}`);
  if (steps === now) {
    if (modelStep(fresh.bestStep, steps) === modelStep(ended.bestStep, steps))
      return note(
        `under the new stopping rule ${rules} it reaches this stage's cap at step ${steps}, where it ended, with the same best step ${modelStep(fresh.bestStep, steps)}`,
      );
    return different(
      `under the new stopping rule ${rules} its model would be step ${modelStep(fresh.bestStep, steps)}, not ${modelStep(ended.bestStep, steps)}`,
    );
  }
  // the new rule would have trained on: continue from the run's last evaluation, with the replayed state
  if (t.evalEverySteps <= 0 || steps % t.evalEverySteps !== 0)
    return different(
      `its last step (${steps}) is not an evaluation step of train.evalEverySteps = ${t.evalEverySteps}, so the new rule's state there is unknown`,
    );
  return {
    kind: 'continue',
    note: {
      hash: theirs.hash,
      from: theirs.folder,
      fromStep: steps,
      cap: { then, now },
      rule: { then: thenRule, now: nowRule, bestStep: fresh.bestStep, state: fresh.state },
    },
  };
}

/** A stage folder whose run stopped before its end: no stage.json, checkpoints, no results of a finished run. */
export interface InterruptedStage {
  folder: string;
  /** the hash its folder name carries (a stage folder is `<id>-<hash>`) */
  hash: string;
  config: ResolvedConfig;
  /** its newest checkpoint that reads and passes its integrity record: where it would go on */
  lastStep: number;
}

/**
 * Read `folder` as a stopped run of a stage; null when it is not one (no checkpoints, or a results.json
 * of a run that ended: then it is a finished run, adopted as such). HeadsError naming the file when its
 * config or every checkpoint does not read. Nothing in it is written.
 */
export function readInterruptedStage(folder: string): InterruptedStage | null {
  const ckptRoot = join(folder, 'checkpoints');
  if (existsSync(join(folder, 'stage.json')) || !existsSync(ckptRoot)) return null;
  const resPath = join(folder, 'results.json');
  // results.json of a stop request says so (stoppedEarly); one without is the end of a finished run
  if (existsSync(resPath) && readJsonFile<{ stoppedEarly?: unknown }>(resPath, 'run results').stoppedEarly !== true) return null;
  const m = HASH_SUFFIX.exec(basename(resolve(folder)));
  if (!m) throw new HeadsError(`${folder}: expected a stage folder named <stage id>-<10 hex digits>, found ${JSON.stringify(basename(resolve(folder)))}`);
  const cfgPath = join(folder, 'config.json');
  if (!existsSync(cfgPath)) throw new HeadsError(`${folder}: no config.json (the config the stage ran with)`);
  const config = loadConfigOn(readJsonFile<ResolvedConfig>(cfgPath, 'stage config'), null, [], cfgPath);
  const problems: string[] = [];
  for (const { step, dir } of listCheckpointDirs(folder)) {
    try {
      readCheckpoint(dir);
      return { folder, hash: m[1]!, config, lastStep: step };
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      problems.push(e.message);
    }
  }
  throw new HeadsError(`${folder}: no checkpoint that reads (${problems.join('; ') || 'no step-N folder'}); it cannot continue`);
}

/**
 * How the stopped run `theirs` relates to train stage `s` (see the header): `continue` from its newest
 * checkpoint with the new rule's replayed state, `same` (its own hash: the stage simply resumes there), or
 * `different`. `parentKnownAs`: the hashes `s.parent` is known by (the folder's hash must come from one).
 */
export function matchInterrupted(s: ResolvedStage, theirs: InterruptedStage, parentKnownAs: ReadonlySet<string>): Match {
  const different = (reason: string): Match => ({
    kind: 'different',
    reason: `${theirs.folder} (hash ${theirs.hash}, stopped at step ${theirs.lastStep}) is not stage ${s.instance.id}: ${reason}`,
  });
  if (theirs.hash === s.hash) return { kind: 'same' };
  if (!trains(s)) return different(`a ${s.instance.spec.kind} stage does not train; only a stopped train run continues under another hash`);
  const parents: Array<string | null> = s.parent ? [...parentKnownAs] : [null];
  if (!parents.some((h) => stageHash(s.instance, theirs.config, h) === theirs.hash))
    return different(
      `its config.json does not give the hash its folder name carries under this stage's kind, settings and parent (the stage's settings in the spec changed, its parent is another computation, or config.json is not the one it ran with)`,
    );
  const { otherKeys } = compareConfigs(s, theirs.config, 'run');
  if (otherKeys) return different(otherKeys);
  const t = s.config.train;
  const L = theirs.lastStep;
  if (L > t.maxSteps) return different(`it trained to step ${L}, past this stage's cap of ${t.maxSteps}`);
  if (s.config.gates.settle || theirs.config.gates.settle) return different(`gates.settle: settling ends the run too, and the rules are not replayed with it`);
  const thenRule = theirs.config.train.earlyStopping;
  const nowRule = t.earlyStopping;
  const rules = `(${ruleText(thenRule)} then, ${ruleText(nowRule)} now)`;
  const evals = runEvaluations(theirs.folder);
  const old = replay(thenRule, evals, L);
  if (old.stopsAt !== null && old.stopsAt < L)
    return different(
      `its own rule (${ruleText(thenRule)}), replayed on its metrics.jsonl, stopped it at step ${old.stopsAt}, yet it has a checkpoint of step ${L}`,
    );
  const fresh = replay(nowRule, evals, L);
  if (fresh.stopsAt !== null)
    return different(
      `the new stopping rule ${rules} would have stopped it at step ${fresh.stopsAt} (best step ${fresh.bestStep ?? '-'}); it trained to step ${L}`,
    );
  // every step it trained (up to L) ran at the rate the new rule gives: cuts after the same evaluations before L
  const cuts = cutsDiffer(old.cuts, fresh.cuts, L, rules);
  if (cuts) return different(cuts);
  return {
    kind: 'continue',
    note: {
      hash: theirs.hash,
      from: theirs.folder,
      fromStep: L,
      cap: { then: theirs.config.train.maxSteps, now: t.maxSteps },
      rule: { then: thenRule, now: nowRule, bestStep: fresh.bestStep, state: fresh.state },
    },
  };
}

/** The stage.json of `theirs` under stage `s`'s hash and parent, noting the hash it had and why it is the same. */
export function equivalentMarker(s: ResolvedStage, theirs: FinishedStage, note: EquivalenceNote): Record<string, unknown> {
  const { equivalentTo: _old, ...rest } = theirs.marker;
  return { ...rest, hash: s.hash, parent: s.parent?.folder ?? null, equivalentTo: note };
}

/**
 * `heads experiment adopt --run <folder>`: attach a finished folder to stage `s`. A folder with the stage's
 * hash, or a run folder without stage.json, is adopted as before (stage.ts); an equivalent stage is linked
 * file by file with a new stage.json; a train run that reached a lower cap is copied into the stage folder
 * (checkpoints included, the original left untouched) to continue from its last checkpoint at the next
 * `experiment run`. Returns the line to print. HeadsError for a different stage.
 */
export function adoptFinished(s: ResolvedStage, folder: string, argv: readonly string[]): string {
  const known = s.parent ? knownHashes(s.parent) : new Set<string>();
  const stopped = readInterruptedStage(folder);
  if (stopped) {
    const holder = folderLockHolder(folder);
    if (holder !== null) throw new HeadsError(`${folder}: a run is still training there (process ${holder}, its stage.lock); stop it first`);
    const m = matchInterrupted(s, stopped, known);
    if (m.kind === 'same')
      throw new HeadsError(
        `${folder}: it is stage ${s.instance.id}'s own folder under its own hash; 'heads experiment run' resumes it from step ${stopped.lastStep}`,
      );
    if (m.kind === 'different') throw new HeadsError(m.reason);
    if (m.kind === 'continue') return continueRun(s, folder, m.note, argv, stopped.lastStep);
  }
  if (!existsSync(join(folder, 'stage.json'))) {
    adoptRun(s, folder);
    return `${s.instance.id}: adopted ${folder}`;
  }
  const theirs = readFinishedStage(folder);
  const m = matchFinished(s, theirs, known);
  if (m.kind === 'same') {
    adoptRun(s, folder);
    return `${s.instance.id}: adopted ${folder}`;
  }
  if (m.kind === 'different') throw new HeadsError(m.reason);
  if (m.kind === 'continue') return continueRun(s, folder, m.note, argv, null);
  checkTarget(s);
  const source = resolve(folder);
  buildStageFolder(s.folder, (tmp) => {
    for (const name of readdirSync(source)) if (name !== 'stage.json' && !name.startsWith('.')) symlinkSync(join(source, name), join(tmp, name));
    writeJsonAtomic(join(tmp, 'stage.json'), equivalentMarker(s, theirs, { ...m.note, from: source }));
  });
  return `${s.instance.id}: adopted ${folder} as the same computation (hash ${theirs.hash} -> ${s.hash}): ${m.note.because}`;
}

/** A stage can take another folder's run: its parent is done and its own folder is absent or empty. */
function checkTarget(s: ResolvedStage): void {
  if (s.parent && stageState(s.parent) !== 'done')
    throw new HeadsError(`stage ${s.instance.id}: its parent ${s.parent.instance.id} is not done; adopt it first`);
  if (existsSync(s.folder) && readdirSync(s.folder).length) throw new HeadsError(`stage ${s.instance.id}: its folder ${s.folder} is not empty`);
}

/**
 * Copy the run `folder` into stage `s`'s folder to continue from its checkpoint at `note.fromStep`, with
 * the new rule's replayed state where the rule changed. `stoppedAt`: a stopped run's newest checkpoint
 * (checkpoints after it are left out); null for a finished run.
 */
function continueRun(s: ResolvedStage, folder: string, note: ContinuationNote, argv: readonly string[], stoppedAt: number | null): string {
  checkTarget(s);
  const source = resolve(folder);
  // continue: from the run's checkpoint at its last step; under a new rule, that rule's best step must be kept too
  const rule = note.rule;
  const ckpt = (step: number) => join(source, 'checkpoints', checkpointDirName(step), 'state.json');
  const needed = [note.fromStep, ...(rule?.bestStep !== null && rule?.bestStep !== undefined ? [rule.bestStep] : [])];
  const missing = needed.filter((step) => !existsSync(ckpt(step)));
  if (missing.length)
    throw new HeadsError(
      `${folder}: no checkpoint of step ${missing.join(' or ')} (${missing[0] === note.fromStep ? 'its last step, where it would continue' : "the new rule's best step"}); it cannot continue as the same computation`,
    );
  buildStageFolder(s.folder, (tmp) => {
    // the run's files, checkpoints included, without what its end wrote (stage.json, results, test translations,
    // the best-checkpoint pointer: the continued run's end names its own)
    const ENDED = /^(stage\.json|stage\.lock|results\.json|.*\.hyp)$/;
    for (const name of readdirSync(source)) if (!ENDED.test(name) && !name.startsWith('.')) cpSync(join(source, name), join(tmp, name), { recursive: true });
    rmSync(join(tmp, 'checkpoints', 'best.json'), { force: true });
    if (stoppedAt !== null) {
      // a stopped run goes on from its newest readable checkpoint: newer (damaged) ones are not copied
      for (const { step, dir } of listCheckpointDirs(tmp)) if (step > stoppedAt) rmSync(dir, { recursive: true, force: true });
      writeJsonAtomic(join(tmp, 'checkpoints', 'latest.json'), { step: stoppedAt, dir: checkpointDirName(stoppedAt) });
    }
    if (rule) {
      // the checkpoint it continues from carries the new rule's state, replayed on the run's evaluations
      const statePath = join(tmp, 'checkpoints', checkpointDirName(note.fromStep), 'state.json');
      const state = readJsonFile<{ extra: Record<string, number> }>(statePath, 'checkpoint state');
      const extra = Object.fromEntries(Object.entries(state.extra).filter(([k]) => !isEarlyStoppingState(k)));
      writeJsonAtomic(statePath, { ...state, extra: { ...extra, ...rule.state } });
    }
    RunFolder.open(tmp).recordResume(s.config, argv);
    writeJsonAtomic(join(tmp, CONTINUED_FILE), { ...note, from: source });
  });
  const why = rule
    ? `${stoppedAt !== null ? 'it stopped before its end, ' : ''}its stopping rule changed, and the new one (${ruleText(rule.now)}), replayed on its evaluations, would not have stopped it yet (best step ${rule.bestStep ?? '-'})`
    : stoppedAt !== null
      ? `it stopped before its end, and its cap changed (${note.cap.then} then)`
      : `it reached its cap of ${note.cap.then}`;
  return `${s.instance.id}: copied ${folder} to ${s.folder}; it continues from its checkpoint at step ${note.fromStep} to the cap of ${note.cap.now} at the next 'heads experiment run' (${why})`;
}

/**
 * Build a stage folder under a temporary name beside it and rename it into place: a kill while adopting
 * leaves the stage as it was (no half-linked folder a run would train in, writing through its links, nor a
 * copied checkpoint without the state it must continue with); the next adopt starts the copy again.
 */
function buildStageFolder(dest: string, build: (tmp: string) => void): void {
  const tmp = `${dest}.adopting`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    build(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  // the stage folder is absent or empty (checked before)
  if (existsSync(dest)) rmdirSync(dest);
  renameSync(tmp, dest);
}

/**
 * `experiment run`, before it starts a train stage from step 0: a folder beside the stage's own holding a
 * stopped run of its instance under another hash (checkpoints, no stage.json, no live lock) that is the
 * stage's computation (matchInterrupted: `continue`) is copied to continue, as `experiment adopt` would.
 * Returns the line to log, or null (nothing to continue: the stage starts afresh).
 */
export function continueStoppedRun(s: ResolvedStage, argv: readonly string[]): string | null {
  if (!trains(s) || (existsSync(s.folder) && readdirSync(s.folder).length)) return null;
  const known = s.parent ? knownHashes(s.parent) : new Set<string>();
  for (const f of otherRecords(s, dirname(s.folder))) {
    if (folderLockHolder(f) !== null) continue;
    let stopped: InterruptedStage | null;
    let m: Match;
    try {
      stopped = readInterruptedStage(f);
      if (!stopped) continue;
      m = matchInterrupted(s, stopped, known);
    } catch {
      // a folder that does not read as a stopped run of this stage: the stage starts afresh beside it
      continue;
    }
    if (m.kind === 'continue') return continueRun(s, f, m.note, argv, stopped.lastStep);
  }
  return null;
}

/** The committed records of stage `s`'s instance under other hashes (`<recordsDir>/<id>-<hash>/`), newest name order. */
export function otherRecords(s: ResolvedStage, recordsDir: string): string[] {
  if (!existsSync(recordsDir)) return [];
  const prefix = `${safeName(s.instance.id)}-`;
  return readdirSync(recordsDir)
    .filter((n) => n.startsWith(prefix) && HASH_SUFFIX.test(n) && n.length === prefix.length + 10 && n !== basename(s.folder))
    .map((n) => join(recordsDir, n));
}
