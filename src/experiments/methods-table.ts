/**
 * The sparsity-methods table (experiments/sparsity-methods.yaml): one row per finished export stage with
 * what export-stage.ts measured (test BLEU, chrF, bytes, decode time) and model-cost.ts counted (parameters
 * total / non-zero / active per token, FFN and attention FLOPs per token, the attention-product share a
 * sparse kernel computes, MoE load), plus how the model was made: the fine-tuning steps of the chain above
 * it (prune and finetune stages) and its engine. Written as `<outDir>/methods.csv` and a markdown section
 * of results.md. Without finished export stages here, a committed methods.csv is kept and shown as it is,
 * so the table and its figure (plots/methods.ts) rebuild from committed results. A decode bench of the
 * same stages in the results folder (`<outDir>/decode-bench.json`, written by `npm run bench:methods`,
 * methods-bench.ts) gives every row it timed its bench wall and CPU seconds.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Papa from 'papaparse';
import { readJsonFile, readTextFile, writeFileAtomic } from '../util/fs.js';
import { type ResolvedStage, stageState } from './stage.js';
import type { MethodRow } from '../plots/methods.js';
import { finetuneLabel } from './finetune-stage.js';
import { DECODE_BENCH_FILE, type DecodeBenchRecord } from './methods-bench.js';
import { DataError } from '../util/errors.js';
import type { TestOutput } from './hyps.js';
import { REPORT_BOOTSTRAP, formatP, pairedTestSetPValues } from './replicates.js';

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
  'benchSeconds',
  'benchCpuSeconds',
  'outputTokens',
  'vsFloat',
  'pVsFloat',
  'vsTuned',
  'pVsTuned',
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
      benchSeconds: null,
      benchCpuSeconds: null,
      outputTokens: j['decode']?.outputTokens ?? null,
      vsFloat: null,
      pVsFloat: null,
      vsTuned: null,
      pVsTuned: null,
      moeMaxLoadRatio: j['moeRouting'] ? Number(j['moeRouting'].maxLoadRatio.toFixed(3)) : null,
      moeDropped: j['moeRouting'] ? Number(j['moeRouting'].droppedAtTrainingCapacity.toFixed(4)) : null,
      description: s.instance.spec.description ?? '',
    });
  }
  return out;
}

export function readMethodRows(csvPath: string): MethodRow[] {
  if (!existsSync(csvPath)) return [];
  const rows = Papa.parse<MethodRow>(readTextFile(csvPath, 'methods table'), { header: true, dynamicTyping: true, skipEmptyLines: true }).data;
  // a methods.csv written before the decode bench existed has no bench columns
  return rows.map((r) => ({
    ...r,
    benchSeconds: r.benchSeconds ?? null,
    benchCpuSeconds: r.benchCpuSeconds ?? null,
    vsFloat: r.vsFloat ?? null,
    pVsFloat: r.pVsFloat ?? null,
    vsTuned: r.vsTuned ?? null,
    pVsTuned: r.pVsTuned ?? null,
  }));
}

const seedOf = (stageId: string) => /seed=(\d+)/.exec(stageId)?.[1] ?? '';

/**
 * Each row's test BLEU against the two references of its seed, by the report's paired bootstrap
 * (replicates.ts): the float row (the baseline exported unchanged, method `float`, tfjs) and the tuned
 * control (the baseline fine-tuned with the same budget, nothing made sparse, method `tuned`). Rows
 * whose translations are not in `outputs` keep what they had.
 */
export function withComparisons(rows: readonly MethodRow[], outputs: ReadonlyMap<string, TestOutput>): MethodRow[] {
  const ref = (r: MethodRow, method: string) => rows.find((x) => x.method === method && x.engine !== 'onnx' && seedOf(x.stage) === seedOf(r.stage)) ?? null;
  const cmp = (r: MethodRow, reference: MethodRow | null) => {
    const system = outputs.get(r.stage);
    const base = reference && reference !== r ? outputs.get(reference.stage) : undefined;
    if (!system || !base) return null;
    const c = pairedTestSetPValues([{ system, reference: base }]);
    return { diff: Number(c.diffs[0]!.toFixed(4)), p: c.pValues[0]! };
  };
  return rows.map((r) => {
    const f = cmp(r, ref(r, 'float'));
    const t = cmp(r, ref(r, 'tuned'));
    return {
      ...r,
      ...(f ? { vsFloat: f.diff, pVsFloat: f.p } : {}),
      ...(t ? { vsTuned: t.diff, pVsTuned: t.p } : {}),
    };
  });
}

