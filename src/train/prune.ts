/**
 * Pruning by fine-tuning (Voita et al. 2019, section 6.1): start from a converged model (weights only,
 * fresh optimizer and schedule), add Hard Concrete gates to the chosen attention types, train with
 * cross-entropy + lambda * E[L0] (or an exact head budget), then keep a head when P(g=1) > P(g=0)
 * (log alpha > 0; with a budget, the top N by P(open)), list heads whose deterministic gate is still
 * strictly between 0 and 1, write the head mask, and evaluate dev and test BLEU with the pruned heads
 * removed (removed heads at 0, kept heads at their deterministic gate, as the exporter folds them).
 */
import type { RuntimeOptions } from '../config/runtime.js';
import type { ResolvedConfig } from '../config/schema.js';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import { maskFromKeptSets, writeHeadMask, countKept, originalMaskShape } from '../export/head-mask.js';
import type { BpeTokenizer } from '../data/tokenizer.js';
import type { RunFolder } from '../util/run-folder.js';
import { writeFileAtomic } from '../util/fs.js';
import { disposeGates } from '../model/gate-tensors.js';
import type { LoadedCheckpoint } from './checkpoint.js';
import type { ProgressLine } from './progress.js';
import { type FinishContext, type RunTrainingResult, runTraining, scoreTranslations } from './run-training.js';

export interface PruneResult extends RunTrainingResult {
  keptHeads: Record<AttentionType, number>;
  undecidedHeads: string[];
  maskPath: string;
  devBleuPruned: number | null;
  testBleuPruned: number | null;
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
    const { gates, model, data, config: cfg, run, progress, isStopRequested } = ctx;
    if (!gates) throw new Error('pruning run without gates');
    const kept = gates.keptPositions();
    // positions -> original ids (a physically pruned parent keeps its own head ids)
    const keptIds = {} as Record<AttentionType, number[][]>;
    for (const stack of ATTENTION_TYPES) keptIds[stack] = kept[stack].map((l, layer) => l.map((pos) => gates.originalHead(stack, layer, pos)));
    const shape = originalMaskShape(cfg.model);
    const mask = maskFromKeptSets(keptIds, shape, cfg.gates.targetHeads !== null ? `gates (budget ${JSON.stringify(cfg.gates.targetHeads)})` : `gates (lambda ${cfg.train.l0Lambda})`);
    const maskPath = run.file('mask.json');
    writeHeadMask(maskPath, mask);
    const undecidedHeads = gates.fractionalGates();
    const keptHeads = Object.fromEntries(ATTENTION_TYPES.map((s) => [s, countKept(mask, shape, s)])) as Record<AttentionType, number>;
    progress.log(`pruned: kept ${ATTENTION_TYPES.map((s) => `${s} ${keptHeads[s]}`).join(', ')}; undecided gates (strictly between 0 and 1): ${undecidedHeads.length ? undecidedHeads.join(', ') : 'none'}`);
    const binary = gates.prunedGates(kept);
    const devPairs = data.corpora.valid.slice(0, o.devSentences ?? data.corpora.valid.length);
    const dev = devPairs.length ? await scoreTranslations(model, data.tokenizer, devPairs, cfg, binary, { progress, label: 'dev (pruned)', isStopRequested }) : null;
    const test = data.corpora.test.length ? await scoreTranslations(model, data.tokenizer, data.corpora.test, cfg, binary, { progress, label: 'test (pruned)', isStopRequested }) : null;
    disposeGates(binary);
    progress.done();
    if (test) writeFileAtomic(run.file('test.pruned.hyp'), test.hyps.join('\n') + '\n');
    if (dev) progress.log(`dev BLEU with pruned heads removed: ${dev.scores.bleu.toFixed(2)}`);
    if (test) progress.log(`test ${test.scores.formatted}`);
    summary = { keptHeads, undecidedHeads, maskPath, devBleuPruned: dev?.scores.bleu ?? null, testBleuPruned: test?.scores.bleu ?? null };
    return { pruning: { ...summary, devScores: dev?.scores ?? null, testScores: test?.scores ?? null } };
  };
  if (!o.parent && !o.isResume) throw new Error('runPruning: a parent checkpoint is needed unless resuming');
  const r = await runTraining({ config: o.config, run: o.run, initFrom: o.isResume ? undefined : o.parent, isResume: o.isResume, onResumed: o.onResumed, tokenizer: o.tokenizer, progress: o.progress, isStopRequested: o.isStopRequested, evaluateTest: false, finish, runtime: o.runtime });
  const s = summary as Omit<PruneResult, keyof RunTrainingResult> | null;
  return { ...r, keptHeads: s?.keptHeads ?? ({} as Record<AttentionType, number>), undecidedHeads: s?.undecidedHeads ?? [], maskPath: s?.maskPath ?? '', devBleuPruned: s?.devBleuPruned ?? null, testBleuPruned: s?.testBleuPruned ?? null };
}
