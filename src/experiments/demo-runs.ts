/**
 * The small runs the notebooks fall back to when they are given no run folder: a short training run on
 * the embedded toy EN->DE data (the quickstart model with fewer steps and sentences), a short pruning
 * run of it with Hard Concrete gates and a head budget or lambda (Voita et al. 2019, section 6.1), and a
 * miniature of their encoder-pruning comparison (L0 gates against Michel et al.'s importance pruning).
 * All write ordinary run folders (provenance, metrics.jsonl, checkpoints, gate-trajectory.csv,
 * mask.json, results.csv), the same as `heads train` / `heads prune` / `heads experiment report`.
 */
import * as tf from '@tensorflow/tfjs';
import Papa from 'papaparse';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runImportancePruning, type PruningMethod } from '../analysis/importance-pruning.js';
import { loadConfig, loadConfigOn } from '../config/load.js';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import { loadCorpora } from '../data/prepare.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { countKept, maskToGateValues, readHeadMask } from '../io/head-mask.js';
import { findLatestValidCheckpoint } from '../io/checkpoint.js';
import { loadModel, runFolderOf } from '../io/load-model.js';
import { type PruneResult, runPruning } from '../train/prune.js';
import { originalMaskShape } from '../config/head-layout.js';
import { type RunTrainingResult, runTraining, scoreTranslations } from '../train/run-training.js';
import { disposeGates } from '../model/gate-tensors.js';
import { CheckpointError } from '../util/errors.js';
import { readJsonFile, writeFileAtomic } from '../util/fs.js';
import { RunFolder } from '../util/run-folder.js';
import { EXPERIMENT_RESULT_COLUMNS, type ExperimentResultRow, shapeFromConfig } from '../plots/readers.js';

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
export const SMALL_PRUNE_OVERRIDES: readonly string[] = [
  'train.maxSteps=300',
  'train.logEverySteps=10',
  'train.evalEverySteps=0',
  'train.checkpointEverySteps=300',
  'gates.targetWarmupSteps=150',
  'gates.lrScale=10',
];

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
  /** heads to keep across the gated types (default: half of them); ignored with `lambda` */
  targetHeads?: number;
  /** a penalty weight (train.l0Lambda) instead of a head budget */
  lambda?: number;
  /** gated attention types (default: all three) */
  attention?: readonly AttentionType[];
  /** fine-tuning steps (default: SMALL_PRUNE_OVERRIDES' 300) */
  steps?: number;
}

/** Prune a trained run (its newest checkpoint) to a head budget (or with a lambda) by fine-tuning with gates. */
export async function pruneSmallRun(parentPath: string, o: DemoPruneOptions): Promise<{ path: string; result: PruneResult }> {
  const parent = findLatestValidCheckpoint(parentPath);
  const runPath = runFolderOf(parent.path);
  const tokPath = join(runPath, 'tokenizer.json');
  if (!existsSync(tokPath)) throw new CheckpointError(`${runPath}: no tokenizer.json beside the checkpoints`);
  const attention = o.attention ?? ['enc-self', 'dec-self', 'dec-enc'];
  const m = parent.state.config.model;
  const gated = attention.reduce((a, t) => a + (t === 'enc-self' ? m.encoderLayers : m.decoderLayers) * m.heads, 0);
  // encoder-only pruning trains only the encoder and the gates (the reference recipe, as `heads prune`)
  const isEncoderOnly = attention.length === 1 && attention[0] === 'enc-self';
  const base = loadConfigOn(
    parent.state.config,
    null,
    [
      `name=${parent.state.config.name}-prune`,
      `gates.attention=${JSON.stringify(attention)}`,
      `train.trainOnly=${isEncoderOnly ? '[encoder, gates]' : 'null'}`,
    ],
    `${parent.path}/state.json`,
  );
  const objective =
    o.lambda !== undefined ? [`train.l0Lambda=${o.lambda}`, 'gates.targetHeads=null'] : [`gates.targetHeads=${o.targetHeads ?? Math.round(gated / 2)}`];
  const steps =
    o.steps !== undefined ? [`train.maxSteps=${o.steps}`, `train.checkpointEverySteps=${o.steps}`, `gates.targetWarmupSteps=${Math.round(o.steps / 2)}`] : [];
  const config = loadConfigOn(base, null, [...SMALL_PRUNE_OVERRIDES, ...objective, ...steps, ...(o.overrides ?? [])], `${parent.path}/state.json`);
  const run = RunFolder.create(o.runsDir, `prune-${config.name}`);
  provenance(run, config, config.seed, o.argv ?? ['notebook']);
  run.writeJson('parent.json', { checkpoint: parent.path, step: parent.state.step });
  const result = await runPruning({ config, run, parent, tokenizer: BpeTokenizer.load(tokPath) });
  return { path: run.path, result };
}

