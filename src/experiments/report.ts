/**
 * Experiment reports: one row per finished stage instance (and per step of an importance-pruning curve)
 * into results.csv, a Markdown table, and figures. Every number cites the folder it came from.
 *
 * With seeds (replicates, src/experiments/replicates.ts) every table shows mean ± sd over the seeds with
 * their number, figures draw one-sd error bars, and each pruned stage gets the paired-bootstrap p-value of
 * its test BLEU against its baseline and its lambda-0 control of the same seed. The test translations
 * behind every score go to `<out>/hyps/` (src/experiments/hyps.ts), from which `rebuildFromHyps` re-scores
 * the whole report without the run folders.
 */
import Papa from 'papaparse';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { ResolvedStage } from './stage.js';
import { decodingLabel, instanceIdOf, stageState } from './stage.js';
import { baselineRoleReports, roleReports, rolesSection } from './roles-summary.js';
import { claimsSection, evaluateClaims } from './claims.js';
import type { ClaimSpec } from './spec.js';
import type { StageSummary } from './run-stage.js';
import { hasHyps, readHyps, readLines, referenceCache, writeHyps, type TestOutput } from './hyps.js';
import { formatMeanSd, formatP, meanSd, pairedTestSetPValues, REPORT_BOOTSTRAP, type MeanSd, type PairedComparison } from './replicates.js';
import { corpusBleu, tokenizedLowercaseBleu } from '../eval/bleu.js';
import { DataError } from '../util/errors.js';
import { readJsonFile, readTextFile, writeFileAtomic } from '../util/fs.js';
import { EXPERIMENT_RESULT_COLUMNS, type ExperimentResultRow, readMetrics } from '../plots/readers.js';
import { computeSection, stageAttempts } from './compute-summary.js';
import { stageFile } from './records.js';
import { trainingCurvesOverlay } from '../plots/training.js';
import {
  type ReplicatedRow,
  bleuPointsFromResults,
  bleuVsHeadsFigure,
  bleuVsModelBytesFigure,
  keptPerTypeFigure,
  roleCategory,
  survivingRolesFigure,
  type SurvivingLayout,
} from '../plots/experiments.js';
import { writeFigure, type WrittenFigure } from '../plots/write.js';
import { bleuVsCostFigure } from '../plots/methods.js';
import { methodsSection, readMethodRows } from './methods-table.js';
import { readHeadReport, type HeadReport, type HeadReportEntry } from '../analysis/report.js';
import { headKey } from '../config/head-id.js';
import { originalMaskShape } from '../config/head-layout.js';
import { maskToKeptSets, readHeadMask } from '../io/head-mask.js';

export { BINARISED, type ResultRow } from './result-row.js';
import { BINARISED, type ResultRow } from './result-row.js';

function fmt(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined ? '-' : x.toFixed(digits);
}

const numberOrNull = (v: unknown): number | null => (typeof v === 'number' ? v : null);

/** A result row's stage instance id (a curve row's id is `<instance>#<mask file>`, a binarised row's `<instance>#binarised`). */

/** How a finished stage's dev BLEU was decoded: from stage.json, else (older stages) from the kind that wrote it. */
function devDecodingOf(s: ResolvedStage, sum: StageSummary): string | null {
  if (sum.devBleu === null || sum.devBleu === undefined) return null;
  if (typeof sum.devDecoding === 'string') return sum.devDecoding;
  const st = s.instance.spec;
  // the trainer scores dev greedily; an l0 stage's final dev score is decoded like its test set
  if (st.kind === 'train') return decodingLabel(1);
  if (st.kind === 'prune' && st.method === 'l0') return decodingLabel(s.config.eval.beamSize);
  return null;
}

/** The file each kind of stage writes its final test translations to. */
function testHypFile(s: ResolvedStage): string | null {
  const st = s.instance.spec;
  if (st.kind === 'train' || st.kind === 'export' || (st.kind === 'prune' && st.method === 'fixed-mask')) return join(s.folder, 'test.hyp');
  if (st.kind === 'prune' && st.method === 'l0') return join(s.folder, 'test.pruned.hyp');
  return null;
}

