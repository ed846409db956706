/**
 * `analyzeHeads`: every score of every head of a trained model over one named data split, with dropout
 * off and the model's test-time gates applied, assembled into a `HeadReport` (report.ts). The pieces:
 * attention statistics and roles (attention-pass.ts, attention-stats.ts, roles.ts, conllu.ts), Michel
 * importance (importance.ts), single-head ablation (dev-metrics.ts), LRP relevance (lrp.ts).
 */
import { DEFAULT_ANALYSIS } from '../config/defaults.js';
import { ATTENTION_TYPES, type AttentionType } from '../config/head-id.js';
import type { ResolvedConfig } from '../config/schema.js';
import type { Transformer } from '../model/transformer.js';
import type { HeadGates } from '../gates/head-gates.js';
import type { EncodedPair } from '../data/batches.js';
import type { SentencePair } from '../data/corpus.js';
import type { BpeTokenizer } from '../data/tokenizer.js';
import { encodePairs } from '../data/prepare.js';
import { eta, formatDuration } from '../train/progress.js';
import { type RareTokenOptions, frequencyRanks, summarizeHeadStats } from './attention-stats.js';
import { type AlignedSentence, collectAttentionStats } from './attention-pass.js';
import { type ConlluSentence, alignWordsToPieces } from './conllu.js';
import { devLoss, greedyBleu } from './dev-metrics.js';
import { type AblationMetric, DEFAULT_ABLATION_METRIC, DEFAULT_MASKS_PER_PASS, batchedAblationLosses } from './batched-ablation.js';
import { type HeadLayout, type PerHead, headLayout, listHeads } from '../config/head-layout.js';
import { gateStates, gateTensorsOf, testGateMultipliers, withHeadsRemoved } from './multipliers.js';
import { disposeGates } from '../model/gate-tensors.js';
import {
  DEFAULT_IMPORTANCE,
  type ImportanceForm,
  type ImportanceNormalization,
  estimateMichelImportance,
  importanceScores,
  importanceSettingProblems,
  normalizeByLayer,
} from './importance.js';
import { ConfigError } from '../util/errors.js';
import { type RelevanceRule, estimateHeadRelevance } from './lrp.js';
import { type RoleOptions, addBaselineInstances, createBaselineTally, decideRoles, relationBaselines, relationInstances, resolveRoleOptions } from './roles.js';
import { DEFINITIONS, HEAD_REPORT_FORMAT, HEAD_REPORT_VERSION, type HeadReport, type HeadReportEntry, rankAgreement } from './report.js';

export interface AnalyzeOptions {
  model: Transformer;
  gates?: HeadGates | null;
  tokenizer: BpeTokenizer;
  config: ResolvedConfig;
  /** provenance for the report */
  source?: { runPath?: string | null; checkpoint?: string | null; step?: number | null };
  split: { name: string; source: string; pairs: readonly SentencePair[] };
  /** attention types to analyse (default: all the model has) */
  stacks?: readonly AttentionType[];
  /** token frequencies of the training corpus per side (index = token id); null: no rare-token role */
  frequencies?: { src: ArrayLike<number>; tgt: ArrayLike<number>; source: string } | null;
  /** CoNLL-U parses of the split's source sentences, in split order */
  conllu?: { path: string; sentences: readonly ConlluSentence[] } | null;
  /** padded-token budget per batch (default: config.train.maxTokensPerBatch) */
  maxTokensPerBatch?: number;
  /** loss for Michel importance: label smoothing (default config.train.labelSmoothing; 0 = NLL) */
  labelSmoothing?: number;
  /** the importance reported as `importance` (default: per example, layer-normalised; every form is in the report) */
  importance?: { form?: ImportanceForm; normalize?: ImportanceNormalization };
  /**
   * single-head ablation (default on): the dev loss of every head removed alone, many heads per forward
   * pass (batched-ablation.ts); with metric 'bleu' also greedy BLEU on the first DEFAULT_ANALYSIS.ablation.bleuSentences (200), head by head
   */
  ablation?: { enabled?: boolean; metric?: AblationMetric; bleuSentences?: number; masksPerPass?: number };
  /** LRP relevance (default on, rule and sentences: DEFAULT_ANALYSIS.lrp) */
  lrp?: { enabled?: boolean; rule?: RelevanceRule; sentences?: number };
  roles?: Partial<RoleOptions>;
  onProgress?: (msg: string) => void;
  /** polled between ablations and after every batch of a pass: true stops the analysis (AnalysisStopped) */
  isStopRequested?: () => boolean;
}

/** Thrown by analyzeHeads when isStopRequested says so: nothing is written, the analysis starts over next time. */
export class AnalysisStopped extends Error {
  constructor() {
    super('analysis stopped on request (an analysis has no checkpoint: it starts over next time)');
  }
}

