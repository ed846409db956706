/**
 * Experiment reports: one row per finished stage instance (and per step of an importance-pruning curve)
 * into results.csv, a Markdown table, and figures. Every number cites the folder it came from.
 */
import Papa from 'papaparse';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { ResolvedStage } from './stage.js';
import { stageState } from './stage.js';
import type { StageSummary } from './run-stage.js';
import { readJsonFile, readTextFile, writeFileAtomic } from '../util/fs.js';
import { EXPERIMENT_RESULT_COLUMNS, type ExperimentResultRow } from '../plots/readers.js';
import { bleuPointsFromResults, bleuVsHeadsFigure, bleuVsModelBytesFigure, keptPerTypeFigure, roleCategory, survivingRolesFigure, type SurvivingLayout } from '../plots/experiments.js';
import { writeFigure, type WrittenFigure } from '../plots/write.js';
import { readHeadReport, type HeadReport, type HeadReportEntry } from '../analysis/report.js';
import { headKey } from '../config/head-id.js';
import { maskToKeptSets, originalMaskShape, readHeadMask } from '../export/head-mask.js';

/** One line of results.csv. */
export interface ResultRow {
  stage: string;
  id: string;
  kind: string;
  method: string;
  attention: string;
  lambda: number | null;
  targetHeads: string;
  keptEnc: number | null;
  keptDecSelf: number | null;
  keptDecEnc: number | null;
  bleu: number | null;
  bleuTokLc: number | null;
  devBleu: number | null;
  /** the folder the numbers come from (relative to the repository) */
  run: string;
  /** export stages (src/experiments/export-stage.ts): parameters, non-zero parameters, weights-file bytes, decode time of the fixed batch */
  params: number | null;
  nonZeroParams: number | null;
  modelBytes: number | null;
  decodeSeconds: number | null;
}

function fmt(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined ? '-' : x.toFixed(digits);
}

const numberOrNull = (v: unknown): number | null => (typeof v === 'number' ? v : null);

export function collectRows(stages: readonly ResolvedStage[], root = process.cwd()): ResultRow[] {
  const rows: ResultRow[] = [];
  for (const s of stages) {
    if (stageState(s) !== 'done') continue;
    const sum = readJsonFile<StageSummary>(join(s.folder, 'stage.json'), 'stage marker');
    const st = s.instance.spec;
    const base = {
      stage: s.instance.stage,
      id: s.instance.id,
      kind: st.kind,
      method: st.kind === 'prune' ? (st.method === 'l0' && s.config.gates.targetHeads !== null ? 'l0-budget' : st.method) : st.kind === 'train' ? (s.parent ? 'scratch-fixed-mask' : 'baseline') : st.kind === 'export' && typeof sum['method'] === 'string' ? sum['method'] : st.kind,
      attention: s.config.gates.attention.join('+') || '-',
      lambda: st.kind === 'prune' && st.method === 'l0' && s.config.gates.targetHeads === null ? s.config.train.l0Lambda : null,
      targetHeads: s.config.gates.targetHeads === null ? '' : JSON.stringify(s.config.gates.targetHeads),
      run: relative(root, s.folder),
      params: numberOrNull(sum['params']),
      nonZeroParams: numberOrNull(sum['nonZeroParams']),
      modelBytes: numberOrNull(sum['modelBytes']),
      decodeSeconds: numberOrNull(sum['decodeSeconds']),
    };
    if (sum.curve)
      for (const p of sum.curve)
        rows.push({ ...base, id: `${s.instance.id}#${p.maskFile}`, keptEnc: p.keptHeads['enc-self'], keptDecSelf: p.keptHeads['dec-self'], keptDecEnc: p.keptHeads['dec-enc'], bleu: p.bleu, bleuTokLc: p.bleuTokLc, devBleu: null, run: join(base.run, p.maskFile) });
    else if (sum.keptHeads)
      rows.push({ ...base, keptEnc: sum.keptHeads['enc-self'], keptDecSelf: sum.keptHeads['dec-self'], keptDecEnc: sum.keptHeads['dec-enc'], bleu: sum.bleu ?? null, bleuTokLc: sum.bleuTokLc ?? null, devBleu: sum.devBleu ?? null });
  }
  return rows;
}

/** Parameters as `1.23M` (non-zero ones in brackets when fewer), `-` when not measured. */
function fmtParams(r: ResultRow): string {
  if (r.params === null) return '-';
  const m = (n: number) => `${(n / 1e6).toFixed(2)}M`;
  return r.nonZeroParams !== null && r.nonZeroParams < r.params ? `${m(r.params)} (${m(r.nonZeroParams)} non-zero)` : m(r.params);
}

