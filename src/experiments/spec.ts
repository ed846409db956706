/**
 * Experiment specs (experiments/*.yaml): a base config, named stages (train, prune, analyze, export,
 * evaluate) with sweeps and dependencies, validated once at load with errors naming the file and key.
 * `expandStages` turns sweeps into concrete stage instances, each with its own id and `--set` overrides.
 *
 *   name: voita2019-ddtp-ende
 *   base: configs/ddtp-ende-small.yaml      # a config file (differences from the defaults), optional
 *   set: { train.maxSteps: 1000 }           # overrides of the base, optional
 *   stages:
 *     baseline: { kind: train }
 *     l0-enc:
 *       kind: prune
 *       from: baseline
 *       attention: [enc-self]
 *       sweep: { lambda: [0.02, 0.05, 0.1] }
 *       set: { train.maxSteps: 300 }
 *   seed: [1, 2, 3]                         # optional: the study once per seed (see expandStages)
 *   claims:                                 # optional: the paper's claims the report answers (claims.ts)
 *     a: { statement: ..., compare: [{ system: 'l0-enc[lambda=0.05]', reference: baseline, expect: notWorse, margin: 0.5 }] }
 */
import { z } from 'zod';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../util/errors.js';
import { describeIssues, parseYamlStrict, refusePrototypeKeys } from '../config/load.js';
import { DEFAULT_IMPORTANCE, IMPORTANCE_FORMS, IMPORTANCE_NORMALIZATIONS } from '../analysis/importance.js';
import { ABLATION_METRICS } from '../analysis/batched-ablation.js';

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const setMap = z.record(z.string(), z.unknown());
const attention = z.array(z.enum(['enc-self', 'dec-self', 'dec-enc'])).min(1);
/** a seed or a list of seeds (replicates: the report aggregates them as mean ± sd) */
const seeds = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative()).min(1)]);

const common = {
  /** overrides of the config for this stage (dot paths) */
  set: setMap.optional(),
  /** grid over these keys: lambda, targetHeads, attention, seed, or any config dot path */
  sweep: z.record(z.string(), z.array(z.union([scalar, attention, z.record(z.string(), z.number())])).min(1)).optional(),
  description: z.string().optional(),
  /**
   * replicates: on a stage without a parent, its seeds (instead of the spec-level ones); on a stage whose
   * parent has seeds, which of them it follows (e.g. analyze only seed 1); on a train or prune stage
   * whose parent has none, its own seeds
   */
  seed: seeds.optional(),
};

/**
 * Michel importance (src/analysis/importance.ts): the form and the normalisation. An importance prune
 * stage gets the defaults (example, layer) written in, so they are part of its identity; an analyze
 * stage reports every form and keeps them out of its identity unless given.
 */
const importanceSettings = { importanceForm: z.enum(IMPORTANCE_FORMS).optional(), importanceNormalize: z.enum(IMPORTANCE_NORMALIZATIONS).optional() };

const TrainStage = z.strictObject({ kind: z.literal('train'), ...common, fixedMaskFrom: z.string().optional() });
const PruneStage = z.strictObject({
  kind: z.literal('prune'),
  ...common,
  from: z.string(),
  /**
   * fixed-mask: fine-tune the model an importance (confidence, random) stage pruned, with one of that
   * stage's masks fixed (`from` names the importance stage, `maskHeads` the step: its heads kept), the
   * control that separates the pruning criterion from the fine-tuning
   */
  method: z.enum(['l0', 'importance', 'confidence', 'random', 'fixed-mask']).default('l0'),
  attention: attention.default(['enc-self']),
  lambda: z.number().nonnegative().optional(),
  targetHeads: z.union([z.number().int().nonnegative(), z.record(z.string(), z.number().int().nonnegative())]).optional(),
  steps: z.number().int().positive().optional(),
  freezeDecoder: z.boolean().default(true),
  stepPercent: z.number().positive().max(100).optional(),
  reestimate: z.boolean().optional(),
  /** importance/confidence/random: score on the test set only the steps that leave these many heads (default: every step) */
  testHeads: z.array(z.number().int().nonnegative()).min(1).optional(),
  /** fixed-mask: the parent's pruning step that leaves this many heads (in `attention`); sweepable */
  maskHeads: z.number().int().nonnegative().optional(),
  ...importanceSettings,
});
// ablation: what single-head ablation measures (default loss, batched; bleu adds greedy dev BLEU per head)
const AnalyzeStage = z.strictObject({
  kind: z.literal('analyze'),
  ...common,
  of: z.string(),
  sentences: z.number().int().positive().optional(),
  ...importanceSettings,
  ablation: z.enum(ABLATION_METRICS).optional(),
});
const fraction = z
  .number('expected a fraction in [0, 1) (e.g. 0.5)')
  .min(0, 'expected a fraction in [0, 1) (e.g. 0.5)')
  .lt(1, 'expected a fraction in [0, 1) (e.g. 0.5)');
