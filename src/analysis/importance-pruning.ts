/**
 * Heuristic head pruning, the baseline the L0 gates are compared against (Michel et al. 2019, §5:
 * "iteratively prune 10% of heads by increasing importance"; shared/notes/anchor-pruning-peers.md §A.3):
 * rank the still-kept heads of the chosen attention types globally by a score, remove the lowest
 * `stepPercent` of the pool per step (round(N * p / 100) heads, at least 1, N = heads in the pool at the
 * start), optionally re-estimating the scores under the current mask before every step (the BERT code's
 * `--exact_pruning`; otherwise once, like the MT code), and never leaving a layer with fewer than
 * `minHeadsPerLayer` heads (`--at_least_x_heads_per_layer`: when the constraint binds, fewer heads are
 * removed and the step says so). Methods: `importance` (Michel's per-example score, layer-normalised, by
 * default; the per-token and per-batch forms and no normalisation as options, importance.ts), and as
 * controls `confidence` (Voita et al.'s max attention weight) and `random` (a seeded permutation).
 * After every step: dev loss and greedy BLEU on the evaluation pairs, a head-mask file with ORIGINAL ids
 * (masks/step-NN.json, readable by the exporter) and a row of pruning-curve.csv.
 * Masking multiplies the head by 0 on top of its test-time gate, as analysis does.
 */
import { DEFAULT_ANALYSIS } from '../config/defaults.js';
import Papa from 'papaparse';
import { ATTENTION_TYPES, type AttentionType, headKey } from '../config/head-id.js';
import type { ResolvedConfig } from '../config/schema.js';
import type { Transformer } from '../model/transformer.js';
import type { HeadGates } from '../gates/head-gates.js';
import type { SentencePair } from '../data/corpus.js';
import type { BpeTokenizer } from '../data/tokenizer.js';
import { maskFromKeptSets, writeHeadMask } from '../io/head-mask.js';
import type { RunFolder } from '../util/run-folder.js';
import { ConfigError } from '../util/errors.js';
import { Rng, deriveSeed } from '../util/random.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { collectAttentionStats } from './attention-pass.js';
import { summarizeHeadStats } from './attention-stats.js';
import { devLoss, greedyBleu } from './dev-metrics.js';
import { type HeadLayout, type PerHead, headLayout, listHeads } from '../config/head-layout.js';
import { gateTensorsOf, testGateMultipliers, withHeadsRemoved } from './multipliers.js';
import { disposeGates } from '../model/gate-tensors.js';
import {
  DEFAULT_IMPORTANCE,
  type ImportanceForm,
  type ImportanceNormalization,
  estimateMichelImportance,
  importanceScores,
  importanceSettingProblems,
} from './importance.js';
import { encodeForModel } from './analyze.js';

export type PruningMethod = 'importance' | 'confidence' | 'random';
export const PRUNING_METHODS: readonly PruningMethod[] = ['importance', 'confidence', 'random'];

export interface ImportancePruningOptions {
  model: Transformer;
  gates?: HeadGates | null;
  tokenizer: BpeTokenizer;
  config: ResolvedConfig;
  /** `estimate`: pairs the scores are computed on; `eval`: pairs loss and BLEU are reported on */
  data: { estimate: readonly SentencePair[]; eval: readonly SentencePair[] };
  method: PruningMethod;
  /** share of the pool removed per step, in percent (default 10, Michel et al.) */
  stepPercent?: number;
  /** re-estimate scores under the current mask before every step (default false) */
  reestimate?: boolean;
  /** never leave a layer with fewer heads than this (default 0) */
  minHeadsPerLayer?: number;
  /** attention types to prune (default: all the model has) */
  stacks?: readonly AttentionType[];
  /** BLEU on the first N eval pairs, greedy (default 100) */
  bleuSentences?: number;
  /** importance form (default 'example', the paper's eq. 2) */
  importanceForm?: ImportanceForm;
  /** per-layer l2 normalisation of the importance (default 'layer', as Michel's MT scripts run it) */
  importanceNormalize?: ImportanceNormalization;
  /** label smoothing of the importance loss (default config.train.labelSmoothing) */
  labelSmoothing?: number;
  /** padded-token budget per batch (default config.train.maxTokensPerBatch) */
  maxTokensPerBatch?: number;
  run: RunFolder;
  seed: number;
  onProgress?: (msg: string) => void;
}

export interface PruningStep {
  step: number;
  /** heads kept in the pruned attention types */
  headsKept: number;
  headsRemoved: number;
  /** heads kept in the whole model */
  headsKeptTotal: number;
  percentPruned: number;
  bleu: number;
  loss: number;
  /** relative to the run folder */
  maskFile: string;
  /** heads removed at this step (original ids) */
  removed: string[];
  /** the minHeadsPerLayer constraint kept this step below its target */
  isConstrained: boolean;
}

