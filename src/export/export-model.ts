/**
 * `exportModel`: load a trained (gated) model, resolve a head mask (a mask file, the gates by the paper's
 * rule, a Michel descriptor or HF `pruned_heads` dicts), prune it physically (prune-model.ts) and write
 *   - the toolkit's own format: a run-like folder (config.json with the pruned layout and no gates,
 *     tokenizer.json, checkpoints/step-N/) that loadModel, `heads translate`, `heads bleu`, analysis and
 *     further pruning read unchanged;
 *   - a PyTorch-facing `safetensors/` folder (model.safetensors + config.json + tokenizer.json) with the
 *     documented names of pytorch-format.ts / README.md;
 * plus mask.json (the mask used) and export.json (heads, parameters and file sizes before and after, the
 * folded gates, and a self-check: max |logit difference| between the masked and the exported model).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import type { ResolvedConfig } from '../config/schema.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { loadModel } from '../io/load-model.js';
import { writeCheckpoint } from '../io/checkpoint.js';
import { disposeGates } from '../model/gate-tensors.js';
import { ConfigError, MaskError } from '../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { RunFolder } from '../util/run-folder.js';
import { Rng, deriveSeed } from '../util/random.js';
import {
  type HeadMask,
  type HfPruneDicts,
  maskFromDescriptor,
  maskFromHfPruneDict,
  maskToDescriptor,
  maskToHfPruneDict,
  writeHeadMask,
  currentLayoutMask,
} from '../io/head-mask.js';
import { type PerHead, originalMaskShape } from '../config/head-layout.js';
import {
  type FoldedGate,
  type FractionalGate,
  applyMaskToModel,
  createTransformerFromArrays,
  deriveMaskFromGates,
  headCounts,
  maskedGateTensors,
} from './prune-model.js';
import { pytorchConfig, toPytorchTensors } from './pytorch-format.js';
import { type SafeTensor, writeSafetensors } from '../io/safetensors.js';
import { type MagnitudePruningOptions, type MagnitudePruningReport, magnitudePrune } from '../compress/magnitude-pruning.js';
import { type FfnPruningOptions, type FfnPruningReport, maskFfnUnits, planFfnPruning, pruneFfnUnits } from './ffn-pruning.js';
import { type QuantizationReport, dequantizeTensors, quantizeTensors } from '../io/quantized-tensors.js';
import type { NamedArrays } from '../io/checkpoint.js';
import { buildOnnxExport, writeOnnxExport } from '../onnx/onnx-export.js';

export type ExportFormat = 'heads' | 'safetensors' | 'onnx';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['heads', 'safetensors', 'onnx'];
/** what an export writes unless told otherwise */
export const DEFAULT_EXPORT_FORMATS: readonly ExportFormat[] = ['heads', 'safetensors'];

/** Where the mask comes from. */
export type MaskInput =
  | HeadMask
  /** keep every head the model has (for exports that only prune weights, FFN units or quantize) */
  | 'none'
  /** the paper's rule on the model's gates: keep iff P(g = 1) > P(g = 0) */
  | 'gates'
  /** Michel et al. text descriptor of the heads to REMOVE, 1-based: `E:1:1,2 A:6:2 D:1:1` */
  | { kind: 'descriptor'; text: string }
  /** HF `pruned_heads` dicts per attention type, or an object holding them under `pruned_heads` */
  | { kind: 'hf-prune-dict'; value: unknown; sourceName: string };