/**
 * `heads export` as a stage, then measured: test BLEU of the exported model (as `heads translate` loads
 * it), parameters, bytes of its weights file and decode time. The compression settings mirror the CLI
 * flags and are optional (absent ones stay out of the stage's identity, so older export stages keep
 * their hashes). `mask`: `gates` (the paper's rule on the parent's gates) or `none` (keep every head);
 * absent: the parent's mask.json if it has one, else its gates if it has gates, else none.
 */
const ExportStage = z.strictObject({
  kind: z.literal('export'),
  ...common,
  of: z.string(),
  mask: z.enum(['gates', 'none']).optional(),
  /** unstructured magnitude pruning: zero this fraction of the weight matrices (`--magnitude-sparsity`) */
  magnitudeSparsity: fraction.optional(),
  /** with magnitudeSparsity: that fraction in every matrix instead of globally (`--per-layer`) */
  perLayer: z.boolean().optional(),
  /** remove this fraction of the FFN hidden units in every layer, smallest L2 norm first (`--ffn-prune`) */
  ffnPrune: fraction.optional(),
  /** store weight matrices as int8 with per-output-channel float32 scales (`--int8`) */
  int8: z.boolean().optional(),
  /**
   * decode with this engine: `onnx` exports `--format onnx` as well and measures the ONNX graphs in
   * onnxruntime-node (with int8: MatMulInteger on int8 activations quantized at run time, i.e. dynamic
   * quantization); absent: tfjs, as `heads translate` loads the export
   */
  engine: z.enum(['onnx']).optional(),
});
/**
 * Fine-tune the parent's model for `steps` steps with the stage's `set` (src/experiments/finetune-stage.ts):
 * sparse attention patterns, gradual magnitude pruning, quantization-aware training, or mixture-of-experts
 * FFNs upcycled from the parent's FFN; `ffnPrune` removes FFN hidden units before fine-tuning.
 */
const FinetuneStage = z.strictObject({
  kind: z.literal('finetune'),
  ...common,
  from: z.string(),
  steps: z.number().int().positive(),
  /** remove this fraction of the FFN hidden units of every layer (smallest L2 norm first), then fine-tune */
  ffnPrune: fraction.optional(),
});

/**
 * A claim of the paper the study answers (src/experiments/claims.ts): its statement and the comparisons it
 * rests on, each `system` against `reference` within every seed. A side names a setting as the report's
 * tables do: an instance id without its seed (`baseline`, `l0-enc[targetHeads=28]`), `<setting>#binarised`
 * for an L0 stage's binarised scoring (the folded row where the gates settled: then both are the same
 * model), or `<setting>@N` for the step of an importance, confidence or random stage that keeps N heads of
 * its attention types. `expect`: `better` (system above reference) or `notWorse` (system below reference by
 * less than `margin` BLEU). `roles`: the head roles an analyze stage of the baseline should find.
 */