/** `<dir>/decode-bench.json`, checked field by field (a committed record: a bad one is named, never half-used), or null when absent. */
export function readDecodeBench(dir: string): DecodeBenchRecord | null {
  const path = join(dir, DECODE_BENCH_FILE);
  if (!existsSync(path)) return null;
  const j = readJsonFile<Record<string, unknown>>(path, 'decode bench');
  const bad = (field: string, expected: string, found: unknown) =>
    new DataError(`${path}: ${field}: expected ${expected}, found ${JSON.stringify(found)?.slice(0, 60) ?? String(found)}`);
  if (j === null || typeof j !== 'object' || j['what'] !== 'decode-bench') throw bad('what', "'decode-bench'", j?.['what']);
  for (const k of ['sentences', 'beamSize', 'reps'] as const) if (!Number.isInteger(j[k]) || (j[k] as number) < 1) throw bad(k, 'a positive integer', j[k]);
  if (!Array.isArray(j['rows'])) throw bad('rows', 'an array', j['rows']);
  const positive = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x > 0;
  (j['rows'] as unknown[]).forEach((r, i) => {
    const row = r as Record<string, unknown>;
    if (row === null || typeof row !== 'object') throw bad(`rows[${i}]`, 'an object', r);
    if (typeof row['stage'] !== 'string' || !row['stage']) throw bad(`rows[${i}].stage`, 'a stage id', row['stage']);
    for (const k of ['bestSeconds', 'bestCpuSeconds']) if (!positive(row[k])) throw bad(`rows[${i}].${k}`, 'a positive number of seconds', row[k]);
  });
  return j as unknown as DecodeBenchRecord;
}

/** Rows with the bench's figures for the stages it timed (other rows keep theirs, or null). */
export function withDecodeBench(rows: readonly MethodRow[], bench: DecodeBenchRecord | null): MethodRow[] {
  if (!bench) return [...rows];
  const by = new Map(bench.rows.map((r) => [r.stage, r]));
  return rows.map((r) => {
    const b = by.get(r.stage);
    return b ? { ...r, benchSeconds: Number(b.bestSeconds.toFixed(4)), benchCpuSeconds: Number(b.bestCpuSeconds.toFixed(4)) } : r;
  });
}

export function methodsMarkdown(rows: readonly MethodRow[]): string {
  const bench = rows.some((r) => r.benchCpuSeconds !== null && r.benchCpuSeconds !== undefined);
  const m = (x: number | null) => (x === null || x === undefined ? '-' : `${(x / 1e6).toFixed(2)}M`);
  const f = (x: number | null, d = 2) => (x === null || x === undefined ? '-' : x.toFixed(d));
  const diff = (d: number | null, p: number | null) => (d === null || d === undefined ? '-' : `${d >= 0 ? '+' : ''}${d.toFixed(2)} (${formatP(p ?? null)})`);
  const head = `| stage | method | fine-tuning steps | test BLEU | − float (p) | − tuned (p) | chrF | params (non-zero; active per token) | weights file (MB) | FFN MFLOP/token | attention MFLOP/token (product share) | decode s (output tokens) |${bench ? ' bench decode CPU s (wall s) |' : ''} MoE max load / dropped |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|${bench ? '---|' : ''}`;
  const body = rows.map((r) => {
    const params = `${m(r.params)}${r.nonZeroParams !== null && r.nonZeroParams < r.params ? ` (${m(r.nonZeroParams)} non-zero)` : ''}${r.activeParams !== null && r.activeParams < r.params ? `; ${m(r.activeParams)} active` : ''}`;
    const moe = r.moeMaxLoadRatio === null || r.moeMaxLoadRatio === undefined ? '-' : `${f(r.moeMaxLoadRatio)}x / ${(100 * (r.moeDropped ?? 0)).toFixed(1)}%`;
    return `| ${r.stage} | ${r.method}${r.engine === 'onnx' ? ' (ORT)' : ''} | ${r.fineTuneSteps} | ${f(r.bleu)} | ${diff(r.vsFloat, r.pVsFloat)} | ${diff(r.vsTuned, r.pVsTuned)} | ${f(r.chrf)} | ${params} | ${f(r.modelBytes / 1e6)} | ${f(r.ffnFlopsPerToken / 1e6, 3)} | ${f(r.attnFlopsPerToken / 1e6, 3)} (${(100 * r.attnProductShare).toFixed(0)}%) | ${f(r.decodeSeconds)} (${r.outputTokens ?? '-'}) |${bench ? ` ${r.benchCpuSeconds === null || r.benchCpuSeconds === undefined ? '-' : `${f(r.benchCpuSeconds)} (${f(r.benchSeconds)})`} |` : ''} ${moe} |`;
  });
  return [head, ...body].join('\n') + '\n';
}

