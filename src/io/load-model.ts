/**
 * Load a trained model for translation, analysis, pruning or export: from a run folder (the checkpoint
 * `checkpoints/best.json` names after early stopping, else its newest valid one) or a checkpoint folder. The tokenizer comes from the run folder; the model shape from the
 * checkpoint's config, so a physically pruned model (per-layer head lists) loads the same way.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ResolvedConfig } from '../config/schema.js';
import { Transformer, initParams } from '../model/transformer.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { HeadGates } from '../gates/head-gates.js';
import { CheckpointError } from '../util/errors.js';
import { Rng } from '../util/random.js';
import { type LoadedCheckpoint, findModelCheckpoint } from './checkpoint.js';

export interface LoadedModel {
  model: Transformer;
  tokenizer: BpeTokenizer;
  gates: HeadGates | null;
  config: ResolvedConfig;
  checkpoint: LoadedCheckpoint;
  runPath: string;
}

/** The run folder that holds a checkpoint folder (run/checkpoints/step-N -> run). */
export function runFolderOf(path: string): string {
  if (existsSync(join(path, 'state.json'))) return dirname(dirname(path));
  return path;
}

/** Assign checkpoint arrays to a model (and gates), checking every name and shape. */
export function assignWeights(
  model: Transformer,
  gates: HeadGates | null,
  c: Pick<LoadedCheckpoint, 'path' | 'params'>,
  opts: { allowMissingGates?: boolean; tokenizerSource?: string } = {},
): void {
  // the vocabulary first: a tokenizer.json that is not the model's would otherwise surface as a shape error
  for (const name of ['emb.shared', 'emb.src', 'emb.tgt']) {
    const a = c.params[name];
    const v = model.params.vars.get(name);
    if (a && v && a.shape[0] !== v.shape[0])
      throw new CheckpointError(
        `${c.path}: the model was trained with a vocabulary of ${a.shape[0]} entries, but the tokenizer${opts.tokenizerSource ? ` ${opts.tokenizerSource}` : ''} has ${v.shape[0]}: use the tokenizer.json of the run that made this checkpoint`,
      );
  }
  const problems: string[] = [];
  for (const [name, v] of model.params.vars) {
    const a = c.params[name];
    if (!a) problems.push(`missing tensor ${name}`);
    else if (a.shape.join(',') !== v.shape.join(',')) problems.push(`${name}: checkpoint shape [${a.shape}] but the model expects [${v.shape}]`);
  }
  if (gates)
    for (const [name, v] of gates.variables) {
      const a = c.params[name];
      if (!a) {
        if (!opts.allowMissingGates) problems.push(`missing gate tensor ${name}`);
      } else if (a.shape.join(',') !== v.shape.join(',')) problems.push(`${name}: checkpoint shape [${a.shape}] but the gates expect [${v.shape}]`);
    }
  if (problems.length)
    throw new CheckpointError(
      `${c.path}: does not fit the model: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`,
    );
  for (const [name] of model.params.vars) model.params.assign(name, c.params[name]!.shape, c.params[name]!.data);
  if (gates)
    for (const [name, v] of gates.variables) {
      const a = c.params[name];
      if (a) tf.tidy(() => v.assign(tf.tensor(a.data, a.shape, 'float32')));
    }
}

/** A model's files, read and checked without tfjs (openModelFiles). */
export interface ModelFiles {
  checkpoint: LoadedCheckpoint;
  runPath: string;
  tokenizer: BpeTokenizer;
  tokenizerPath: string;
}

/**
 * The checkpoint and tokenizer of a run or checkpoint folder, read and checked with no tfjs call: commands
 * open the model's files before they start a backend, so a bad folder gets its one error line first.
 */
export function openModelFiles(path: string, warn: (m: string) => void = () => {}): ModelFiles {
  const checkpoint = findModelCheckpoint(path, warn);
  const runPath = runFolderOf(checkpoint.path);
  const tokenizerPath = join(runPath, 'tokenizer.json');
  if (!existsSync(tokenizerPath)) throw new CheckpointError(`${runPath}: no tokenizer.json beside the checkpoints`);
  return { checkpoint, runPath, tokenizer: BpeTokenizer.load(tokenizerPath), tokenizerPath };
}

/** The model of a folder (or of files openModelFiles read), built on the current backend. */
export function loadModel(from: string | ModelFiles, warn: (m: string) => void = () => {}): LoadedModel {
  const { checkpoint, runPath, tokenizer, tokenizerPath } = typeof from === 'string' ? openModelFiles(from, warn) : from;
  const config = checkpoint.state.config;
  const model = new Transformer(config.model, tokenizer.vocabSize, initParams(config.model, tokenizer.vocabSize, new Rng(0)));
  const hasGates = Object.keys(checkpoint.params).some((k) => k.startsWith('gate.'));
  const gates = hasGates && config.gates.attention.length ? new HeadGates(config.gates, model.shape, config.seed) : null;
  assignWeights(model, gates, checkpoint, { tokenizerSource: tokenizerPath });
  return { model, tokenizer, gates, config, checkpoint, runPath };
}