export function markdownTable(rows: readonly ResultRow[]): string {
  const head = '| stage | method | attention | lambda / target | heads kept (enc / dec-self / dec-enc) | test BLEU | tok. lc. BLEU | params | weights MB | decode s | run |\n|---|---|---|---|---|---|---|---|---|---|---|';
  const body = rows.map((r) => `| ${r.id} | ${r.method} | ${r.attention} | ${r.lambda ?? (r.targetHeads || '-')} | ${r.keptEnc ?? '-'} / ${r.keptDecSelf ?? '-'} / ${r.keptDecEnc ?? '-'} | ${fmt(r.bleu)} | ${fmt(r.bleuTokLc)} | ${fmtParams(r)} | ${r.modelBytes === null ? '-' : (r.modelBytes / 1e6).toFixed(2)} | ${fmt(r.decodeSeconds)} | \`${r.run}\` |`);
  return [head, ...body].join('\n') + '\n';
}

/** results.csv columns, in order: the list its reader (src/plots/readers.ts) checks. */
export const RESULT_COLUMNS: ReadonlyArray<keyof ResultRow> = EXPERIMENT_RESULT_COLUMNS;

export function writeReport(stages: readonly ResolvedStage[], outDir: string): { rows: ResultRow[]; csvPath: string; mdPath: string } {
  const rows = collectRows(stages);
  const csvPath = join(outDir, 'results.csv');
  const mdPath = join(outDir, 'results.md');
  writeFileAtomic(csvPath, Papa.unparse({ fields: [...RESULT_COLUMNS], data: rows.map((r) => RESULT_COLUMNS.map((c) => r[c])) }, { newline: '\n' }) + '\n');
  const table2 = prunedVsScratchTable(stages, rows);
  writeFileAtomic(mdPath, markdownTable(rows) + (table2 ? `\n## Pruned against the same layout trained from scratch (Voita et al. 2019, Table 2)\n\n${table2}` : ''));
  return { rows, csvPath, mdPath };
}

export interface PrunedVsScratchRow {
  layout: string;
  pruned: ResultRow;
  scratch: ResultRow;
  /** the unpruned model the pruning started from */
  baseline: ResultRow | null;
  /** the pruning stage's lambda-0 instance: the same fine-tuning with every head */
  control: ResultRow | null;
}

/**
 * Every finished fixed-mask train stage paired with the pruned stage whose layout it copies, the baseline
 * that stage started from, and (when the sweep has one) the pruning stage's lambda-0 control. The pruned
 * model has had the baseline's steps plus the fine-tuning, the scratch model only the baseline's, so the
 * fair comparison is of each against its own full-layout reference: pruned - control, scratch - baseline.
 */
export function prunedVsScratchRows(stages: readonly ResolvedStage[], rows: readonly ResultRow[]): PrunedVsScratchRow[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const out: PrunedVsScratchRow[] = [];
  for (const s of stages) {
    if (s.instance.spec.kind !== 'train' || !s.parent) continue;
    const scratch = byId.get(s.instance.id);
    const pruned = byId.get(s.parent.instance.id);
    if (!scratch || !pruned) continue;
    let root: ResolvedStage = s.parent;
    while (root.parent) root = root.parent;
    const control = rows.find((r) => r.stage === pruned.stage && r.lambda === 0 && r.attention === pruned.attention && r.id !== pruned.id) ?? null;
    out.push({ layout: `${pruned.keptEnc ?? '-'} / ${pruned.keptDecSelf ?? '-'} / ${pruned.keptDecEnc ?? '-'}`, pruned, scratch, baseline: byId.get(root.instance.id) ?? null, control });
  }
  return out;
}