export interface ImportancePruningResult {
  table: PruningStep[];
  curvePath: string;
}

export interface PruneCandidate {
  key: string;
  stack: AttentionType;
  layer: number;
  score: number;
}

/**
 * The `count` lowest-scoring candidates whose removal leaves every layer with at least `minHeadsPerLayer`
 * heads (`keptPerLayer` keyed `stack.layer`); ties by key order. Pure.
 */
export function selectHeadsToPrune(
  candidates: readonly PruneCandidate[],
  keptPerLayer: ReadonlyMap<string, number>,
  count: number,
  minHeadsPerLayer: number,
): string[] {
  const left = new Map(keptPerLayer);
  const out: string[] = [];
  const order = [...candidates].sort((a, b) => a.score - b.score || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const c of order) {
    if (out.length >= count) break;
    const lk = `${c.stack}.${c.layer}`;
    const n = left.get(lk) ?? 0;
    if (n - 1 < minHeadsPerLayer) continue;
    left.set(lk, n - 1);
    out.push(c.key);
  }
  return out;
}

/** Heads removed per step: round(N * p / 100), at least 1. */
export function headsPerStep(poolSize: number, stepPercent: number): number {
  return Math.max(1, Math.round((poolSize * stepPercent) / 100));
}

export async function runImportancePruning(o: ImportancePruningOptions): Promise<ImportancePruningResult> {
  const log = o.onProgress ?? (() => {});
  const { model, config, tokenizer } = o;
  const stepPercent = o.stepPercent ?? 10;
  const minHeads = o.minHeadsPerLayer ?? 0;
  const bleuSentences = o.bleuSentences ?? DEFAULT_ANALYSIS.pruning.bleuSentences;
  const maxTokens = o.maxTokensPerBatch ?? config.train.maxTokensPerBatch;
  const labelSmoothing = o.labelSmoothing ?? config.train.labelSmoothing;
  const form = o.importanceForm ?? DEFAULT_IMPORTANCE.form;
  const normalize = o.importanceNormalize ?? DEFAULT_IMPORTANCE.normalize;
  const problems: string[] = [];
  problems.push(...importanceSettingProblems(o.importanceForm, o.importanceNormalize, { form: 'importanceForm', normalize: 'importanceNormalize' }));
  if (!(stepPercent > 0 && stepPercent <= 100)) problems.push(`stepPercent: expected a number in (0, 100], got ${stepPercent}`);
  if (!(Number.isInteger(minHeads) && minHeads >= 0)) problems.push(`minHeadsPerLayer: expected an integer >= 0, got ${minHeads}`);
  if (!PRUNING_METHODS.includes(o.method)) problems.push(`method: expected one of ${PRUNING_METHODS.join(', ')}, got ${String(o.method)}`);
  if (problems.length) throw new ConfigError(problems);

  const layout: HeadLayout = headLayout(config.model);
  const stacks = ATTENTION_TYPES.filter((s) => (o.stacks ?? ATTENTION_TYPES).includes(s) && model.shape[s].length > 0);
  const pool = listHeads(layout, stacks);
  const allHeads = listHeads(layout, ATTENTION_TYPES);
  const perStep = headsPerStep(pool.length, stepPercent);
  const base = testGateMultipliers(layout, o.gates);
  const estimate = encodeForModel(tokenizer, o.data.estimate, config.model.maxPositions).encoded;
  const evalEnc = encodeForModel(tokenizer, o.data.eval, config.model.maxPositions);
  const evalKept = new Set(evalEnc.encoded.map((p) => p.index));
  const evalPairs = o.data.eval.filter((_, i) => evalKept.has(i));
  const bleuPairs = evalPairs.slice(0, bleuSentences);
  const randomScores = new Map<string, number>();
  {
    const rng = new Rng(deriveSeed(o.seed, 'prune-random'));
    for (const h of pool) randomScores.set(h.key, rng.next());
  }

  const removed = new Set<string>();
  const maskOf = (): PerHead =>
    withHeadsRemoved(
      base,
      pool.filter((h) => removed.has(h.key)),
    );

  const scoreHeads = async (): Promise<Map<string, number>> => {
    const scores = new Map<string, number>();
    if (o.method === 'random') return randomScores;
    const m = maskOf();
    if (o.method === 'importance') {
      const imp = await estimateMichelImportance(model, layout, estimate, m, { stacks, maxTokensPerBatch: maxTokens, labelSmoothing });
      const s = importanceScores(imp, form, normalize);
      for (const h of pool) scores.set(h.key, s[h.stack][h.layer]![h.position]!);
    } else {
      const pass = await collectAttentionStats(model, layout, estimate, m, { stacks, maxTokensPerBatch: maxTokens });
      for (const h of pool) scores.set(h.key, summarizeHeadStats(pass.stats[h.stack][h.layer]![h.position]!, false).confidence);
    }
    return scores;
  };

  const keptSets = (): Partial<PerHead> => {
    const out: Partial<PerHead> = {};
    for (const stack of ATTENTION_TYPES)
      out[stack] = layout.originalIds[stack].map((ids, l) => ids.filter((id) => !removed.has(headKey({ stack, layer: l, head: id }))));
    return out;
  };

  const table: PruningStep[] = [];
  const evaluateStep = async (step: number, removedNow: string[], isConstrained: boolean) => {
    const g = gateTensorsOf(maskOf());
    const loss = await devLoss(model, evalEnc.encoded, g, maxTokens);
    const bleu = await greedyBleu(model, tokenizer, bleuPairs, g, config);
    disposeGates(g);
    const maskFile = `masks/step-${String(step).padStart(2, '0')}.json`;
    const source = `${o.method} pruning step ${step} (${stepPercent}% per step${o.reestimate ? ', re-estimated' : ''}${minHeads ? `, >= ${minHeads} per layer` : ''})`;
    writeHeadMask(o.run.file(maskFile), maskFromKeptSets(keptSets(), layout.originalShape, source));
    const row: PruningStep = {
      step,
      headsKept: pool.length - removed.size,
      headsRemoved: removed.size,
      headsKeptTotal: allHeads.length - removed.size,
      percentPruned: pool.length ? (100 * removed.size) / pool.length : 0,
      bleu,
      loss,
      maskFile,
      removed: removedNow,
      isConstrained,
    };
    table.push(row);
    log(
      `step ${step} | heads kept ${row.headsKept}/${pool.length} | dev loss ${loss.toFixed(4)} | BLEU ${bleu.toFixed(2)}${removedNow.length ? ` | removed ${removedNow.join(' ')}` : ''}`,
    );
  };

  await evaluateStep(0, [], false);
  let scores: Map<string, number> | null = null;
  for (let step = 1; ; step++) {
    if (!scores || o.reestimate) scores = await scoreHeads();
    const kept = new Map<string, number>();
    for (const h of pool) if (!removed.has(h.key)) kept.set(`${h.stack}.${h.layer}`, (kept.get(`${h.stack}.${h.layer}`) ?? 0) + 1);
    const candidates = pool.filter((h) => !removed.has(h.key)).map((h) => ({ key: h.key, stack: h.stack, layer: h.layer, score: scores!.get(h.key) ?? 0 }));
    const target = Math.min(perStep, candidates.length);
    const pick = selectHeadsToPrune(candidates, kept, target, minHeads);
    if (!pick.length) break;
    const isConstrained = pick.length < target;
    if (isConstrained) log(`step ${step}: minHeadsPerLayer = ${minHeads} allows only ${pick.length} of ${target} heads`);
    for (const k of pick) removed.add(k);
    await evaluateStep(step, pick, isConstrained);
  }

  const rows = [
    ['step', 'heads_kept', 'heads_removed', 'heads_kept_total', 'percent_pruned', 'bleu', 'loss', 'mask_file', 'removed', 'constrained'],
    ...table.map((r) => [
      r.step,
      r.headsKept,
      r.headsRemoved,
      r.headsKeptTotal,
      Number(r.percentPruned.toFixed(3)),
      Number(r.bleu.toFixed(4)),
      Number(r.loss.toFixed(6)),
      r.maskFile,
      r.removed.join(' '),
      String(r.isConstrained),
    ]),
  ];
  const curvePath = o.run.file('pruning-curve.csv');
  writeFileAtomic(curvePath, Papa.unparse(rows) + '\n');
  writeJsonAtomic(o.run.file('pruning-result.json'), {
    settings: {
      method: o.method,
      stepPercent,
      headsPerStep: perStep,
      reestimate: o.reestimate ?? false,
      minHeadsPerLayer: minHeads,
      stacks,
      importanceForm: o.method === 'importance' ? form : null,
      importanceNormalize: o.method === 'importance' ? normalize : null,
      labelSmoothing: o.method === 'importance' ? labelSmoothing : null,
      estimateSentences: estimate.length,
      evalSentences: evalEnc.encoded.length,
      bleuSentences: bleuPairs.length,
      bleu: 'greedy corpus BLEU (sacreBLEU-compatible, 13a)',
      loss: 'NLL per target token',
      seed: o.seed,
    },
    table,
  });
  return { table, curvePath };
}