export const CLAIM_ROLES = ['positional', 'rare', 'syntactic'] as const;
const ClaimComparison = z.strictObject({
  system: z.string().min(1),
  reference: z.string().min(1),
  expect: z.enum(['better', 'notWorse']),
  margin: z.number().positive().optional(),
});
const Claim = z.strictObject({
  statement: z.string().min(1),
  /** what the paper reports, for the reader */
  paper: z.string().optional(),
  compare: z.array(ClaimComparison).min(1).optional(),
  roles: z.strictObject({ of: z.string(), find: z.array(z.enum(CLAIM_ROLES)).min(1) }).optional(),
});
export type ClaimSpec = z.infer<typeof Claim>;
export type ClaimComparisonSpec = z.infer<typeof ClaimComparison>;

/** A claim side parsed: the setting (instance id without seed), and the binarised scoring or a step's head count. */
export interface ClaimSide {
  setting: string;
  stage: string;
  binarised: boolean;
  heads: number | null;
}
const SIDE = /^([A-Za-z0-9_-]+)(\[[^\]]*\])?(?:(#binarised)|@(\d+))?$/;
export function parseClaimSide(text: string): ClaimSide | null {
  const m = SIDE.exec(text);
  if (!m) return null;
  return { setting: `${m[1]}${m[2] ?? ''}`, stage: m[1]!, binarised: m[3] !== undefined, heads: m[4] === undefined ? null : Number(m[4]) };
}

export const StageSchema = z.discriminatedUnion('kind', [TrainStage, PruneStage, AnalyzeStage, ExportStage, FinetuneStage]);
export const SpecSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, dot, dash and underscore'),
  description: z.string().optional(),
  base: z.string().optional(),
  set: setMap.optional(),
  /** the study once per seed: every stage without a parent runs per seed, every other stage follows its parent's */
  seed: seeds.optional(),
  stages: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, dash and underscore'), StageSchema),
  presets: z
    .record(
      z.string(),
      z.strictObject({
        set: setMap.optional(),
        seed: seeds.optional(),
        stages: z.record(z.string(), z.strictObject({ set: setMap.optional(), sweep: common.sweep, seed: seeds.optional() })).optional(),
        only: z.array(z.string()).optional(),
      }),
    )
    .optional(),
  /** the paper's claims and the comparisons each rests on (the report's verdicts) */
  claims: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, dash and underscore'), Claim).optional(),
});

export type StageSpec = z.infer<typeof StageSchema>;
export type ExperimentSpec = z.infer<typeof SpecSchema> & {
  file: string;
  baseConfig: string | null;
  /** the CLI's `--seeds`, when given: a stage's own seeds outside it have no instance in this run */
  cliSeeds?: readonly number[];
};

/** A concrete stage after sweep expansion. */
export interface StageInstance {
  /** `l0-enc` or `l0-enc[lambda=0.05]` */
  id: string;
  stage: string;
  spec: StageSpec;
  /** the sweep values that made this instance (not the seed) */
  point: Record<string, unknown>;
  /** the replicate's seed (spec or stage `seed:`, or the parent's), null without seeds */
  seed: number | null;
  /** the id without the seed: what the replicates of one setting share (the id itself when there are no seeds) */
  baseId: string;
  /** `--set` overrides for this instance (spec-level, stage-level, sweep point) */
  overrides: string[];
  /** ids of the instances this one starts from */
  dependsOn: string[];
}

/** Flatten {a: {b: 1}} or {'a.b': 1} into ['a.b=1'] (values as YAML flow scalars). */
export function setToOverrides(set: Record<string, unknown> | undefined): string[] {
  const out: string[] = [];
  const walk = (prefix: string, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    else out.push(`${prefix}=${JSON.stringify(v)}`);
  };
  walk('', set ?? {});
  return out;
}

/** Sweep keys with a meaning of their own; any other key is a config dot path. */
const SWEEP_SHORTCUTS: Record<string, string> = { lambda: 'train.l0Lambda', targetHeads: 'gates.targetHeads', seed: 'seed', attention: 'gates.attention' };
/** Sweep keys that are stage settings, not config keys (the stage reads them from its point). */
const STAGE_SWEEP_KEYS = new Set(['maskHeads']);

/** A `seed:` value as a list (null when absent). */
export function seedList(v: number | readonly number[] | undefined): number[] | null {
  return v === undefined ? null : typeof v === 'number' ? [v] : [...v];
}