export interface ExportOptions {
  /** run folder (newest valid checkpoint) or checkpoint folder */
  from: string;
  mask: MaskInput;
  /** output folder: created if missing, refused if not empty; default a new run folder under runsDir */
  outDir?: string;
  /** where the default output folder goes (default `runs`) */
  runsDir?: string;
  /** default heads and safetensors (DEFAULT_EXPORT_FORMATS); `onnx` adds onnx/ (../onnx/onnx-export.ts) */
  formats?: readonly ExportFormat[];
  /** names the mask in error messages (e.g. the mask file's path) */
  maskName?: string;
  /** argv and environment to record (command.txt, git.json, env.json), as every command's run folder does */
  provenance?: { argv: readonly string[]; env: Record<string, unknown> };
  /** compare the masked and the exported model on random sentences (default true) */
  verify?: boolean;
  /**
   * fold kept heads' deterministic gates into W_O (default true: the export computes the deterministic
   * gated model with the mask applied); false keeps kept heads at gate 1, the binary-gate model that
   * `heads prune` scores as "BLEU with pruned heads removed"
   */
  foldGates?: boolean;
  /** remove FFN hidden units by the L2 norm of their weights (ffn-pruning.ts), after head pruning; default off */
  ffn?: FfnPruningOptions;
  /** one-shot unstructured magnitude pruning (magnitude-pruning.ts), after head and FFN pruning; default off */
  magnitude?: MagnitudePruningOptions;
  /** store the matrices as int8 with per-channel float32 scales (quantize.ts), last; default false */
  int8?: boolean;
  warn?: (message: string) => void;
}

export interface FileSizes {
  /** model.safetensors */
  modelBytes: number;
  /** every file of the checkpoint folder */
  checkpointBytes?: number;
  path: string;
}

/** export.json */
export interface ExportSummary {
  format: 'heads.export';
  version: 1;
  createdAt: string;
  from: { checkpoint: string; step: number; run: string };
  outDir: string;
  formats: ExportFormat[];
  mask: { source: string; file: string | null; descriptor: string; prunedHeads: HfPruneDicts };
  heads: {
    /** heads in the original (unpruned) model */
    original: Record<AttentionType, number>;
    /** heads of the model that was loaded (fewer than original if it was already pruned) */
    before: Record<AttentionType, number>;
    after: Record<AttentionType, number>;
    /** original ids kept per layer */
    keptPerLayer: PerHead;
  };
  parameters: { before: number; gateLogAlphas: number; after: number; ratio: number };
  files: { before: FileSizes; heads: FileSizes | null; safetensors: FileSizes | null; onnx?: OnnxFiles | null };
  /** kept heads whose deterministic gate (not 1) was multiplied into W_O */
  foldedGates: FoldedGate[];
  /** gated heads whose deterministic gate is strictly between 0 and 1 (only for --mask gates) */
  fractionalGates: FractionalGate[];
  verification: { maxAbsLogitDiff: number; sentences: number; tokensPerSentence: number } | null;
  /**
   * Weight compression after head pruning, in this order (absent in exports written before it existed).
   * `verification` covers head and FFN pruning (exact up to rounding); magnitude pruning and int8 change
   * the function on purpose, so int8 reports its own logit difference against the float model it encodes.
   */
  compression?: {
    ffn: FfnPruningReport | null;
    magnitude: Omit<MagnitudePruningReport, 'tensors'> | null;
    int8: (QuantizationReport & { maxAbsLogitDiff: number | null }) | null;
    /** weights that are not zero in the exported model */
    nonZeroParameters: number;
  };
  notes: string[];
}

/** The ONNX graphs written (--format onnx). */
export interface OnnxFiles {
  encoderBytes: number;
  decoderBytes: number;
  path: string;
  int8: boolean;
}

function isHeadMask(m: MaskInput): m is HeadMask {
  return typeof m === 'object' && 'format' in m;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) {
    const s = statSync(join(dir, f));
    if (s.isFile()) n += s.size;
  }
  return n;
}

/** Refuse a non-empty output folder: exports, like runs, never overwrite. */
function checkOutDir(outDir: string): void {
  const path = resolve(outDir);
  if (!existsSync(path)) return;
  if (!statSync(path).isDirectory()) throw new ConfigError([`--out ${outDir}: exists and is not a folder`]);
  if (readdirSync(path).length > 0) throw new ConfigError([`--out ${outDir}: folder exists and is not empty (exports never overwrite; choose a new folder)`]);
}

