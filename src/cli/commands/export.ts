/**
 * `heads export <run or checkpoint> --mask <mask file | gates>`: physically prune a trained model and
 * write it in the toolkit's format and/or as PyTorch-ready safetensors (src/export/export-model.ts).
 */
import { DEFAULT_EXPORT } from '../../config/defaults.js';
import type { ArgumentsCamelCase, Argv } from 'yargs';
import * as tf from '@tensorflow/tfjs';
import { type BackendChoice, BACKEND_CHOICES } from '../../backend/select.js';
import { runHandler, startBackend } from '../common.js';
import { ignoredIn, refuseIgnoredFlags } from '../options.js';
import { checkOutputFolder } from '../../util/dirs.js';
import { type ExportFormat, type ExportOptions, type MaskInput, exportModel, formatExportSummary } from '../../export/export-model.js';
import { readHeadMask } from '../../io/head-mask.js';
import { ConfigError } from '../../util/errors.js';
import { readJsonFile } from '../../util/fs.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runFolderOf } from '../../io/load-model.js';
import { findImportRecord, writeHfMarian } from '../../import/export-marian.js';

interface Args {
  model: string;
  mask?: string;
  'mask-descriptor'?: string;
  'hf-prune-dict'?: string;
  out?: string;
  'runs-dir': string;
  format: 'heads' | 'safetensors' | 'onnx' | 'both' | 'all' | 'hf-marian';
  verify: boolean;
  'fold-gates': boolean;
  'magnitude-sparsity'?: string;
  'per-layer'?: boolean;
  'prune-embeddings'?: boolean;
  'ffn-prune'?: string;
  'ffn-scope'?: string;
  int8?: boolean;
  backend: BackendChoice;
}

export const command = 'export <model>';
export const describe = 'Prune heads physically and export the smaller model (toolkit checkpoint and/or PyTorch safetensors)';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('model', { type: 'string', demandOption: true, describe: 'run folder or checkpoint folder' })
    .option('mask', { type: 'string', describe: "head-mask file (heads.head-mask JSON), or 'gates' for the paper's rule on the model's gates" })
    .option('mask-descriptor', {
      type: 'string',
      describe: "heads to remove, Michel style, 1-based: 'E:1:1,2 A:6:2 D:1:1' (E enc-self, D dec-self, A dec-enc)",
    })
    .option('hf-prune-dict', { type: 'string', describe: 'JSON file: { "enc-self": { "<layer>": [heads to prune] }, ... } (or a config with "pruned_heads")' })
    .option('out', { alias: 'o', type: 'string', describe: 'output folder (new or empty; default: a new run folder under --runs-dir)' })
    .option('runs-dir', { type: 'string', default: 'runs', describe: 'where the default output folder is created' })
    .option('format', {
      type: 'string',
      choices: ['heads', 'safetensors', 'onnx', 'both', 'all', 'hf-marian'] as const,
      default: DEFAULT_EXPORT.format,
      describe:
        'toolkit checkpoint, PyTorch safetensors, ONNX encoder + decoder graphs (onnx/), both (heads + safetensors), all three, or hf-marian (an imported Marian model: the toolkit checkpoint + hf-marian/, a folder MarianMTModel.from_pretrained loads)',
    })
    .option('verify', { type: 'boolean', default: DEFAULT_EXPORT.verify, describe: 'compare masked and exported logits on random sentences' })
    .option('fold-gates', {
      type: 'boolean',
      default: DEFAULT_EXPORT.foldGates,
      describe: "fold kept heads' deterministic gates into W_O as `heads prune` scores the pruned model (--no-fold-gates: kept heads at gate 1)",
    })
    .option('magnitude-sparsity', {
      type: 'string',
      describe: 'unstructured magnitude pruning: zero this fraction in [0, 1) of the weight matrices (not biases or norms)',
    })
    .option('per-layer', { type: 'boolean', describe: 'with --magnitude-sparsity: the fraction in every matrix instead of globally' })
    .option('prune-embeddings', { type: 'boolean', describe: 'with --magnitude-sparsity: include the embedding tables (default: left whole)' })
    .option('ffn-prune', {
      type: 'string',
      describe: 'remove this fraction in [0, 1) of the FFN hidden units, smallest L2 norm of in+out weights first (shrinks d_ff per layer)',
    })
    .option('ffn-scope', { type: 'string', describe: 'with --ffn-prune: per-layer (default; the fraction in every layer) or global' })
    .option('int8', { type: 'boolean', describe: 'store weight matrices as int8 with per-output-channel float32 scales (activations stay float32)' })
    .option('backend', { type: 'string', choices: BACKEND_CHOICES as BackendChoice[], default: 'auto' as BackendChoice })
    .example('$0 export runs/20250101-120000-gated --mask gates', 'prune the heads the gates closed')
    .example("$0 export runs/x --mask-descriptor 'E:1:1,2' --format safetensors --out pruned/", 'remove heads 1 and 2 of encoder layer 1')
    .example(
      '$0 export runs/x --mask gates --format all --int8 --out pruned/',
      'also write ONNX graphs computing in int8 (translate with --engine onnx)',
    ) as unknown as Argv<Args>;
}

