/**
 * Run one stage instance in this process (what `heads experiment run-stage` does, and what the runner's
 * child processes do): train (or resume) a model, prune it by L0 gates or by importance, analyze its
 * heads, or export it; then write `stage.json` with the figures the report collects.
 */
import { DEFAULT_ANALYSIS } from '../config/defaults.js';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { RunFolder } from '../util/run-folder.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { loadCorpora } from '../data/prepare.js';
import { runTraining, scoreTranslations } from '../train/run-training.js';
import { runPruning } from '../train/prune.js';
import { findModelCheckpoint } from '../io/checkpoint.js';
import { loadModel } from '../io/load-model.js';
import type { ProgressLine } from '../train/progress.js';
import { disposeGates } from '../model/gate-tensors.js';
import { originalMaskShape } from '../config/head-layout.js';
import { countKept, readHeadMask, maskToGateValues, maskToKeptSets } from '../io/head-mask.js';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import { runImportancePruning } from '../analysis/importance-pruning.js';
import { AnalysisStopped, analyzeHeads, trainingFrequencies } from '../analysis/analyze.js';
import { type HeadReport, writeHeadReport, writeHeadReportCsv } from '../analysis/report.js';
import { runExportStage } from './export-stage.js';
import { initialWeights, trainingRouting } from './finetune-stage.js';
import { applyMaskToModel, headCounts } from '../export/prune-model.js';
import { HeadsError } from '../util/errors.js';
import { chooseMask, maskHeadsOf, stepsNearest } from './fixed-mask.js';
import { type ResolvedStage, markDone, requireParentDone, acquireStageLock, decodingLabel } from './stage.js';
import type { RuntimeOptions } from '../config/runtime.js';

export interface StageSummary {
  /** test BLEU (sacreBLEU, beam) of the stage's final model */
  bleu?: number | null;
  bleuTokLc?: number | null;
  devBleu?: number | null;
  /** how devBleu was decoded: `greedy` (the trainer's dev BLEU) or `beam N` (a pruned model's final dev score) */
  devDecoding?: string;
  keptHeads?: Record<AttentionType, number>;
  /** importance pruning: one point per step; `hyp` the step's test translations (in the stage folder) */
  curve?: Array<{ keptHeads: Record<AttentionType, number>; bleu: number; bleuTokLc: number; maskFile: string; hyp?: string }>;
  [k: string]: unknown;
}

export { stepsNearest };

/** The folder-relative file of an importance step's test translations (`masks/step-04.json` -> `test-hyps/step-04.hyp`). */
export function curveHypFile(maskFile: string): string {
  return join('test-hyps', `${maskFile.replace(/^.*\//, '').replace(/\.json$/, '')}.hyp`);
}

function keptOf(cfg: ResolvedStage['config']): Record<AttentionType, number> {
  return headCounts(cfg.model);
}

export async function runStage(
  s: ResolvedStage,
  o: { progress: ProgressLine; isStopRequested: () => boolean; argv: readonly string[]; runtime?: RuntimeOptions },
): Promise<StageSummary | null> {
  requireParentDone(s);
  const release = acquireStageLock(s);
  const t0 = Date.now();
  try {
    return await runLocked(s, o, () => (Date.now() - t0) / 1000);
  } finally {
    recordAttempt(s.folder, (Date.now() - t0) / 1000);
    release();
  }
}

/** `compute.json` in a stage folder: the wall seconds of every attempt that ended (a killed one is not counted). */
const COMPUTE_FILE = 'compute.json';

function attempts(folder: string): Array<{ endedAt: string; seconds: number }> {
  const f = join(folder, COMPUTE_FILE);
  return existsSync(f) ? readJsonFile<{ attempts: Array<{ endedAt: string; seconds: number }> }>(f, 'stage compute record').attempts : [];
}

function priorSeconds(folder: string): number {
  return attempts(folder).reduce((a, x) => a + x.seconds, 0);
}