/** HF dicts as given, or under `pruned_heads` (e.g. an exported safetensors/config.json). */
function hfDictsOf(value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && 'pruned_heads' in value) return (value as { pruned_heads: unknown }).pruned_heads;
  return value;
}

/** Max |logit difference| between `a` run with `gates` and `b` run ungated, on seeded random sentences. */
function compareLogits(
  a: Transformer,
  gates: GateTensors,
  b: Transformer,
  seed: number,
): { maxAbsLogitDiff: number; sentences: number; tokensPerSentence: number } {
  const B = 4;
  const T = Math.max(2, Math.min(12, a.config.maxPositions));
  const rng = new Rng(deriveSeed(seed, 'export-verify'));
  // ids >= 3: real tokens (0 pad, 1 <s>, 2 </s>)
  const ids = () => Int32Array.from({ length: B * T }, () => 3 + rng.int(Math.max(1, a.vocabSize - 3)));
  const srcIds = ids();
  const tgtIds = ids();
  const diff = tf.tidy(() => {
    const src = tf.tensor2d(srcIds, [B, T], 'int32');
    const tgt = tf.tensor2d(tgtIds, [B, T], 'int32');
    const la = a.forward(src, tgt, { isTraining: false, gates });
    const lb = b.forward(src, tgt, { isTraining: false });
    return tf.max(tf.abs(tf.sub(la, lb)));
  });
  const maxAbsLogitDiff = diff.dataSync()[0]!;
  diff.dispose();
  return { maxAbsLogitDiff, sentences: B, tokensPerSentence: T };
}

/** Resolve the mask input against the loaded model. */
function resolveMask(input: MaskInput, loaded: ReturnType<typeof loadModel>): { mask: HeadMask; fractional: FractionalGate[] } {
  const shape = originalMaskShape(loaded.config.model);
  if (input === 'none') return { mask: currentLayoutMask(loaded.config.model, 'none (every head the model has)'), fractional: [] };
  if (input === 'gates') {
    if (!loaded.gates) {
      throw new MaskError(
        `--mask gates: ${loaded.checkpoint.path} has no gates (gates.attention is [${loaded.config.gates.attention.join(', ')}] and the checkpoint ${Object.keys(loaded.checkpoint.params).some((k) => k.startsWith('gate.')) ? 'has' : 'has no'} gate.* tensors); give a mask file instead`,
      );
    }
    return deriveMaskFromGates(loaded.gates, loaded.config.model, 'gates');
  }
  if (isHeadMask(input)) return { mask: input, fractional: [] };
  if (input.kind === 'descriptor') return { mask: maskFromDescriptor(input.text, shape), fractional: [] };
  return { mask: maskFromHfPruneDict(hfDictsOf(input.value) as HfPruneDicts, shape, input.sourceName), fractional: [] };
}

/**
 * Export a pruned model (see the module header for the folder layout). Throws MaskError for masks that do
 * not fit, CheckpointError for unreadable models, ConfigError for an output folder that is not empty.
 */
