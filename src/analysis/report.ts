/**
 * The versioned head report (`heads.head-report`, version 1): every score of every analysed head, the
 * roles and the figures behind them, the definitions and settings used, and where the model and the data
 * came from. Heads are keyed with ORIGINAL ids (`enc-self.3.5`), also for physically pruned models. The
 * CSV has one row per head; `SCORE_COLUMNS` names the numeric scores once for the CSV, the figures, the
 * summary table and the pruning code.
 */
import Papa from 'papaparse';
import { ATTENTION_TYPES, type AttentionType, parseHeadKey } from '../config/head-id.js';
import type { PerHead, HeadShape } from '../config/head-layout.js';
import { DataError } from '../util/errors.js';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { OFFSET_RANGE, type OffsetHistogram } from './attention-stats.js';
import type { HeadRoles, RelationBaseline, RoleOptions } from './roles.js';
import type { RelevanceRule } from './lrp.js';
import type { ImportanceForm, ImportanceNormalization } from './importance.js';
import type { AblationMetric } from './batched-ablation.js';

export const HEAD_REPORT_FORMAT = 'heads.head-report';
export const HEAD_REPORT_VERSION = 1;

/** Written into every report so a reader never has to guess what a number means. */
export const DEFINITIONS = {
  gate: 'deterministic test-time gate clip(sigmoid(logAlpha)(zeta-gamma)+gamma, 0, 1); pOpen = P(g != 0); pOne = P(g = 1) (Hard Concrete, Voita et al. 2019 6.1)',
  importance:
    'the importance form and normalisation chosen for this report (settings.importance.form / .normalize; default the per-example form, layer-normalised, as Michel et al. define and normalise it)',
  importancePerExample:
    "Michel et al. 2019 eq. 2: mean over sentences x of |dL(x)/dxi_h|, L(x) the sentence's loss summed over its target tokens, xi_h a mask of ones on the gated head context (one per sentence)",
  importancePerToken:
    "Michel et al.'s MT code: sum over batches and non-pad query tokens of |dL/dxi[b,h,t]| (per-token mask of ones on the gated head context), divided by the non-pad query tokens of the attention type",
  importancePerBatch:
    "HF bertology form: sum over batches of |sum over the batch's non-pad query tokens of dL/dxi[b,h,t]| (= |dL_batch/dxi_h|), divided by the same token count; depends on the batching",
  importanceLayerNorm: "I[l,h] / (sqrt(sum over the heads h' of layer l of I[l,h']^2) + 1e-20), per attention type (Michel --normalize-by-layer)",
  confidence:
    'Voita et al. 2019 4: per non-pad query token, the largest attention weight over keys that are not </s>, not padding and (decoder self-attention) not in the future, not renormalised; averaged over those query tokens',
  entropy: 'per non-pad query token, -sum_k p_k ln p_k in nats over all keys (</s> included); averaged over query tokens',
  offsets: `share of query tokens whose argmax key (same key set as confidence) is at (key position - query position) = -${OFFSET_RANGE}..${OFFSET_RANGE}, or further ("other")`,
  ablation:
    'the head alone multiplied by 0 (on top of its test gate): dev loss (NLL per target token, all analysed sentences) and, with settings.ablation.metric bleu, greedy corpus BLEU on the first bleuSentences sentences, minus the unablated values',
  lrp: "relevance of the top-1 logit per decoding step (reference prefix) to each head's gated context, summed over its positions and neurons, |R_h| normalised over the heads of its layer, averaged over steps; see settings.lrp.rule",
  rare: 'share of query tokens whose argmax key holds the rarest token (training-corpus frequency) among the candidate keys; ties all count; top2Rate: the argmax frequency is at most the second smallest; chanceRate: uniform random choice',
  positional: 'self-attention only: the largest share of query tokens whose argmax key is at one of the positional offsets',
  agreement:
    'Spearman rank correlation (average ranks for ties) between two scores over all analysed heads having both; lrp is normalised within each layer, so its agreement compares within-layer shares',
  syntactic:
    "encoder self-attention with CoNLL-U parses: per relation and direction, accuracy of the argmax word (piece attention summed over the key word's pieces, averaged over the query word's pieces) at a related word, against the best fixed word offset",
} as const;

export interface GateReport {
  testGate: number;
  pOpen: number;
  pOne: number;
  pZero: number;
  logAlpha: number;
}