/** A fraction flag: a number in [0, 1), else a ConfigError naming the flag and the value given. */
function fractionFlag(raw: string, flag: string): number {
  const v = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v) || v < 0 || v >= 1) throw new ConfigError([`--${flag}: expected a fraction in [0, 1) (e.g. 0.5), got ${JSON.stringify(raw)}`]);
  return v;
}

/** The weight-compression options (--magnitude-sparsity, --ffn-prune, --int8), checked together. */
export function compressionOptionsOf(
  args: Pick<Args, 'magnitude-sparsity' | 'per-layer' | 'prune-embeddings' | 'ffn-prune' | 'ffn-scope' | 'int8'>,
): Pick<ExportOptions, 'magnitude' | 'ffn' | 'int8'> {
  const out: Pick<ExportOptions, 'magnitude' | 'ffn' | 'int8'> = {};
  const problems: string[] = [];
  const ms = args['magnitude-sparsity'];
  if (ms === undefined) {
    for (const f of ['per-layer', 'prune-embeddings'] as const)
      if (args[f] !== undefined) problems.push(`--${f}: only applies with --magnitude-sparsity, which was not given`);
  } else {
    try {
      out.magnitude = {
        sparsity: fractionFlag(ms, 'magnitude-sparsity'),
        scope: (args['per-layer'] ?? DEFAULT_EXPORT.magnitudePerLayer) ? 'per-layer' : 'global',
        includeEmbeddings: args['prune-embeddings'] ?? DEFAULT_EXPORT.pruneEmbeddings,
      };
    } catch (e) {
      problems.push(...(e as ConfigError).problems);
    }
  }
  const fp = args['ffn-prune'];
  const scope = args['ffn-scope'];
  if (scope !== undefined && scope !== 'per-layer' && scope !== 'global')
    problems.push(`--ffn-scope: expected per-layer or global, got ${JSON.stringify(scope)}`);
  if (fp === undefined) {
    if (scope !== undefined) problems.push('--ffn-scope: only applies with --ffn-prune, which was not given');
  } else {
    try {
      out.ffn = { fraction: fractionFlag(fp, 'ffn-prune'), scope: scope === 'global' || scope === 'per-layer' ? scope : DEFAULT_EXPORT.ffnScope };
    } catch (e) {
      problems.push(...(e as ConfigError).problems);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  if (args.int8 ?? DEFAULT_EXPORT.int8) out.int8 = true;
  return out;
}

/**
 * Exactly one of --mask, --mask-descriptor, --hf-prune-dict; none is allowed when the export only
 * compresses weights (`compressing`): then every head is kept.
 */
export function maskInputOf(args: Pick<Args, 'mask' | 'mask-descriptor' | 'hf-prune-dict'>, compressing = false): { input: MaskInput; name?: string } {
  const given = (['mask', 'mask-descriptor', 'hf-prune-dict'] as const).filter((k) => args[k] !== undefined);
  if (given.length === 0 && compressing) return { input: 'none' };
  if (given.length !== 1) {
    throw new ConfigError([
      `export: expected exactly one of --mask, --mask-descriptor, --hf-prune-dict${given.length === 0 ? ' (or a weight compression: --magnitude-sparsity, --ffn-prune, --int8)' : ''}, got ${given.length ? given.map((g) => `--${g}`).join(', ') : 'none'}`,
    ]);
  }
  if (args.mask !== undefined) return args.mask === 'gates' ? { input: 'gates' } : { input: readHeadMask(args.mask), name: args.mask };
  if (args['mask-descriptor'] !== undefined) return { input: { kind: 'descriptor', text: args['mask-descriptor'] } };
  const path = args['hf-prune-dict']!;
  return { input: { kind: 'hf-prune-dict', value: readJsonFile(path, 'HF prune dict'), sourceName: path }, name: path };
}

/**
 * The PyTorch safetensors layout (pytorch-format.ts) and the ONNX graphs know the toolkit's own model only:
 * an imported model's options (model.activation, positions, embedScale, finalLogitsBias) would be dropped
 * silently, so those formats are refused for it (`--format heads` and `hf-marian` carry them).
 */
function refuseUnportableOptions(model: string, formats: readonly ExportFormat[]): void {
  const portable = formats.filter((f) => f === 'safetensors' || f === 'onnx');
  if (!portable.length) return;
  const cfgPath = join(runFolderOf(model), 'config.json');
  if (!existsSync(cfgPath)) return;
  const m = (readJsonFile(cfgPath, 'run config') as { model?: Record<string, unknown> }).model ?? {};
  const set = (['activation', 'positions', 'embedScale', 'finalLogitsBias', 'neverGenerate'] as const).filter(
    (k) => m[k] !== undefined && !(k === 'activation' && m[k] === 'relu') && !(k === 'positions' && m[k] === 'interleaved') && m[k] !== false,
  );
  if (set.length)
    throw new ConfigError([
      `--format: ${portable.join(' and ')} cannot carry model.${set.join(', model.')} of ${cfgPath} (an imported model); use --format hf-marian (a Hugging Face folder) or --format heads`,
    ]);
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    refuseIgnoredFlags(ignoredIn(args.out !== undefined, 'not with --out, which names the output folder itself', ['runs-dir']));
    if (args.out) checkOutputFolder(args.out, '--out');
    const compression = compressionOptionsOf(args);
    const { input, name } = maskInputOf(args, Object.keys(compression).length > 0);
    const formats: ExportFormat[] =
      args.format === 'both'
        ? ['heads', 'safetensors']
        : args.format === 'all'
          ? ['heads', 'safetensors', 'onnx']
          : args.format === 'hf-marian'
            ? ['heads']
            : [args.format];
    refuseUnportableOptions(args.model, formats);
    const backend = await startBackend(args.backend);
    const summary = await exportModel({
      from: args.model,
      mask: input,
      maskName: name,
      outDir: args.out,
      runsDir: args['runs-dir'],
      formats,
      verify: args.verify,
      foldGates: args['fold-gates'],
      ...compression,
      provenance: {
        argv: process.argv.slice(1),
        env: { backend: backend.name, backendPackage: backend.packageName, kernelFixes: backend.fixes, tfjs: tf.version_core },
      },
      warn: (m) => console.error(`warning: ${m}`),
    });
    console.log(formatExportSummary(summary));
    if (args.format === 'hf-marian') {
      // the pruned toolkit model, back in Hugging Face's uniform layout (src/import/export-marian.ts)
      const hf = join(summary.outDir, 'hf-marian');
      const r = writeHfMarian(summary.outDir, hf, findImportRecord(runFolderOf(args.model)));
      console.log(`  hf-marian: ${hf} (model.safetensors ${r.bytes} bytes; ${r.zeroedHeads} of ${r.heads} heads zeroed, shapes uniform)`);
    }
  });
}
