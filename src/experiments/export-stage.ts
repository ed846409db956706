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
 *
 * Beside BLEU the row gets chrF (sacreBLEU's chrF2 defaults, eval/metric.ts) and the counted cost figures of
 * model-cost.ts (parameters total, non-zero and active per token, FFN and attention FLOPs per token, the
 * share of attention-product FLOPs a sparse kernel would compute, MoE expert load). With `engine: onnx`
 * the export also writes onnx/ (`--format onnx`, with int8: MatMulInteger on int8 activations quantized at
 * run time, ORT's dynamic quantization) and BLEU, bytes (encoder.onnx + decoder.onnx) and decode time are
 * those of the graphs in onnxruntime-node on one intra-op thread, with the same sentences, beam and batching.
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
import { loadOnnxModel } from '../onnx/load-node.js';
import { translateWithOnnx } from '../onnx/decode.js';
import type { StageSpec } from './spec.js';
import { makeMetric } from '../eval/metric.js';
import { corpusBleu, tokenizedLowercaseBleu } from '../eval/bleu.js';
import { type ModelCost, type MoeRouting, modelCost, moeRouting } from './model-cost.js';

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
  /** parameters that are not zero (fewer than params after magnitude pruning; int8 exports: the exporter's count before rounding) */
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
  /** corpus chrF2 of the test translations behind `bleu` */
  chrf: number;
  /** counted cost figures (model-cost.ts) */
  cost: ModelCost;
  activeParams: number;
  /** MoE models: expert load on the test set (model-cost.ts) */
  moeRouting?: MoeRouting;
  /** `tfjs`, or `onnx` (onnxruntime-node, 1 intra-op thread) */
  engine: 'tfjs' | 'onnx';
}

/** Corpus chrF2 (sacreBLEU defaults) of hypotheses against one reference each. */
export function corpusChrf(hyps: readonly string[], refs: readonly string[]): number {
  const m = makeMetric('chrf');
  const total = new Array<number>(m.statsSize).fill(0);
  hyps.forEach((h, i) => m.segmentStats(h, [refs[i]!]).forEach((v, k) => (total[k] = total[k]! + v)));
  return m.scoreFromStats(total);
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
    ...(st.magnitudeSparsity !== undefined
      ? { magnitude: { sparsity: st.magnitudeSparsity, scope: st.perLayer ? 'per-layer' : 'global', includeEmbeddings: false } }
      : {}),
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
    st.int8 ? (st.engine === 'onnx' ? 'int8-dynamic' : 'int8') : '',
  ].filter(Boolean);
  return parts.join('+') || 'float';
}

/**
 * The formats an export stage writes: the exporter's defaults (heads + safetensors), plus onnx/ for
 * `engine: onnx`; only heads for mixture-of-experts models, which the PyTorch-layout safetensors file
 * has no names for (the row measures the heads format).
 */
export function exportFormatsOf(st: ExportStageSpec, parentConfig: ResolvedConfig): Pick<ExportOptions, 'formats'> {
  if (st.engine === 'onnx') return { formats: ['heads', 'onnx'] };
  if (parentConfig.model.moe) return { formats: ['heads'] };
  return {};
}

/**
 * Export the parent (or reuse a finished export in `outDir`: an interrupted stage does not export twice)
 * and measure the exported model on the config's test set.
 */
