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
import { EXPERIMENT_RESULT_COLUMNS } from '../plots/readers.js';

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
}

function fmt(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined ? '-' : x.toFixed(digits);
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
      method: st.kind === 'prune' ? st.method : st.kind === 'train' ? (s.parent ? 'scratch-fixed-mask' : 'baseline') : st.kind,
      attention: s.config.gates.attention.join('+') || '-',
      lambda: st.kind === 'prune' && st.method === 'l0' && s.config.gates.targetHeads === null ? s.config.train.l0Lambda : null,
      targetHeads: s.config.gates.targetHeads === null ? '' : JSON.stringify(s.config.gates.targetHeads),
      run: relative(root, s.folder),
    };
    if (sum.curve)
      for (const p of sum.curve)
        rows.push({ ...base, id: `${s.instance.id}#${p.maskFile}`, keptEnc: p.keptHeads['enc-self'], keptDecSelf: p.keptHeads['dec-self'], keptDecEnc: p.keptHeads['dec-enc'], bleu: p.bleu, bleuTokLc: p.bleuTokLc, devBleu: null, run: join(base.run, p.maskFile) });
    else if (sum.keptHeads)
      rows.push({ ...base, keptEnc: sum.keptHeads['enc-self'], keptDecSelf: sum.keptHeads['dec-self'], keptDecEnc: sum.keptHeads['dec-enc'], bleu: sum.bleu ?? null, bleuTokLc: sum.bleuTokLc ?? null, devBleu: sum.devBleu ?? null });
  }
  return rows;
}

export function markdownTable(rows: readonly ResultRow[]): string {
  const head = '| stage | method | attention | lambda / target | heads kept (enc / dec-self / dec-enc) | test BLEU | tok. lc. BLEU | run |\n|---|---|---|---|---|---|---|---|';
  const body = rows.map((r) => `| ${r.id} | ${r.method} | ${r.attention} | ${r.lambda ?? (r.targetHeads || '-')} | ${r.keptEnc ?? '-'} / ${r.keptDecSelf ?? '-'} / ${r.keptDecEnc ?? '-'} | ${fmt(r.bleu)} | ${fmt(r.bleuTokLc)} | \`${r.run}\` |`);
  return [head, ...body].join('\n') + '\n';
}

/** results.csv columns, in order: the list its reader (src/plots/readers.ts) checks. */
export const RESULT_COLUMNS: ReadonlyArray<keyof ResultRow> = EXPERIMENT_RESULT_COLUMNS;

export function writeReport(stages: readonly ResolvedStage[], outDir: string): { rows: ResultRow[]; csvPath: string; mdPath: string } {
  const rows = collectRows(stages);
  const csvPath = join(outDir, 'results.csv');
  const mdPath = join(outDir, 'results.md');
  writeFileAtomic(csvPath, Papa.unparse({ fields: [...RESULT_COLUMNS], data: rows.map((r) => RESULT_COLUMNS.map((c) => r[c])) }, { newline: '\n' }) + '\n');
  writeFileAtomic(mdPath, markdownTable(rows));
  return { rows, csvPath, mdPath };
}

export function readResultRows(csvPath: string): ResultRow[] {
  if (!existsSync(csvPath)) return [];
  return Papa.parse<ResultRow>(readTextFile(csvPath, 'results table'), { header: true, dynamicTyping: true, skipEmptyLines: true }).data;
}
