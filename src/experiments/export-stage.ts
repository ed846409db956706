/**
 * The experiment `export` stage: `heads export` with the stage's settings (head mask, magnitude
 * sparsity, FFN-unit pruning, int8), then the exported model measured the same way for every row of a
 * comparison: test BLEU (loaded as `heads translate` loads it, scored by scoreTranslations with the
 * config's beam), parameters (all and non-zero), bytes of its weights file, and decode time.
 *
 * Decode time is the best of DECODE_BENCH.reps wall-time translations of one fixed batch, the first
 * DECODE_BENCH.sentences test sentences, with the config's beam size, after the full test translation
 * (which warms up the kernels). Same sentences, beam and batching for every row; the best repetition is
 * the least disturbed by other work on the machine. Rows are comparable when run on one machine under a
 * similar load (`--jobs 1`); output token counts are recorded because a model that stops earlier decodes
 * fewer steps.
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import type { ResolvedConfig } from '../config/schema.js';
import { loadCorpora } from '../data/prepare.js';
import { translateSentences } from '../eval/translate.js';
import { type ExportOptions, type ExportSummary, type MaskInput, exportModel } from '../export/export-model.js';
import { readHeadMask } from '../io/head-mask.js';
import { loadModel } from '../io/load-model.js';
import type { ProgressLine } from '../train/progress.js';
import { scoreTranslations } from '../train/run-training.js';
import { readJsonFile, writeFileAtomic } from '../util/fs.js';
import type { StageSpec } from './spec.js';

export type ExportStageSpec = Extract<StageSpec, { kind: 'export' }>;

/** The fixed decode-time measurement (see the module header). */
export const DECODE_BENCH = { sentences: 100, reps: 3 } as const;

/** What an export stage adds to stage.json. */
export interface ExportMeasurement {
  bleu: number;
  bleuTokLc: number;
  keptHeads: Record<AttentionType, number>;
  /** parameters of the exported model (dense count) */
  params: number;
  /** parameters that are not zero (fewer than params after magnitude pruning; counted only when the export compresses weights, else params) */
  nonZeroParams: number;
  /** bytes of the exported weights file (export/checkpoints/step-N/model.safetensors) */
  modelBytes: number;
  /** best wall time of translating the fixed batch (seconds) */
  decodeSeconds: number;
  decode: { sentences: number; beamSize: number; batchSentences: number; reps: number; samplesSeconds: number[]; outputTokens: number };
  /** wall time of the full test translation behind `bleu` (seconds; includes kernel warm-up) */
  testSeconds: number;
  /** the export's method label, e.g. `heads+int8`, `magnitude-0.5`, `ffn-0.5`, `float` */
  method: string;
}

/** The mask an export stage uses (see ExportStage in spec.ts for the default). */
export function exportMaskOf(st: ExportStageSpec, parentFolder: string, parentConfig: ResolvedConfig): MaskInput {
  if (st.mask === 'none') return 'none';
  if (st.mask === 'gates') return 'gates';
  const maskPath = join(parentFolder, 'mask.json');
  if (existsSync(maskPath)) return readHeadMask(maskPath);
  return parentConfig.gates.attention.length ? 'gates' : 'none';
}

/** The exporter's compression options from the stage's settings. */
export function exportCompressionOf(st: ExportStageSpec): Pick<ExportOptions, 'magnitude' | 'ffn' | 'int8'> {
  return {
    ...(st.magnitudeSparsity !== undefined ? { magnitude: { sparsity: st.magnitudeSparsity, scope: st.perLayer ? 'per-layer' : 'global', includeEmbeddings: false } } : {}),
    ...(st.ffnPrune !== undefined ? { ffn: { fraction: st.ffnPrune, scope: 'per-layer' } } : {}),
    ...(st.int8 ? { int8: true } : {}),
  } as Pick<ExportOptions, 'magnitude' | 'ffn' | 'int8'>;
}

