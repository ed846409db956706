/**
 * One training run end to end, as a library call the CLI, experiments and notebooks share: prepare the
 * data (or reuse the run's tokenizer on resume), build the model (and gates), restore a checkpoint when
 * resuming or fine-tuning, train with dev loss / dev BLEU, then translate and score the test set.
 * A stop request during that final evaluation ends it after the current batch (training is complete and
 * checkpointed): a resume then redoes only the evaluation, with the dev scores of the last step's
 * evaluation read back from metrics.jsonl.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import type { ResolvedConfig } from '../config/schema.js';
import type { RuntimeOptions } from '../config/runtime.js';
import { headLayout } from '../config/head-layout.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { prepareData, type PreparedData } from '../data/prepare.js';
import { createTransformer, type GateTensors, type Transformer } from '../model/transformer.js';
import { HeadGates } from '../gates/head-gates.js';
import { TranslationStopped, translateSentences } from '../eval/translate.js';
import { type DecodePool, startDecodePool } from '../eval/decode-pool.js';
import { resolveWorkerCount } from './workers/pool.js';
import { FileSystemError } from '../util/errors.js';
import { corpusBleu, tokenizedLowercaseBleu } from '../eval/bleu.js';
import { Rng, deriveSeed } from '../util/random.js';
import type { RunFolder } from '../util/run-folder.js';
import { writeFileAtomic } from '../util/fs.js';
import { Trainer, type EvalResult, type StopRule } from './trainer.js';
import { disposeGates } from '../model/gate-tensors.js';
import { checkWritableAfter, findLatestValidCheckpoint, writeBestPointer, type LoadedCheckpoint } from '../io/checkpoint.js';
import { ProgressLine, eta, formatDuration } from './progress.js';
import { assignWeights } from '../io/load-model.js';
import { attentionSavings, formatAttentionSavings, hasAttentionPatterns, type AttentionSavings } from '../model/attention-patterns.js';

export interface RunTrainingOptions {
  config: ResolvedConfig;
  run: RunFolder;
  /** continue this run from its newest valid checkpoint (same folder) */
  isResume?: boolean;
  /** initialise weights (not optimizer, not step) from this checkpoint (or physically pruned weights): fine-tuning / pruning */
  initFrom?: Pick<LoadedCheckpoint, 'path' | 'params'>;
  /** tokenizer to reuse (fine-tuning must keep the parent's vocabulary) */
  tokenizer?: BpeTokenizer;
  progress?: ProgressLine;
  isStopRequested?: () => boolean;
  /** translate and score the test set at the end (default true) */
  evaluateTest?: boolean;
  /** after training (not when stopped early): extra evaluation whose result goes into results.json */
  finish?: (ctx: FinishContext) => Promise<Record<string, unknown>>;
  /** called once a resume has restored its checkpoint, before anything is trained or written */
  onResumed?: (c: LoadedCheckpoint) => void;
  /** the process's cores, heap budget and test faults (the CLI reads them from the environment) */
  runtime?: RuntimeOptions;
}

/** What a `finish` hook receives: the trained model and gates, the data, the config and the run. */
export interface FinishContext {
  model: Transformer;
  gates: HeadGates | null;
  data: PreparedData;
  config: ResolvedConfig;
  run: RunFolder;
  progress: ProgressLine;
  /** pass to scoreTranslations: a stop request ends the evaluation after its current batch */
  isStopRequested?: () => boolean;
  /** decoding worker threads the final translations may use (withDecodePool) */
  decodeWorkers: number;
}

export interface TestScores {
  bleu: number;
  signature: string;
  formatted: string;
  tokenizedLowercaseBleu: number;
  sentences: number;
  sentencesPerSec: number;
}

