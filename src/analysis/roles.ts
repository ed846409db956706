/**
 * Head roles after Voita et al. 2019 (§5): positional, syntactic and rare-token heads, decided from the
 * statistics of attention-stats.ts and thresholds in `RoleOptions` (defaults below; all recorded in the
 * report).
 *
 * - Positional (self-attention only): the argmax key is at one fixed offset in `positionalOffsets`
 *   (-1 or +1) for at least `positionalMinFraction` (0.9) of the queries.
 * - Rare-token: the argmax key holds the sentence's rarest token (training-corpus frequency) for more
 *   than `rareMinRate` of the queries (the paper's layer-1 head scores 66% on OpenSubtitles).
 * - Syntactic (encoder self-attention, with CoNLL-U parses of the source): per relation and direction,
 *   the accuracy of the head's argmax WORD (piece attention summed over the key word's pieces and
 *   averaged over the query word's pieces) at the related word, against the best fixed word offset for
 *   that relation and direction ("always attend k words to the left"), computed on the same instances.
 *   Syntactic when accuracy >= baseline + `syntacticMinGain` (absolute, 10 points) on at least
 *   `syntacticMinInstances` instances. Relations (UD labels matched exactly; `dobj` is UD v1's `obj`):
 *   nsubj, obj, amod, advmod, each in both directions: `dep->head` (the dependent's query finds its
 *   head, e.g. s->v) and `head->dep` (the head finds one of its dependents of that relation, v->s).
 */
import { DEFAULT_ANALYSIS } from '../config/defaults.js';
import type { AttentionType } from '../config/head-id.js';
import type { ConlluSentence, WordAlignment } from './conllu.js';
import { type HeadStatsAccumulator, offsetShare } from './attention-stats.js';

export interface RelationSpec {
  name: string;
  /** DEPREL values that count (exact match) */
  deprels: string[];
}

export interface RoleOptions {
  /** share of queries at one offset that makes a head positional (0.9) */
  positionalMinFraction: number;
  /** the offsets a positional head may point at ([-1, 1]) */
  positionalOffsets: number[];
  /** rare-token rate above which a head is a rare-token head (0.5) */
  rareMinRate: number;
  /** only queries whose rarest candidate token ranks beyond this count (0; the paper used 500 on a 32k vocabulary) */
  rareMinRank: number;
  /** absolute accuracy gain over the best fixed-offset baseline (0.10) */
  syntacticMinGain: number;
  /** fewest relation instances for a syntactic decision (20) */
  syntacticMinInstances: number;
  relations: RelationSpec[];
}

export const DEFAULT_RELATIONS: readonly RelationSpec[] = [
  { name: 'nsubj', deprels: ['nsubj'] },
  { name: 'obj', deprels: ['obj', 'dobj'] },
  { name: 'amod', deprels: ['amod'] },
  { name: 'advmod', deprels: ['advmod'] },
];

export const DEFAULT_ROLE_OPTIONS: Readonly<RoleOptions> = Object.freeze({
  ...DEFAULT_ANALYSIS.roles,
  positionalOffsets: [-1, 1],
  relations: DEFAULT_RELATIONS.map((r) => ({ ...r, deprels: [...r.deprels] })),
});

export function resolveRoleOptions(o: Partial<RoleOptions> = {}): RoleOptions {
  return {
    ...DEFAULT_ROLE_OPTIONS,
    ...o,
    positionalOffsets: [...(o.positionalOffsets ?? DEFAULT_ROLE_OPTIONS.positionalOffsets)],
    relations: (o.relations ?? DEFAULT_ROLE_OPTIONS.relations).map((r) => ({ ...r, deprels: [...r.deprels] })),
  };
}

export type Direction = 'dep->head' | 'head->dep';
export const DIRECTIONS: readonly Direction[] = ['dep->head', 'head->dep'];

/** `nsubj:dep->head` */
export function relationKey(relation: string, d: Direction): string {
  return `${relation}:${d}`;
}

/** One query word whose related words (of one relation, one direction) are the targets. */
export interface RelationInstance {
  key: string;
  /** 0-based word index */
  query: number;
  targets: number[];
}

/** The instances of a parsed sentence, for every relation and direction. */
export function relationInstances(s: ConlluSentence, relations: readonly RelationSpec[]): RelationInstance[] {
  const out: RelationInstance[] = [];
  for (const r of relations) {
    const deps = s.words.filter((w) => w.head > 0 && r.deprels.includes(w.deprel));
    for (const w of deps) out.push({ key: relationKey(r.name, 'dep->head'), query: w.id - 1, targets: [w.head - 1] });
    const byHead = new Map<number, number[]>();
    for (const w of deps) byHead.set(w.head - 1, [...(byHead.get(w.head - 1) ?? []), w.id - 1]);
    for (const [h, ts] of [...byHead.entries()].sort((a, b) => a[0] - b[0])) out.push({ key: relationKey(r.name, 'head->dep'), query: h, targets: ts });
  }
  return out;
}

/**
 * The argmax word of each query word from one head's piece attention over the source (</s> excluded:
 * it is no word). `weights[base + p * stride + k]` is the weight of piece p on piece k.
 */