/** A short label of what the export did: `heads`, `magnitude-0.5`, `ffn-0.5`, `int8`, joined by `+`; `float` for none. */
export function exportMethodLabel(st: ExportStageSpec, removedHeads: boolean): string {
  const parts = [
    removedHeads ? 'heads' : '',
    st.magnitudeSparsity !== undefined ? `magnitude-${st.magnitudeSparsity}${st.perLayer ? '-per-layer' : ''}` : '',
    st.ffnPrune !== undefined ? `ffn-${st.ffnPrune}` : '',
    st.int8 ? 'int8' : '',
  ].filter(Boolean);
  return parts.join('+') || 'float';
}

/**
 * Export the parent (or reuse a finished export in `outDir`: an interrupted stage does not export twice)
 * and measure the exported model on the config's test set.
 */
export async function runExportStage(o: { st: ExportStageSpec; parentFolder: string; config: ResolvedConfig; outDir: string; stageFolder: string; progress: ProgressLine }): Promise<{ summary: ExportSummary; measured: ExportMeasurement }> {
  const summaryPath = join(o.outDir, 'export.json');
  let summary: ExportSummary;
  if (existsSync(summaryPath)) summary = readJsonFile<ExportSummary>(summaryPath, 'export summary');
  else {
    // a half-written export (killed mid-write) is redone from scratch
    rmSync(o.outDir, { recursive: true, force: true });
    const compression = exportCompressionOf(o.st);
    summary = await exportModel({ from: o.parentFolder, mask: exportMaskOf(o.st, o.parentFolder, o.config), outDir: o.outDir, ...compression, warn: (m) => o.progress.log(`warning: ${m}`) });
  }
  o.progress.log(`export: ${summary.parameters.after} parameters, model.safetensors ${summary.files.heads?.modelBytes ?? '?'} bytes`);

  // the exported model as `heads translate` loads it
  const loaded = loadModel(o.outDir, (m) => o.progress.log(`warning: ${m}`));
  try {
    const test = loadCorpora(o.config.data, o.config.seed).test;
    const t0 = performance.now();
    const { hyps, scores } = await scoreTranslations(loaded.model, loaded.tokenizer, test, loaded.config, undefined, { progress: o.progress, label: 'test' });
    const testSeconds = (performance.now() - t0) / 1000;
    o.progress.done();
    writeFileAtomic(join(o.stageFolder, 'test.hyp'), hyps.join('\n') + '\n');
    const batch = test.slice(0, DECODE_BENCH.sentences).map((p) => p.src);
    const samplesSeconds: number[] = [];
    let outputTokens = 0;
    for (let r = 0; r < DECODE_BENCH.reps; r++) {
      const { stats } = await translateSentences(loaded.model, loaded.tokenizer, batch, { ...loaded.config.eval });
      samplesSeconds.push(stats.elapsedMs / 1000);
      outputTokens = stats.outputTokens;
    }
    const decodeSeconds = Math.min(...samplesSeconds);
    o.progress.log(`test BLEU ${scores.bleu.toFixed(2)}; decode ${batch.length} sentences (beam ${loaded.config.eval.beamSize}): best ${decodeSeconds.toFixed(2)} s of ${samplesSeconds.map((x) => x.toFixed(2)).join(', ')}`);
    const removedHeads = ATTENTION_TYPES.some((t) => summary.heads.after[t] < summary.heads.original[t]);
    const modelBytes = summary.files.heads?.modelBytes ?? statSync(join(loaded.checkpoint.path, 'model.safetensors')).size;
    return {
      summary,
      measured: {
        bleu: scores.bleu,
        bleuTokLc: scores.tokenizedLowercaseBleu,
        keptHeads: summary.heads.after,
        params: summary.parameters.after,
        nonZeroParams: summary.compression?.nonZeroParameters ?? summary.parameters.after,
        modelBytes,
        decodeSeconds,
        decode: { sentences: batch.length, beamSize: loaded.config.eval.beamSize, batchSentences: loaded.config.eval.batchSentences, reps: DECODE_BENCH.reps, samplesSeconds, outputTokens },
        testSeconds,
        method: exportMethodLabel(o.st, removedHeads),
      },
    };
  } finally {
    loaded.model.dispose();
    loaded.gates?.dispose();
  }
}
