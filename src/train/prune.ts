/**
 * Pruning by fine-tuning (Voita et al. 2019, section 6.1): start from a converged model (weights only,
 * fresh optimizer and schedule), add Hard Concrete gates to the chosen attention types, train with
 * cross-entropy + lambda * E[L0] (or an exact head budget), then keep a head when P(g=1) > P(g=0)
 * (log alpha > 0; with a budget, the top N by P(open)), list heads whose deterministic gate is still
 * strictly between 0 and 1, write the head mask, and evaluate dev and test BLEU with the pruned heads
 * removed (removed heads at 0, kept heads at their deterministic gate, as the exporter folds them).
 * Where a kept head's gate is still below 1, the two ways of scoring a pruned model differ, and the run
 * also scores the binarised model (kept heads at gate 1, the paper's): `pruning.binarised` in
 * results.json, `test.binarised.hyp`.
 */
import type { RuntimeOptions } from '../config/runtime.js';
import type { ResolvedConfig } from '../config/schema.js';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import { type PerHead, originalMaskShape } from '../config/head-layout.js';
import { maskFromKeptSets, writeHeadMask, countKept } from '../io/head-mask.js';
import type { BpeTokenizer } from '../data/tokenizer.js';
import { headKey } from '../config/head-id.js';
import type { GateTensors } from '../model/transformer.js';
import type { RunFolder } from '../util/run-folder.js';
import { writeFileAtomic } from '../util/fs.js';
import { disposeGates } from '../model/gate-tensors.js';
import type { LoadedCheckpoint } from '../io/checkpoint.js';
import type { ProgressLine } from './progress.js';
import { type FinishContext, type RunTrainingResult, runTraining, scoreTranslations, withDecodePool } from './run-training.js';
import type { DecodePool } from '../eval/decode-pool.js';

export interface PruneResult extends RunTrainingResult {
  keptHeads: Record<AttentionType, number>;
  undecidedHeads: string[];
  maskPath: string;
  devBleuPruned: number | null;
  testBleuPruned: number | null;
  /** the binarised model's scores (kept heads at gate 1), only where they differ from the folded one's */
  binarised: BinarisedScores | null;
}

export interface BinarisedScores {
  /** the kept heads whose deterministic gate is below 1 (folded, they are scaled; binarised, they are at 1) */
  foldedBelowOne: string[];
  devBleu: number | null;
  testBleu: number | null;
  testBleuTokLc: number | null;
  /** the binarised model's test translations, in the run folder */
  hyp: string | null;
}

/** Kept heads whose folded gate is below 1: where the folded and the binarised model differ. */
function keptBelowOne(folded: GateTensors, binary: GateTensors, keyOf: (stack: AttentionType, layer: number, pos: number) => string): string[] {
  const out: string[] = [];
  for (const stack of ATTENTION_TYPES)
    (binary[stack] ?? []).forEach((b, layer) => {
      const f = folded[stack]?.[layer];
      if (!b || !f) return;
      const [bv, fv] = [b.dataSync(), f.dataSync()];
      bv.forEach((x, pos) => {
        if (x === 1 && fv[pos]! < 1) out.push(keyOf(stack, layer, pos));
      });
    });
  return out;
}

