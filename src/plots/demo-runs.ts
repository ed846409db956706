/**
 * The small runs the notebooks fall back to when they are given no run folder: a short training run on
 * the embedded toy EN->DE data (the quickstart model with fewer steps and sentences), and a short
 * pruning run of it with Hard Concrete gates and an exact head budget (Voita et al. 2019, section 6.1).
 * Both write ordinary run folders (provenance, metrics.jsonl, checkpoints, gate-trajectory.csv,
 * mask.json), the same as `heads train` / `heads prune`.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, loadConfigOn } from '../config/load.js';
import type { AttentionType } from '../config/head-id.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { findLatestValidCheckpoint } from '../train/checkpoint.js';
import { runFolderOf } from '../train/load-model.js';
import { type PruneResult, runPruning } from '../train/prune.js';
import { type RunTrainingResult, runTraining } from '../train/run-training.js';
import { CheckpointError } from '../util/errors.js';
import { RunFolder } from '../util/run-folder.js';

/** The notebooks' small training run: about 2 minutes on 2 cores, dev BLEU well above zero. */
export const SMALL_TRAIN_OVERRIDES: readonly string[] = [
  'name=nb-small',
  'data.synthetic.trainPairs=6000',
  'data.synthetic.validPairs=100',
  'data.synthetic.testPairs=50',
  'train.maxSteps=400',
  'train.logEverySteps=20',
  'train.evalEverySteps=100',
  'train.devBleuSentences=50',
  'train.checkpointEverySteps=400',
];

/** The notebooks' small pruning run: every attention type gated, half the heads kept, a few hundred steps. */
export const SMALL_PRUNE_OVERRIDES: readonly string[] = ['train.maxSteps=300', 'train.logEverySteps=10', 'train.evalEverySteps=0', 'train.checkpointEverySteps=300', 'gates.targetWarmupSteps=150', 'gates.lrScale=10'];

export interface DemoRunOptions {
  /** where the run folder is created (e.g. `../runs` from notebooks/) */
  runsDir: string;
  /** extra `--set`-style overrides, applied last */
  overrides?: readonly string[];
  /** recorded as the run's command (default: `notebook`) */
  argv?: readonly string[];
}

function provenance(run: RunFolder, config: Parameters<RunFolder['writeProvenance']>[0]['config'], seed: number, argv: readonly string[]): void {
  run.writeProvenance({ config, argv, seed, env: { backend: tf.getBackend(), tfjs: tf.version_core } });
}

/** Train the small run; returns its folder and result. */
export async function trainSmallRun(o: DemoRunOptions): Promise<{ path: string; result: RunTrainingResult }> {
  const config = loadConfig(null, [...SMALL_TRAIN_OVERRIDES, ...(o.overrides ?? [])]);
  const run = RunFolder.create(o.runsDir, `train-${config.name}`);
  provenance(run, config, config.seed, o.argv ?? ['notebook']);
  const result = await runTraining({ config, run });
  return { path: run.path, result };
}

export interface DemoPruneOptions extends DemoRunOptions {
  /** heads to keep across the gated types (default: half of them) */
  targetHeads?: number;
  /** gated attention types (default: all three) */
  attention?: readonly AttentionType[];
}

/** Prune a trained run (its newest checkpoint) to a head budget by fine-tuning with gates. */
export async function pruneSmallRun(parentPath: string, o: DemoPruneOptions): Promise<{ path: string; result: PruneResult }> {
  const parent = findLatestValidCheckpoint(parentPath);
  const runPath = runFolderOf(parent.path);
  const tokPath = join(runPath, 'tokenizer.json');
  if (!existsSync(tokPath)) throw new CheckpointError(`${runPath}: no tokenizer.json beside the checkpoints`);
  const attention = o.attention ?? ['enc-self', 'dec-self', 'dec-enc'];
  const m = parent.state.config.model;
  const gated = attention.reduce((a, t) => a + (t === 'enc-self' ? m.encoderLayers : m.decoderLayers) * m.heads, 0);
  const target = o.targetHeads ?? Math.round(gated / 2);
  const base = loadConfigOn(parent.state.config, null, [`name=${parent.state.config.name}-prune`, `gates.attention=${JSON.stringify(attention)}`, 'train.trainOnly=null'], `${parent.path}/state.json`);
  const config = loadConfigOn(base, null, [...SMALL_PRUNE_OVERRIDES, `gates.targetHeads=${target}`, ...(o.overrides ?? [])], `${parent.path}/state.json`);
  const run = RunFolder.create(o.runsDir, `prune-${config.name}`);
  provenance(run, config, config.seed, o.argv ?? ['notebook']);
  run.writeJson('parent.json', { checkpoint: parent.path, step: parent.state.step });
  const result = await runPruning({ config, run, parent, tokenizer: BpeTokenizer.load(tokPath) });
  return { path: run.path, result };
}