export const DEFAULT_ABLATION_BLEU_SENTENCES: number = DEFAULT_ANALYSIS.ablation.bleuSentences;
export const DEFAULT_LRP_SENTENCES: number = DEFAULT_ANALYSIS.lrp.sentences;

/** Pairs the model can take (no side longer than maxPositions with </s> or <s>). */
export function encodeForModel(tokenizer: BpeTokenizer, pairs: readonly SentencePair[], maxPositions: number): { encoded: EncodedPair[]; skipped: number } {
  const all = encodePairs(tokenizer, pairs);
  const encoded = all.filter((p) => p.src.length + 1 <= maxPositions && p.tgt.length + 1 <= maxPositions);
  return { encoded, skipped: all.length - encoded.length };
}

/** Token frequencies of a training corpus, per side (for the rare-token role). */
export function trainingFrequencies(tokenizer: BpeTokenizer, train: readonly SentencePair[]): { src: Int32Array; tgt: Int32Array } {
  const src = new Int32Array(tokenizer.vocabSize);
  const tgt = new Int32Array(tokenizer.vocabSize);
  for (const p of train) {
    for (const id of tokenizer.encode(p.src)) src[id]!++;
    for (const id of tokenizer.encode(p.tgt)) tgt[id]!++;
  }
  return { src, tgt };
}

function stacksOf(model: Transformer, wanted: readonly AttentionType[] | undefined): AttentionType[] {
  return ATTENTION_TYPES.filter((s) => (wanted ?? ATTENTION_TYPES).includes(s) && model.shape[s].length > 0);
}

function rareOptions(freq: ArrayLike<number>, minRank: number): RareTokenOptions {
  return { frequencies: freq, ranks: frequencyRanks(freq), minRank };
}