// ---------------------------------------------------------------------------------------------------
// A small pruning comparison (Voita et al. 2019, Figure 7 / Table 2 in miniature)

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function numberAt(x: unknown, ...path: string[]): number | null {
  let v: unknown = x;
  for (const k of path) v = isRecord(v) ? v[k] : undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * The results row of a finished `heads train` / `heads prune` run folder (its results.json and
 * config.json): test BLEU of the full or pruned model and the heads it keeps per attention type.
 */
export function resultRowOfRun(runPath: string, o: { stage: string; method?: string }): ExperimentResultRow {
  const results = readJsonFile<unknown>(join(runPath, 'results.json'), 'run results');
  const config = readJsonFile<unknown>(join(runPath, 'config.json'), 'run config');
  const shape = shapeFromConfig(config);
  const full = (t: AttentionType) => (shape ? shape[t].reduce((a, h) => a + h, 0) : null);
  const pruning = isRecord(results) && isRecord(results.pruning) ? results.pruning : null;
  const kept = (t: AttentionType) => (pruning ? numberAt(pruning, 'keptHeads', t) : full(t));
  const gates = isRecord(config) && isRecord(config.gates) ? config.gates : {};
  const attention = Array.isArray(gates.attention) ? gates.attention.filter((a): a is string => typeof a === 'string') : [];
  const target = gates.targetHeads;
  const isBudget = target !== null && target !== undefined;
  return {
    stage: o.stage,
    id: o.stage,
    kind: pruning ? 'prune' : 'train',
    method: o.method ?? (pruning ? (isBudget ? 'l0-budget' : 'l0') : 'baseline'),
    attention: attention.join('+') || '-',
    lambda: pruning && !isBudget ? numberAt(config, 'train', 'l0Lambda') : null,
    targetHeads: isBudget ? JSON.stringify(target) : null,
    keptEnc: kept('enc-self'),
    keptDecSelf: kept('dec-self'),
    keptDecEnc: kept('dec-enc'),
    bleu: pruning ? numberAt(pruning, 'testScores', 'bleu') : numberAt(results, 'test', 'bleu'),
    bleuTokLc: pruning ? numberAt(pruning, 'testScores', 'tokenizedLowercaseBleu') : numberAt(results, 'test', 'tokenizedLowercaseBleu'),
    devBleu: pruning ? numberAt(pruning, 'devBleuPruned') : numberAt(results, 'devBleu'),
    run: runPath,
  };
}

export interface SmallComparisonOptions extends DemoRunOptions {
  /** encoder-head budgets of the L0 pruning runs (default [2, 4, 6]: comparable with the heuristic curves) */
  budgets?: readonly number[];
  /** L0 penalty weights of further runs (default none: on the toy data the gates close every encoder head over a wide range of lambdas) */
  lambdas?: readonly number[];
  /** fine-tuning steps of each L0 run (default 150) */
  steps?: number;
  /** heuristic methods applied to the parent without fine-tuning (default importance, confidence) */
  methods?: readonly PruningMethod[];
  onProgress?: (line: string) => void;
}

/**
 * Encoder-head pruning of one trained run, three ways, every model scored on the test set with beam
 * search as `heads prune` scores it: L0 gates by fine-tuning at a few lambdas, and Michel et al.'s
 * importance (or confidence / random) pruning of the unchanged model, one encoder head per step.
 * Writes `<runsDir>/<stamp>-compare-.../results.csv` (the experiments' columns) and returns its rows,
 * the parent's full model first.
 */
export async function smallPruningComparison(parentPath: string, o: SmallComparisonOptions): Promise<{ path: string; rows: ExperimentResultRow[] }> {
  const log = o.onProgress ?? (() => {});
  const rows: ExperimentResultRow[] = [resultRowOfRun(parentPath, { stage: 'baseline', method: 'baseline' })];
  const name = `${String(readJsonFile<{ name?: unknown }>(join(parentPath, 'config.json'), 'run config').name ?? 'run')}-l0-enc`;
  const settings = [
    ...(o.budgets ?? [2, 4, 6]).map((b) => ({ targetHeads: b, lambda: undefined })),
    ...(o.lambdas ?? []).map((l) => ({ targetHeads: undefined, lambda: l })),
  ];
  for (const x of settings) {
    const label = x.lambda !== undefined ? `lambda=${x.lambda}` : `budget=${x.targetHeads}`;
    log(`L0 gates on the encoder heads, ${label}`);
    const { path } = await pruneSmallRun(parentPath, {
      runsDir: o.runsDir,
      ...x,
      attention: ['enc-self'],
      steps: o.steps ?? 150,
      overrides: [`name=${name}`, 'gates.lrScale=25', ...(o.overrides ?? [])],
      argv: o.argv,
    });
    rows.push(resultRowOfRun(path, { stage: `l0-enc@${label}`, method: 'l0' }));
  }
  const loaded = loadModel(parentPath);
  const corpora = loadCorpora(loaded.config.data, loaded.config.seed);
  const shape = originalMaskShape(loaded.config.model);
  const run = RunFolder.create(o.runsDir, `compare-${loaded.config.name}`);
  provenance(run, loaded.config, loaded.config.seed, o.argv ?? ['notebook']);
  try {
    for (const method of o.methods ?? ['importance', 'confidence']) {
      log(`${method} pruning of the encoder heads`);
      const sub = RunFolder.open(run.file(method));
      const encHeads = shape['enc-self'].reduce((a, h) => a + h, 0);
      const r = await runImportancePruning({
        model: loaded.model,
        gates: loaded.gates,
        tokenizer: loaded.tokenizer,
        config: loaded.config,
        data: { estimate: corpora.valid, eval: corpora.valid },
        method,
        stepPercent: 100 / encHeads,
        stacks: ['enc-self'],
        bleuSentences: Math.min(50, corpora.valid.length),
        run: sub,
        seed: loaded.config.seed,
      });
      // every step's mask scored on the test set the way the L0 runs are (beam search, sacreBLEU)
      for (const step of r.table) {
        const mask = readHeadMask(sub.file(step.maskFile), shape);
        const values = maskToGateValues(mask, shape);
        const gates = Object.fromEntries(ATTENTION_TYPES.map((t) => [t, values[t].map((l) => tf.tensor1d(l))]));
        const { scores } = await scoreTranslations(loaded.model, loaded.tokenizer, corpora.test, loaded.config, gates);
        disposeGates(gates);
        rows.push({
          stage: `${method}-enc`,
          id: `${method}-enc#${step.maskFile}`,
          kind: 'prune',
          method,
          attention: 'enc-self',
          lambda: null,
          targetHeads: null,
          keptEnc: countKept(mask, shape, 'enc-self'),
          keptDecSelf: countKept(mask, shape, 'dec-self'),
          keptDecEnc: countKept(mask, shape, 'dec-enc'),
          bleu: scores.bleu,
          bleuTokLc: scores.tokenizedLowercaseBleu,
          devBleu: step.bleu,
          run: join(sub.path, step.maskFile),
        });
      }
    }
  } finally {
    loaded.model.dispose();
    loaded.gates?.dispose();
  }
  writeFileAtomic(
    run.file('results.csv'),
    Papa.unparse({ fields: [...EXPERIMENT_RESULT_COLUMNS], data: rows.map((r) => EXPERIMENT_RESULT_COLUMNS.map((c) => r[c] ?? '')) }) + '\n',
  );
  return { path: run.path, rows };
}