/** A train stage's steps (where it stopped: the cap or early stopping), from its results.json (run folder or record). */
function trainedSteps(folder: string): number | null {
  const path = join(folder, 'results.json');
  return existsSync(path) ? numberOrNull(readJsonFile<Record<string, unknown>>(path, 'training results')['steps']) : null;
}

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
      method:
        st.kind === 'prune'
          ? st.method === 'l0' && s.config.gates.targetHeads !== null
            ? 'l0-budget'
            : st.method
          : st.kind === 'train'
            ? s.parent
              ? 'scratch-fixed-mask'
              : 'baseline'
            : st.kind === 'export' && typeof sum['method'] === 'string'
              ? sum['method']
              : st.kind,
      // a fixed-mask stage has no gates: its attention types are the ones its mask pruned
      attention: (st.kind === 'prune' && st.method === 'fixed-mask' ? st.attention : s.config.gates.attention).join('+') || '-',
      lambda: st.kind === 'prune' && st.method === 'l0' && s.config.gates.targetHeads === null ? s.config.train.l0Lambda : null,
      targetHeads: s.config.gates.targetHeads === null ? '' : JSON.stringify(s.config.gates.targetHeads),
      run: relative(root, s.folder),
      params: numberOrNull(sum['params']),
      nonZeroParams: numberOrNull(sum['nonZeroParams']),
      modelBytes: numberOrNull(sum['modelBytes']),
      decodeSeconds: numberOrNull(sum['decodeSeconds']),
      seed: s.instance.seed,
      steps: numberOrNull(sum['steps']) ?? (st.kind === 'train' ? trainedSteps(s.folder) : null),
      fractionalGates: numberOrNull(sum['fractionalGates']),
      wallSeconds: numberOrNull(sum['wallSeconds']),
      group: s.instance.baseId,
    };
    if (sum.curve)
      for (const p of sum.curve)
        rows.push({
          ...base,
          id: `${s.instance.id}#${p.maskFile}`,
          group: `${s.instance.baseId}#${p.maskFile}`,
          keptEnc: p.keptHeads['enc-self'],
          keptDecSelf: p.keptHeads['dec-self'],
          keptDecEnc: p.keptHeads['dec-enc'],
          bleu: p.bleu,
          bleuTokLc: p.bleuTokLc,
          devBleu: null,
          devDecoding: null,
          run: join(base.run, p.maskFile),
          hypPath: p.hyp ? join(s.folder, p.hyp) : null,
        });
    else if (sum.keptHeads) {
      const kept = { keptEnc: sum.keptHeads['enc-self'], keptDecSelf: sum.keptHeads['dec-self'], keptDecEnc: sum.keptHeads['dec-enc'] };
      rows.push({
        ...base,
        ...kept,
        bleu: sum.bleu ?? null,
        bleuTokLc: sum.bleuTokLc ?? null,
        devBleu: sum.devBleu ?? null,
        devDecoding: devDecodingOf(s, sum),
        hypPath: testHypFile(s),
      });
      // an L0 stage whose kept gates are not all 1 is also scored binarised (kept heads at 1, the paper's way):
      // its own row, compared with the same references
      const b = sum['binarised'] as { devBleu: number | null; testBleu: number | null; testBleuTokLc: number | null; hyp: string | null } | undefined;
      if (b)
        rows.push({
          ...base,
          ...kept,
          id: `${s.instance.id}${BINARISED}`,
          group: `${s.instance.baseId}${BINARISED}`,
          method: `${base.method}-binarised`,
          run: b.hyp ? join(base.run, b.hyp) : base.run,
          bleu: b.testBleu,
          bleuTokLc: b.testBleuTokLc,
          devBleu: b.devBleu,
          devDecoding: devDecodingOf(s, sum),
          hypPath: b.hyp ? join(s.folder, b.hyp) : null,
        });
    }
  }
  return rows;
}

/** Each row's test translations and references (rows whose run folder has no translations are left out). */
export function collectTestOutputs(stages: readonly ResolvedStage[], rows: readonly ResultRow[]): Map<string, TestOutput & { seed: number | null }> {
  const byId = new Map(stages.map((s) => [s.instance.id, s]));
  const refsOf = referenceCache();
  const out = new Map<string, TestOutput & { seed: number | null }>();
  for (const r of rows) {
    if (!r.hypPath || !existsSync(r.hypPath)) continue;
    const hyps = readLines(r.hypPath, 'test translations');
    const refs = refsOf(byId.get(instanceIdOf(r.id))!.config);
    if (hyps.length !== refs.length) throw new DataError(`${r.hypPath}: ${hyps.length} lines, but the test set of stage ${r.id} has ${refs.length} sentences`);
    out.set(r.id, { hyps, refs, seed: r.seed });
  }
  return out;
}

/** Rows grouped by setting (their replicates over seeds), in first-appearance order. */
export function replicateGroups(rows: readonly ResultRow[]): Array<{ group: string; rows: ResultRow[] }> {
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) {
    const g = r.group ?? r.id;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(r);
  }
  return [...groups].map(([group, rs]) => ({ group, rows: rs }));
}

const hasSeeds = (rows: readonly ResultRow[]): boolean => rows.some((r) => r.seed !== null && r.seed !== undefined);

/** Parameters as `1.23M` (non-zero ones in brackets when fewer), `-` when not measured. */
function fmtParams(r: ResultRow): string {
  if (r.params === null) return '-';
  const m = (n: number) => `${(n / 1e6).toFixed(2)}M`;
  return r.nonZeroParams !== null && r.nonZeroParams < r.params ? `${m(r.params)} (${m(r.nonZeroParams)} non-zero)` : m(r.params);
}

const devCell = (bleu: MeanSd | null, decoding: string | null | undefined): string =>
  bleu ? `${formatMeanSd(bleu, 2, false)}${decoding ? ` (${decoding})` : ''}` : '-';

/** Steps, and for an L0 stage whether its gates settled (`400 (settled)`, `600 (3 fractional)`). */
function stepsCell(r: ResultRow): string {
  if (r.steps === null || r.steps === undefined) return '-';
  if (r.fractionalGates === null || r.fractionalGates === undefined) return String(r.steps);
  return `${r.steps} (${r.fractionalGates === 0 ? 'settled' : `${r.fractionalGates} fractional`})`;
}

/** One row per stage instance (per seed); the seed column only when the study has seeds. */
export function markdownTable(rows: readonly ResultRow[]): string {
  const seeds = hasSeeds(rows);
  const head = `| stage |${seeds ? ' seed |' : ''} method | attention | lambda / target | heads kept (enc / dec-self / dec-enc) | test BLEU | tok. lc. BLEU | dev BLEU (decoding) | steps (gates) | wall min | params | weights MB | decode s | run |\n|---|${seeds ? '---|' : ''}---|---|---|---|---|---|---|---|---|---|---|---|---|`;
  const body = rows.map(
    (r) =>
      `| ${r.id} |${seeds ? ` ${r.seed ?? '-'} |` : ''} ${r.method} | ${r.attention} | ${r.lambda ?? (r.targetHeads || '-')} | ${r.keptEnc ?? '-'} / ${r.keptDecSelf ?? '-'} / ${r.keptDecEnc ?? '-'} | ${fmt(r.bleu)} | ${fmt(r.bleuTokLc)} | ${devCell(meanSd([r.devBleu]), r.devDecoding)} | ${stepsCell(r)} | ${r.wallSeconds === null || r.wallSeconds === undefined ? '-' : (r.wallSeconds / 60).toFixed(1)} | ${fmtParams(r)} | ${r.modelBytes === null ? '-' : (r.modelBytes / 1e6).toFixed(2)} | ${fmt(r.decodeSeconds)} | \`${r.run}\` |`,
  );
  return [head, ...body].join('\n') + '\n';
}

