/**
 * The sparsity-methods table (experiments/sparsity-methods.yaml): one row per finished export stage with
 * what export-stage.ts measured (test BLEU, chrF, bytes, decode time) and model-cost.ts counted (parameters
 * total / non-zero / active per token, FFN and attention FLOPs per token, the attention-product share a
 * sparse kernel computes, MoE load), plus how the model was made: the fine-tuning steps of the chain above
 * it (prune and finetune stages) and its engine. Written as `<outDir>/methods.csv` and a markdown section
 * of results.md. Without finished export stages here, a committed methods.csv is kept and shown as it is,
 * so the table and its figure (plots/methods.ts) rebuild from committed results.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Papa from 'papaparse';
import { readJsonFile, readTextFile, writeFileAtomic } from '../util/fs.js';
import { type ResolvedStage, stageState } from './stage.js';
import type { MethodRow } from '../plots/methods.js';
import { finetuneLabel } from './finetune-stage.js';

export const METHOD_COLUMNS: ReadonlyArray<keyof MethodRow> = [
  'stage',
  'method',
  'engine',
  'fineTuneSteps',
  'bleu',
  'chrf',
  'params',
  'nonZeroParams',
  'activeParams',
  'modelBytes',
  'ffnFlopsPerToken',
  'attnFlopsPerToken',
  'attnProductShare',
  'decodeSeconds',
  'outputTokens',
  'moeMaxLoadRatio',
  'moeDropped',
  'description',
];

/** Steps of fine-tuning (finetune and prune stages) between the root train stage and `s`. */
function fineTuneSteps(s: ResolvedStage): number {
  let n = 0;
  for (let x: ResolvedStage | null = s; x; x = x.parent) {
    const k = x.instance.spec.kind;
    if ((k === 'finetune' || k === 'prune') && stageState(x) === 'done') {
      const steps = readJsonFile<{ steps?: number }>(join(x.folder, 'stage.json'), 'stage marker').steps;
      n += typeof steps === 'number' ? steps : x.config.train.maxSteps;
    }
  }
  return n;
}

/** The export's label, after what its finetune parent changed (`local(8)+sliding(8)`, `qat+int8`). */
function methodOf(s: ResolvedStage, exportLabel: string): string {
  const p = s.parent!;
  if (p.instance.spec.kind !== 'finetune') return exportLabel;
  const tuned = finetuneLabel(p.instance.spec, p.config);
  return exportLabel === 'float' ? tuned : `${tuned}+${exportLabel}`;
}

/** The rows of the finished export stages that have the cost figures (exports measured before them are left out). */
export function collectMethodRows(stages: readonly ResolvedStage[]): MethodRow[] {
  const out: MethodRow[] = [];
  for (const s of stages) {
    if (s.instance.spec.kind !== 'export' || stageState(s) !== 'done') continue;
    const j = readJsonFile<Record<string, any>>(join(s.folder, 'stage.json'), 'stage marker'); // eslint-disable-line @typescript-eslint/no-explicit-any
    if (!j['cost']) continue;
    const c = j['cost'];
    out.push({
      stage: s.instance.id,
      method: methodOf(s, String(j['method'] ?? '')),
      engine: String(j['engine'] ?? 'tfjs'),
      fineTuneSteps: fineTuneSteps(s.parent!),
      bleu: j['bleu'],
      chrf: j['chrf'] ?? null,
      params: j['params'],
      nonZeroParams: j['nonZeroParams'],
      activeParams: c.activeParams,
      modelBytes: j['modelBytes'],
      ffnFlopsPerToken: c.ffnFlopsPerToken,
      attnFlopsPerToken: c.attnFlopsPerToken,
      attnProductShare: Number(c.attnProductShare.toFixed(4)),
      decodeSeconds: j['decodeSeconds'],
      outputTokens: j['decode']?.outputTokens ?? null,
      moeMaxLoadRatio: j['moeRouting'] ? Number(j['moeRouting'].maxLoadRatio.toFixed(3)) : null,
      moeDropped: j['moeRouting'] ? Number(j['moeRouting'].droppedAtTrainingCapacity.toFixed(4)) : null,
      description: s.instance.spec.description ?? '',
    });
  }
  return out;
}