export interface RunTrainingResult {
  /** what the `finish` hook returned */
  extra?: Record<string, unknown>;
  steps: number;
  /** the step whose weights the run delivers (early stopping: the best evaluation's; else the last step) */
  modelStep: number;
  /** the rule that ended training before train.maxSteps (null: the cap, or a stop request) */
  stoppedBy: StopRule | null;
  elapsedMs: number;
  stoppedEarly: boolean;
  /** dev figures of the delivered model (early stopping: of its best evaluation) */
  devLoss: number | null;
  devBleu: number | null;
  test: TestScores | null;
  parameters: number;
}

/**
 * `fn` with a decoding pool of `workers` threads on the model's current weights (eval/decode-pool.ts: the
 * same translations), or with null where it would not pay: one worker, or fewer than two batches per
 * worker of `sentences`. A pool that cannot start is reported and the translations run in the main thread.
 */
export async function withDecodePool<T>(
  model: Transformer,
  workers: number,
  sentences: number,
  cfg: ResolvedConfig,
  progress: ProgressLine | undefined,
  fn: (pool: DecodePool | null) => Promise<T>,
): Promise<T> {
  if (workers <= 1 || Math.ceil(sentences / cfg.eval.batchSentences) < 2 * workers) return fn(null);
  const pool = await startDecodePool(model, workers, (m) => progress?.log(m));
  try {
    return await fn(pool);
  } finally {
    await pool?.close();
  }
}

/** Corpus BLEU of a model on sentence pairs (beam search as configured). */
export async function scoreTranslations(
  model: Transformer,
  tok: BpeTokenizer,
  pairs: ReadonlyArray<{ src: string; tgt: string }>,
  cfg: ResolvedConfig,
  gates: GateTensors | undefined,
  opts: { beamSize?: number; progress?: ProgressLine; label?: string; isStopRequested?: () => boolean; pool?: DecodePool | null } = {},
): Promise<{ hyps: string[]; scores: TestScores }> {
  const { outputs, stats } = await translateSentences(
    model,
    tok,
    pairs.map((p) => p.src),
    {
      ...cfg.eval,
      beamSize: opts.beamSize ?? cfg.eval.beamSize,
      gates,
      isStopRequested: opts.isStopRequested,
      ...(opts.pool ? { pool: opts.pool } : {}),
      onProgress: (done, total, ms) =>
        opts.progress?.update(
          `${opts.label ?? 'translate'} ${done}/${total} sentences | ${((done / ms) * 1000).toFixed(1)} sent/s | ETA ${formatDuration(eta(done, total, ms))}`,
        ),
    },
  );
  const refs = [pairs.map((p) => p.tgt)];
  const b = corpusBleu(outputs, refs);
  const tl = tokenizedLowercaseBleu(outputs, refs);
  return {
    hyps: outputs,
    scores: {
      bleu: b.score,
      signature: b.signature,
      formatted: b.format(),
      tokenizedLowercaseBleu: tl.score,
      sentences: pairs.length,
      sentencesPerSec: stats.sentencesPerSec,
    },
  };
}

/**
 * How settled a gated run's gates are at the end: the heads whose deterministic gate is still strictly
 * between 0 and 1 (such a run is never called settled), and when gates.settle ended training.
 */
export function settleReport(
  gates: HeadGates,
  settledAtStep: number | null,
  cfg: ResolvedConfig,
): { settled: boolean; fractionalGates: number; fractional: string[]; settledAtStep: number | null; rule: ResolvedConfig['gates']['settle'] } {
  const fractional = gates.fractionalGates();
  return { settled: fractional.length === 0, fractionalGates: fractional.length, fractional, settledAtStep, rule: cfg.gates.settle ?? null };
}

/** The dev evaluation metrics.jsonl logged at `step` (the newest such record), or null. */
function loggedEval(run: RunFolder, step: number): EvalResult | null {
  const rec = run
    .readMetrics()
    .filter((m) => m['step'] === step && typeof m['devLoss'] === 'number')
    .pop();
  if (!rec) return null;
  const out: EvalResult = { devLoss: rec['devLoss'] as number, devPerplexity: rec['devPerplexity'] as number };
  if (typeof rec['devBleu'] === 'number') out.devBleu = rec['devBleu'];
  return out;
}

