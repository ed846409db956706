/**
 * One stage instance of an experiment: its resolved config, its identity (a hash of that config, the
 * stage settings and the parent's identity), its folder, its state, and how to run it. A stage is done
 * when its folder holds `stage.json` with the same hash; a train or prune stage with checkpoints but no
 * stage.json was interrupted and resumes from its newest valid checkpoint.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, rmSync, mkdirSync, symlinkSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { join } from 'node:path';
import { loadConfig, loadConfigOn } from '../config/load.js';
import type { ResolvedConfig } from '../config/schema.js';
import { originalMaskShape } from '../config/head-layout.js';
import { readHeadMask, maskToKeptSets } from '../io/head-mask.js';
import { readJsonFile, writeJsonAtomic } from '../util/fs.js';
import { ConfigError, HeadsError } from '../util/errors.js';
import { seedList, type ExperimentSpec, type StageInstance } from './spec.js';
import { chooseMask, maskHeadsOf } from './fixed-mask.js';
import { finetuneDefaults } from './finetune-stage.js';
import { CONTINUED_FILE } from './stage-files.js';

export type StageState = 'done' | 'partial' | 'pending' | 'blocked';

export interface ResolvedStage {
  instance: StageInstance;
  /** the config the stage trains or evaluates with */
  config: ResolvedConfig;
  hash: string;
  folder: string;
  parent: ResolvedStage | null;
}

export function experimentRoot(spec: ExperimentSpec, runsDir = 'runs'): string {
  return join(runsDir, 'experiments', spec.name);
}

/** The stage instance a report row belongs to: `l0[lambda=0.5]#binarised` -> `l0[lambda=0.5]` (its #binarised and importance-step rows). */
export function instanceIdOf(rowId: string): string {
  return rowId.split('#')[0]!;
}

export function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9_.=,-]+/g, '_').slice(0, 80);
}

/**
 * Settings that change how fast a stage runs or how often it reports, not what it computes: left out of
 * a stage's identity (its hash) and of adopt's comparison, so that running a study with more workers, on
 * another backend or with other logging does not redo finished stages.
 */
export const EXECUTION_KEYS = ['backend', 'train.workers', 'train.logEverySteps', 'train.checkpointEverySteps', 'train.keepCheckpoints'] as const;

/**
 * Config keys added after studies already ran, with the value that switches their feature off. A config
 * holding that value computes what a config without the key computed, so the key is left out of the
 * identity: adding a feature does not make every finished stage look new. Register each new key whose
 * default means "off" here (dot path -> its default).
 */
export const FEATURE_KEYS_OFF_BY_DEFAULT: Readonly<Record<string, unknown>> = {
  'model.attentionPatterns': null,
  'model.ffnWidths': null,
  'model.moe': null,
  'train.magnitudePruning': null,
  'train.quantAware': false,
  'train.earlyStopping': null,
  'gates.settle': null,
};

function deletePath(obj: Record<string, unknown>, path: string, onlyIf?: { value: unknown }): void {
  const parts = path.split('.');
  let cur: Record<string, unknown> | undefined = obj;
  for (const p of parts.slice(0, -1)) cur = cur?.[p] as Record<string, unknown> | undefined;
  const last = parts.at(-1)!;
  if (!cur || !(last in cur)) return;
  if (onlyIf && JSON.stringify(cur[last]) !== JSON.stringify(onlyIf.value)) return;
  delete cur[last];
}

/** A copy of `config` without its execution settings and its switched-off later features (a stage's identity). */
export function stageIdentity(config: ResolvedConfig): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  for (const key of EXECUTION_KEYS) deletePath(copy, key);
  for (const [key, off] of Object.entries(FEATURE_KEYS_OFF_BY_DEFAULT)) deletePath(copy, key, { value: off });
  return copy;
}