/**
 * `opts.seeds` (the CLI's `--seeds 1,2,3`) replaces the spec-level (and preset) seeds; a stage's own seeds
 * keep only those among them (`analyze-l0-enc: { seed: 1 }` has no instance under `--seeds 2`), and a
 * stage left without one has no instance in that run (nor have its children).
 */
export function loadSpec(path: string, preset?: string, opts: { seeds?: readonly number[] } = {}): ExperimentSpec {
  if (!existsSync(path)) throw new ConfigError([`${path}: experiment spec not found`]);
  if (statSync(path).isDirectory()) throw new ConfigError([`${path}: expected a spec file, found a directory`]);
  let raw: unknown;
  try {
    // as config files: unknown tags (!!js/function) and several documents refused, not read as strings
    raw = parseYamlStrict(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError([`${path}: not valid YAML: ${(e as Error).message.split('\n')[0]}`]);
  }
  refusePrototypeKeys(raw, path);
  const r = SpecSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(describeIssues(r.error.issues, raw, path, null, SpecSchema));
  const spec = r.data;
  const problems: string[] = [];
  for (const [name, st] of Object.entries(spec.stages)) {
    const deps =
      st.kind === 'prune' || st.kind === 'finetune'
        ? [st.from]
        : st.kind === 'analyze' || st.kind === 'export'
          ? [st.of]
          : st.fixedMaskFrom
            ? [st.fixedMaskFrom.split('[')[0]!]
            : [];
    for (const d of deps)
      if (!spec.stages[d.split('[')[0]!])
        problems.push(`${path}: stages.${name}: depends on '${d}', which is not a stage (stages: ${Object.keys(spec.stages).join(', ')})`);
    if (
      st.kind === 'prune' &&
      st.method === 'l0' &&
      st.lambda === undefined &&
      st.targetHeads === undefined &&
      !st.sweep?.['lambda'] &&
      !st.sweep?.['targetHeads']
    )
      problems.push(`${path}: stages.${name}: an l0 prune stage needs lambda or targetHeads (or a sweep over one)`);
    if (st.kind === 'export' && st.perLayer !== undefined && st.magnitudeSparsity === undefined)
      problems.push(`${path}: stages.${name}.perLayer: only applies with magnitudeSparsity, which is not set`);
    const own = seedList(st.seed);
    if (own && new Set(own).size !== own.length) problems.push(`${path}: stages.${name}.seed: a seed is listed twice (${own.join(', ')})`);
    if (st.sweep?.['seed'] && (own || spec.seed !== undefined))
      problems.push(
        `${path}: stages.${name}.sweep.seed: seeds are given by seed: (replicates the report aggregates); a sweep over seed as well would repeat them`,
      );
    if (st.kind === 'prune' && st.method === 'fixed-mask') {
      const from = spec.stages[st.from.split('[')[0]!];
      if (from && !(from.kind === 'prune' && ['importance', 'confidence', 'random'].includes(from.method)))
        problems.push(
          `${path}: stages.${name}.from: a fixed-mask stage fine-tunes with a mask of an importance, confidence or random prune stage; '${st.from}' is ${from.kind === 'prune' ? `a ${from.method} prune stage` : `a ${from.kind} stage`}`,
        );
      if (st.maskHeads === undefined && !st.sweep?.['maskHeads'])
        problems.push(`${path}: stages.${name}: a fixed-mask stage needs maskHeads (or a sweep over it): which of the parent's masks to fine-tune with`);
    } else if (st.kind === 'prune' && (st.maskHeads !== undefined || st.sweep?.['maskHeads']))
      problems.push(`${path}: stages.${name}.maskHeads: only for method fixed-mask`);
    if (st.kind === 'prune' && st.method === 'l0' && st.testHeads)
      problems.push(`${path}: stages.${name}.testHeads: only for importance, confidence or random pruning (an l0 stage is scored once, on its final mask)`);
    if (st.kind === 'prune' && st.method !== 'importance')
      for (const k of ['importanceForm', 'importanceNormalize'] as const)
        if (st[k] !== undefined) problems.push(`${path}: stages.${name}.${k}: only for method: importance (this stage has method: ${st.method})`);
    if (st.kind === 'prune' && st.method === 'importance') {
      st.importanceForm ??= DEFAULT_IMPORTANCE.form;
      st.importanceNormalize ??= DEFAULT_IMPORTANCE.normalize;
    }
  }
  for (const [id, c] of Object.entries(spec.claims ?? {})) problems.push(...claimProblems(path, id, c, spec.stages));
  const top = seedList(spec.seed);
  if (top && new Set(top).size !== top.length) problems.push(`${path}: seed: a seed is listed twice (${top.join(', ')})`);
  if (preset && !spec.presets?.[preset])
    problems.push(`${path}: --preset ${preset}: no such preset (presets: ${Object.keys(spec.presets ?? {}).join(', ') || 'none'})`);
  const baseConfig = spec.base ? resolve(dirname(path), '..', spec.base) : null;
  if (spec.base && !existsSync(spec.base) && !existsSync(baseConfig!)) problems.push(`${path}: base: config file ${spec.base} not found`);
  if (problems.length) throw new ConfigError(problems);
  const out: ExperimentSpec = { ...spec, file: path, baseConfig: spec.base ? (existsSync(spec.base) ? spec.base : baseConfig) : null };
  if (preset) applyPreset(out, preset);
  if (opts.seeds) {
    if (!opts.seeds.length || new Set(opts.seeds).size !== opts.seeds.length || opts.seeds.some((x) => !Number.isInteger(x) || x < 0))
      throw new ConfigError([`--seeds: expected distinct non-negative integers (e.g. 1,2,3), found ${opts.seeds.join(',') || 'none'}`]);
    out.seed = [...opts.seeds];
    out.cliSeeds = [...opts.seeds];
  }
  detectCycles(out);
  return out;
}

function applyPreset(spec: ExperimentSpec, preset: string): void {
  const p = spec.presets![preset]!;
  spec.set = { ...(spec.set ?? {}), ...(p.set ?? {}) };
  if (p.seed !== undefined) spec.seed = p.seed;
  for (const [name, ov] of Object.entries(p.stages ?? {})) {
    const st = spec.stages[name];
    if (!st) throw new ConfigError([`${spec.file}: presets.${preset}.stages.${name}: not a stage`]);
    spec.stages[name] = {
      ...st,
      set: { ...(st.set ?? {}), ...(ov.set ?? {}) },
      ...(ov.sweep ? { sweep: ov.sweep } : {}),
      ...(ov.seed !== undefined ? { seed: ov.seed } : {}),
    } as StageSpec;
  }
  if (p.only) {
    for (const name of p.only) if (!spec.stages[name]) throw new ConfigError([`${spec.file}: presets.${preset}.only: '${name}' is not a stage`]);
    spec.stages = Object.fromEntries(Object.entries(spec.stages).filter(([n]) => p.only!.includes(n)));
  }
}

function parentsOf(st: StageSpec): string[] {
  if (st.kind === 'prune' || st.kind === 'finetune') return [st.from];
  if (st.kind === 'analyze' || st.kind === 'export') return [st.of];
  return st.fixedMaskFrom ? [st.fixedMaskFrom] : [];
}

function detectCycles(spec: ExperimentSpec): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string, path: string[]) => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') throw new ConfigError([`${spec.file}: stages: dependency cycle ${[...path, n].join(' -> ')}`]);
    state.set(n, 'visiting');
    const st = spec.stages[n];
    if (st) for (const p of parentsOf(st)) visit(p.split('[')[0]!, [...path, n]);
    state.set(n, 'done');
  };
  for (const n of Object.keys(spec.stages)) visit(n, []);
}