export interface HeadReportEntry {
  stack: AttentionType;
  layer: number;
  /** original head id */
  head: number;
  /** position of the head in its (possibly pruned) layer */
  position: number;
  gate: GateReport | null;
  /** `score`: the form and normalisation of settings.importance; the others: every form, raw and layer-normalised */
  importance: {
    score: number;
    perExample: number;
    perExampleLayerNorm: number;
    perToken: number;
    perTokenLayerNorm: number;
    perBatch: number;
    perBatchLayerNorm: number;
  };
  attention: {
    queries: number;
    confidence: number;
    entropy: number;
    offsetHistogram: OffsetHistogram;
    modeOffset: number | null;
    modeFraction: number;
  };
  ablation: { loss: number; bleu: number | null; deltaLoss: number; deltaBleu: number | null } | null;
  lrp: number | null;
  roles: HeadRoles;
}

export interface HeadReport {
  format: typeof HEAD_REPORT_FORMAT;
  version: typeof HEAD_REPORT_VERSION;
  createdAt: string;
  model: {
    runPath: string | null;
    checkpoint: string | null;
    step: number | null;
    /** original heads per layer (the unpruned model) */
    headsPerLayer: HeadShape;
    /** original ids of the heads the model still has, per layer (null: unpruned) */
    keptHeads: PerHead | null;
    gatedStacks: AttentionType[];
  };
  data: { split: string; source: string; sentences: number; skippedTooLong: number; srcTokens: number; tgtTokens: number };
  stacks: AttentionType[];
  settings: {
    maxTokensPerBatch: number;
    importance: {
      form: ImportanceForm;
      normalize: ImportanceNormalization;
      loss: 'label-smoothed' | 'nll';
      labelSmoothing: number;
      sentences: number;
      batches: number;
      queryTokens: Record<AttentionType, number>;
    };
    ablation: { enabled: boolean; metric: AblationMetric; decoding: 'greedy'; bleuSentences: number; lossSentences: number };
    lrp: { enabled: boolean; rule: RelevanceRule; sentences: number; steps: number };
    roles: RoleOptions;
    frequencies: { source: string } | null;
    conllu: { path: string; sentences: number; aligned: number; skipped: number } | null;
  };
  definitions: typeof DEFINITIONS;
  baseline: { devLoss: number; devBleu: number | null; bleuSentences: number } | null;
  syntacticBaselines: Record<string, RelationBaseline> | null;
  /** how well the head rankings of the main scores agree (Spearman, over heads having both scores) */
  agreement: RankAgreement;
  heads: Record<string, HeadReportEntry>;
  notes: string[];
}

/** A numeric score of a head, named once for CSV columns, figures and rankings. */
export interface ScoreColumn {
  name: string;
  label: string;
  /** larger = more important / more of the property */
  get: (e: HeadReportEntry) => number | null;
}

export const SCORE_COLUMNS: readonly ScoreColumn[] = [
  { name: 'gate_test', label: 'test-time gate', get: (e) => e.gate?.testGate ?? null },
  { name: 'gate_p_open', label: 'P(gate open)', get: (e) => e.gate?.pOpen ?? null },
  { name: 'gate_p_one', label: 'P(gate = 1)', get: (e) => e.gate?.pOne ?? null },
  // reports written before the per-example form existed lack score / perExample: null, not undefined
  { name: 'importance', label: 'Michel importance (settings.importance form)', get: (e) => e.importance.score ?? null },
  { name: 'importance_per_example', label: 'Michel importance (per example)', get: (e) => e.importance.perExample ?? null },
  { name: 'importance_per_example_l2', label: 'Michel importance (per example, layer l2)', get: (e) => e.importance.perExampleLayerNorm ?? null },
  { name: 'importance_per_token', label: 'importance (per token, Michel MT code)', get: (e) => e.importance.perToken },
  { name: 'importance_per_token_l2', label: 'importance (per token, layer l2)', get: (e) => e.importance.perTokenLayerNorm },
  { name: 'importance_per_batch', label: 'importance (per batch, bertology)', get: (e) => e.importance.perBatch },
  { name: 'importance_per_batch_l2', label: 'importance (per batch, layer l2)', get: (e) => e.importance.perBatchLayerNorm },
  { name: 'confidence', label: 'confidence (max weight, EOS excluded)', get: (e) => e.attention.confidence },
  { name: 'entropy', label: 'attention entropy (nats)', get: (e) => e.attention.entropy },
  { name: 'ablation_delta_loss', label: 'dev loss increase when removed alone', get: (e) => e.ablation?.deltaLoss ?? null },
  { name: 'ablation_bleu_drop', label: 'dev BLEU drop when removed alone', get: (e) => (e.ablation?.deltaBleu == null ? null : -e.ablation.deltaBleu) },
  { name: 'lrp', label: 'LRP relevance (layer-normalised)', get: (e) => e.lrp },
  { name: 'rare_rate', label: 'rare-token rate', get: (e) => e.roles.rare?.rate ?? null },
  { name: 'positional_fraction', label: 'positional share (offset -1/+1)', get: (e) => e.roles.positional?.fraction ?? null },
];