/** The Markdown of prunedVsScratchRows ('' when there is no finished fixed-mask stage). */
export function prunedVsScratchTable(stages: readonly ResolvedStage[], rows: readonly ResultRow[]): string {
  const pairs = prunedVsScratchRows(stages, rows);
  if (!pairs.length) return '';
  const diff = (a: number | null | undefined, b: number | null | undefined) => (a === null || a === undefined || b === null || b === undefined ? '-' : `${a - b >= 0 ? '+' : ''}${(a - b).toFixed(2)}`);
  const head =
    '| heads kept (enc / dec-self / dec-enc) | pruned | test BLEU | from scratch, mask fixed | test BLEU | pruned - scratch | full model, same fine-tuning (lambda 0) | pruned - that | baseline | scratch - baseline |\n|---|---|---|---|---|---|---|---|---|---|';
  const body = pairs.map(
    (p) =>
      `| ${p.layout} | \`${p.pruned.run}\` | ${fmt(p.pruned.bleu)} | \`${p.scratch.run}\` | ${fmt(p.scratch.bleu)} | ${diff(p.pruned.bleu, p.scratch.bleu)} | ${p.control ? `${fmt(p.control.bleu)} (\`${p.control.run}\`)` : '-'} | ${diff(p.pruned.bleu, p.control?.bleu)} | ${p.baseline ? fmt(p.baseline.bleu) : '-'} | ${diff(p.scratch.bleu, p.baseline?.bleu)} |`,
  );
  return [head, ...body].join('\n') + '\n';
}

export function readResultRows(csvPath: string): ResultRow[] {
  if (!existsSync(csvPath)) return [];
  return Papa.parse<ResultRow>(readTextFile(csvPath, 'results table'), { header: true, dynamicTyping: true, skipEmptyLines: true }).data;
}

/** Which figures the report draws, from which rows; each is written only when it has data. */
export interface ReportFigures {
  written: Array<{ name: string; files: WrittenFigure }>;
  skipped: string[];
}

const asPlotRow = (r: ResultRow): ExperimentResultRow => ({ ...r, targetHeads: r.targetHeads || null });

/**
 * The study's figures in `<outDir>/figures/`: BLEU against encoder heads kept for every encoder-only
 * pruning method and the baseline (Voita et al. Figure 7); heads kept per attention type against BLEU for
 * stages that prune all three types (Figures 9-10); test BLEU against the weights file's bytes for the
 * export stages (one point per compression method); and the roles (from an analyze stage of the unpruned
 * baseline) of the encoder heads each L0 stage keeps (Figure 8).
 */
export async function writeReportFigures(stages: readonly ResolvedStage[], rows: readonly ResultRow[], outDir: string, opts: { png?: boolean; html?: boolean } = {}): Promise<ReportFigures> {
  const out: ReportFigures = { written: [], skipped: [] };
  const dir = join(outDir, 'figures');
  const write = async (name: string, fig: Parameters<typeof writeFigure>[0]) => out.written.push({ name, files: await writeFigure(fig, join(dir, name), { png: opts.png ?? false, html: opts.html ?? true }) });

  const encRows = rows.filter((r) => r.method === 'baseline' || (r.kind === 'prune' && r.attention === 'enc-self'));
  const points = bleuPointsFromResults(encRows.map(asPlotRow), { types: ['enc-self'] });
  if (points.some((p) => p.method !== 'baseline')) await write('bleu-vs-encoder-heads', bleuVsHeadsFigure(points, { title: 'Test BLEU against encoder heads kept (Voita et al. 2019, Fig. 7)', headsLabel: 'encoder heads kept' }));
  else out.skipped.push('bleu-vs-encoder-heads: no finished encoder-only pruning stage');

  const allRows = rows.filter((r) => r.kind === 'prune' && r.attention.split('+').length === 3);
  if (allRows.length) await write('heads-per-type-vs-bleu', keptPerTypeFigure(allRows.map(asPlotRow), { title: 'Heads kept per attention type against test BLEU (Voita et al. 2019, Figs. 9-10)' }));
  else out.skipped.push('heads-per-type-vs-bleu: no finished stage pruning all three attention types');

  const sizedRows = rows.filter((r) => r.modelBytes !== null && r.bleu !== null);
  if (sizedRows.length) await write('bleu-vs-model-bytes', bleuVsModelBytesFigure(sizedRows.map(asPlotRow), { title: 'Test BLEU against the size of the weights file, one point per compression method' }));
  else out.skipped.push('bleu-vs-model-bytes: no finished export stage');

  // roles of the surviving heads: the baseline's analysis, the L0 stages' masks
  const analysis = stages.find((s) => s.instance.spec.kind === 'analyze' && s.parent && !s.parent.parent && s.parent.instance.spec.kind === 'train' && stageState(s) === 'done');
  if (!analysis) out.skipped.push('surviving-head-roles: no finished analyze stage of the baseline');
  else {
    const report = readHeadReport(join(analysis.folder, 'head-report.json'));
    const layouts: SurvivingLayout[] = [];
    const survivors: SurvivorRow[] = [];
    for (const s of stages) {
      const st = s.instance.spec;
      if (st.kind !== 'prune' || st.method !== 'l0' || s.parent !== analysis.parent || stageState(s) !== 'done' || s.config.gates.attention.join('+') !== 'enc-self') continue;
      const maskPath = join(s.folder, 'mask.json');
      if (!existsSync(maskPath)) continue;
      const shape = originalMaskShape(s.config.model);
      const kept = maskToKeptSets(readHeadMask(maskPath, shape), shape)['enc-self'];
      const keptKeys = kept.flatMap((ids, layer) => ids.map((head) => headKey({ stack: 'enc-self', layer, head })));
      const roles = keptKeys.map((key) => roleCategory(report.heads[key]?.roles.labels ?? []));
      const budget = s.config.gates.targetHeads === null ? `λ ${s.config.train.l0Lambda}` : `budget ${JSON.stringify(s.config.gates.targetHeads)}`;
      layouts.push({ label: `${roles.length} heads (${budget})`, headsKept: roles.length, roles });
      survivors.push(survivorScores(report, new Set(keptKeys), { stage: s.instance.id, run: relative(process.cwd(), s.folder) }));
    }
    // not a figure, but made from the same analysis and masks: the survivors' scores against the removed heads'
    if (survivors.length) {
      writeFileAtomic(join(outDir, 'survivors.csv'), Papa.unparse({ fields: [...SURVIVOR_COLUMNS], data: survivors.map((r) => SURVIVOR_COLUMNS.map((c) => r[c])) }, { newline: '\n' }) + '\n');
      writeFileAtomic(join(outDir, 'survivors.md'), survivorsMarkdown(survivors));
    }
    const all = Object.entries(report.heads).filter(([, h]) => h.stack === 'enc-self').map(([, h]) => roleCategory(h.roles.labels));
    layouts.unshift({ label: `${all.length} heads (baseline)`, headsKept: all.length, roles: all });
    if (layouts.length > 1) await write('surviving-head-roles', survivingRolesFigure(layouts, { title: 'Roles (in the baseline) of the encoder heads each L0 stage keeps (Voita et al. 2019, Fig. 8)', xLabel: 'model' }));
    else out.skipped.push('surviving-head-roles: no finished encoder-only L0 stage');
  }
  return out;
}

/** Mean baseline scores of the encoder heads an L0 stage keeps and of those it removes. */
export interface SurvivorRow {
  stage: string;
  kept: number;
  removed: number;
  /** share of queries whose argmax is the previous or the next token (the paper's positional heads: >= 90%) */
  keptPositional: number | null;
  removedPositional: number | null;
  /** share of queries attending to the rarest token of the sentence */
  keptRare: number | null;
  removedRare: number | null;
  keptImportance: number | null;
  removedImportance: number | null;
  keptConfidence: number | null;
  removedConfidence: number | null;
  keptLrp: number | null;
  removedLrp: number | null;
  run: string;
}

export const SURVIVOR_COLUMNS: ReadonlyArray<keyof SurvivorRow> = ['stage', 'kept', 'removed', 'keptPositional', 'removedPositional', 'keptRare', 'removedRare', 'keptImportance', 'removedImportance', 'keptConfidence', 'removedConfidence', 'keptLrp', 'removedLrp', 'run'];

/**
 * The paper's roles need thresholds (90% at one offset, ...) that small models may never reach; the
 * continuous scores behind them still say whether pruning keeps the more positional, rare-token-seeking,
 * important or confident heads: their means over the kept and the removed encoder heads, from the
 * baseline's head report.
 */
export function survivorScores(report: HeadReport, kept: ReadonlySet<string>, where: { stage: string; run: string }): SurvivorRow {
  const enc = Object.entries(report.heads).filter(([, h]) => h.stack === 'enc-self');
  const mean = (keys: Array<[string, HeadReportEntry]>, f: (h: HeadReportEntry) => number | null | undefined): number | null => {
    const v = keys.map(([, h]) => f(h)).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const k = enc.filter(([key]) => kept.has(key));
  const r = enc.filter(([key]) => !kept.has(key));
  const both = (f: (h: HeadReportEntry) => number | null | undefined) => [mean(k, f), mean(r, f)] as const;
  const [keptPositional, removedPositional] = both((h) => h.roles.positional?.fraction);
  const [keptRare, removedRare] = both((h) => h.roles.rare?.rate);
  const [keptImportance, removedImportance] = both((h) => h.importance.perToken);
  const [keptConfidence, removedConfidence] = both((h) => h.attention.confidence);
  const [keptLrp, removedLrp] = both((h) => h.lrp);
  return { stage: where.stage, kept: k.length, removed: r.length, keptPositional, removedPositional, keptRare, removedRare, keptImportance, removedImportance, keptConfidence, removedConfidence, keptLrp, removedLrp, run: where.run };
}

export function survivorsMarkdown(rows: readonly SurvivorRow[]): string {
  const f = (x: number | null) => (x === null ? '-' : x.toFixed(3));
  const head = '| stage | heads kept / removed | share at offset ±1 (kept / removed) | rare-token rate | importance | confidence | LRP | run |\n|---|---|---|---|---|---|---|---|';
  const body = rows.map((r) => `| ${r.stage} | ${r.kept} / ${r.removed} | ${f(r.keptPositional)} / ${f(r.removedPositional)} | ${f(r.keptRare)} / ${f(r.removedRare)} | ${f(r.keptImportance)} / ${f(r.removedImportance)} | ${f(r.keptConfidence)} / ${f(r.removedConfidence)} | ${f(r.keptLrp)} / ${f(r.removedLrp)} | \`${r.run}\` |`);
  return [head, ...body].join('\n') + '\n';
}