export async function exportModel(o: ExportOptions): Promise<ExportSummary> {
  const formats = [...new Set(o.formats ?? DEFAULT_EXPORT_FORMATS)];
  if (formats.length === 0 || formats.some((f) => !EXPORT_FORMATS.includes(f))) {
    throw new ConfigError([`--format: expected some of ${EXPORT_FORMATS.join(', ')}, got ${JSON.stringify(o.formats)}`]);
  }
  if (o.outDir) checkOutDir(o.outDir); // fail before the (slow) load
  const loaded = loadModel(o.from, o.warn);
  const { model, gates, config, checkpoint } = loaded;
  let exported: Transformer | null = null;
  try {
    const { mask, fractional } = resolveMask(o.mask, loaded);
    const foldFrom = o.foldGates === false ? null : gates;
    const pruned = applyMaskToModel(model, foldFrom, mask, { sourceName: o.maskName ?? mask.source });
    // FFN units go next: the exported structure is the head-pruned model with narrower FFNs
    const ffnPlans = o.ffn ? planFfnPruning(pruned.params, pruned.config, o.ffn) : null;
    const shrunk = ffnPlans ? pruneFfnUnits(pruned.params, pruned.config, ffnPlans) : null;
    if (shrunk) pruned.config = shrunk.config;
    const structural: NamedArrays = shrunk ? shrunk.params : pruned.params;
    // the self-check runs before anything is written
    let verification: ExportSummary['verification'] = null;
    if (o.verify !== false) {
      exported = createTransformerFromArrays(pruned.config, model.vocabSize, structural);
      const g = maskedGateTensors(model, foldFrom, mask, o.maskName ?? mask.source);
      // with FFN pruning the reference is the loaded model with those units masked (zeroed)
      const reference = ffnPlans
        ? createTransformerFromArrays(config.model, model.vocabSize, maskFfnUnits(await model.params.toArrays(), config.model, ffnPlans))
        : model;
      try {
        verification = compareLogits(reference, g, exported, config.seed);
      } finally {
        disposeGates(g);
        if (reference !== model) reference.dispose();
      }
      // float32 folding moves logits by ~1e-6; anything near 1e-3 is a bug, not rounding
      if (!(verification.maxAbsLogitDiff < 1e-3))
        pruned.notes.push(
          `the exported model's logits differ from the masked model's by up to ${verification.maxAbsLogitDiff} (expected < 1e-5): please report this`,
        );
    }
    // unstructured magnitude pruning, then int8: what gets written
    const magnitude = o.magnitude ? magnitudePrune(structural, o.magnitude) : null;
    const finalParams: NamedArrays = magnitude ? magnitude.params : structural;
    let int8: NonNullable<ExportSummary['compression']>['int8'] = null;
    // quantized once: verified here, then written as the checkpoint's model file
    const q = o.int8 ? quantizeTensors(finalParams, 'heads') : null;
    if (q) {
      let maxAbsLogitDiff: number | null = null;
      if (o.verify !== false) {
        const floatModel = createTransformerFromArrays(pruned.config, model.vocabSize, finalParams);
        const deqModel = createTransformerFromArrays(pruned.config, model.vocabSize, dequantizeTensors(q.tensors, 'int8 export'));
        try {
          maxAbsLogitDiff = compareLogits(floatModel, {}, deqModel, config.seed).maxAbsLogitDiff;
        } finally {
          floatModel.dispose();
          deqModel.dispose();
        }
      }
      int8 = { ...q.report, maxAbsLogitDiff };
    }
    const encodeModel = q ? (): Record<string, SafeTensor> => q.tensors : undefined;
    // the ONNX graphs are built (and refused, e.g. for MoE models) before anything is written
    const onnx = formats.includes('onnx')
      ? buildOnnxExport({
          model: pruned.config,
          vocabSize: model.vocabSize,
          params: finalParams,
          int8: o.int8 === true,
          tokenizerText: readFileSync(join(loaded.runPath, 'tokenizer.json')),
          generation: {
            beamSize: config.eval.beamSize,
            lengthPenalty: config.eval.lengthPenalty,
            maxLenA: config.eval.maxLenA,
            maxLenB: config.eval.maxLenB,
            batchSentences: config.eval.batchSentences,
            maxTokensPerBatch: config.eval.maxTokensPerBatch,
          },
          source: { run: loaded.runPath, checkpoint: checkpoint.path, step: checkpoint.state.step },
          mask: pruned.mask,
          maskDescriptor: maskToDescriptor(pruned.mask),
        })
      : null;

    // created only once the mask fits, so a refused mask leaves nothing behind
    let outDir: string;
    if (o.outDir) {
      checkOutDir(o.outDir);
      outDir = resolve(o.outDir);
      mkdirSync(outDir, { recursive: true });
    } else outDir = RunFolder.create(o.runsDir ?? 'runs', `export-${config.name}`).path;

    // the exported model is ungated: its gates are folded into W_O
    const exportedConfig: ResolvedConfig = { ...config, model: pruned.config, gates: { ...config.gates, attention: [] } };
    writeHeadMask(join(outDir, 'mask.json'), mask);
    const tokenizerText = readFileSync(join(loaded.runPath, 'tokenizer.json'));

    let headsFiles: FileSizes | null = null;
    if (formats.includes('heads')) {
      if (o.provenance) RunFolder.open(outDir).writeProvenance({ config: exportedConfig, argv: o.provenance.argv, seed: config.seed, env: o.provenance.env });
      else writeJsonAtomic(join(outDir, 'config.json'), exportedConfig);
      writeFileAtomic(join(outDir, 'tokenizer.json'), tokenizerText);
      const dir = writeCheckpoint(
        outDir,
        { step: checkpoint.state.step, dataPosition: checkpoint.state.dataPosition, adamStep: 0, config: exportedConfig, extra: {} },
        finalParams,
        {},
        1,
        encodeModel,
      );
      headsFiles = { modelBytes: statSync(join(dir, 'model.safetensors')).size, checkpointBytes: dirBytes(dir), path: dir };
    }
    let torchFiles: FileSizes | null = null;
    if (formats.includes('safetensors')) {
      const dir = join(outDir, 'safetensors');
      const path = join(dir, 'model.safetensors');
      const torchTensors = toPytorchTensors(finalParams);
      const meta: Record<string, string> = { format: 'heads.pytorch-export', version: '1', layout: 'torch.nn.Linear [out, in]' };
      if (o.int8) meta.quantization = 'int8 weight-only, per output channel, symmetric: weight = weight(I8) * weight_scale(F32, [out, 1])';
      writeSafetensors(
        path,
        o.int8 ? quantizeTensors(torchTensors as Record<string, { shape: number[]; data: Float32Array }>, 'pytorch').tensors : torchTensors,
        meta,
      );
      const torchConfig = pytorchConfig(exportedConfig, model.vocabSize, pruned.mask, { checkpoint: checkpoint.path, step: checkpoint.state.step });
      const extra = {
        ...(pruned.config.ffnWidths ? { ffn_widths: pruned.config.ffnWidths } : {}),
        ...(o.int8
          ? { quantization: { method: 'int8-weight-only', scheme: 'symmetric per output channel', scale_suffix: '_scale', activations: 'float32' } }
          : {}),
      };
      writeJsonAtomic(join(dir, 'config.json'), { ...torchConfig, ...extra });
      writeFileAtomic(join(dir, 'tokenizer.json'), tokenizerText);
      torchFiles = { modelBytes: statSync(path).size, path };
    }
    const onnxFiles: OnnxFiles | null = onnx ? { ...writeOnnxExport(join(outDir, 'onnx'), onnx, tokenizerText), int8: o.int8 === true } : null;

    const emptyDecoderLayers = (['dec-self', 'dec-enc'] as const).flatMap((stack) =>
      (pruned.config.keptHeads?.[stack] ?? []).flatMap((ids, l) => (ids.length ? [] : [`${stack}.${l}`])),
    );
    if (emptyDecoderLayers.length) {
      pruned.notes.push(
        `decoder attention layer(s) ${emptyDecoderLayers.join(', ')} have no heads: forward passes and greedy decoding work, but beam search over them fails on the wasm backend (tfjs-backend-wasm 4.22 GatherV2 mis-shapes empty tensors, which beam search gathers in Transformer.selectRows and reorderSelfCaches); use --beam 1 there until that is fixed (the ONNX export, --format onnx, decodes them with beam search in ONNX Runtime)`,
      );
    }
    const before = headCounts(config.model);
    const after = headCounts(pruned.config);
    const original = headCounts({ ...config.model, keptHeads: null });
    const gateLogAlphas = gates?.gatedHeadCount ?? 0;
    const parametersAfter = countParameters(finalParams);
    const summary: ExportSummary = {
      format: 'heads.export',
      version: 1,
      createdAt: new Date().toISOString(),
      from: { checkpoint: checkpoint.path, step: checkpoint.state.step, run: loaded.runPath },
      outDir,
      formats,
      mask: { source: mask.source, file: 'mask.json', descriptor: maskToDescriptor(pruned.mask), prunedHeads: maskToHfPruneDict(pruned.mask) },
      heads: {
        original,
        before,
        after,
        keptPerLayer: {
          'enc-self': pruned.mask.stacks['enc-self']!.layers.map((l) => l.kept),
          'dec-self': pruned.mask.stacks['dec-self']!.layers.map((l) => l.kept),
          'dec-enc': pruned.mask.stacks['dec-enc']!.layers.map((l) => l.kept),
        },
      },
      parameters: { before: pruned.parameters.before, gateLogAlphas, after: parametersAfter, ratio: parametersAfter / pruned.parameters.before },
      files: {
        before: {
          modelBytes: checkpoint.state.files['model.safetensors']?.bytes ?? statSync(join(checkpoint.path, 'model.safetensors')).size,
          checkpointBytes: dirBytes(checkpoint.path),
          path: checkpoint.path,
        },
        heads: headsFiles,
        safetensors: torchFiles,
        ...(formats.includes('onnx') ? { onnx: onnxFiles } : {}),
      },
      foldedGates: pruned.foldedGates,
      fractionalGates: fractional,
      verification,
      ...(o.ffn || o.magnitude || o.int8
        ? {
            compression: {
              ffn: shrunk ? { fraction: o.ffn!.fraction, scope: o.ffn!.scope ?? 'per-layer', ...shrunk.report } : null,
              magnitude: magnitude
                ? {
                    sparsity: magnitude.report.sparsity,
                    scope: magnitude.report.scope,
                    includeEmbeddings: magnitude.report.includeEmbeddings,
                    prunable: magnitude.report.prunable,
                    zeroed: magnitude.report.zeroed,
                  }
                : null,
              int8,
              nonZeroParameters: countNonZero(finalParams),
            },
          }
        : {}),
      notes: pruned.notes,
    };
    writeJsonAtomic(join(outDir, 'export.json'), summary);
    return summary;
  } finally {
    exported?.dispose();
    gates?.dispose();
    model.dispose();
  }
}