/**
 * Write `<outDir>/methods.csv` from the finished export stages (or keep the committed one) and return the
 * results.md section, or null when there are no rows.
 */
export function methodsSection(stages: readonly ResolvedStage[], outDir: string, outputs: ReadonlyMap<string, TestOutput> = new Map()): string | null {
  const csvPath = join(outDir, 'methods.csv');
  const bench = readDecodeBench(outDir);
  let rows = withComparisons(withDecodeBench(collectMethodRows(stages), bench), outputs);
  if (rows.length)
    writeFileAtomic(csvPath, Papa.unparse({ fields: [...METHOD_COLUMNS], data: rows.map((r) => METHOD_COLUMNS.map((c) => r[c])) }, { newline: '\n' }) + '\n');
  else rows = withDecodeBench(readMethodRows(csvPath), bench);
  if (!rows.length) return null;
  const benchNote = bench
    ? ` The bench column is \`npm run bench:methods\` (${bench.date.slice(0, 10)}, commit ${bench.commit?.slice(0, 7) ?? 'unknown'}${bench.dirty ? ' with uncommitted changes' : ''}): every row decodes the first ${bench.sentences} test sentences with beam ${bench.beamSize} in one process, rows in turns, best of ${bench.reps}, CPU seconds of that process (HEADS_BLAS_THREADS ${bench.blasThreads ?? 'unset'}, ORT on one thread); the decode s column is what each export stage measured while it ran, on a machine that may have been doing other work.`
    : '';
  return `## Sparsity methods: quality against size, cost per token and decode time\n\nOne row per export stage (src/experiments/export-stage.ts, model-cost.ts): test BLEU and chrF (sacreBLEU defaults), parameters (non-zero ones after magnitude pruning; active per token for mixtures of experts), bytes of the weights file (ONNX rows: encoder.onnx + decoder.onnx), FLOPs per token (2 per multiply-add; a source token through the encoder plus a target token through the decoder, over the test set's lengths), the share of attention-product FLOPs a sparse kernel would compute (counted from the pattern, not measured: the toolkit's kernels are dense and masked), and the best of ${'3'} decode times of one fixed batch. MoE: the busiest expert's load against an even share, and the share of claims the training capacity would drop, teacher-forced on the test set. − float and − tuned: test BLEU minus the float row's (the baseline unchanged) and minus the tuned row's (the baseline fine-tuned with the same budget, nothing made sparse: compare fine-tuned rows with it), with sacreBLEU's paired bootstrap p (${REPORT_BOOTSTRAP.n} resamples of the test sentences, seed ${REPORT_BOOTSTRAP.seed}); it treats the models as fixed, so it measures test-set sampling, not training randomness (one seed).${benchNote}\n\n${methodsMarkdown(rows)}`;
}