function cartesian(sweep: Record<string, unknown[]>): Array<Record<string, unknown>> {
  let points: Array<Record<string, unknown>> = [{}];
  for (const [k, values] of Object.entries(sweep)) points = points.flatMap((p) => values.map((v) => ({ ...p, [k]: v })));
  return points;
}

function pointLabel(point: Record<string, unknown>): string {
  const parts = Object.entries(point).map(
    ([k, v]) =>
      `${k}=${
        typeof v === 'object'
          ? JSON.stringify(v)
              .replace(/[{}"\s]/g, '')
              .replace(/:/g, '-')
          : String(v)
      }`,
  );
  return parts.length ? `[${parts.join(',')}]` : '';
}

/**
 * Expand sweeps; a stage depending on a swept stage depends on (and is repeated for) each of its instances.
 * Seeds (`seed:` at the spec level or on a stage) make replicates: a stage without a parent runs once per
 * seed, and every other stage follows its parent's seed (baseline seed 2 -> its prune stages seed 2), so
 * each replicate is a whole chain. The seed is the last item of an instance's label
 * (`l0[lambda=0.1,seed=2]`) and enters its config (`seed=2`); without seeds nothing changes, ids and
 * configs (hence hashes) are those of a spec without the feature.
 */
export function expandStages(spec: ExperimentSpec): StageInstance[] {
  const byStage = new Map<string, StageInstance[]>();
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string) => {
    if (seen.has(n)) return;
    seen.add(n);
    for (const p of parentsOf(spec.stages[n]!)) visit(p.split('[')[0]!);
    order.push(n);
  };
  Object.keys(spec.stages).forEach(visit);
  const specSeeds = seedList(spec.seed);
  for (const name of order) {
    const st = spec.stages[name]!;
    const where = `${spec.file}: stages.${name}`;
    const parentName = parentsOf(st)[0];
    // a parent reference may pin one instance: `l0-all[targetHeads=24]` (each seed's instance of it)
    const candidates = parentName ? byStage.get(parentName.split('[')[0]!)! : [];
    // a parent the CLI's --seeds left without instances: so is this stage
    if (parentName && !candidates.length && spec.cliSeeds) {
      byStage.set(name, []);
      continue;
    }
    const pinned: Array<StageInstance | null> = parentName ? candidates.filter((p) => !parentName.includes('[') || p.baseId === parentName) : [null];
    if (parentName && !pinned.length)
      throw new ConfigError([`${where}: no instance '${parentName}' (instances: ${[...new Set(candidates.map((p) => p.baseId))].join(', ')})`]);
    const written = seedList(st.seed);
    // under --seeds, a stage's own seeds are those of its seeds the run has (parentless stages: --seeds
    // replaces them like the spec-level list; following stages keep those the CLI names)
    const own = written && spec.cliSeeds ? written.filter((x) => spec.cliSeeds!.includes(x)) : written;
    if (own && !own.length) {
      byStage.set(name, []);
      continue;
    }
    if (own && st.sweep?.['seed']) throw new ConfigError([`${where}.sweep.seed: the stage has seed: as well; give the seeds once, as seed:`]);
    const parentSeeds = [...new Set(pinned.map((p) => p?.seed ?? null).filter((x): x is number => x !== null))];
    if (own && parentSeeds.length) {
      const missing = own.filter((x) => !parentSeeds.includes(x));
      if (missing.length)
        throw new ConfigError([
          `${where}.seed: ${missing.join(', ')} not among its parent's seeds (${parentSeeds.join(', ')}); a stage follows its parent's seed`,
        ]);
    } else if (own && parentName && (st.kind === 'analyze' || st.kind === 'export'))
      throw new ConfigError([`${where}.seed: an ${st.kind} stage has no seed of its own (it reports its parent's model); give the parent seeds`]);
    // a stage's children follow it: keep the parents of the seeds this stage follows
    const parents = own && parentSeeds.length ? pinned.filter((p) => p && own.includes(p.seed!)) : pinned;
    const distinctParents = new Set(parents.map((p) => p?.baseId)).size;
    const instances: StageInstance[] = [];
    for (const parent of parents) {
      const seeds: Array<number | null> =
        parent === null ? (own ?? (st.sweep?.['seed'] ? null : specSeeds) ?? [null]) : parent.seed !== null ? [parent.seed] : (own ?? [null]);
      for (const seed of seeds)
        for (const point of cartesian((st.sweep ?? {}) as Record<string, unknown[]>)) {
          const sweepSets = Object.entries(point)
            .filter(([k]) => !STAGE_SWEEP_KEYS.has(k))
            .map(([k, v]) => `${SWEEP_SHORTCUTS[k] ?? k}=${JSON.stringify(v)}`);
          const parentLabel = parent && distinctParents > 1 ? `<${parent.baseId}>` : '';
          const baseId = `${name}${pointLabel(point)}${parentLabel}`;
          instances.push({
            id: seed === null ? baseId : `${name}${pointLabel({ ...point, seed })}${parentLabel}`,
            baseId,
            seed,
            stage: name,
            spec: st,
            point,
            // spec-level `set` shapes the base config: train stages take it, the others inherit it from their parent
            overrides: [
              ...(st.kind === 'train' ? setToOverrides(spec.set) : []),
              ...setToOverrides(st.set),
              ...sweepSets,
              ...(seed !== null && (st.kind === 'train' || st.kind === 'prune') ? [`seed=${seed}`] : []),
            ],
            dependsOn: parent ? [parent.id] : [],
          });
        }
    }
    byStage.set(name, instances);
  }
  return order.flatMap((n) => byStage.get(n)!);
}