function countParameters(p: NamedArrays): number {
  return Object.values(p).reduce((a, t) => a + t.data.length, 0);
}

function countNonZero(p: NamedArrays): number {
  let n = 0;
  for (const t of Object.values(p)) for (let i = 0; i < t.data.length; i++) if (t.data[i] !== 0) n++;
  return n;
}

function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

function percentChange(before: number, after: number): string {
  if (before === 0) return '';
  const p = ((after - before) / before) * 100;
  return ` (${p >= 0 ? '+' : ''}${p.toFixed(1)}%)`;
}

/** The human summary the CLI prints. */
export function formatExportSummary(s: ExportSummary): string {
  const lines: string[] = [];
  lines.push(`exported ${s.outDir}`);
  lines.push(`  from ${s.from.checkpoint} (step ${s.from.step})`);
  lines.push(`  mask: ${s.mask.source}${s.mask.descriptor ? ` | removed: ${s.mask.descriptor}` : ' | removes nothing'}`);
  for (const stack of ATTENTION_TYPES) {
    if (s.heads.original[stack] === 0) continue;
    const perLayer = s.heads.keptPerLayer[stack].map((ids) => ids.length).join(' ');
    lines.push(
      `  ${stack.padEnd(8)} heads ${String(s.heads.after[stack]).padStart(4)}/${s.heads.original[stack]}${s.heads.before[stack] !== s.heads.original[stack] ? ` (was ${s.heads.before[stack]})` : ''} | per layer: ${perLayer}`,
    );
  }
  lines.push(
    `  parameters: ${formatCount(s.parameters.before)} -> ${formatCount(s.parameters.after)}${percentChange(s.parameters.before, s.parameters.after)}${s.parameters.gateLogAlphas ? ` (plus ${s.parameters.gateLogAlphas} gate log-alphas before, folded)` : ''}`,
  );
  const b = s.files.before;
  if (s.files.heads)
    lines.push(
      `  heads checkpoint: model.safetensors ${formatBytes(b.modelBytes)} -> ${formatBytes(s.files.heads.modelBytes)}${percentChange(b.modelBytes, s.files.heads.modelBytes)}; checkpoint folder ${formatBytes(b.checkpointBytes ?? 0)} -> ${formatBytes(s.files.heads.checkpointBytes ?? 0)} (no optimizer state)`,
    );
  if (s.files.onnx)
    lines.push(
      `  onnx${s.files.onnx.int8 ? ' (int8 MatMulInteger)' : ''}: ${s.files.onnx.path} encoder.onnx ${formatBytes(s.files.onnx.encoderBytes)}, decoder.onnx ${formatBytes(s.files.onnx.decoderBytes)}`,
    );
  if (s.files.safetensors)
    lines.push(
      `  pytorch: ${s.files.safetensors.path} ${formatBytes(s.files.safetensors.modelBytes)}${percentChange(b.modelBytes, s.files.safetensors.modelBytes)}`,
    );
  const fractionalRemoved = s.fractionalGates.filter((g) => !g.isKept);
  if (s.foldedGates.length)
    lines.push(
      `  folded gates: ${s.foldedGates.length} kept head(s) with gate < 1 (${s.foldedGates
        .slice(0, 6)
        .map((g) => `${g.key}=${g.gate.toFixed(3)}`)
        .join(', ')}${s.foldedGates.length > 6 ? ', ...' : ''})`,
    );
  if (fractionalRemoved.length)
    lines.push(
      `  removed with a fractional gate: ${fractionalRemoved.length} (${fractionalRemoved
        .slice(0, 6)
        .map((g) => `${g.key}=${g.testGate.toFixed(3)}`)
        .join(', ')}${fractionalRemoved.length > 6 ? ', ...' : ''})`,
    );
  if (s.verification)
    lines.push(
      `  check: max |logit difference| masked vs exported = ${s.verification.maxAbsLogitDiff.toExponential(2)} (${s.verification.sentences} random sentences x ${s.verification.tokensPerSentence} tokens)`,
    );
  const c = s.compression;
  if (c?.ffn)
    lines.push(
      `  FFN units: ${c.ffn.before} -> ${c.ffn.after} (${c.ffn.scope}, fraction ${c.ffn.fraction}) | per layer: enc ${c.ffn.widthsAfter.encoder.join(' ')} | dec ${c.ffn.widthsAfter.decoder.join(' ')}`,
    );
  if (c?.magnitude)
    lines.push(
      `  magnitude pruning (${c.magnitude.scope}${c.magnitude.includeEmbeddings ? ', embeddings included' : ''}): zeroed ${c.magnitude.zeroed}/${c.magnitude.prunable} weights (${((c.magnitude.zeroed / Math.max(1, c.magnitude.prunable)) * 100).toFixed(1)}%); stored dense`,
    );
  if (c?.int8)
    lines.push(
      `  int8: ${c.int8.tensors} matrices (${formatCount(c.int8.int8Parameters)} weights) + ${c.int8.scales} float32 scales, ${formatCount(c.int8.float32Parameters)} float32 (biases, norms); tensor bytes ${formatBytes(c.int8.payloadBytesBefore)} -> ${formatBytes(c.int8.payloadBytesAfter)}${c.int8.maxAbsLogitDiff !== null ? `; max |logit difference| float vs int8 = ${c.int8.maxAbsLogitDiff.toExponential(2)}` : ''}`,
    );
  if (c) lines.push(`  non-zero parameters: ${formatCount(c.nonZeroParameters)} of ${formatCount(s.parameters.after)}`);
  for (const n of s.notes) lines.push(`  note: ${n}`);
  return lines.join('\n');
}
