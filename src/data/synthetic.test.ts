/**
 * Synthetic corpora: determinism, disjoint splits, the copy/reverse definitions, toy-mt's translation
 * rules on hand-checked patterns, and that the committed sample in data/toy-ende matches the generator.
 */
import { describe, expect, test } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../util/errors.js';
import { generateSyntheticCorpus, realizeToyMt, SYNTHETIC_TASKS, type SyntheticTask, type ToyMtSentence } from './synthetic.js';

const sizes = { trainPairs: 3000, validPairs: 300, testPairs: 300 };

describe('all tasks', () => {
  test.each(SYNTHETIC_TASKS)('%s: same seed same corpus, other seed other corpus', (task) => {
    const a = generateSyntheticCorpus(task, { seed: 1, ...sizes });
    expect(generateSyntheticCorpus(task, { seed: 1, ...sizes })).toEqual(a);
    expect(generateSyntheticCorpus(task, { seed: 2, ...sizes }).train.slice(0, 20)).not.toEqual(a.train.slice(0, 20));
    expect(a.train).toHaveLength(3000);
    expect(a.valid).toHaveLength(300);
    expect(a.test).toHaveLength(300);
  });

  test.each(SYNTHETIC_TASKS)('%s: no source sentence repeats within or across splits', (task) => {
    const { train, valid, test } = generateSyntheticCorpus(task, { seed: 3, ...sizes });
    const all = [...train, ...valid, ...test].map((p) => p.src);
    expect(new Set(all).size).toBe(all.length);
  });

  test('the train set does not depend on the valid/test sizes', () => {
    const small = generateSyntheticCorpus('toy-mt', { seed: 4, trainPairs: 100, validPairs: 0, testPairs: 0 });
    const big = generateSyntheticCorpus('toy-mt', { seed: 4, trainPairs: 200, validPairs: 50, testPairs: 50 });
    expect(big.train.slice(0, 100)).toEqual(small.train);
  });

  test('bad arguments', () => {
    expect(() => generateSyntheticCorpus('nope' as SyntheticTask, { seed: 1, ...sizes })).toThrow(DataError);
    expect(() => generateSyntheticCorpus('copy', { seed: 1, trainPairs: -1, validPairs: 0, testPairs: 0 })).toThrow(RangeError);
  });
});

describe('copy and reverse', () => {
  test('copy: target = source; 3-10 pseudo-words', () => {
    for (const p of generateSyntheticCorpus('copy', { seed: 5, ...sizes }).train) {
      expect(p.tgt).toBe(p.src);
      const n = p.src.split(' ').length;
      expect(n).toBeGreaterThanOrEqual(3);
      expect(n).toBeLessThanOrEqual(10);
    }
  });

  test('reverse: target = source words reversed', () => {
    for (const p of generateSyntheticCorpus('reverse', { seed: 5, ...sizes }).train) {
      expect(p.tgt.split(' ')).toEqual(p.src.split(' ').reverse());
    }
  });
});