export async function analyzeHeads(o: AnalyzeOptions): Promise<HeadReport> {
  const log = o.onProgress ?? (() => {});
  const stopIfRequested = () => {
    if (o.isStopRequested?.()) throw new AnalysisStopped();
  };
  /** a progress line per batch of a pass over the dev sentences (batches done, elapsed, ETA); a stop point */
  const batchProgress = (label: string) => {
    const startedAt = Date.now();
    return (done: number, total: number) => {
      stopIfRequested();
      const elapsedMs = Date.now() - startedAt;
      log(`${label}: batch ${done}/${total} | ${formatDuration(elapsedMs / 1000)} | ETA ${formatDuration(eta(done, total, elapsedMs))}`);
    };
  };
  const { model, config } = o;
  const layout: HeadLayout = headLayout(config.model);
  const stacks = stacksOf(model, o.stacks);
  const roleOptions = resolveRoleOptions(o.roles);
  const maxTokens = o.maxTokensPerBatch ?? config.train.maxTokensPerBatch;
  const labelSmoothing = o.labelSmoothing ?? config.train.labelSmoothing;
  const importanceForm = o.importance?.form ?? DEFAULT_IMPORTANCE.form;
  const importanceNormalize = o.importance?.normalize ?? DEFAULT_IMPORTANCE.normalize;
  const settingProblems = importanceSettingProblems(o.importance?.form, o.importance?.normalize, {
    form: 'importance.form',
    normalize: 'importance.normalize',
  });
  if (settingProblems.length) throw new ConfigError(settingProblems);
  const isAblation = o.ablation?.enabled ?? true;
  const ablationMetric = o.ablation?.metric ?? DEFAULT_ABLATION_METRIC;
  const bleuSentences = ablationMetric === 'bleu' ? (o.ablation?.bleuSentences ?? DEFAULT_ABLATION_BLEU_SENTENCES) : 0;
  const isLrp = o.lrp?.enabled ?? true;
  const lrpRule = o.lrp?.rule ?? 'lrp';
  const lrpSentences = o.lrp?.sentences ?? DEFAULT_LRP_SENTENCES;
  const notes: string[] = [];

  const base = testGateMultipliers(layout, o.gates);
  const states = gateStates(layout, o.gates);
  const { encoded, skipped } = encodeForModel(o.tokenizer, o.split.pairs, config.model.maxPositions);
  if (skipped) notes.push(`${skipped} sentence pairs longer than model.maxPositions were skipped`);
  if (!encoded.length) notes.push('no sentence pairs to analyse');
  const kept = new Set(encoded.map((p) => p.index));
  const keptPairs = o.split.pairs.filter((_, i) => kept.has(i));

  // CoNLL-U alignment (sentence i of the file <-> sentence i of the split)
  let syntax: Map<number, AlignedSentence> | null = null;
  let conlluInfo: HeadReport['settings']['conllu'] = null;
  const baselineTally = createBaselineTally();
  if (o.conllu && stacks.includes('enc-self')) {
    syntax = new Map();
    let skippedSentences = 0;
    encoded.forEach((p, pos) => {
      const s = o.conllu!.sentences[p.index];
      if (!s) return;
      const a = alignWordsToPieces(
        s,
        p.src.map((id) => o.tokenizer.pieceOf(id)),
      );
      if (!a) {
        skippedSentences++;
        return;
      }
      const instances = relationInstances(s, roleOptions.relations);
      syntax!.set(pos, { alignment: a, instances });
      addBaselineInstances(baselineTally, instances);
    });
    conlluInfo = { path: o.conllu.path, sentences: o.conllu.sentences.length, aligned: syntax.size, skipped: skippedSentences };
    if (skippedSentences)
      notes.push(
        `${skippedSentences} CoNLL-U sentences did not match their source sentence character for character and were left out of the syntactic analysis`,
      );
    if (o.conllu.sentences.length !== o.split.pairs.length)
      notes.push(`the CoNLL-U file has ${o.conllu.sentences.length} sentences, the split ${o.split.pairs.length}; sentences are paired by order`);
  }

  log(`attention statistics: ${encoded.length} sentences, ${stacks.join(', ')}`);
  const freq = o.frequencies ?? null;
  const pass = await collectAttentionStats(model, layout, encoded, base, {
    stacks,
    maxTokensPerBatch: maxTokens,
    rare: freq ? { src: rareOptions(freq.src, roleOptions.rareMinRank), tgt: rareOptions(freq.tgt, roleOptions.rareMinRank) } : null,
    syntax,
    onBatch: batchProgress('attention statistics'),
  });

  log(
    `importance: gradients of each sentence's loss with respect to per-token head masks (reported: per ${importanceForm}, normalisation ${importanceNormalize})`,
  );
  const imp = await estimateMichelImportance(model, layout, encoded, base, {
    stacks,
    maxTokensPerBatch: maxTokens,
    labelSmoothing,
    onBatch: batchProgress('importance'),
  });
  const chosen = importanceScores(imp, importanceForm, importanceNormalize);
  const perExampleL2 = normalizeByLayer(imp.perExample);
  const perTokenL2 = normalizeByLayer(imp.perToken);
  const perBatchL2 = normalizeByLayer(imp.perBatch);

  let baseline: HeadReport['baseline'] = null;
  const ablation = new Map<string, { loss: number; bleu: number | null }>();
  const heads = listHeads(layout, stacks);
  if (isAblation && encoded.length) {
    const bleuPairs = keptPairs.slice(0, bleuSentences);
    const g = gateTensorsOf(base);
    const baseLoss = await devLoss(model, encoded, g, maxTokens);
    const baseBleu = bleuPairs.length ? await greedyBleu(model, o.tokenizer, bleuPairs, g, config) : null;
    disposeGates(g);
    baseline = { devLoss: baseLoss, devBleu: baseBleu, bleuSentences: bleuPairs.length };
    // closed gates: removing the head changes nothing
    const open = heads.filter((h) => base[h.stack][h.layer]![h.position] !== 0);
    for (const h of heads) if (!open.includes(h)) ablation.set(h.key, { loss: baseLoss, bleu: baseBleu });
    stopIfRequested();
    const masksPerPass = o.ablation?.masksPerPass ?? DEFAULT_MASKS_PER_PASS;
    log(`ablation: dev loss of ${open.length} heads removed one at a time, up to ${masksPerPass} heads per forward pass`);
    const losses = await batchedAblationLosses(model, encoded, base, open, {
      maxTokensPerBatch: maxTokens,
      masksPerPass,
      onPass: batchProgress('ablation loss'),
    });
    let done = 0;
    for (const [i, h] of open.entries()) {
      done++;
      let bleu: number | null = null;
      if (bleuPairs.length) {
        stopIfRequested();
        log(`ablation BLEU ${done}/${open.length}: ${h.key}`);
        const gh = gateTensorsOf(withHeadsRemoved(base, [h]));
        bleu = await greedyBleu(model, o.tokenizer, bleuPairs, gh, config);
        disposeGates(gh);
      }
      ablation.set(h.key, { loss: losses[i]!, bleu });
    }
  }

  let relevance: PerHead | null = null;
  let lrpSteps = 0;
  const lrpPairs = encoded.slice(0, lrpSentences);
  if (isLrp && lrpPairs.length) {
    log(`LRP relevance (${lrpRule}): ${lrpPairs.length} sentences, one backward pass per target position on its prefix`);
    const r = await estimateHeadRelevance(model, layout, lrpPairs, base, {
      stacks,
      rule: lrpRule,
      maxTokensPerBatch: maxTokens,
      onBatch: batchProgress('LRP relevance'),
    });
    relevance = r.relevance;
    lrpSteps = r.steps;
  }

  const baselines = syntax ? relationBaselines(baselineTally) : null;
  const entries: Record<string, HeadReportEntry> = {};
  for (const h of heads) {
    const acc = pass.stats[h.stack][h.layer]![h.position]!;
    const summary = summarizeHeadStats(acc, freq !== null);
    const st = states[h.stack][h.layer]![h.position];
    const roles = decideRoles(
      h.stack,
      acc,
      summary.rare,
      syntax && baselines && pass.syntactic ? { tally: pass.syntactic[h.stack][h.layer]![h.position]!, baselines } : null,
      roleOptions,
    );
    const ab = ablation.get(h.key);
    entries[h.key] = {
      stack: h.stack,
      layer: h.layer,
      head: h.head,
      position: h.position,
      gate: st ? { testGate: st.testGate, pOpen: st.pOpen, pOne: st.pOne, pZero: st.pZero, logAlpha: st.logAlpha } : null,
      importance: {
        score: chosen[h.stack][h.layer]![h.position]!,
        perExample: imp.perExample[h.stack][h.layer]![h.position]!,
        perExampleLayerNorm: perExampleL2[h.stack][h.layer]![h.position]!,
        perToken: imp.perToken[h.stack][h.layer]![h.position]!,
        perTokenLayerNorm: perTokenL2[h.stack][h.layer]![h.position]!,
        perBatch: imp.perBatch[h.stack][h.layer]![h.position]!,
        perBatchLayerNorm: perBatchL2[h.stack][h.layer]![h.position]!,
      },
      attention: {
        queries: summary.queries,
        confidence: summary.confidence,
        entropy: summary.entropy,
        offsetHistogram: summary.offsetHistogram,
        modeOffset: summary.modeOffset,
        modeFraction: summary.modeFraction,
      },
      ablation:
        ab && baseline
          ? {
              loss: ab.loss,
              bleu: ab.bleu,
              deltaLoss: ab.loss - baseline.devLoss,
              deltaBleu: ab.bleu !== null && baseline.devBleu !== null ? ab.bleu - baseline.devBleu : null,
            }
          : null,
      lrp: relevance ? relevance[h.stack][h.layer]![h.position]! : null,
      roles,
    };
  }
  if (!freq) notes.push('no training-corpus frequencies: the rare-token role was not evaluated');
  if (isAblation && ablationMetric === 'bleu')
    notes.push(`ablation BLEU is greedy corpus BLEU on the first ${baseline?.bleuSentences ?? 0} analysed sentences; the loss uses all ${encoded.length}`);
  if (isAblation && ablationMetric === 'loss')
    notes.push(`ablation measured the dev loss only (all ${encoded.length} analysed sentences); --ablation bleu adds greedy dev BLEU per head`);

  return {
    format: HEAD_REPORT_FORMAT,
    version: HEAD_REPORT_VERSION,
    createdAt: new Date().toISOString(),
    model: {
      runPath: o.source?.runPath ?? null,
      checkpoint: o.source?.checkpoint ?? null,
      step: o.source?.step ?? null,
      headsPerLayer: layout.originalShape,
      keptHeads: config.model.keptHeads ? layout.originalIds : null,
      gatedStacks: o.gates ? [...config.gates.attention] : [],
    },
    data: {
      split: o.split.name,
      source: o.split.source,
      sentences: encoded.length,
      skippedTooLong: skipped,
      srcTokens: encoded.reduce((a, p) => a + p.src.length + 1, 0),
      tgtTokens: encoded.reduce((a, p) => a + p.tgt.length + 1, 0),
    },
    stacks,
    settings: {
      maxTokensPerBatch: maxTokens,
      importance: {
        form: importanceForm,
        normalize: importanceNormalize,
        loss: labelSmoothing > 0 ? 'label-smoothed' : 'nll',
        labelSmoothing,
        sentences: imp.sentences,
        batches: imp.batches,
        queryTokens: imp.queryTokens,
      },
      ablation: {
        enabled: isAblation,
        metric: ablationMetric,
        decoding: 'greedy',
        bleuSentences: baseline?.bleuSentences ?? 0,
        lossSentences: isAblation ? encoded.length : 0,
      },
      lrp: { enabled: isLrp, rule: lrpRule, sentences: isLrp ? lrpPairs.length : 0, steps: lrpSteps },
      roles: roleOptions,
      frequencies: freq ? { source: freq.source } : null,
      conllu: conlluInfo,
    },
    definitions: DEFINITIONS,
    baseline,
    syntacticBaselines: baselines,
    agreement: rankAgreement(entries),
    heads: entries,
    notes,
  };
}