export async function runTraining(o: RunTrainingOptions): Promise<RunTrainingResult> {
  const { config: cfg, run } = o;
  const progress = o.progress ?? new ProgressLine();
  const tokPath = run.file('tokenizer.json');
  const savedTok = o.tokenizer ?? (o.isResume && existsSync(tokPath) ? BpeTokenizer.load(tokPath) : undefined);
  const data = prepareData(cfg.data, cfg.seed, { tokenizer: savedTok, onProgress: (m) => progress.log(m) });
  if (!existsSync(tokPath)) data.tokenizer.save(tokPath);
  if (data.droppedTooLong) progress.log(`data: dropped ${data.droppedTooLong} training pairs longer than ${cfg.data.maxLen} tokens`);

  const model = createTransformer(cfg.model, data.tokenizer.vocabSize, new Rng(deriveSeed(cfg.seed, 'init')));
  const gates = cfg.gates.attention.length
    ? new HeadGates(cfg.gates, model.shape, cfg.seed, { layout: headLayout(cfg.model), maxSteps: cfg.train.maxSteps })
    : null;
  gates?.setTrajectoryFile(run.file('gate-trajectory.csv'));
  progress.log(
    `model: ${(model.params.count() / 1e6).toFixed(2)}M parameters, ${cfg.model.encoderLayers}+${cfg.model.decoderLayers} layers, ${cfg.model.heads} heads, d_model ${cfg.model.dModel}${gates ? `, ${gates.gatedHeadCount} gated heads (${cfg.gates.attention.join(', ')})` : ''}`,
  );

  // sparse attention patterns: the attention-product work they save over one pass of the training data
  let savings: AttentionSavings | null = null;
  if (hasAttentionPatterns(cfg.model)) {
    savings = attentionSavings(
      cfg.model,
      model.shape,
      model.dHead,
      data.train.map((p) => ({ src: p.src.length + 1, tgt: p.tgt.length + 1 })),
    );
    progress.log(formatAttentionSavings(savings, 'per epoch (allowed pairs only: what a sparse kernel would compute)'));
  }

  const devPairs = data.corpora.valid.slice(0, cfg.train.devBleuSentences);
  const trainer = new Trainer({
    config: cfg,
    model,
    train: data.train,
    valid: data.valid,
    run,
    gates,
    progress,
    isStopRequested: o.isStopRequested,
    runtime: o.runtime,
    devBleu: async (m, g) => (await scoreTranslations(m, data.tokenizer, devPairs, cfg, g, { beamSize: 1 })).scores.bleu,
  });
  if (o.initFrom) {
    assignWeights(model, gates, o.initFrom, { allowMissingGates: true });
    progress.log(`init: weights from ${o.initFrom.path} (fresh optimizer, step 0)`);
  }
  if (o.isResume) {
    const c = findLatestValidCheckpoint(run.path, (m) => progress.log(`warning: ${m}`));
    assignWeights(model, gates, c); // every name and shape checked: a model that changed is refused in one line
    trainer.restore(c);
    const t = cfg.train;
    checkWritableAfter(run.path, c.state.step, (step) => step <= t.maxSteps && (step % t.checkpointEverySteps === 0 || step === t.maxSteps));
    progress.log(`resume: step ${c.state.step} from ${c.path}`);
    o.onResumed?.(c);
  }
  let r: Awaited<ReturnType<Trainer['run']>>;
  try {
    r = await trainer.run();
  } catch (e) {
    if (e instanceof FileSystemError && !e.message.includes('the last checkpoint'))
      e.message += `; the last checkpoint (step ${trainer.lastCheckpoint ?? 'none'}) is intact`;
    throw e;
  }
  // a resume with nothing left to train (a finished run, or one stopped in its final evaluation): the
  // dev scores of the final step are those its evaluation logged, not null
  if (!r.lastEval && r.steps === 0 && !r.stoppedEarly) r = { ...r, lastEval: loggedEval(run, trainer.step) ?? (await trainer.evaluate()) };
  // early stopping: the test translation, results.json and the model later stages load are the best step's
  const bestStep = r.stoppedEarly ? null : trainer.restoreBestWeights();
  if (bestStep !== null) {
    writeBestPointer(run.path, bestStep);
    const why =
      r.stoppedBy === 'early-stopping'
        ? `stopped at step ${trainer.step} after ${cfg.train.earlyStopping!.patience} evaluations without improvement`
        : `reached train.maxSteps = ${cfg.train.maxSteps} still improving or within patience`;
    progress.log(`early stopping: ${why}; using the best checkpoint, step ${bestStep}`);
  }
  const best = trainer.earlyStopping?.bestEval ?? null;
  // the final translations decode on the cores this process may use (runtime.cores: HEADS_CORES, 1 per
  // stage under `experiment run --jobs 2`); without runtime options (a library call) in the main thread
  const decodeWorkers = o.runtime ? resolveWorkerCount('auto', tf.getBackend(), o.runtime.cores) : 1;
  let test: TestScores | null = null;
  let extra: Record<string, unknown> = {};
  try {
    if (!r.stoppedEarly && o.evaluateTest !== false && data.corpora.test.length) {
      const g = gates?.testGates();
      try {
        const { hyps, scores } = await withDecodePool(model, decodeWorkers, data.corpora.test.length, cfg, progress, (pool) =>
          scoreTranslations(model, data.tokenizer, data.corpora.test, cfg, g, { progress, label: 'test', isStopRequested: o.isStopRequested, pool }),
        );
        writeFileAtomic(run.file('test.hyp'), hyps.join('\n') + '\n');
        test = scores;
      } finally {
        if (g) disposeGates(g);
        progress.done();
      }
    }
    if (!r.stoppedEarly && o.finish)
      extra = await o.finish({ model, gates, data, config: cfg, run, progress, isStopRequested: o.isStopRequested, decodeWorkers });
  } catch (e) {
    if (!(e instanceof TranslationStopped)) throw e;
    progress.log(
      `stopped during the final evaluation; training is complete (checkpoint step ${trainer.lastCheckpoint ?? trainer.step}): resume (heads train --resume ${run.path}) to redo only the evaluation`,
    );
    r = { ...r, stoppedEarly: true };
    test = null;
  }
  const result: RunTrainingResult = {
    steps: trainer.step,
    modelStep: bestStep ?? trainer.step,
    stoppedBy: r.stoppedBy,
    elapsedMs: r.elapsedMs,
    stoppedEarly: r.stoppedEarly,
    devLoss: best ? best.devLoss : (r.lastEval?.devLoss ?? null),
    devBleu: best ? best.devBleu : (r.lastEval?.devBleu ?? null),
    test,
    parameters: model.params.count(),
    extra,
  };
  const patterns = savings ? { attentionPatterns: { patterns: cfg.model.attentionPatterns, flopsPerEpoch: savings } } : {};
  const stopping = trainer.earlyStopping
    ? {
        earlyStopping: {
          ...trainer.earlyStopping.report(),
          stoppedAtStep: trainer.step,
          stoppedBy: r.stoppedBy === 'early-stopping' ? 'patience' : 'maxSteps',
        },
      }
    : {};
  run.writeJson('results.json', {
    ...result,
    ...extra,
    gates: gates ? { summary: gates.summary(), heads: gates.states(), settle: settleReport(gates, trainer.settledAtStep, cfg) } : null,
    backend: tf.getBackend(),
    ...patterns,
    ...stopping,
  });
  trainer.dispose();
  gates?.dispose();
  model.dispose();
  return result;
}