export async function runExportStage(o: {
  st: ExportStageSpec;
  parentFolder: string;
  config: ResolvedConfig;
  outDir: string;
  stageFolder: string;
  progress: ProgressLine;
}): Promise<{ summary: ExportSummary; measured: ExportMeasurement }> {
  const summaryPath = join(o.outDir, 'export.json');
  let summary: ExportSummary;
  if (existsSync(summaryPath)) summary = readJsonFile<ExportSummary>(summaryPath, 'export summary');
  else {
    // a half-written export (killed mid-write) is redone from scratch
    rmSync(o.outDir, { recursive: true, force: true });
    const compression = exportCompressionOf(o.st);
    summary = await exportModel({
      from: o.parentFolder,
      mask: exportMaskOf(o.st, o.parentFolder, o.config),
      outDir: o.outDir,
      ...compression,
      ...exportFormatsOf(o.st, o.config),
      warn: (m) => o.progress.log(`warning: ${m}`),
    });
  }
  o.progress.log(`export: ${summary.parameters.after} parameters, model.safetensors ${summary.files.heads?.modelBytes ?? '?'} bytes`);

  // the exported model as `heads translate` loads it
  const loaded = loadModel(o.outDir, (m) => o.progress.log(`warning: ${m}`));
  try {
    const test = loadCorpora(o.config.data, o.config.seed).test;
    const cost = modelCost(loaded.model, loaded.tokenizer, test);
    const routing = moeRouting(loaded.model, loaded.tokenizer, test, loaded.config);
    const batch = test.slice(0, DECODE_BENCH.sentences).map((p) => p.src);
    const t0 = performance.now();
    let hyps: string[];
    let bleu: number;
    let bleuTokLc: number;
    const samplesSeconds: number[] = [];
    let outputTokens = 0;
    let modelBytes: number;
    if (o.st.engine === 'onnx') {
      const m = await loadOnnxModel(o.outDir, { threads: 1 });
      const g = { ...loaded.config.eval, beamSize: loaded.config.eval.beamSize };
      const out = await translateWithOnnx(
        m,
        m.tokenizer,
        test.map((p) => p.src),
        { ...g, onProgress: (done, total) => o.progress.update(`test (onnx) ${done}/${total} sentences`) },
      );
      hyps = out.outputs;
      for (let r = 0; r < DECODE_BENCH.reps; r++) {
        const { stats } = await translateWithOnnx(m, m.tokenizer, batch, g);
        samplesSeconds.push(stats.elapsedMs / 1000);
        outputTokens = stats.outputTokens;
      }
      modelBytes = m.files.encoderBytes + m.files.decoderBytes;
      const refs = [test.map((p) => p.tgt)];
      bleu = corpusBleu(hyps, refs).score;
      bleuTokLc = tokenizedLowercaseBleu(hyps, refs).score;
    } else {
      const scored = await scoreTranslations(loaded.model, loaded.tokenizer, test, loaded.config, undefined, { progress: o.progress, label: 'test' });
      hyps = scored.hyps;
      bleu = scored.scores.bleu;
      bleuTokLc = scored.scores.tokenizedLowercaseBleu;
      for (let r = 0; r < DECODE_BENCH.reps; r++) {
        const { stats } = await translateSentences(loaded.model, loaded.tokenizer, batch, { ...loaded.config.eval });
        samplesSeconds.push(stats.elapsedMs / 1000);
        outputTokens = stats.outputTokens;
      }
      modelBytes = summary.files.heads?.modelBytes ?? statSync(join(loaded.checkpoint.path, 'model.safetensors')).size;
    }
    const testSeconds = (performance.now() - t0) / 1000 - samplesSeconds.reduce((a, b) => a + b, 0);
    o.progress.done();
    writeFileAtomic(join(o.stageFolder, 'test.hyp'), hyps.join('\n') + '\n');
    const chrf = corpusChrf(
      hyps,
      test.map((p) => p.tgt),
    );
    const decodeSeconds = Math.min(...samplesSeconds);
    o.progress.log(
      `test BLEU ${bleu.toFixed(2)}, chrF ${chrf.toFixed(2)}; decode ${batch.length} sentences (beam ${loaded.config.eval.beamSize}${o.st.engine === 'onnx' ? ', onnxruntime-node' : ''}): best ${decodeSeconds.toFixed(2)} s of ${samplesSeconds.map((x) => x.toFixed(2)).join(', ')}`,
    );
    const removedHeads = ATTENTION_TYPES.some((t) => summary.heads.after[t] < summary.heads.original[t]);
    return {
      summary,
      measured: {
        bleu,
        bleuTokLc,
        keptHeads: summary.heads.after,
        params: summary.parameters.after,
        // int8 rounds small weights to zero: those are not pruned weights, the exporter's count (before rounding) is kept
        nonZeroParams: o.st.int8 ? (summary.compression?.nonZeroParameters ?? summary.parameters.after) : cost.nonZeroParams,
        modelBytes,
        decodeSeconds,
        decode: {
          sentences: batch.length,
          beamSize: loaded.config.eval.beamSize,
          batchSentences: loaded.config.eval.batchSentences,
          reps: DECODE_BENCH.reps,
          samplesSeconds,
          outputTokens,
        },
        testSeconds,
        method: exportMethodLabel(o.st, removedHeads),
        chrf,
        cost,
        activeParams: cost.activeParams,
        ...(routing ? { moeRouting: routing } : {}),
        engine: o.st.engine ?? 'tfjs',
      },
    };
  } finally {
    loaded.model.dispose();
    loaded.gates?.dispose();
  }
}