export function scoreColumn(name: string): ScoreColumn {
  const c = SCORE_COLUMNS.find((s) => s.name === name);
  if (!c) throw new Error(`unknown score ${name}`);
  return c;
}

/** Heads in stack / layer / original id order. */
export function sortedHeadKeys(report: HeadReport): string[] {
  const order = (k: string) => {
    const id = parseHeadKey(k)!;
    return [ATTENTION_TYPES.indexOf(id.stack), id.layer, id.head];
  };
  return Object.keys(report.heads).sort((a, b) => {
    const x = order(a);
    const y = order(b);
    return x[0]! - y[0]! || x[1]! - y[1]! || x[2]! - y[2]!;
  });
}

/** The `n` heads with the largest value of a score (heads without a value left out). */
export function topHeads(report: HeadReport, score: ScoreColumn, n: number): Array<{ key: string; value: number }> {
  return sortedHeadKeys(report)
    .map((key) => ({ key, value: score.get(report.heads[key]!) }))
    .filter((x): x is { key: string; value: number } => x.value !== null && Number.isFinite(x.value))
    .sort((a, b) => b.value - a.value)
    .slice(0, n);
}

/** Scores whose rankings are compared in `agreement`. */
export const AGREEMENT_SCORES: readonly string[] = [
  'gate_p_open',
  'importance_per_example',
  'importance_per_token',
  'importance_per_batch',
  'confidence',
  'lrp',
  'ablation_delta_loss',
  'ablation_bleu_drop',
];

export interface RankAgreement {
  scores: string[];
  /** spearman[i][j]: rank correlation of scores i and j (null: fewer than 3 heads with both, or a constant score) */
  spearman: Array<Array<number | null>>;
}

/** Ranks 1..n with ties given their average rank. */
export function averageRanks(x: readonly number[]): number[] {
  const order = x.map((v, i) => i).sort((a, b) => x[a]! - x[b]!);
  const ranks = new Array<number>(x.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && x[order[j + 1]!] === x[order[i]!]) j++;
    for (let k = i; k <= j; k++) ranks[order[k]!] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return ranks;
}

/** Spearman's rho: the Pearson correlation of the average ranks (null for n < 3 or a constant input). */
export function spearman(a: readonly number[], b: readonly number[]): number | null {
  if (a.length !== b.length || a.length < 3) return null;
  const ra = averageRanks(a);
  const rb = averageRanks(b);
  const mean = (a.length + 1) / 2;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < ra.length; i++) {
    sab += (ra[i]! - mean) * (rb[i]! - mean);
    saa += (ra[i]! - mean) ** 2;
    sbb += (rb[i]! - mean) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : null;
}

/** Rank correlations between scores over the heads of a report. */
export function rankAgreement(heads: Record<string, HeadReportEntry>, names: readonly string[] = AGREEMENT_SCORES): RankAgreement {
  const cols = names.map(scoreColumn);
  const entries = Object.values(heads);
  const spearmanMatrix = cols.map((a) =>
    cols.map((b) => {
      const pairs = entries
        .map((e) => [a.get(e), b.get(e)] as const)
        .filter((p): p is readonly [number, number] => p[0] !== null && p[1] !== null && Number.isFinite(p[0]) && Number.isFinite(p[1]));
      return spearman(
        pairs.map((p) => p[0]),
        pairs.map((p) => p[1]),
      );
    }),
  );
  return { scores: [...names], spearman: spearmanMatrix };
}

function round(x: number | null | undefined): number | string {
  if (x === null || x === undefined) return '';
  return Number.isFinite(x) ? Number(x.toPrecision(7)) : String(x);
}