export async function runPruning(o: {
  config: ResolvedConfig;
  run: RunFolder;
  /** the converged model it starts from (not needed to resume: the run's own checkpoint holds the weights) */
  parent?: LoadedCheckpoint;
  tokenizer: BpeTokenizer;
  progress?: ProgressLine;
  isStopRequested?: () => boolean;
  /** sentences of the dev set scored with the pruned model (default: all) */
  devSentences?: number;
  /** continue an interrupted pruning run in the same folder */
  isResume?: boolean;
  /** see RunTrainingOptions.onResumed */
  onResumed?: (c: LoadedCheckpoint) => void;
  /** see RunTrainingOptions.runtime */
  runtime?: RuntimeOptions;
}): Promise<PruneResult> {
  let summary: Omit<PruneResult, keyof RunTrainingResult> | null = null;
  const finish = async (ctx: FinishContext): Promise<Record<string, unknown>> => {
    const { gates, model, data, config: cfg, run, progress, isStopRequested, decodeWorkers } = ctx;
    if (!gates) throw new Error('pruning run without gates');
    const kept = gates.keptPositions();
    // positions -> original ids (a physically pruned parent keeps its own head ids)
    const keptIds = {} as PerHead;
    for (const stack of ATTENTION_TYPES) keptIds[stack] = kept[stack].map((l, layer) => l.map((pos) => gates.originalHead(stack, layer, pos)));
    const shape = originalMaskShape(cfg.model);
    const mask = maskFromKeptSets(
      keptIds,
      shape,
      cfg.gates.targetHeads !== null ? `gates (budget ${JSON.stringify(cfg.gates.targetHeads)})` : `gates (lambda ${cfg.train.l0Lambda})`,
    );
    const maskPath = run.file('mask.json');
    writeHeadMask(maskPath, mask);
    const undecidedHeads = gates.fractionalGates();
    const keptHeads = Object.fromEntries(ATTENTION_TYPES.map((s) => [s, countKept(mask, shape, s)])) as Record<AttentionType, number>;
    progress.log(
      `pruned: kept ${ATTENTION_TYPES.map((s) => `${s} ${keptHeads[s]}`).join(', ')}; undecided gates (strictly between 0 and 1): ${undecidedHeads.length ? undecidedHeads.join(', ') : 'none'}`,
    );
    const folded = gates.prunedGates(kept);
    const binary = gates.binaryGates(kept);
    const foldedBelowOne = keptBelowOne(folded, binary, (stack, layer, pos) => headKey({ stack, layer, head: gates.originalHead(stack, layer, pos) }));
    const devPairs = data.corpora.valid.slice(0, o.devSentences ?? data.corpora.valid.length);
    // one decoding pool for every translation below (the weights no longer change; gates go with each batch)
    const score = async (g: GateTensors, what: string, pool: DecodePool | null) => ({
      dev: devPairs.length
        ? await scoreTranslations(model, data.tokenizer, devPairs, cfg, g, { progress, label: `dev (${what})`, isStopRequested, pool })
        : null,
      test: data.corpora.test.length
        ? await scoreTranslations(model, data.tokenizer, data.corpora.test, cfg, g, { progress, label: `test (${what})`, isStopRequested, pool })
        : null,
    });
    let dev, test, bin;
    try {
      ({ dev, test, bin } = await withDecodePool(model, decodeWorkers, Math.max(devPairs.length, data.corpora.test.length), cfg, progress, async (pool) => {
        const pruned = await score(folded, 'pruned', pool);
        return { ...pruned, bin: foldedBelowOne.length ? await score(binary, 'pruned, binarised', pool) : null };
      }));
    } finally {
      disposeGates(folded);
      disposeGates(binary);
    }
    progress.done();
    if (test) writeFileAtomic(run.file('test.pruned.hyp'), test.hyps.join('\n') + '\n');
    if (bin?.test) writeFileAtomic(run.file('test.binarised.hyp'), bin.test.hyps.join('\n') + '\n');
    if (dev) progress.log(`dev BLEU with pruned heads removed: ${dev.scores.bleu.toFixed(2)}`);
    if (test) progress.log(`test ${test.scores.formatted}`);
    const binarised: BinarisedScores | null = bin
      ? {
          foldedBelowOne,
          devBleu: bin.dev?.scores.bleu ?? null,
          testBleu: bin.test?.scores.bleu ?? null,
          testBleuTokLc: bin.test?.scores.tokenizedLowercaseBleu ?? null,
          hyp: bin.test ? 'test.binarised.hyp' : null,
        }
      : null;
    if (binarised)
      progress.log(
        `binarised (${foldedBelowOne.length} kept heads at gate 1 instead of below it: ${foldedBelowOne.join(', ')}): dev BLEU ${binarised.devBleu?.toFixed(2) ?? '-'}, test BLEU ${binarised.testBleu?.toFixed(2) ?? '-'}`,
      );
    summary = { keptHeads, undecidedHeads, maskPath, devBleuPruned: dev?.scores.bleu ?? null, testBleuPruned: test?.scores.bleu ?? null, binarised };
    return { pruning: { ...summary, devScores: dev?.scores ?? null, testScores: test?.scores ?? null } };
  };
  if (!o.parent && !o.isResume) throw new Error('runPruning: a parent checkpoint is needed unless resuming');
  const r = await runTraining({
    config: o.config,
    run: o.run,
    initFrom: o.isResume ? undefined : o.parent,
    isResume: o.isResume,
    onResumed: o.onResumed,
    tokenizer: o.tokenizer,
    progress: o.progress,
    isStopRequested: o.isStopRequested,
    evaluateTest: false,
    finish,
    runtime: o.runtime,
  });
  const s = summary as Omit<PruneResult, keyof RunTrainingResult> | null;
  return {
    ...r,
    keptHeads: s?.keptHeads ?? ({} as Record<AttentionType, number>),
    undecidedHeads: s?.undecidedHeads ?? [],
    maskPath: s?.maskPath ?? '',
    devBleuPruned: s?.devBleuPruned ?? null,
    testBleuPruned: s?.testBleuPruned ?? null,
    binarised: s?.binarised ?? null,
  };
}
