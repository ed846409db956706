/**
 * `heads export <run or checkpoint> --mask <mask file | gates>`: physically prune a trained model and
 * write it in the toolkit's format and/or as PyTorch-ready safetensors (src/export/export-model.ts).
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import * as tf from '@tensorflow/tfjs';
import { type BackendChoice, BACKEND_CHOICES } from '../../backend/select.js';
import { runHandler, startBackend } from '../common.js';
import { type ExportFormat, type MaskInput, exportModel, formatExportSummary } from '../../export/export-model.js';
import { readHeadMask } from '../../export/head-mask.js';
import { ConfigError } from '../../util/errors.js';
import { readJsonFile } from '../../util/fs.js';

interface Args {
  model: string;
  mask?: string;
  'mask-descriptor'?: string;
  'hf-prune-dict'?: string;
  out?: string;
  'runs-dir': string;
  format: 'heads' | 'safetensors' | 'both';
  verify: boolean;
  'fold-gates': boolean;
  backend: BackendChoice;
}

export const command = 'export <model>';
export const describe = 'Prune heads physically and export the smaller model (toolkit checkpoint and/or PyTorch safetensors)';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('model', { type: 'string', demandOption: true, describe: 'run folder or checkpoint folder' })
    .option('mask', { type: 'string', describe: "head-mask file (heads.head-mask JSON), or 'gates' for the paper's rule on the model's gates" })
    .option('mask-descriptor', { type: 'string', describe: "heads to remove, Michel style, 1-based: 'E:1:1,2 A:6:2 D:1:1' (E enc-self, D dec-self, A dec-enc)" })
    .option('hf-prune-dict', { type: 'string', describe: 'JSON file: { "enc-self": { "<layer>": [heads to prune] }, ... } (or a config with "pruned_heads")' })
    .option('out', { alias: 'o', type: 'string', describe: 'output folder (new or empty; default: a new run folder under --runs-dir)' })
    .option('runs-dir', { type: 'string', default: 'runs', describe: 'where the default output folder is created' })
    .option('format', { type: 'string', choices: ['heads', 'safetensors', 'both'] as const, default: 'both' as const, describe: 'toolkit checkpoint, PyTorch safetensors, or both' })
    .option('verify', { type: 'boolean', default: true, describe: 'compare masked and exported logits on random sentences' })
    .option('fold-gates', { type: 'boolean', default: true, describe: "fold kept heads' deterministic gates into W_O (--no-fold-gates: kept heads at gate 1, as `heads prune` scores)" })
    .option('backend', { type: 'string', choices: BACKEND_CHOICES as BackendChoice[], default: 'auto' as BackendChoice })
    .example("$0 export runs/20250101-120000-gated --mask gates", 'prune the heads the gates closed')
    .example("$0 export runs/x --mask-descriptor 'E:1:1,2' --format safetensors --out pruned/", 'remove heads 1 and 2 of encoder layer 1') as unknown as Argv<Args>;
}

/** Exactly one of --mask, --mask-descriptor, --hf-prune-dict. */
export function maskInputOf(args: Pick<Args, 'mask' | 'mask-descriptor' | 'hf-prune-dict'>): { input: MaskInput; name?: string } {
  const given = (['mask', 'mask-descriptor', 'hf-prune-dict'] as const).filter((k) => args[k] !== undefined);
  if (given.length !== 1) {
    throw new ConfigError([`export: expected exactly one of --mask, --mask-descriptor, --hf-prune-dict, got ${given.length ? given.map((g) => `--${g}`).join(', ') : 'none'}`]);
  }
  if (args.mask !== undefined) return args.mask === 'gates' ? { input: 'gates' } : { input: readHeadMask(args.mask), name: args.mask };
  if (args['mask-descriptor'] !== undefined) return { input: { kind: 'descriptor', text: args['mask-descriptor'] } };
  const path = args['hf-prune-dict']!;
  return { input: { kind: 'hf-prune-dict', value: readJsonFile(path, 'HF prune dict'), sourceName: path }, name: path };
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    const { input, name } = maskInputOf(args);
    const backend = await startBackend(args.backend);
    const formats: ExportFormat[] = args.format === 'both' ? ['heads', 'safetensors'] : [args.format];
    const summary = await exportModel({
      from: args.model,
      mask: input,
      maskName: name,
      outDir: args.out,
      runsDir: args['runs-dir'],
      formats,
      verify: args.verify,
      foldGates: args['fold-gates'],
      provenance: { argv: process.argv.slice(1), env: { backend: backend.name, backendPackage: backend.packageName, kernelFixes: backend.fixes, tfjs: tf.version_core } },
      warn: (m) => console.error(`warning: ${m}`),
    });
    console.log(formatExportSummary(summary));
  });
}
