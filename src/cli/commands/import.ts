/** `heads import marian <folder>`: a Hugging Face MarianMT (opus-mt) folder -> a toolkit run folder (src/import/marian.ts). */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { runHandler } from '../common.js';
import { marianToToolkit, readMarianFolder, writeImportedRun } from '../../import/marian.js';
import { writeCheckpoint } from '../../io/checkpoint.js';
import { RunFolder } from '../../util/run-folder.js';
import { makeDirs } from '../../util/dirs.js';
import { ConfigError } from '../../util/errors.js';

interface Args {
  kind: string;
  folder: string;
  out?: string;
  'runs-dir': string;
}

export const command = 'import <kind> <folder>';
export const describe = 'Import a Hugging Face model folder (kind: marian, i.e. MarianMT / opus-mt) as a toolkit run folder';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('kind', { type: 'string', choices: ['marian'], demandOption: true, describe: 'the model family' })
    .positional('folder', {
      type: 'string',
      demandOption: true,
      describe: 'the downloaded folder (config.json, model.safetensors or pytorch_model.bin, source.spm, target.spm, vocab.json)',
    })
    .option('out', { type: 'string', describe: 'the run folder to write (new or empty; default: a new folder under --runs-dir)' })
    .option('runs-dir', { type: 'string', default: 'runs', describe: 'where the run folder is created without --out' }) as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    if (args.out && existsSync(args.out) && readdirSync(args.out).length > 0)
      throw new ConfigError([`--out: ${args.out} exists and is not empty (expected a new or empty folder)`]);
    // everything is read and checked before anything is written
    const m = readMarianFolder(args.folder);
    const converted = marianToToolkit(m);
    let run: RunFolder;
    if (args.out) {
      makeDirs(args.out);
      run = RunFolder.open(args.out);
    } else run = RunFolder.create(args['runs-dir'], `import-${converted.config.name}`);
    run.writeProvenance({
      config: converted.config,
      argv: process.argv.slice(1),
      seed: converted.config.seed,
      env: { tfjs: tf.version_core, importedFrom: resolve(args.folder) },
    });
    writeImportedRun(m, converted, run, (path, config, params) => {
      writeCheckpoint(path, { step: 0, dataPosition: { epoch: 0, batch: 0 }, adamStep: 0, config, extra: {} }, params, {}, 1);
    });
    const c = converted.config.model;
    console.log(
      `${run.path}: ${c.encoderLayers}+${c.decoderLayers} layers, ${c.heads} heads, d_model ${c.dModel}, FFN ${c.dFF} (${c.activation}), vocabulary ${m.tokenizer.marianVocab.length} (+1 toolkit pad), from ${m.weightsFile}`,
    );
  });
}