function recordAttempt(folder: string, seconds: number): void {
  if (!existsSync(folder)) return;
  writeJsonAtomic(join(folder, COMPUTE_FILE), {
    attempts: [...attempts(folder), { endedAt: new Date().toISOString(), seconds: Math.round(seconds * 10) / 10 }],
  });
}

async function runLocked(
  s: ResolvedStage,
  o: { progress: ProgressLine; isStopRequested: () => boolean; argv: readonly string[]; runtime?: RuntimeOptions },
  attemptSeconds: () => number,
): Promise<StageSummary | null> {
  const earlier = priorSeconds(s.folder);
  const isResume = existsSync(join(s.folder, 'checkpoints'));
  mkdirSync(s.folder, { recursive: true });
  const run = RunFolder.open(s.folder);
  if (!existsSync(run.file('config.json')))
    run.writeProvenance({
      config: s.config,
      argv: o.argv,
      seed: s.config.seed,
      env: { backend: tf.getBackend(), tfjs: tf.version_core, stage: s.instance.id, hash: s.hash },
    });
  const st = s.instance.spec;
  let summary: StageSummary;
  if (st.kind === 'train') {
    const r = await runTraining({ config: s.config, run, isResume, progress: o.progress, isStopRequested: o.isStopRequested, runtime: o.runtime });
    if (r.stoppedEarly) return null;
    // the trainer's dev BLEU is greedy (src/train/run-training.ts)
    summary = {
      bleu: r.test?.bleu ?? null,
      bleuTokLc: r.test?.tokenizedLowercaseBleu ?? null,
      devBleu: r.devBleu,
      ...(r.devBleu !== null ? { devDecoding: decodingLabel(1) } : {}),
      keptHeads: keptOf(s.config),
    };
  } else if (st.kind === 'prune' && st.method === 'l0') {
    const parent = findModelCheckpoint(s.parent!.folder);
    const tokenizer = BpeTokenizer.load(join(s.parent!.folder, 'tokenizer.json'));
    const r = await runPruning({
      config: s.config,
      run,
      parent,
      tokenizer,
      isResume,
      devSentences: s.config.train.devBleuSentences,
      progress: o.progress,
      isStopRequested: o.isStopRequested,
      runtime: o.runtime,
    });
    if (r.stoppedEarly) return null;
    const p = (r.extra?.['pruning'] ?? {}) as { testScores?: { tokenizedLowercaseBleu: number } | null };
    // the pruned model's dev score is decoded as the test set is (src/train/prune.ts)
    // settled: no deterministic gate strictly between 0 and 1 (a run with fractional gates is never called settled)
    const settle = { steps: r.steps, fractionalGates: r.undecidedHeads.length, settled: r.undecidedHeads.length === 0, stoppedBy: r.stoppedBy };
    // binarised: kept heads at gate 1 (the paper's scoring), only where a kept head's gate is below 1
    summary = {
      bleu: r.testBleuPruned,
      bleuTokLc: p.testScores?.tokenizedLowercaseBleu ?? null,
      devBleu: r.devBleuPruned,
      ...(r.devBleuPruned !== null ? { devDecoding: decodingLabel(s.config.eval.beamSize) } : {}),
      keptHeads: r.keptHeads,
      ...settle,
      ...(r.binarised ? { binarised: r.binarised } : {}),
    };
  } else if (st.kind === 'prune' && st.method === 'fixed-mask') {
    // the control of the pruning criterion: the model the importance stage pruned, with that stage's mask
    // at maskHeads heads fixed (the heads physically removed), fine-tuned as the L0 stages fine-tune
    const source = s.parent!.parent!;
    const chosen = chooseMask(s.parent!.folder, s.config.model, maskHeadsOf(s.instance)!, (m) => o.progress.log(m));
    if (!chosen) throw new HeadsError(`stage ${s.instance.id}: ${s.parent!.folder} has no pruning-result.json (its parent stage has not finished)`);
    const loaded = loadModel(source.folder);
    let initFrom;
    try {
      const pruned = applyMaskToModel(loaded.model, loaded.gates, chosen.mask, { sourceName: join(s.parent!.folder, chosen.maskFile) });
      initFrom = { path: `${loaded.checkpoint.path} with ${join(s.parent!.folder, chosen.maskFile)}`, params: pruned.params };
    } finally {
      loaded.model.dispose();
      loaded.gates?.dispose();
    }
    const r = await runTraining({
      config: s.config,
      run,
      isResume,
      initFrom,
      tokenizer: loaded.tokenizer,
      progress: o.progress,
      isStopRequested: o.isStopRequested,
      runtime: o.runtime,
    });
    if (r.stoppedEarly) return null;
    summary = {
      bleu: r.test?.bleu ?? null,
      bleuTokLc: r.test?.tokenizedLowercaseBleu ?? null,
      devBleu: r.devBleu,
      ...(r.devBleu !== null ? { devDecoding: decodingLabel(1) } : {}),
      keptHeads: keptOf(s.config),
      maskFrom: { stage: s.parent!.instance.id, step: chosen.step, maskFile: chosen.maskFile },
      steps: r.steps,
    };
  } else if (st.kind === 'prune') {
    // importance / confidence / random: masks per step on the converged parent (no fine-tuning, as Michel et al.)
    const loaded = loadModel(s.parent!.folder);
    const corpora = loadCorpora(s.config.data, s.config.seed);
    const attention = (s.instance.point['attention'] as AttentionType[] | undefined) ?? st.attention;
    const r = await runImportancePruning({
      model: loaded.model,
      gates: loaded.gates,
      tokenizer: loaded.tokenizer,
      config: s.config,
      data: { estimate: corpora.valid, eval: corpora.valid },
      method: st.method as Exclude<typeof st.method, 'l0' | 'fixed-mask'>,
      stepPercent: st.stepPercent,
      reestimate: st.reestimate,
      importanceForm: st.importanceForm,
      importanceNormalize: st.importanceNormalize,
      stacks: attention,
      bleuSentences: Math.min(DEFAULT_ANALYSIS.pruning.bleuSentences, corpora.valid.length),
      run,
      seed: s.config.seed,
      onProgress: (m) => o.progress.log(m),
    });
    // score the steps' masks on the test set exactly as the L0 stages are scored (beam search, sacreBLEU);
    // each score is saved as soon as it exists, so an interrupted stage does not translate it again
    const shape = originalMaskShape(s.config.model);
    const steps = st.testHeads ? stepsNearest(r.table, st.testHeads, (m) => o.progress.log(m)) : r.table;
    const cachePath = join(s.folder, 'test-scores.json');
    const cache: Record<string, { bleu: number; bleuTokLc: number; hyp?: string }> = existsSync(cachePath) ? readJsonFile(cachePath) : {};
    const curve: NonNullable<StageSummary['curve']> = [];
    for (const step of steps) {
      const mask = readHeadMask(join(s.folder, step.maskFile), shape);
      const key = JSON.stringify(maskToKeptSets(mask, shape));
      let scored = cache[key];
      if (!scored) {
        const values = maskToGateValues(mask, shape);
        const gates = Object.fromEntries(ATTENTION_TYPES.map((t) => [t, values[t].map((l) => tf.tensor1d(l))]));
        const { scores, hyps } = await scoreTranslations(loaded.model, loaded.tokenizer, corpora.test, s.config, gates, {
          progress: o.progress,
          label: `test (${step.headsKept} heads)`,
        });
        disposeGates(gates);
        // the translations behind the score, so the committed results can be re-scored (experiment report)
        const hyp = curveHypFile(step.maskFile);
        mkdirSync(join(s.folder, 'test-hyps'), { recursive: true });
        writeFileAtomic(join(s.folder, hyp), hyps.join('\n') + '\n');
        scored = { bleu: scores.bleu, bleuTokLc: scores.tokenizedLowercaseBleu, hyp };
        cache[key] = scored;
        writeJsonAtomic(cachePath, cache);
        if (o.isStopRequested()) return null;
      }
      curve.push({
        keptHeads: Object.fromEntries(ATTENTION_TYPES.map((t) => [t, countKept(mask, shape, t)])) as Record<AttentionType, number>,
        bleu: scored.bleu,
        bleuTokLc: scored.bleuTokLc,
        maskFile: step.maskFile,
        ...(scored.hyp ? { hyp: scored.hyp } : {}),
      });
      o.progress.log(`${st.method} step ${step.step}: ${step.headsKept} heads, test BLEU ${scored.bleu.toFixed(2)}`);
    }
    o.progress.done();
    loaded.model.dispose();
    loaded.gates?.dispose();
    summary = { curve, curvePath: r.curvePath };
  } else if (st.kind === 'finetune') {
    // the parent's weights (narrowed, or upcycled into experts) fine-tuned for st.steps (finetune-stage.ts)
    const parentCk = findModelCheckpoint(s.parent!.folder);
    const tokenizer = BpeTokenizer.load(join(s.parent!.folder, 'tokenizer.json'));
    const { params, init } = initialWeights(parentCk.params, s.parent!.config.model, s.config, parentCk.path);
    const r = await runTraining({
      config: s.config,
      run,
      isResume,
      initFrom: isResume ? undefined : { path: parentCk.path, params },
      tokenizer,
      progress: o.progress,
      isStopRequested: o.isStopRequested,
      runtime: o.runtime,
    });
    if (r.stoppedEarly) return null;
    const routing = trainingRouting(run.readMetrics());
    summary = {
      bleu: r.test?.bleu ?? null,
      bleuTokLc: r.test?.tokenizedLowercaseBleu ?? null,
      devBleu: r.devBleu,
      ...(r.devBleu !== null ? { devDecoding: decodingLabel(1) } : {}),
      keptHeads: keptOf(s.config),
      steps: r.steps,
      init,
      ...(routing ? { trainingRouting: routing } : {}),
    };
  } else if (st.kind === 'analyze') {
    const loaded = loadModel(s.parent!.folder);
    const cfg = loaded.config;
    // one read of the corpora (files or the generated corpus) for the dev split and the frequencies
    const corpora = loadCorpora(cfg.data, cfg.seed);
    const pairs = corpora.valid.slice(0, st.sentences ?? corpora.valid.length);
    // training-corpus token frequencies: what the rare-token role is measured against
    const f = trainingFrequencies(loaded.tokenizer, corpora.train);
    let report: HeadReport;
    try {
      report = await analyzeHeads({
        frequencies: { src: f.src, tgt: f.tgt, source: corpora.sources.train },
        model: loaded.model,
        gates: loaded.gates,
        tokenizer: loaded.tokenizer,
        config: cfg,
        source: { runPath: loaded.runPath, checkpoint: loaded.checkpoint.path, step: loaded.checkpoint.state.step },
        split: { name: 'dev', source: corpora.sources.valid, pairs },
        importance: { form: st.importanceForm, normalize: st.importanceNormalize },
        ablation: { metric: st.ablation },
        onProgress: (m) => o.progress.log(m),
        isStopRequested: o.isStopRequested,
      });
    } catch (e) {
      if (!(e instanceof AnalysisStopped)) throw e;
      o.progress.log(e.message);
      return null;
    } finally {
      loaded.model.dispose();
      loaded.gates?.dispose();
    }
    writeHeadReport(run.file('head-report.json'), report);
    writeHeadReportCsv(run.file('head-report.csv'), report);
    summary = { report: 'head-report.json' };
  } else {
    const { summary: r, measured } = await runExportStage({
      st,
      parentFolder: s.parent!.folder,
      config: s.config,
      outDir: join(s.folder, 'export'),
      stageFolder: s.folder,
      progress: o.progress,
    });
    summary = { ...measured, export: r };
  }
  // the stage's wall time over its attempts (this one included; compute.json lists them)
  summary = { ...summary, wallSeconds: Math.round(earlier + attemptSeconds()) };
  markDone(s, summary);
  return summary;
}