/** One CSV row per head: ids, gate, every score, the offset histogram, roles and relation accuracies. */
export function headReportCsv(report: HeadReport): string {
  const relationKeys = Object.keys(report.syntacticBaselines ?? {}).sort();
  const offsets = Array.from({ length: 2 * OFFSET_RANGE + 1 }, (_, i) => i - OFFSET_RANGE);
  const header = [
    'key',
    'stack',
    'layer',
    'head',
    'position',
    'gate_log_alpha',
    ...SCORE_COLUMNS.map((c) => c.name),
    'ablation_loss',
    'ablation_bleu',
    'ablation_delta_bleu',
    'queries',
    'offset_mode',
    'offset_mode_fraction',
    ...offsets.map((o) => `offset_${o}`),
    'offset_other',
    'rare_top2_rate',
    'rare_chance_rate',
    'rare_queries',
    'is_positional',
    'positional_offset',
    'is_rare',
    'is_syntactic',
    'syntactic_relations',
    'roles',
    ...relationKeys.flatMap((k) => [`syn_${k}_accuracy`, `syn_${k}_gain`]),
  ];
  const rows: Array<Array<string | number>> = [header];
  for (const key of sortedHeadKeys(report)) {
    const e = report.heads[key]!;
    rows.push([
      key,
      e.stack,
      e.layer,
      e.head,
      e.position,
      round(e.gate?.logAlpha),
      ...SCORE_COLUMNS.map((c) => round(c.get(e))),
      round(e.ablation?.loss),
      round(e.ablation?.bleu),
      round(e.ablation?.deltaBleu),
      e.attention.queries,
      e.attention.modeOffset ?? '',
      round(e.attention.modeFraction),
      ...offsets.map((o) => {
        const h = e.attention.offsetHistogram;
        return o >= h.from && o <= h.to ? round(h.shares[o - h.from]) : '';
      }),
      round(e.attention.offsetHistogram.other),
      round(e.roles.rare?.top2Rate),
      round(e.roles.rare?.chanceRate),
      e.roles.rare?.queries ?? '',
      e.roles.positional ? String(e.roles.positional.isPositional) : '',
      e.roles.positional?.offset ?? '',
      e.roles.rare ? String(e.roles.rare.isRare) : '',
      e.roles.syntactic ? String(e.roles.syntactic.isSyntactic) : '',
      e.roles.syntactic?.matched.join(' ') ?? '',
      e.roles.labels.join('; '),
      ...relationKeys.flatMap((k) => [round(e.roles.syntactic?.relations[k]?.accuracy), round(e.roles.syntactic?.relations[k]?.gain)]),
    ]);
  }
  return Papa.unparse(rows) + '\n';
}

export function writeHeadReport(path: string, report: HeadReport): void {
  writeJsonAtomic(path, report);
}

export function writeHeadReportCsv(path: string, report: HeadReport): void {
  writeFileAtomic(path, headReportCsv(report));
}

/** Check the envelope of a parsed report (format, version, heads keyed by valid head keys). */
export function parseHeadReport(value: unknown, sourceName: string): HeadReport {
  const fail = (msg: string): never => {
    throw new DataError(`${sourceName}: ${msg}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('expected a head report JSON object');
  const o = value as Record<string, unknown>;
  if (o.format !== HEAD_REPORT_FORMAT) fail(`format: expected "${HEAD_REPORT_FORMAT}", got ${JSON.stringify(o.format)}`);
  if (o.version !== HEAD_REPORT_VERSION)
    fail(`version: expected ${HEAD_REPORT_VERSION}, got ${JSON.stringify(o.version)} (written by another version of heads)`);
  if (typeof o.heads !== 'object' || o.heads === null || Array.isArray(o.heads)) fail('heads: expected an object keyed like "enc-self.3.5"');
  for (const [k, e] of Object.entries(o.heads as Record<string, unknown>)) {
    const id = parseHeadKey(k);
    if (!id) fail(`heads.${k}: not a head key like enc-self.3.5`);
    const entry = e as Partial<HeadReportEntry> | null;
    if (!entry || entry.stack !== id!.stack || entry.layer !== id!.layer || entry.head !== id!.head)
      fail(`heads.${k}: stack/layer/head fields do not match the key`);
  }
  return value as HeadReport;
}

export function readHeadReport(path: string): HeadReport {
  return parseHeadReport(readJsonFile(path, 'head report'), path);
}