/** Heads kept: an integer for one seed (or when every seed keeps the same), else `mean ± sd`. */
function fmtKept(values: ReadonlyArray<number | null>): string {
  const m = meanSd(values);
  return !m ? '-' : m.n === 1 || (m.sd === 0 && Number.isInteger(m.mean)) ? m.mean.toFixed(0) : `${m.mean.toFixed(1)} ± ${m.sd.toFixed(1)}`;
}

const layoutOf = (rs: readonly ResultRow[]): string =>
  `${fmtKept(rs.map((r) => r.keptEnc))} / ${fmtKept(rs.map((r) => r.keptDecSelf))} / ${fmtKept(rs.map((r) => r.keptDecEnc))}`;

/** L0 settings: in how many seeds the gates settled (`2 of 3`); '-' for stages without gates. */
function settledCell(rs: readonly ResultRow[]): string {
  const known = rs.filter((r) => r.fractionalGates !== null && r.fractionalGates !== undefined);
  return known.length ? `${known.filter((r) => r.fractionalGates === 0).length} of ${known.length}` : '-';
}

/** One row per setting: mean ± sd over its seeds (n), the seeds and their run folders. */
export function replicatesTable(rows: readonly ResultRow[]): string {
  const head =
    '| stage | method | attention | lambda / target | heads kept (enc / dec-self / dec-enc) | test BLEU | tok. lc. BLEU | dev BLEU (decoding) | gates settled | wall min | seeds | runs |\n|---|---|---|---|---|---|---|---|---|---|---|---|';
  const body = replicateGroups(rows).map(({ group, rows: rs }) => {
    const r = rs[0]!;
    const decodings = [...new Set(rs.map((x) => x.devDecoding).filter(Boolean))].join(', ');
    return `| ${group} | ${r.method} | ${r.attention} | ${r.lambda ?? (r.targetHeads || '-')} | ${layoutOf(rs)} | ${formatMeanSd(meanSd(rs.map((x) => x.bleu)))} | ${formatMeanSd(meanSd(rs.map((x) => x.bleuTokLc)))} | ${devCell(meanSd(rs.map((x) => x.devBleu)), decodings)} | ${settledCell(rs)} | ${formatMeanSd(meanSd(rs.map((x) => (x.wallSeconds === null || x.wallSeconds === undefined ? null : x.wallSeconds / 60))), 1, false)} | ${rs.map((x) => x.seed ?? '-').join(', ')} | ${rs.map((x) => `\`${x.run}\``).join('<br>')} |`;
  });
  return [head, ...body].join('\n') + '\n';
}

/** results.csv columns, in order: the list its reader (src/plots/readers.ts) checks, then the decoding of devBleu, the seed, the steps, the gates left fractional and the wall time. */
export const RESULT_COLUMNS: ReadonlyArray<keyof ResultRow> = [...EXPERIMENT_RESULT_COLUMNS, 'devDecoding', 'seed', 'steps', 'fractionalGates', 'wallSeconds'];

export interface WrittenReport {
  rows: ResultRow[];
  csvPath: string;
  mdPath: string;
  /** the test translations behind the rows (what hyps/ holds) */
  outputs: Map<string, TestOutput & { seed: number | null }>;
  /** rebuilt from hyps/: how many rows were re-scored and the largest change of their test BLEU */
  rescored?: { rows: number; maxBleuChange: number };
}

/**
 * results.csv, results.md and hyps/ (the test translations and their references) from the finished stages'
 * folders; with `fromHyps`, the same from `<outDir>/results.csv` and `<outDir>/hyps/` alone, every test score
 * and p-value recomputed from the translations (see rebuildRows).
 */
export function writeReport(
  stages: readonly ResolvedStage[],
  outDir: string,
  opts: { fromHyps?: boolean; merge?: boolean; claims?: Record<string, ClaimSpec>; specFile?: string } = {},
): WrittenReport {
  let rows: ResultRow[];
  let outputs: Map<string, TestOutput & { seed: number | null }>;
  let rescored: WrittenReport['rescored'];
  if (opts.fromHyps) ({ rows, outputs, rescored } = rebuildRows(stages, outDir));
  else {
    rows = collectRows(stages);
    outputs = collectTestOutputs(stages, rows);
    if (opts.merge && existsSync(join(outDir, 'results.csv')) && hasHyps(outDir)) ({ rows, outputs, rescored } = mergeCommitted(stages, outDir, rows, outputs));
    if (outputs.size) writeHyps(outDir, outputs);
  }
  const csvPath = join(outDir, 'results.csv');
  const mdPath = join(outDir, 'results.md');
  writeFileAtomic(csvPath, Papa.unparse({ fields: [...RESULT_COLUMNS], data: rows.map((r) => RESULT_COLUMNS.map((c) => r[c])) }, { newline: '\n' }) + '\n');
  const sections: string[] = [];
  if (hasSeeds(rows))
    sections.push(
      `## Mean ± sd over seeds\n\nTest BLEU (sacreBLEU) and heads kept as mean ± sample sd over the seeds (n); one row per setting, the seeds' run folders in the last column.\n\n${replicatesTable(rows)}`,
      `## Per seed\n\n${markdownTable(rows)}`,
    );
  else sections.push(markdownTable(rows));
  if (opts.claims && Object.keys(opts.claims).length) {
    const of = new Set(Object.values(opts.claims).flatMap((c) => (c.roles ? [c.roles.of] : [])));
    const reports = roleReports(stages, outDir, (s) => of.has(s.instance.stage));
    sections.unshift(claimsSection(evaluateClaims(opts.claims, stages, rows, outputs, reports), opts.specFile ?? 'the spec'));
  }
  const significance = significanceSection(stages, rows, outputs);
  if (significance) sections.push(significance);
  const criterion = criterionTable(rows, outputs);
  if (criterion) sections.push(`## The criterion at equal budgets (L0 against importance pruning, with and without the same fine-tuning)\n\n${criterion}`);
  const table2 = prunedVsScratchTable(stages, rows, outputs);
  if (table2) sections.push(`## Pruned against the same layout trained from scratch (Voita et al. 2019, Table 2)\n\n${table2}`);
  const methods = methodsSection(stages, outDir, outputs);
  if (methods) sections.push(methods);
  const roles = rolesSection(baselineRoleReports(stages, outDir));
  if (roles) sections.push(roles);
  // rebuilt from hyps/: the committed records' attempts only (a stage done here since is not in the tables)
  const compute = computeSection(rows, stageAttempts(stages, outDir, { recordsOnly: opts.fromHyps === true }));
  if (compute) sections.push(compute);
  writeFileAtomic(mdPath, sections.join('\n'));
  return { rows, csvPath, mdPath, outputs, ...(rescored ? { rescored } : {}) };
}