describe('toy-mt', () => {
  const { train } = generateSyntheticCorpus('toy-mt', { seed: 6, trainPairs: 5000, validPairs: 0, testPairs: 0 });

  test('3-20 words, capitalised, same final punctuation on both sides', () => {
    for (const p of train) {
      for (const s of [p.src, p.tgt]) {
        const n = s.split(' ').length;
        expect(n).toBeGreaterThanOrEqual(3);
        expect(n).toBeLessThanOrEqual(20);
        expect(s[0]).toBe(s[0]!.toUpperCase());
      }
      expect(p.tgt.slice(-1)).toBe(p.src.slice(-1));
    }
  });

  test('clause markers and negation carry over', () => {
    for (const p of train) {
      expect(/\bbecause\b/.test(p.src)).toBe(p.tgt.includes(', weil '));
      expect(/\bthat\b/.test(p.src)).toBe(p.tgt.includes(', dass '));
      expect(/\bnot\b/.test(p.src)).toBe(/\bnicht\b/.test(p.tgt));
    }
  });

  // Each expected German sentence was written by hand from the rules in the module header.
  const cases: { name: string; tree: ToyMtSentence; src: string; tgt: string }[] = [
    {
      name: 'mixed declension (ein + -er), accusative plural, in + dem -> im',
      tree: {
        kind: 'statement',
        clause: {
          subject: { det: 'a', adjectives: ['small'], noun: 'dog' },
          verb: 'see',
          object: { det: 'the', noun: 'cat', isPlural: true },
          pp: { prep: 'in', np: { det: 'the', noun: 'garden' } },
        },
      },
      src: 'A small dog sees the cats in the garden.',
      tgt: 'Ein kliner Hunzel spählt die Miezken im Gartel.',
    },
    {
      name: 'fronted time adverb: verb second, subject after the verb',
      tree: {
        kind: 'statement',
        clause: { subject: { det: 'the', noun: 'child' }, verb: 'sleep', time: 'today', isTimeFronted: true },
      },
      src: 'Today the child sleeps.',
      tgt: 'Heutzel schlummt das Kindel.',
    },
    {
      name: 'time adverb at the end moves after the German verb; frequency adverb; -et after d',
      tree: {
        kind: 'statement',
        clause: {
          subject: { det: 'my', noun: 'friend' },
          verb: 'find',
          frequency: 'often',
          object: { det: 'a', noun: 'apple' },
          time: 'now',
        },
      },
      src: 'My friend often finds an apple now.',
      tgt: 'Mein Freundel fundet jetzel ofting einen Apfling.',
    },
    {
      name: 'negation: do-support out, nicht after the object; number + strong ending + dative plural -n',
      tree: {
        kind: 'statement',
        clause: {
          subject: { det: 'the', noun: 'woman' },
          verb: 'paint',
          isNegated: true,
          object: { det: 'this', adjectives: ['old'], noun: 'house' },
          pp: { prep: 'next to', np: { det: 'two', adjectives: ['red'], noun: 'tree' } },
        },
      },
      src: 'The woman does not paint this old house next to two red trees.',
      tgt: 'Die Frauke malkt dieses alke Hauf nicht neben zwel rotelen Baumern.',
    },
    {
      name: 'compound takes the head gender; question puts the verb first',
      tree: {
        kind: 'question',
        clause: {
          subject: { det: 'the', modifier: 'garden', noun: 'door' },
          verb: 'hold',
          object: { det: 'no', noun: 'key' },
        },
      },
      src: 'Does the garden door hold no key?',
      tgt: 'Huldet die Garteltorne keinen Schlüssling?',
    },
    {
      name: 'reported speech: comma + dass, verb last, manner adverb before it',
      tree: {
        kind: 'report',
        speaker: { det: 'the', noun: 'teacher', isPlural: true },
        verb: 'say',
        clause: { subject: { det: 'a', noun: 'bird' }, verb: 'sing', manner: 'quietly' },
      },
      src: 'The teachers say that a bird sings quietly.',
      tgt: 'Die Lehrmänner spruchen, dass ein Vogling leisig singelt.',
    },
    {
      name: 'because: comma + weil, verb last; dative feminine after mit',
      tree: {
        kind: 'because',
        main: { subject: { det: 'the', noun: 'man' }, verb: 'laugh' },
        sub: {
          subject: { det: 'the', noun: 'king' },
          verb: 'dance',
          pp: { prep: 'with', np: { det: 'a', adjectives: ['happy'], noun: 'doctor' } },
        },
      },
      src: 'The man laughs because the king dances with a happy doctor.',
      tgt: 'Der Mannel lachelt, weil der Königel mit einer frohlen Heilerin tanzelt.',
    },
  ];

  test.each(cases)('worked by hand: $name', ({ tree, src, tgt }) => {
    expect(realizeToyMt(tree)).toEqual({ src, tgt });
  });

  test('words outside the lexicon are rejected', () => {
    const clause = { subject: { det: 'the' as const, noun: 'unicorn' }, verb: 'sleep' };
    expect(() => realizeToyMt({ kind: 'statement', clause })).toThrow(/unknown noun "unicorn"/);
    const transitiveWithoutObject = { subject: { det: 'the' as const, noun: 'dog' }, verb: 'see' };
    expect(() => realizeToyMt({ kind: 'statement', clause: transitiveWithoutObject })).toThrow(/needs an object/);
  });

  test('the source determines the target across seeds', () => {
    const other = generateSyntheticCorpus('toy-mt', { seed: 8, trainPairs: 5000, validPairs: 0, testPairs: 0 }).train;
    const bySrc = new Map(train.map((p) => [p.src, p.tgt]));
    let shared = 0;
    for (const p of other) {
      const t = bySrc.get(p.src);
      if (t !== undefined) {
        shared++;
        expect(p.tgt).toBe(t);
      }
    }
    expect(shared).toBeGreaterThan(0);
  });

  test('the committed sample data/toy-ende/sample.* is the first 50 train pairs for seed 1', () => {
    const dir = join(process.cwd(), 'data', 'toy-ende');
    expect(existsSync(join(dir, 'sample.en'))).toBe(true);
    const { train: first } = generateSyntheticCorpus('toy-mt', { seed: 1, trainPairs: 50, validPairs: 0, testPairs: 0 });
    expect(readFileSync(join(dir, 'sample.en'), 'utf8')).toBe(first.map((p) => p.src).join('\n') + '\n');
    expect(readFileSync(join(dir, 'sample.de'), 'utf8')).toBe(first.map((p) => p.tgt).join('\n') + '\n');
  });
});