function stableHash(value: unknown): string {
  const canon = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, canon((v as Record<string, unknown>)[k])]),
        )
      : Array.isArray(v)
        ? v.map(canon)
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canon(value)))
    .digest('hex')
    .slice(0, 10);
}

/** The settings a prune stage adds on top of its parent's config. */
function pruneDefaults(inst: StageInstance, parent: ResolvedConfig): string[] {
  const st = inst.spec;
  if (st.kind !== 'prune') return [];
  const attention = (inst.point['attention'] as string[] | undefined) ?? st.attention;
  const encoderOnly = attention.length === 1 && attention[0] === 'enc-self';
  if (st.method === 'fixed-mask') {
    // no gates: the mask is fixed by removing the pruned heads (model.keptHeads, set by resolveStages)
    const out = [
      `name=${JSON.stringify(`${parent.name}-${inst.stage}`)}`,
      'gates.attention=[]',
      `train.trainOnly=${encoderOnly && st.freezeDecoder ? '[encoder]' : 'null'}`,
      'train.earlyStopping=null',
    ];
    if (st.steps !== undefined) out.push(`train.maxSteps=${st.steps}`);
    return out;
  }
  const out = [
    `name=${JSON.stringify(`${parent.name}-${inst.stage}`)}`,
    `gates.attention=${JSON.stringify(attention)}`,
    `train.trainOnly=${encoderOnly && st.freezeDecoder ? '[encoder, gates]' : 'null'}`,
    // the parent's early stopping is not the fine-tuning's (a stage's `set` can ask for it)
    'train.earlyStopping=null',
  ];
  if (st.lambda !== undefined) out.push(`train.l0Lambda=${st.lambda}`);
  if (st.targetHeads !== undefined) out.push(`gates.targetHeads=${JSON.stringify(st.targetHeads)}`);
  if (st.steps !== undefined) out.push(`train.maxSteps=${st.steps}`);
  return out;
}

/** The part of a stage's config that enters its hash (a fixed-mask stage's without the mask it copies). */
export function hashedIdentity(inst: StageInstance, config: ResolvedConfig): Record<string, unknown> {
  const isFixedMask = (inst.spec.kind === 'train' && inst.dependsOn.length > 0) || (inst.spec.kind === 'prune' && inst.spec.method === 'fixed-mask');
  return stageIdentity(isFixedMask ? { ...config, model: { ...config.model, keptHeads: null } } : config);
}

/**
 * A stage instance's identity: its kind, its settings, its config (without execution settings) and its
 * parent's hash. A fixed-mask stage's identity includes its parent (the mask it copies), not the mask's
 * contents. Also used to check that a finished stage's own record reproduces the hash it carries.
 */
export function stageHash(inst: StageInstance, config: ResolvedConfig, parentHash: string | null): string {
  // the seed enters through the config (`seed=N`), not as a stage setting
  const { set: _s, sweep: _w, description: _d, seed: _seed, ...settings } = inst.spec;
  const identity = hashedIdentity(inst, config);
  // a swept maskHeads is a stage setting, not a config key: it enters the identity here
  const maskHeads = maskHeadsOf(inst);
  return stableHash({
    kind: inst.spec.kind,
    settings: maskHeads !== null ? { ...settings, maskHeads } : settings,
    config: identity,
    parent: parentHash,
  });
}