/** What is wrong with one claim, given the spec's stages (the sweep points are checked when the report resolves them). */
function claimProblems(path: string, id: string, c: ClaimSpec, stages: Record<string, StageSpec>): string[] {
  const out: string[] = [];
  const where = `${path}: claims.${id}`;
  if (!c.compare && !c.roles) out.push(`${where}: expected compare (comparisons) or roles (head roles), found neither`);
  for (const [i, cmp] of (c.compare ?? []).entries()) {
    if (cmp.expect === 'notWorse' && cmp.margin === undefined) out.push(`${where}.compare[${i}].margin: expect notWorse needs a margin (BLEU), found none`);
    if (cmp.expect === 'better' && cmp.margin !== undefined)
      out.push(`${where}.compare[${i}].margin: only for expect notWorse (this comparison expects better)`);
    for (const key of ['system', 'reference'] as const) {
      const side = parseClaimSide(cmp[key]);
      const at = `${where}.compare[${i}].${key}`;
      if (!side) {
        out.push(`${at}: expected a setting as the report names it (stage, stage[key=value], with #binarised or @<heads>), found '${cmp[key]}'`);
        continue;
      }
      const st = stages[side.stage];
      if (!st) {
        out.push(`${at}: '${side.stage}' is not a stage (stages: ${Object.keys(stages).join(', ')})`);
        continue;
      }
      const curve = st.kind === 'prune' && ['importance', 'confidence', 'random'].includes(st.method);
      if (side.heads !== null && !curve)
        out.push(
          `${at}: @${side.heads} picks a step of an importance, confidence or random prune stage; '${side.stage}' is ${st.kind === 'prune' ? `a ${st.method} prune stage` : `a ${st.kind} stage`}`,
        );
      if (side.heads === null && curve) out.push(`${at}: '${side.stage}' is scored at several head counts: name one as ${side.setting}@<heads>`);
      if (side.binarised && !(st.kind === 'prune' && st.method === 'l0'))
        out.push(
          `${at}: #binarised is an L0 prune stage's scoring; '${side.stage}' is ${st.kind === 'prune' ? `a ${st.method} prune stage` : `a ${st.kind} stage`}`,
        );
    }
    if (cmp.system === cmp.reference) out.push(`${where}.compare[${i}]: system and reference are the same setting (${cmp.system})`);
  }
  if (c.roles) {
    const st = stages[c.roles.of];
    if (!st) out.push(`${where}.roles.of: '${c.roles.of}' is not a stage (stages: ${Object.keys(stages).join(', ')})`);
    else if (st.kind !== 'analyze') out.push(`${where}.roles.of: expected an analyze stage, found a ${st.kind} stage ('${c.roles.of}')`);
  }
  return out;
}