export function wordArgmax(weights: ArrayLike<number>, base: number, stride: number, a: WordAlignment): number[] {
  const nWords = a.wordPieces.length;
  const out: number[] = [];
  for (let i = 0; i < nWords; i++) {
    const qs = a.wordPieces[i]!;
    let best = -1;
    let bestW = -Infinity;
    for (let j = 0; j < nWords; j++) {
      let w = 0;
      for (const p of qs) for (const k of a.wordPieces[j]!) w += weights[base + p * stride + k]!;
      w /= qs.length;
      if (w > bestW) {
        bestW = w;
        best = j;
      }
    }
    out.push(best);
  }
  return out;
}

/** Counts behind the syntactic decision: per relation key, instances and baseline offset hits. */
export interface SyntacticBaselineTally {
  instances: Map<string, number>;
  /** relation key -> offset -> instances with a target at that offset */
  offsetHits: Map<string, Map<number, number>>;
}

export function createBaselineTally(): SyntacticBaselineTally {
  return { instances: new Map(), offsetHits: new Map() };
}

export function addBaselineInstances(t: SyntacticBaselineTally, instances: readonly RelationInstance[]): void {
  for (const inst of instances) {
    t.instances.set(inst.key, (t.instances.get(inst.key) ?? 0) + 1);
    let m = t.offsetHits.get(inst.key);
    if (!m) t.offsetHits.set(inst.key, (m = new Map()));
    for (const off of new Set(inst.targets.map((x) => x - inst.query))) m.set(off, (m.get(off) ?? 0) + 1);
  }
}

export interface RelationBaseline {
  instances: number;
  /** the best fixed word offset (target - query) and its accuracy */
  offset: number | null;
  accuracy: number;
}

export function relationBaselines(t: SyntacticBaselineTally): Record<string, RelationBaseline> {
  const out: Record<string, RelationBaseline> = {};
  for (const [key, n] of [...t.instances.entries()].sort()) {
    let offset: number | null = null;
    let hits = 0;
    for (const [o, c] of [...(t.offsetHits.get(key)?.entries() ?? [])].sort((a, b) => a[0] - b[0])) {
      if (c > hits) {
        hits = c;
        offset = o;
      }
    }
    out[key] = { instances: n, offset, accuracy: n ? hits / n : 0 };
  }
  return out;
}

/** Per relation key: instances and hits of one head. */
export type HeadSyntacticTally = Map<string, { instances: number; hits: number }>;

export function addHeadInstances(t: HeadSyntacticTally, instances: readonly RelationInstance[], argmaxWords: readonly number[]): void {
  for (const inst of instances) {
    const e = t.get(inst.key) ?? { instances: 0, hits: 0 };
    e.instances++;
    if (inst.targets.includes(argmaxWords[inst.query]!)) e.hits++;
    t.set(inst.key, e);
  }
}

export interface RelationScore {
  instances: number;
  accuracy: number;
  baseline: number;
  gain: number;
}

export interface HeadRoles {
  positional: { isPositional: boolean; offset: number | null; fraction: number } | null;
  rare: { isRare: boolean; rate: number; top2Rate: number; chanceRate: number; queries: number } | null;
  syntactic: { isSyntactic: boolean; relations: Record<string, RelationScore>; matched: string[] } | null;
  /** short labels, e.g. ["positional -1", "rare", "syntactic nsubj:dep->head"]; [] = no role found */
  labels: string[];
}

/** The roles of one head from its accumulated statistics. */
export function decideRoles(
  stack: AttentionType,
  stats: HeadStatsAccumulator,
  rare: { rate: number; top2Rate: number; chanceRate: number; queries: number } | null,
  syntactic: { tally: HeadSyntacticTally; baselines: Record<string, RelationBaseline> } | null,
  o: RoleOptions,
): HeadRoles {
  const labels: string[] = [];
  let positional: HeadRoles['positional'] = null;
  if (stack !== 'dec-enc') {
    let offset: number | null = null;
    let fraction = 0;
    for (const off of o.positionalOffsets) {
      const f = offsetShare(stats, off);
      if (f > fraction) {
        fraction = f;
        offset = off;
      }
    }
    const isPositional = stats.argmaxQueries > 0 && fraction >= o.positionalMinFraction;
    positional = { isPositional, offset, fraction };
    if (isPositional) labels.push(`positional ${offset! > 0 ? '+' : ''}${offset}`);
  }
  let rareRole: HeadRoles['rare'] = null;
  if (rare) {
    const isRare = rare.queries > 0 && rare.rate > o.rareMinRate;
    rareRole = { isRare, ...rare };
    if (isRare) labels.push('rare');
  }
  let syn: HeadRoles['syntactic'] = null;
  if (syntactic && stack === 'enc-self') {
    const relations: Record<string, RelationScore> = {};
    const matched: string[] = [];
    for (const [key, b] of Object.entries(syntactic.baselines)) {
      const e = syntactic.tally.get(key) ?? { instances: 0, hits: 0 };
      const accuracy = e.instances ? e.hits / e.instances : 0;
      relations[key] = { instances: e.instances, accuracy, baseline: b.accuracy, gain: accuracy - b.accuracy };
      // a tiny epsilon keeps "exactly 10 points" from failing on float rounding
      if (e.instances >= o.syntacticMinInstances && accuracy >= b.accuracy + o.syntacticMinGain - 1e-12) matched.push(key);
    }
    syn = { isSyntactic: matched.length > 0, relations, matched };
    if (matched.length) labels.push(`syntactic ${matched.join(',')}`);
  }
  return { positional, rare: rareRole, syntactic: syn, labels };
}