/** Resolve every instance in order (parents first); configs are computed without running anything. */
export function resolveStages(spec: ExperimentSpec, instances: StageInstance[], runsDir = 'runs'): ResolvedStage[] {
  const byId = new Map<string, ResolvedStage>();
  const root = experimentRoot(spec, runsDir);
  for (const inst of instances) {
    const parent = inst.dependsOn.length ? byId.get(inst.dependsOn[0]!)! : null;
    let config: ResolvedConfig;
    const where = `${spec.file}: stages.${inst.stage}`;
    try {
      if (inst.spec.kind === 'train') {
        config = loadConfig(spec.baseConfig, [`name=${JSON.stringify(`${spec.name}-${inst.stage}`)}`, ...inst.overrides]);
        if (parent) {
          // trained from scratch with the parent's surviving heads (physically: model.keptHeads)
          const maskPath = join(parent.folder, 'mask.json');
          const kept = existsSync(maskPath)
            ? maskToKeptSets(readHeadMask(maskPath, originalMaskShape(parent.config.model)), originalMaskShape(parent.config.model))
            : null;
          config = loadConfigOn(config, null, [`model.keptHeads=${JSON.stringify(kept)}`], where);
        }
      } else if (inst.spec.kind === 'prune') {
        config = loadConfigOn(parent!.config, null, [...pruneDefaults(inst, parent!.config), ...inst.overrides], where);
        // fixed-mask: the layout of the parent's mask at maskHeads heads, once the parent has written its masks
        if (inst.spec.method === 'fixed-mask') {
          const chosen = chooseMask(parent!.folder, config.model, maskHeadsOf(inst)!);
          const shape = originalMaskShape(config.model);
          config = loadConfigOn(config, null, [`model.keptHeads=${JSON.stringify(chosen ? maskToKeptSets(chosen.mask, shape) : null)}`], where);
        }
      } else if (inst.spec.kind === 'finetune')
        config = loadConfigOn(parent!.config, null, [...finetuneDefaults(inst, parent!.config, where), ...inst.overrides], where);
      else config = parent!.config;
    } catch (e) {
      if (e instanceof ConfigError) throw new ConfigError(e.problems.map((p) => `${where} (${inst.id}): ${p}`));
      throw e;
    }
    if (inst.spec.kind === 'export' && inst.spec.mask === 'gates' && !parent!.config.gates.attention.length)
      throw new ConfigError([
        `${where}.mask: gates, but its parent ${parent!.instance.id} has no gates (gates.attention is []); use mask: none, or export a prune stage`,
      ]);
    const hash = stageHash(inst, config, parent?.hash ?? null);
    const folder = join(root, `${safeName(inst.id)}-${hash}`);
    byId.set(inst.id, { instance: inst, config, hash, folder, parent });
  }
  return [...byId.values()];
}

export function stageState(s: ResolvedStage): StageState {
  const marker = join(s.folder, 'stage.json');
  if (existsSync(marker)) {
    try {
      if (readJsonFile<{ hash?: string }>(marker, 'stage marker').hash === s.hash) return 'done';
    } catch {
      /* a damaged marker (fails its integrity record): not done, the stage runs again */
    }
  }
  if (s.parent && stageState(s.parent) !== 'done') return 'blocked';
  if (existsSync(join(s.folder, 'checkpoints'))) return 'partial';
  return 'pending';
}

/** How a dev BLEU was decoded, as stage.json and the report label it. */
export function decodingLabel(beamSize: number): string {
  return beamSize <= 1 ? 'greedy' : `beam ${beamSize}`;
}

export function markDone(s: ResolvedStage, summary: Record<string, unknown>): void {
  const continued = existsSync(join(s.folder, CONTINUED_FILE))
    ? readJsonFile<Record<string, unknown>>(join(s.folder, CONTINUED_FILE), 'continuation record')
    : null;
  writeJsonAtomic(join(s.folder, 'stage.json'), {
    id: s.instance.id,
    stage: s.instance.stage,
    kind: s.instance.spec.kind,
    hash: s.hash,
    point: s.instance.point,
    ...(s.instance.seed !== null ? { seed: s.instance.seed } : {}),
    parent: s.parent?.folder ?? null,
    finishedAt: new Date().toISOString(),
    ...(continued ? { continuedFrom: continued } : {}),
    ...summary,
  });
}

