import { join } from 'node:path';
import { createHeadStats } from './attention-stats.js';
import { readConllu } from './conllu.js';
import {
  DEFAULT_ROLE_OPTIONS,
  type HeadSyntacticTally,
  addBaselineInstances,
  addHeadInstances,
  createBaselineTally,
  decideRoles,
  relationBaselines,
  relationInstances,
  resolveRoleOptions,
  wordArgmax,
} from './roles.js';

const [, dogs] = readConllu(join(process.cwd(), 'data', 'conllu', 'sample.conllu'));

describe('syntactic relations', () => {
  it('lists each relation in both directions; a head finds any dependent of that relation', () => {
    // Old(0) dogs(1) chase(2) red(3) balls(4) quickly(5) .(6)
    const inst = relationInstances(dogs!, DEFAULT_ROLE_OPTIONS.relations);
    const byKey = (k: string) => inst.filter((i) => i.key === k).map((i) => [i.query, i.targets]);
    expect(byKey('nsubj:dep->head')).toEqual([[1, [2]]]);
    expect(byKey('nsubj:head->dep')).toEqual([[2, [1]]]);
    expect(byKey('obj:dep->head')).toEqual([[4, [2]]]);
    expect(byKey('amod:dep->head')).toEqual([
      [0, [1]],
      [3, [4]],
    ]);
    expect(byKey('amod:head->dep')).toEqual([
      [1, [0]],
      [4, [3]],
    ]);
    expect(byKey('advmod:head->dep')).toEqual([[2, [5]]]);
  });

  it('the baseline is the best fixed word offset per relation and direction', () => {
    const t = createBaselineTally();
    // amod dep->head: offsets +1, +1, +2 -> best +1 with 2 of 3
    addBaselineInstances(t, [
      { key: 'amod:dep->head', query: 0, targets: [1] },
      { key: 'amod:dep->head', query: 3, targets: [4] },
      { key: 'amod:dep->head', query: 2, targets: [4] },
      // a head with two dependents counts once per offset
      { key: 'amod:head->dep', query: 5, targets: [3, 4] },
    ]);
    const b = relationBaselines(t);
    expect(b['amod:dep->head']).toEqual({ instances: 3, offset: 1, accuracy: 2 / 3 });
    expect(b['amod:head->dep']).toEqual({ instances: 1, offset: -2, accuracy: 1 });
  });

  it('word-level argmax: piece weights summed over the key word, averaged over the query word', () => {
    // words: w0 = piece 0, w1 = pieces 1-2, w2 = piece 3; piece 4 is </s>
    const a = { wordPieces: [[0], [1, 2], [3]], pieceWords: [[0], [1], [1], [2]] };
    const w = [
      [0.1, 0.25, 0.25, 0.3, 0.1], // w0 -> w1 (0.25 + 0.25), although the single largest piece is w2's 0.3
      [0.5, 0.1, 0.1, 0.2, 0.1], // w1 rows averaged: w0 0.3, w1 0.2, w2 0.4 -> w2
      [0.1, 0.1, 0.1, 0.6, 0.1],
      [0.05, 0.05, 0.05, 0.05, 0.8], // </s> is no word: w1 (0.1) wins
      [0.2, 0.2, 0.2, 0.2, 0.2],
    ].flat();
    expect(wordArgmax(w, 0, 5, a)).toEqual([1, 2, 1]);
    const tally: HeadSyntacticTally = new Map();
    addHeadInstances(
      tally,
      [
        { key: 'x:dep->head', query: 0, targets: [1] },
        { key: 'x:dep->head', query: 2, targets: [0] },
      ],
      [1, 2, 1],
    );
    expect(tally.get('x:dep->head')).toEqual({ instances: 2, hits: 1 });
  });
});

describe('decideRoles', () => {
  const o = resolveRoleOptions();
  const stats = (counts: Record<number, number>) => {
    const acc = createHeadStats();
    for (const [k, v] of Object.entries(counts)) acc.offsetCounts.set(Number(k), v);
    acc.argmaxQueries = Object.values(counts).reduce((a, b) => a + b, 0);
    return acc;
  };

  it('positional at >= 90% on one neighbour (self-attention only)', () => {
    expect(decideRoles('enc-self', stats({ [-1]: 9, 2: 1 }), null, null, o).positional).toEqual({ isPositional: true, offset: -1, fraction: 0.9 });
    expect(decideRoles('enc-self', stats({ [-1]: 9, 2: 1 }), null, null, o).labels).toEqual(['positional -1']);
    expect(decideRoles('dec-self', stats({ [-1]: 8, 1: 1, 0: 1 }), null, null, o).positional!.isPositional).toBe(false);
    expect(decideRoles('enc-self', stats({ 1: 19, 0: 1 }), null, null, o).labels).toEqual(['positional +1']);
    // offset 0 is not a neighbour
    expect(decideRoles('enc-self', stats({ 0: 10 }), null, null, o).positional!.isPositional).toBe(false);
    expect(decideRoles('dec-enc', stats({ [-1]: 10 }), null, null, o).positional).toBeNull();
    // a configurable threshold
    expect(decideRoles('enc-self', stats({ [-1]: 8, 2: 2 }), null, null, { ...o, positionalMinFraction: 0.8 }).positional!.isPositional).toBe(true);
  });

  it('rare-token when the rate exceeds the threshold', () => {
    const r = (rate: number) => ({ rate, top2Rate: rate, chanceRate: 0.1, queries: 50 });
    expect(decideRoles('enc-self', stats({}), r(0.66), null, o).rare!.isRare).toBe(true);
    expect(decideRoles('enc-self', stats({}), r(0.5), null, o).rare!.isRare).toBe(false);
    expect(decideRoles('enc-self', stats({}), r(0.66), null, o).labels).toEqual(['rare']);
  });

  it('syntactic when accuracy >= baseline + 10 points on enough instances', () => {
    const baselines = { 'nsubj:dep->head': { instances: 20, offset: 2, accuracy: 0.35 }, 'obj:head->dep': { instances: 20, offset: 1, accuracy: 0.41 } };
    const tally: HeadSyntacticTally = new Map([
      ['nsubj:dep->head', { instances: 20, hits: 9 }], // 0.45 = 0.35 + 0.10: matched
      ['obj:head->dep', { instances: 20, hits: 10 }], // 0.50 < 0.51: not matched
    ]);
    const r = decideRoles('enc-self', stats({}), null, { tally, baselines }, o);
    expect(r.syntactic!.matched).toEqual(['nsubj:dep->head']);
    expect(r.syntactic!.relations['obj:head->dep']!.gain).toBeCloseTo(0.09, 12);
    expect(r.labels).toEqual(['syntactic nsubj:dep->head']);
    // too few instances
    expect(decideRoles('enc-self', stats({}), null, { tally, baselines }, { ...o, syntacticMinInstances: 21 }).syntactic!.isSyntactic).toBe(false);
    // only encoder self-attention is compared with source parses
    expect(decideRoles('dec-enc', stats({}), null, { tally, baselines }, o).syntactic).toBeNull();
  });
});