/** The stages a stage is compared with: the baseline it descends from and its sweep's lambda-0 instance of the same parent (the same seed). */
export function referenceStages(s: ResolvedStage, stages: readonly ResolvedStage[]): { baseline: ResolvedStage | null; control: ResolvedStage | null } {
  let root = s;
  while (root.parent) root = root.parent;
  const st = s.instance.spec;
  const isControl = (x: ResolvedStage) =>
    x.instance.spec.kind === 'prune' && x.instance.spec.method === 'l0' && x.config.gates.targetHeads === null && x.config.train.l0Lambda === 0;
  const control =
    st.kind === 'prune' && !isControl(s)
      ? (stages.find(
          (x) =>
            x !== s &&
            x.instance.stage === s.instance.stage &&
            x.parent === s.parent &&
            isControl(x) &&
            x.config.gates.attention.join('+') === s.config.gates.attention.join('+'),
        ) ?? null)
      : null;
  return { baseline: root !== s && root.instance.spec.kind === 'train' ? root : null, control };
}

/** A comparison of one setting with one reference over its seeds (null when no seed has both translations). */
function compare(
  rows: readonly ResultRow[],
  refIdOf: (r: ResultRow) => string | null,
  outputs: ReadonlyMap<string, TestOutput>,
): (PairedComparison & { seeds: number }) | null {
  const pairs: Array<{ system: TestOutput; reference: TestOutput }> = [];
  for (const r of rows) {
    const refId = refIdOf(r);
    const system = outputs.get(r.id);
    const reference = refId === null ? undefined : outputs.get(refId);
    if (system && reference) pairs.push({ system, reference });
  }
  return pairs.length ? { ...pairedTestSetPValues(pairs), seeds: pairs.length } : null;
}

const signed = (m: MeanSd | null): string => (!m ? '-' : `${m.mean >= 0 ? '+' : ''}${formatMeanSd(m)}`);

function comparisonCells(c: (PairedComparison & { seeds: number }) | null): string {
  if (!c) return '- | - | -';
  const seeds = c.seeds > 1 ? `${c.pValues.map(formatP).join(', ')}` : formatP(c.pValues[0]!);
  const pooled = c.pooledP === null ? '-' : `${formatP(c.pooledP)}${c.consistent ? '' : ' (sign differs between seeds)'}`;
  return `${signed(meanSd(c.diffs))} | ${seeds} | ${pooled}`;
}

/** The Markdown section of paired tests: every pruned setting against its baseline and its lambda-0 control. */
export function significanceSection(stages: readonly ResolvedStage[], rows: readonly ResultRow[], outputs: ReadonlyMap<string, TestOutput>): string {
  const byId = new Map(stages.map((s) => [s.instance.id, s]));
  const lines: string[] = [];
  for (const { group, rows: rs } of replicateGroups(rows)) {
    const s = byId.get(instanceIdOf(rs[0]!.id));
    if (!s || !(s.instance.spec.kind === 'prune' || (s.instance.spec.kind === 'train' && s.parent))) continue;
    const refOf = (which: 'baseline' | 'control') => (r: ResultRow) => referenceStages(byId.get(instanceIdOf(r.id))!, stages)[which]?.instance.id ?? null;
    const vsBase = compare(rs, refOf('baseline'), outputs);
    const vsControl = compare(rs, refOf('control'), outputs);
    if (!vsBase && !vsControl) continue;
    lines.push(
      `| ${group} | ${formatMeanSd(meanSd(rs.map((r) => r.bleu)), 2, false)} | ${Math.max(vsBase?.seeds ?? 0, vsControl?.seeds ?? 0)} | ${comparisonCells(vsBase)} | ${comparisonCells(vsControl)} |`,
    );
  }
  if (!lines.length) return '';
  return [
    '## Paired significance on the test set',
    '',
    `Each pruned setting's test BLEU against its references of the same seed: the baseline it was pruned from and its sweep's lambda-0 instance (the same fine-tuning with every head). The difference is mean ± sd over the seeds (n). p per seed: sacreBLEU's paired bootstrap (${REPORT_BOOTSTRAP.n} resamples of the test sentences, seed ${REPORT_BOOTSTRAP.seed}; the smallest possible p is ${formatP(1 / (REPORT_BOOTSTRAP.n + 1))}). Pooled p: the same test on all seeds' test translations at once (each seed's sentences paired within the seed). Both treat the trained models as fixed, so they measure test-set sampling; training randomness is the ± sd across seeds, and a pooled p is marked when the difference changes sign between seeds. A difference is consistent when the pooled p is below 0.05 and its sign is the same in every seed.`,
    '',
    '| stage | test BLEU | seeds | − baseline | p per seed | pooled p | − lambda-0 control | p per seed | pooled p |',
    '|---|---|---|---|---|---|---|---|---|',
    ...lines,
    '',
  ].join('\n');
}