export function requireParentDone(s: ResolvedStage): void {
  if (s.parent && stageState(s.parent) !== 'done')
    throw new HeadsError(
      `stage ${s.instance.id}: its parent ${s.parent.instance.id} is not done (run it first: npx heads experiment run-stage ... --id '${s.parent.instance.id}')`,
    );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // a killed process whose parent died first can stay a zombie (state Z) where nothing reaps it: dead
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** The pid holding a stage's lock, if that process is still alive. */
export function lockHolder(s: ResolvedStage): number | null {
  return folderLockHolder(s.folder);
}

/** The pid holding the lock of the stage folder `folder` (any stage's, under any hash), if it is alive. */
export function folderLockHolder(folder: string): number | null {
  const path = join(folder, 'stage.lock');
  if (!existsSync(path)) return null;
  const pid = Number(readFileSync(path, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : null;
}

/**
 * Take the stage's lock (a file holding our pid, created exclusively). A lock left by a dead process is
 * taken over; one held by a live process is an error, so two runners never write the same stage.
 */
export function acquireStageLock(s: ResolvedStage): () => void {
  mkdirSync(s.folder, { recursive: true });
  const path = join(s.folder, 'stage.lock');
  const holder = lockHolder(s);
  if (holder !== null && holder !== process.pid) throw new HeadsError(`stage ${s.instance.id}: already running in process ${holder} (${path})`);
  if (existsSync(path)) rmSync(path, { force: true });
  writeFileSync(path, String(process.pid), { flag: 'wx' });
  return () => rmSync(path, { force: true });
}

/** Every dotted key where two configs (or identities) differ, with both values. */
export function configDiffs(ours: unknown, theirs: unknown): Array<{ path: string; ours: unknown; theirs: unknown }> {
  const diffs: Array<{ path: string; ours: unknown; theirs: unknown }> = [];
  const walk = (a: unknown, b: unknown, path: string) => {
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
        walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
    } else if (JSON.stringify(a) !== JSON.stringify(b)) diffs.push({ path, ours: a, theirs: b });
  };
  walk(ours, theirs, '');
  return diffs;
}

/**
 * Attach an existing run folder (trained outside the study) to a train stage: its config must equal
 * the stage's resolved config apart from `name`, and it must have finished (results.json with test
 * scores). The stage folder becomes a link to the run, and stage.json is written there.
 */
export function adoptRun(s: ResolvedStage, runPath: string): void {
  if (existsSync(join(runPath, 'stage.json'))) return adoptStage(s, runPath);
  if (s.instance.spec.kind !== 'train')
    throw new HeadsError(
      `stage ${s.instance.id}: only train stages can adopt a run (other kinds adopt a finished stage folder of another study with the same hash)`,
    );
  const cfgPath = join(runPath, 'config.json');
  const resPath = join(runPath, 'results.json');
  if (!existsSync(cfgPath)) throw new HeadsError(`${runPath}: not a run folder (no config.json)`);
  if (!existsSync(resPath)) throw new HeadsError(`${runPath}: the run has not finished (no results.json)`);
  // normalised over the defaults, so a run saved before a config key existed compares by value
  const theirs = { ...stageIdentity(loadConfigOn(readJsonFile<ResolvedConfig>(cfgPath, 'run config'), null, [], cfgPath)), name: null };
  const ours = { ...stageIdentity(s.config), name: null };
  const diffs = configDiffs(ours, theirs).map((d) => `${d.path}: stage ${JSON.stringify(d.ours)}, run ${JSON.stringify(d.theirs)}`);
  if (diffs.length) throw new HeadsError(`${runPath}: its config differs from stage ${s.instance.id}: ${diffs.slice(0, 6).join('; ')}`);
  const results = readJsonFile<{ test?: { bleu: number; tokenizedLowercaseBleu: number } | null; devBleu?: number | null }>(resPath, 'run results');
  linkStageFolder(s, runPath);
  const heads = s.config.model.heads;
  markDone(s, {
    adoptedFrom: resolve(runPath),
    bleu: results.test?.bleu ?? null,
    bleuTokLc: results.test?.tokenizedLowercaseBleu ?? null,
    devBleu: results.devBleu ?? null,
    // a run's dev BLEU is the trainer's, which decodes greedily
    ...(typeof results.devBleu === 'number' ? { devDecoding: decodingLabel(1) } : {}),
    keptHeads: {
      'enc-self': s.config.model.encoderLayers * heads,
      'dec-self': s.config.model.decoderLayers * heads,
      'dec-enc': s.config.model.decoderLayers * heads,
    },
  });
}

/** Make the (empty or missing) stage folder a link to `target`. */
function linkStageFolder(s: ResolvedStage, target: string): void {
  if (existsSync(s.folder) && readdirSync(s.folder).length) throw new HeadsError(`stage ${s.instance.id}: its folder ${s.folder} is not empty`);
  rmSync(s.folder, { recursive: true, force: true });
  mkdirSync(dirname(s.folder), { recursive: true });
  symlinkSync(resolve(target), s.folder);
}

/**
 * Attach a finished stage folder of another study (or another runs folder) to this stage: allowed when its
 * stage.json carries this stage's hash, i.e. the same kind, settings, resolved config and parent identity
 * (specs can share stages this way; see experiments/sparsity-methods.yaml). Any kind of stage; the
 * parent must be attached first, since a stage whose parent is not done is blocked. The folder becomes a
 * link to the other one; its stage.json is left as it is.
 */
export function adoptStage(s: ResolvedStage, stagePath: string): void {
  const theirs = readJsonFile<{ hash?: string; id?: string }>(join(stagePath, 'stage.json'), 'stage marker');
  if (theirs.hash !== s.hash)
    throw new HeadsError(
      `${stagePath}: a finished stage (${theirs.id ?? '?'}, hash ${theirs.hash ?? 'none'}) that is not stage ${s.instance.id} (hash ${s.hash}): its kind, settings, config or parent differ`,
    );
  if (s.parent && stageState(s.parent) !== 'done')
    throw new HeadsError(`stage ${s.instance.id}: its parent ${s.parent.instance.id} is not done; adopt it first`);
  linkStageFolder(s, stagePath);
}

/**
 * The stage instances named by `names` (stage names, matching every instance of a sweep, or instance ids)
 * together with the ancestors they need, in plan order. An unknown name is an error naming the choices.
 */
export function selectStages(stages: readonly ResolvedStage[], names: readonly string[], specPath: string, spec?: ExperimentSpec): ResolvedStage[] {
  const unknown = names.filter((n) => !stages.some((s) => s.instance.stage === n || s.instance.id === n));
  // a stage of the spec that the CLI's --seeds left without an instance (e.g. one pinned to seed 1)
  const seedless = unknown.filter((n) => spec?.stages[n] && spec.cliSeeds);
  if (seedless.length)
    throw new ConfigError([
      `${specPath}: --only ${seedless.join(', ')}: no instance at --seeds ${spec!.cliSeeds!.join(',')} (${seedless
        .map((n) => {
          const own = seedList(spec!.stages[n]!.seed);
          return own ? `${n} runs at seed ${own.join(', ')}` : `the stage ${n} follows has none`;
        })
        .join('; ')}); add its seeds to --seeds`,
    ]);
  if (unknown.length)
    throw new ConfigError([
      `${specPath}: --only ${unknown.join(', ')}: no such stage (stages: ${[...new Set(stages.map((s) => s.instance.stage))].join(', ')}; or an instance id, see status)`,
    ]);
  const keep = new Set<ResolvedStage>();
  const add = (s: ResolvedStage | null) => {
    for (let x = s; x && !keep.has(x); x = x.parent) keep.add(x);
  };
  for (const s of stages) if (names.includes(s.instance.stage) || names.includes(s.instance.id)) add(s);
  return stages.filter((s) => keep.has(s));
}