export function readMethodRows(csvPath: string): MethodRow[] {
  if (!existsSync(csvPath)) return [];
  return Papa.parse<MethodRow>(readTextFile(csvPath, 'methods table'), { header: true, dynamicTyping: true, skipEmptyLines: true }).data;
}

export function methodsMarkdown(rows: readonly MethodRow[]): string {
  const m = (x: number | null) => (x === null || x === undefined ? '-' : `${(x / 1e6).toFixed(2)}M`);
  const f = (x: number | null, d = 2) => (x === null || x === undefined ? '-' : x.toFixed(d));
  const head =
    '| stage | method | fine-tuning steps | test BLEU | chrF | params (non-zero; active per token) | weights file (MB) | FFN MFLOP/token | attention MFLOP/token (product share) | decode s (output tokens) | MoE max load / dropped |\n|---|---|---|---|---|---|---|---|---|---|---|';
  const body = rows.map((r) => {
    const params = `${m(r.params)}${r.nonZeroParams !== null && r.nonZeroParams < r.params ? ` (${m(r.nonZeroParams)} non-zero)` : ''}${r.activeParams !== null && r.activeParams < r.params ? `; ${m(r.activeParams)} active` : ''}`;
    const moe = r.moeMaxLoadRatio === null || r.moeMaxLoadRatio === undefined ? '-' : `${f(r.moeMaxLoadRatio)}x / ${(100 * (r.moeDropped ?? 0)).toFixed(1)}%`;
    return `| ${r.stage} | ${r.method}${r.engine === 'onnx' ? ' (ORT)' : ''} | ${r.fineTuneSteps} | ${f(r.bleu)} | ${f(r.chrf)} | ${params} | ${f(r.modelBytes / 1e6)} | ${f(r.ffnFlopsPerToken / 1e6, 3)} | ${f(r.attnFlopsPerToken / 1e6, 3)} (${(100 * r.attnProductShare).toFixed(0)}%) | ${f(r.decodeSeconds)} (${r.outputTokens ?? '-'}) | ${moe} |`;
  });
  return [head, ...body].join('\n') + '\n';
}

/**
 * Write `<outDir>/methods.csv` from the finished export stages (or keep the committed one) and return the
 * results.md section, or null when there are no rows.
 */
export function methodsSection(stages: readonly ResolvedStage[], outDir: string): string | null {
  const csvPath = join(outDir, 'methods.csv');
  let rows = collectMethodRows(stages);
  if (rows.length)
    writeFileAtomic(csvPath, Papa.unparse({ fields: [...METHOD_COLUMNS], data: rows.map((r) => METHOD_COLUMNS.map((c) => r[c])) }, { newline: '\n' }) + '\n');
  else rows = readMethodRows(csvPath);
  if (!rows.length) return null;
  return `## Sparsity methods: quality against size, cost per token and decode time\n\nOne row per export stage (src/experiments/export-stage.ts, model-cost.ts): test BLEU and chrF (sacreBLEU defaults), parameters (non-zero ones after magnitude pruning; active per token for mixtures of experts), bytes of the weights file (ONNX rows: encoder.onnx + decoder.onnx), FLOPs per token (2 per multiply-add; a source token through the encoder plus a target token through the decoder, over the test set's lengths), the share of attention-product FLOPs a sparse kernel would compute (counted from the pattern, not measured: the toolkit's kernels are dense and masked), and the best of ${'3'} decode times of one fixed batch. MoE: the busiest expert's load against an even share, and the share of claims the training capacity would drop, teacher-forced on the test set.\n\n${methodsMarkdown(rows)}`;
}