/**
 * At every exact encoder budget an L0 stage reached (`l0-budget` rows): the L0 model, importance pruning's
 * model at the same head count (no fine-tuning, Michel et al.), and that importance mask fine-tuned as the
 * L0 stages fine-tune (`fixed-mask`), each mean ± sd over seeds; then the three paired differences, per
 * seed: L0 - fine-tuned importance (what the criterion adds at equal fine-tuning), fine-tuned importance -
 * importance (what the fine-tuning adds), L0 - importance (the comparison without the control). An L0 budget
 * whose gates did not all end at 0 or 1 is scored both ways, one line each: folded (kept heads at their
 * fractional gates, the model as trained) and binarised (kept heads at 1, the paper's way); the scoring
 * column says how many seeds' gates settled. '' when no budget has an importance row.
 */
export function criterionTable(rows: readonly ResultRow[], outputs: ReadonlyMap<string, TestOutput> = new Map()): string {
  const budgets = rows.filter((r) => r.method === 'l0-budget' && !r.id.endsWith(BINARISED) && r.keptEnc !== null);
  const counts = [...new Set(budgets.map((r) => r.keptEnc!))].sort((a, b) => b - a);
  const find = (method: string, n: number, seed: number | null) =>
    rows.find((x) => x.method === method && x.keptEnc === n && (x.seed ?? null) === seed) ?? null;
  const lines: string[] = [];
  for (const n of counts) {
    const folded = budgets.filter((r) => r.keptEnc === n);
    if (!folded.some((r) => find('importance', n, r.seed ?? null))) continue;
    const settled = settledCell(folded);
    const binarised = folded.map((r) => rows.find((x) => x.id === `${r.id}${BINARISED}`) ?? null).filter((x): x is ResultRow => x !== null);
    const scorings: Array<[string, ResultRow[]]> = [[binarised.length ? `folded (gates settled ${settled})` : `gates settled ${settled}`, folded]];
    if (binarised.length) scorings.push([`binarised (kept heads at 1; ${binarised.length} of ${folded.length} seeds unsettled)`, binarised]);
    for (const [scoring, l0] of scorings) {
      const side = (method: string) => l0.map((r) => find(method, n, r.seed ?? null)).filter((x): x is ResultRow => x !== null);
      const cell = (rs: readonly ResultRow[]) => formatMeanSd(meanSd(rs.map((x) => x.bleu)));
      const pair = (sys: readonly ResultRow[], refMethod: string) => {
        const c = compare(sys, (r) => find(refMethod, n, r.seed ?? null)?.id ?? null, outputs);
        const diffs = sys.map((r) => {
          const ref = find(refMethod, n, r.seed ?? null);
          return r.bleu !== null && ref?.bleu !== null && ref?.bleu !== undefined ? r.bleu - ref.bleu : null;
        });
        if (diffs.every((d) => d === null)) return '- | -';
        const p = !c
          ? '-'
          : c.pooledP === null
            ? formatP(c.pValues[0]!)
            : `${c.pValues.map(formatP).join(', ')}; pooled ${formatP(c.pooledP)}${c.consistent ? '' : ' (sign differs between seeds)'}`;
        return `${signed(meanSd(diffs))} | ${p}`;
      };
      const ft = side('fixed-mask');
      lines.push(
        `| ${n} | ${scoring} | ${cell(l0)} | ${cell(side('importance'))} | ${ft.length ? cell(ft) : '-'} | ${pair(l0, 'fixed-mask')} | ${ft.length ? pair(ft, 'importance') : '- | -'} | ${pair(l0, 'importance')} |`,
      );
    }
  }
  if (!lines.length) return '';
  return [
    `Test BLEU at each exact encoder budget (mean ± sd over seeds). Differences are taken per seed (mean ± sd); p is sacreBLEU's paired bootstrap (${REPORT_BOOTSTRAP.n} resamples) per seed, and pooled over the seeds' sentences. An L0 run whose gates did not all settle at 0 or 1 is scored both ways: folded (the kept heads at their fractional gates, as trained) and binarised (the kept heads at 1, the paper's way).`,
    '',
    '| encoder heads | L0 scoring | L0 (exact budget) | importance (no fine-tuning) | importance, fine-tuned as L0 | L0 - fine-tuned importance | p | fine-tuned - plain importance | p | L0 - plain importance | p |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...lines,
    '',
  ].join('\n');
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
 * that stage started from, and (when the sweep has one) the pruning stage's lambda-0 control of the same
 * parent (the same seed). The pruned model has had the baseline's steps plus the fine-tuning, the scratch
 * model only the baseline's, so the fair comparison is of each against its own full-layout reference:
 * pruned - control, scratch - baseline.
 */
export function prunedVsScratchRows(stages: readonly ResolvedStage[], rows: readonly ResultRow[]): PrunedVsScratchRow[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const out: PrunedVsScratchRow[] = [];
  for (const s of stages) {
    if (s.instance.spec.kind !== 'train' || !s.parent) continue;
    const scratch = byId.get(s.instance.id);
    const pruned = byId.get(s.parent.instance.id);
    if (!scratch || !pruned) continue;
    const refs = referenceStages(s.parent, stages);
    const control = refs.control ? (byId.get(refs.control.instance.id) ?? null) : null;
    out.push({
      layout: `${pruned.keptEnc ?? '-'} / ${pruned.keptDecSelf ?? '-'} / ${pruned.keptDecEnc ?? '-'}`,
      pruned,
      scratch,
      baseline: refs.baseline ? (byId.get(refs.baseline.instance.id) ?? null) : null,
      control,
    });
  }
  return out;
}

/**
 * The Markdown of prunedVsScratchRows, one line per scratch setting: mean ± sd over its seeds, the
 * differences taken per seed; and the paired-bootstrap p of pruned against scratch when the translations
 * are there ('' when there is no finished fixed-mask stage).
 */
export function prunedVsScratchTable(
  stages: readonly ResolvedStage[],
  rows: readonly ResultRow[],
  outputs: ReadonlyMap<string, TestOutput> = new Map(),
): string {
  const pairs = prunedVsScratchRows(stages, rows);
  if (!pairs.length) return '';
  const diff = (ps: readonly PrunedVsScratchRow[], a: (p: PrunedVsScratchRow) => ResultRow | null, b: (p: PrunedVsScratchRow) => ResultRow | null) =>
    signed(meanSd(ps.map((p) => ((a(p)?.bleu ?? null) !== null && (b(p)?.bleu ?? null) !== null ? a(p)!.bleu! - b(p)!.bleu! : null))));
  const bleu = (ps: readonly PrunedVsScratchRow[], f: (p: PrunedVsScratchRow) => ResultRow | null) => formatMeanSd(meanSd(ps.map((p) => f(p)?.bleu ?? null)));
  const runs = (ps: readonly PrunedVsScratchRow[], f: (p: PrunedVsScratchRow) => ResultRow | null) =>
    ps
      .map((p) => f(p))
      .filter((r): r is ResultRow => r !== null)
      .map((r) => `\`${r.run}\``)
      .join('<br>');
  const byGroup = new Map<string, PrunedVsScratchRow[]>();
  for (const p of pairs) byGroup.set(p.scratch.group ?? p.scratch.id, [...(byGroup.get(p.scratch.group ?? p.scratch.id) ?? []), p]);
  const head =
    '| heads kept (enc / dec-self / dec-enc) | pruned | test BLEU | from scratch, mask fixed | test BLEU | pruned - scratch | full model, same fine-tuning (lambda 0) | pruned - that | baseline | scratch - baseline | p (pruned vs scratch) |\n|---|---|---|---|---|---|---|---|---|---|---|';
  const body = [...byGroup.values()].map((ps) => {
    const vs = compare(
      ps.map((p) => p.pruned),
      (r) => ps.find((p) => p.pruned === r)!.scratch.id,
      outputs,
    );
    const p = !vs ? '-' : vs.pooledP === null ? formatP(vs.pValues[0]!) : `${vs.pValues.map(formatP).join(', ')}; pooled ${formatP(vs.pooledP)}`;
    const hasControl = ps.some((x) => x.control);
    return `| ${layoutOf(ps.map((x) => x.pruned))} | ${runs(ps, (x) => x.pruned)} | ${bleu(ps, (x) => x.pruned)} | ${runs(ps, (x) => x.scratch)} | ${bleu(ps, (x) => x.scratch)} | ${diff(
      ps,
      (x) => x.pruned,
      (x) => x.scratch,
    )} | ${hasControl ? `${bleu(ps, (x) => x.control)} (${runs(ps, (x) => x.control)})` : '-'} | ${
      hasControl
        ? diff(
            ps,
            (x) => x.pruned,
            (x) => x.control,
          )
        : '-'
    } | ${ps.some((x) => x.baseline) ? bleu(ps, (x) => x.baseline) : '-'} | ${diff(
      ps,
      (x) => x.scratch,
      (x) => x.baseline,
    )} | ${p} |`;
  });
  return [head, ...body].join('\n') + '\n';
}

/**
 * The rows of `<outDir>/results.csv` with every test score recomputed from `<outDir>/hyps/` (BLEU and the
 * tokenized lowercased BLEU, as the stages scored them): the report without the run folders. Rows without
 * translations in hyps/ keep their numbers. The rows' settings (heads kept, lambda, dev BLEU, folders)
 * are those results.csv recorded; each is matched to the spec's stage instance by id.
 */
export function rebuildRows(
  stages: readonly ResolvedStage[],
  outDir: string,
): { rows: ResultRow[]; outputs: Map<string, TestOutput & { seed: number | null }>; rescored: { rows: number; maxBleuChange: number } } {
  const csvPath = join(outDir, 'results.csv');
  if (!existsSync(csvPath)) throw new DataError(`${csvPath}: not found; rebuilding from hyps needs the results.csv written with them`);
  if (!hasHyps(outDir))
    throw new DataError(
      `${join(outDir, 'hyps', 'index.json')}: not found; write the report once from the run folders (heads experiment report <spec> --out ${outDir})`,
    );
  const outputs = readHyps(outDir);
  const byId = new Map(stages.map((s) => [s.instance.id, s]));
  const str = (v: unknown) => (v === null || v === undefined ? '' : String(v));
  let maxBleuChange = 0;
  let n = 0;
  const rows = readResultRows(csvPath).map((raw): ResultRow => {
    const r = raw as unknown as Record<string, unknown>;
    const num = (k: string) => numberOrNull(r[k]);
    const id = str(r['id']);
    const s = byId.get(instanceIdOf(id));
    if (!s) throw new DataError(`${csvPath}: row ${id} is not a stage instance of the spec (instances: ${stages.map((x) => x.instance.id).join(', ')})`);
    const row: ResultRow = {
      stage: str(r['stage']),
      id,
      kind: str(r['kind']),
      method: str(r['method']),
      attention: str(r['attention']),
      lambda: num('lambda'),
      targetHeads: str(r['targetHeads']),
      keptEnc: num('keptEnc'),
      keptDecSelf: num('keptDecSelf'),
      keptDecEnc: num('keptDecEnc'),
      bleu: num('bleu'),
      bleuTokLc: num('bleuTokLc'),
      devBleu: num('devBleu'),
      run: str(r['run']),
      params: num('params'),
      nonZeroParams: num('nonZeroParams'),
      modelBytes: num('modelBytes'),
      decodeSeconds: num('decodeSeconds'),
      devDecoding: str(r['devDecoding']) || null,
      seed: num('seed'),
      steps: num('steps'),
      fractionalGates: num('fractionalGates'),
      wallSeconds: num('wallSeconds'),
      group: `${s.instance.baseId}${id.includes('#') ? id.slice(id.indexOf('#')) : ''}`,
    };
    const o = outputs.get(id);
    if (o) {
      const bleu = corpusBleu(o.hyps, [o.refs]).score;
      if (row.bleu !== null) maxBleuChange = Math.max(maxBleuChange, Math.abs(bleu - row.bleu));
      row.bleu = bleu;
      row.bleuTokLc = tokenizedLowercaseBleu(o.hyps, [o.refs]).score;
      n++;
    }
    return row;
  });
  return { rows, outputs, rescored: { rows: n, maxBleuChange } };
}

/**
 * The rows of this machine's finished stages, plus the committed rows (`<outDir>/results.csv`, re-scored from
 * `<outDir>/hyps/`) of every stage instance whose row is not here: the seeds or stages another session or
 * machine ran. A row here replaces the committed one of the same id, unless its translations are missing
 * here and the committed ones exist. Rows keep the order of the spec's stage instances.
 */
function mergeCommitted(
  stages: readonly ResolvedStage[],
  outDir: string,
  local: readonly ResultRow[],
  localOutputs: ReadonlyMap<string, TestOutput & { seed: number | null }>,
): { rows: ResultRow[]; outputs: Map<string, TestOutput & { seed: number | null }>; rescored: { rows: number; maxBleuChange: number } } {
  const committed = rebuildRows(stages, outDir);
  const rows = new Map<string, ResultRow>(committed.rows.map((r) => [r.id, r]));
  const outputs = new Map(committed.outputs);
  for (const r of local) {
    if (!localOutputs.has(r.id) && committed.outputs.has(r.id)) continue;
    rows.set(r.id, r);
    const o = localOutputs.get(r.id);
    if (o) outputs.set(r.id, o);
    else outputs.delete(r.id);
  }
  const order = new Map(stages.map((s, i) => [s.instance.id, i]));
  const merged = [...rows.values()]
    .map((r, i) => ({ r, i }))
    .sort((a, b) => (order.get(instanceIdOf(a.r.id)) ?? 0) - (order.get(instanceIdOf(b.r.id)) ?? 0) || a.i - b.i)
    .map((x) => x.r);
  const kept = merged.filter((r) => !local.includes(r)).length;
  return { rows: merged, outputs, rescored: { rows: kept, maxBleuChange: committed.rescored.maxBleuChange } };
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

/** One plot row per setting; a setting with several seeds carries them as replicates (drawn as mean ± sd). */
function plotRows(rows: readonly ResultRow[]): ReplicatedRow[] {
  return replicateGroups(rows).map(({ group, rows: rs }) => ({ ...asPlotRow(rs[0]!), id: group, ...(rs.length > 1 ? { replicates: rs.map(asPlotRow) } : {}) }));
}

/**
 * The study's figures in `<outDir>/figures/`: the dev curves of every model trained from scratch (each
 * seed's baseline and scratch layouts, with their best evaluation and early stop); BLEU against encoder heads kept for every encoder-only
 * pruning method and the baseline (Voita et al. Figure 7); heads kept per attention type against BLEU for
 * stages that prune all three types (Figures 9-10); test BLEU against the weights file's bytes for the
 * export stages (one point per compression method); and the roles (from an analyze stage of the unpruned
 * baseline) of the encoder heads each L0 stage keeps (Figure 8).
 */
export async function writeReportFigures(
  stages: readonly ResolvedStage[],
  rows: readonly ResultRow[],
  outDir: string,
  opts: { png?: boolean; html?: boolean } = {},
): Promise<ReportFigures> {
  const out: ReportFigures = { written: [], skipped: [] };
  const dir = join(outDir, 'figures');
  const write = async (name: string, fig: Parameters<typeof writeFigure>[0]) =>
    out.written.push({ name, files: await writeFigure(fig, join(dir, name), { png: opts.png ?? false, html: opts.html ?? true }) });

  // every model trained from scratch (the baselines and the scratch layouts): dev loss and BLEU per step,
  // one line per stage and seed, so that each one's plateau under the stopping rule is seen
  const trained = stages.filter((s) => s.instance.spec.kind === 'train');
  const logs = trained.flatMap((s) => {
    const path = stageFile(s, outDir, 'metrics.jsonl');
    return path ? [{ label: s.instance.id, log: readMetrics(path) }] : [];
  });
  if (logs.length)
    await write(
      'from-scratch-training',
      trainingCurvesOverlay(logs, {
        title: 'Models trained from scratch: dev curves (star: best, the checkpoint kept; triangle: learning rate cut; x: early stop)',
      }),
    );
  else out.skipped.push('from-scratch-training: no finished training stage');

  const encRows = rows.filter((r) => r.method === 'baseline' || (r.kind === 'prune' && r.attention === 'enc-self'));
  const points = bleuPointsFromResults(plotRows(encRows), { types: ['enc-self'] });
  if (points.some((p) => p.method !== 'baseline'))
    await write(
      'bleu-vs-encoder-heads',
      bleuVsHeadsFigure(points, { title: 'Test BLEU against encoder heads kept (Voita et al. 2019, Fig. 7)', headsLabel: 'encoder heads kept' }),
    );
  else out.skipped.push('bleu-vs-encoder-heads: no finished encoder-only pruning stage');

  const allRows = rows.filter((r) => r.kind === 'prune' && r.attention.split('+').length === 3);
  if (allRows.length)
    await write(
      'heads-per-type-vs-bleu',
      keptPerTypeFigure(plotRows(allRows), { title: 'Heads kept per attention type against test BLEU (Voita et al. 2019, Figs. 9-10)' }),
    );
  else out.skipped.push('heads-per-type-vs-bleu: no finished stage pruning all three attention types');

  const sizedRows = rows.filter((r) => r.modelBytes !== null && r.bleu !== null);
  if (sizedRows.length)
    await write(
      'bleu-vs-model-bytes',
      bleuVsModelBytesFigure(plotRows(sizedRows), { title: 'Test BLEU against the size of the weights file, one point per compression method' }),
    );
  else out.skipped.push('bleu-vs-model-bytes: no finished export stage');
  // from methods.csv (writeReport writes it first, or it is the committed one)
  const methodRows = readMethodRows(join(outDir, 'methods.csv'));
  if (methodRows.length) await write('bleu-vs-cost', bleuVsCostFigure(methodRows));
  else out.skipped.push('bleu-vs-cost: no methods.csv (no export stage with cost figures)');

  // roles of the surviving heads: each seed's baseline analysis, the L0 stages of that seed's baseline, from
  // their run folders or else their committed records (so the figure rebuilds without the run folders)
  const analyses = baselineRoleReports(stages, outDir);
  if (!analyses.length) out.skipped.push('surviving-head-roles: no finished analyze stage of the baseline (run folder or record)');
  else {
    const layouts: SurvivingLayout[] = [];
    const survivors: SurvivorRow[] = [];
    const seedLabel = (seed: number | null): string => (analyses.length > 1 && seed !== null ? `seed ${seed}: ` : '');
    let l0Layouts = 0;
    for (const { report, ...found } of analyses) {
      const analysis = stages.find((s) => s.instance.id === found.stage)!;
      const all = Object.entries(report.heads)
        .filter(([, h]) => h.stack === 'enc-self')
        .map(([, h]) => roleCategory(h.roles.labels));
      layouts.push({ label: `${seedLabel(analysis.instance.seed)}${all.length} heads (baseline)`, headsKept: all.length, roles: all });
      for (const s of stages) {
        const st = s.instance.spec;
        if (st.kind !== 'prune' || st.method !== 'l0' || s.parent !== analysis.parent || s.config.gates.attention.join('+') !== 'enc-self') continue;
        const maskPath = stageFile(s, outDir, 'mask.json');
        if (!maskPath) continue;
        const shape = originalMaskShape(s.config.model);
        const kept = maskToKeptSets(readHeadMask(maskPath, shape), shape)['enc-self'];
        const keptKeys = kept.flatMap((ids, layer) => ids.map((head) => headKey({ stack: 'enc-self', layer, head })));
        const roles = keptKeys.map((key) => roleCategory(report.heads[key]?.roles.labels ?? []));
        const budget = s.config.gates.targetHeads === null ? `λ ${s.config.train.l0Lambda}` : `budget ${JSON.stringify(s.config.gates.targetHeads)}`;
        layouts.push({ label: `${seedLabel(analysis.instance.seed)}${roles.length} heads (${budget})`, headsKept: roles.length, roles });
        l0Layouts++;
        survivors.push(survivorScores(report, new Set(keptKeys), { stage: s.instance.id, run: relative(process.cwd(), s.folder) }));
      }
    }
    // not a figure, but made from the same analyses and masks: the survivors' scores against the removed heads'
    if (survivors.length) {
      writeFileAtomic(
        join(outDir, 'survivors.csv'),
        Papa.unparse({ fields: [...SURVIVOR_COLUMNS], data: survivors.map((r) => SURVIVOR_COLUMNS.map((c) => r[c])) }, { newline: '\n' }) + '\n',
      );
      writeFileAtomic(join(outDir, 'survivors.md'), survivorsMarkdown(survivors));
    }
    if (l0Layouts)
      await write(
        'surviving-head-roles',
        survivingRolesFigure(layouts, {
          title: `Roles (in the baseline) of the encoder heads each L0 stage keeps (Voita et al. 2019, Fig. 8)${analyses.length > 1 ? `, ${analyses.length} seeds` : ''}`,
          xLabel: 'model',
        }),
      );
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

export const SURVIVOR_COLUMNS: ReadonlyArray<keyof SurvivorRow> = [
  'stage',
  'kept',
  'removed',
  'keptPositional',
  'removedPositional',
  'keptRare',
  'removedRare',
  'keptImportance',
  'removedImportance',
  'keptConfidence',
  'removedConfidence',
  'keptLrp',
  'removedLrp',
  'run',
];

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
  const [keptImportance, removedImportance] = both((h) => h.importance.score ?? h.importance.perToken);
  const [keptConfidence, removedConfidence] = both((h) => h.attention.confidence);
  const [keptLrp, removedLrp] = both((h) => h.lrp);
  return {
    stage: where.stage,
    kept: k.length,
    removed: r.length,
    keptPositional,
    removedPositional,
    keptRare,
    removedRare,
    keptImportance,
    removedImportance,
    keptConfidence,
    removedConfidence,
    keptLrp,
    removedLrp,
    run: where.run,
  };
}

export function survivorsMarkdown(rows: readonly SurvivorRow[]): string {
  const f = (x: number | null) => (x === null ? '-' : x.toFixed(3));
  const head =
    '| stage | heads kept / removed | share at offset ±1 (kept / removed) | rare-token rate | importance | confidence | LRP | run |\n|---|---|---|---|---|---|---|---|';
  const body = rows.map(
    (r) =>
      `| ${r.stage} | ${r.kept} / ${r.removed} | ${f(r.keptPositional)} / ${f(r.removedPositional)} | ${f(r.keptRare)} / ${f(r.removedRare)} | ${f(r.keptImportance)} / ${f(r.removedImportance)} | ${f(r.keptConfidence)} / ${f(r.removedConfidence)} | ${f(r.keptLrp)} / ${f(r.removedLrp)} | \`${r.run}\` |`,
  );
  return [head, ...body].join('\n') + '\n';
}
