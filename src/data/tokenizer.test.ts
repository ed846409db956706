/**
 * BPE: merges worked out by hand on tiny corpora, agreement with a naive full-recount BPE, exact round
 * trips (unicode, the real DDTP corpus when present), determinism, and the JSON file format's checks.
 */
import { describe, expect, test, beforeAll, afterAll } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../util/errors.js';
import { Rng } from '../util/random.js';
import { readParallelCorpus } from './corpus.js';
import { generateSyntheticCorpus } from './synthetic.js';
import { BOS_ID, BpeTokenizer, EOS_ID, normalizeWhitespace, PAD_ID, pretokenize, tokenFrequencies, UNK_ID, WORD_START as W } from './tokenizer.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'heads-bpe-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('pretokenize', () => {
  test('word-start markers and punctuation runs', () => {
    expect(pretokenize('  The package. (common)  files... ')).toEqual([`${W}The`, `${W}package`, '.', `${W}(`, 'common', ')', `${W}files`, '...']);
    expect(pretokenize('Echtzeit-Strategiespiel 0.9')).toEqual([`${W}Echtzeit`, '-', 'Strategiespiel', `${W}0`, '.', '9']);
    expect(pretokenize('')).toEqual([]);
  });
});

describe('BPE learning, worked by hand', () => {
  // Corpus "ab ab ab / abc / bc bc": segments ▁ab x3, ▁abc x1, ▁bc x2; characters b:6, a:4, c:3.
  // Pair counts: (▁,a)=4 (a,b)=4 (b,c)=3 (▁,b)=2.
  //  1. tie at 4; "a" < "▁" in code-unit order          -> a+b    counts: (▁,ab)=4 (▁,b)=2 (b,c)=2 (ab,c)=1
  //  2. (▁,ab)=4                                        -> ▁+ab   counts: (▁,b)=2 (b,c)=2 (▁ab,c)=1
  //  3. tie at 2; "b" < "▁"                             -> b+c    counts: (▁,bc)=2 (▁ab,c)=1
  //  4. (▁,bc)=2                                        -> ▁+bc   counts: (▁ab,c)=1 < minPairCount 2: stop
  const texts = ['ab ab ab', 'abc', 'bc bc'];

  test('merges, vocabulary and ids', () => {
    const tok = BpeTokenizer.learn(texts, { numMerges: 10 });
    expect(tok.toJSON().merges).toEqual(['a b', `${W} ab`, 'b c', `${W} bc`]);
    expect(tok.toJSON().vocab).toEqual(['<pad>', '<s>', '</s>', '<unk>', W, 'b', 'a', 'c', 'ab', `${W}ab`, 'bc', `${W}bc`]);
    expect(tok.vocabSize).toBe(12);
    expect(tok.encode('abc bc ab')).toEqual([9, 7, 11, 9]);
    expect(tok.encodeToPieces('abc bc ab')).toEqual([`${W}ab`, 'c', `${W}bc`, `${W}ab`]);
    expect(tok.idOf(`${W}bc`)).toBe(11);
    expect(tok.pieceOf(8)).toBe('ab');
    expect(tok.idOf('zz')).toBeUndefined();
    expect(() => tok.pieceOf(12)).toThrow(RangeError);
  });

  test('numMerges and minPairCount bound the merges', () => {
    expect(BpeTokenizer.learn(texts, { numMerges: 2 }).toJSON().merges).toEqual(['a b', `${W} ab`]);
    expect(BpeTokenizer.learn(texts, { numMerges: 0 }).vocabSize).toBe(8);
    // with minPairCount 1 the count-1 pair (▁ab,c) is merged fifth
    expect(BpeTokenizer.learn(texts, { numMerges: 10, minPairCount: 1 }).toJSON().merges).toEqual(['a b', `${W} ab`, 'b c', `${W} bc`, `${W}ab c`]);
  });

  test('punctuation is split off, so "ab." shares "▁ab" with "ab"', () => {
    // Segments: ▁ab x2, . x1, ▁( x1, ab x1, ) x1. Characters a:3 b:3 (:1 ):1 .:1 (ties by code point).
    // Pairs: (a,b)=3 (▁,a)=2 (▁,()=1  ->  a+b, then ▁+ab, then stop.
    const tok = BpeTokenizer.learn(['ab. ab', '(ab)'], { numMerges: 10 });
    expect(tok.toJSON().merges).toEqual(['a b', `${W} ab`]);
    expect(tok.toJSON().chars).toEqual(['a', 'b', '(', ')', '.']);
    expect(tok.encodeToPieces('ab. (ab)')).toEqual([`${W}ab`, '.', W, '(', 'ab', ')']);
    expect(tok.decode(tok.encode('ab. (ab)'))).toBe('ab. (ab)');
    expect(tok.encode('ab')[0]).toBe(tok.encode('ab.')[0]);
  });

  test('minCharCount sends rare characters to <unk>', () => {
    const tok = BpeTokenizer.learn(['aa aa aa z'], { numMerges: 5, minCharCount: 2 });
    expect(tok.toJSON().chars).toEqual(['a']);
    expect(tok.encode('z')).toEqual([tok.idOf(W), UNK_ID]);
    expect(tok.decode(tok.encode('aa z aa'))).toBe('aa <unk> aa');
  });
});

/** Reference BPE: recounts every pair before every merge. Slow, obviously correct. */
function naiveBpe(texts: string[], numMerges: number): string[] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const seg of pretokenize(t)) counts.set(seg, (counts.get(seg) ?? 0) + 1);
  let words = [...counts].map(([s, c]) => ({ syms: Array.from(s), c }));
  const merges: string[] = [];
  for (let m = 0; m < numMerges; m++) {
    const pairs = new Map<string, { l: string; r: string; c: number }>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const k = `${w.syms[i]} ${w.syms[i + 1]}`;
        const e = pairs.get(k) ?? { l: w.syms[i]!, r: w.syms[i + 1]!, c: 0 };
        e.c += w.c;
        pairs.set(k, e);
      }
    }
    let best: { l: string; r: string; c: number } | undefined;
    for (const e of pairs.values()) {
      if (!best || e.c > best.c || (e.c === best.c && (e.l < best.l || (e.l === best.l && e.r < best.r)))) best = e;
    }
    if (!best || best.c < 2) break;
    const { l, r } = best;
    merges.push(`${l} ${r}`);
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length;) {
        if (i + 1 < w.syms.length && w.syms[i] === l && w.syms[i + 1] === r) {
          out.push(l + r);
          i += 2;
        } else out.push(w.syms[i++]!);
      }
      return { syms: out, c: w.c };
    });
  }
  return merges;
}

describe('incremental learning agrees with a full recount', () => {
  test('toy-mt text, 300 merges', () => {
    const { train } = generateSyntheticCorpus('toy-mt', { seed: 7, trainPairs: 400, validPairs: 0, testPairs: 0 });
    const texts = train.flatMap((p) => [p.src, p.tgt]);
    expect(BpeTokenizer.learn(texts, { numMerges: 300 }).toJSON().merges).toEqual(naiveBpe(texts, 300));
  });

  test('repetitive text with overlapping pairs (aaaa) and many ties', () => {
    const rng = new Rng(3);
    const texts: string[] = [];
    for (let i = 0; i < 200; i++) {
      const words: string[] = [];
      for (let j = 0; j < 6; j++) words.push('ab'.repeat(1 + rng.int(3)) + 'a'.repeat(rng.int(5)) + (rng.next() < 0.3 ? '.' : ''));
      texts.push(words.join(' '));
    }
    expect(BpeTokenizer.learn(texts, { numMerges: 60 }).toJSON().merges).toEqual(naiveBpe(texts, 60));
  });
});

describe('round trips', () => {
  const unicodeTexts = [
    'Grüße aus Köln: „Straße“ – naïve café.',
    'Emoji 👍🏽 and 👨‍👩‍👧 family; 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters 𝟙𝟚𝟛.',
    '中文 text（全角）and 日本語、テスト。',
    'combining e\u0301 and o\u0308 marks, (brackets) [x] {y} "quotes" \'single\'',
    'tabs\tand\u00a0no-break\u2003em   spaces\n newline',
    'URL https://example.org/a_b?c=1&d=2 v1.2.3 -- 50% $5 C++ #tag @user',
  ];

  test('decode(encode(s)) is s with whitespace normalised; pieces are whole code points', () => {
    const tok = BpeTokenizer.learn(unicodeTexts, { numMerges: 80, minPairCount: 1 });
    const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
    for (const s of unicodeTexts) {
      const ids = tok.encode(s);
      expect(ids).not.toContain(UNK_ID);
      expect(tok.decode(ids)).toBe(s.trim().split(/\s+/).join(' '));
      for (const p of tok.encodeToPieces(s)) expect(loneSurrogate.test(p)).toBe(false);
    }
    expect(tok.toJSON().chars).toContain('👍');
    expect(tok.toJSON().chars).toContain('𝔘');
  });

  test('unknown characters and a literal ▁ become <unk> without disturbing the rest', () => {
    const tok = BpeTokenizer.learn(['hello world.'], { numMerges: 20 });
    expect(tok.decode(tok.encode('hello ☃ world.'))).toBe('hello <unk> world.');
    expect(tok.decode(tok.encode('hello world☃.'))).toBe('hello world<unk>.');
    expect(tok.decode(tok.encode(`hello ${W}world`))).toBe('hello <unk>world');
  });

  test('decode drops <pad>, <s>, </s> and normalises stray markers', () => {
    const tok = BpeTokenizer.learn(['ab cd'], { numMerges: 0 });
    const ids = tok.encode('ab cd');
    expect(tok.decode([BOS_ID, ...ids, EOS_ID, PAD_ID, PAD_ID])).toBe('ab cd');
    const w = tok.idOf(W)!;
    expect(tok.decode([w, w, ...ids, w])).toBe('ab cd');
  });

  const ddtp = join(process.cwd(), '..', 'shared', 'data', 'ddtp', 'en-de', 'train');
  const hasDdtp = existsSync(`${ddtp}.en`) && existsSync(`${ddtp}.de`);
  (hasDdtp ? test : test.skip)('DDTP train set: 8000 merges, exact round trip of every sentence', () => {
    const pairs = readParallelCorpus({ format: 'moses', prefix: ddtp, srcLang: 'en', tgtLang: 'de' });
    const texts = pairs.flatMap((p) => [p.src, p.tgt]);
    const t0 = performance.now();
    const tok = BpeTokenizer.learn(texts, { numMerges: 8000 });
    const learnMs = performance.now() - t0;
    const json = tok.toJSON();
    expect(json.merges).toHaveLength(8000);
    expect(tok.vocabSize).toBe(4 + 1 + json.chars.length + 8000);
    expect(learnMs).toBeLessThan(30_000);
    let bad = 0;
    for (const s of texts) if (tok.decode(tok.encode(s)) !== normalizeWhitespace(s)) bad++;
    expect(bad).toBe(0);
    // "package." and "package" share the piece ▁package
    expect(tok.encodeToPieces('This package.')).toEqual([`${W}This`, `${W}package`, '.']);
  });
});

describe('determinism', () => {
  const { train } = generateSyntheticCorpus('toy-mt', { seed: 11, trainPairs: 1500, validPairs: 0, testPairs: 0 });
  const texts = train.flatMap((p) => [p.src, p.tgt]);

  test('same corpus, same merges; input order does not matter', () => {
    const a = BpeTokenizer.learn(texts, { numMerges: 400 }).toJSON();
    const b = BpeTokenizer.learn(texts, { numMerges: 400 }).toJSON();
    expect(b).toEqual(a);
    const shuffled = new Rng(5).shuffle([...texts]);
    expect(BpeTokenizer.learn(shuffled, { numMerges: 400 }).toJSON()).toEqual(a);
  });

  test('progress is reported and reaches the total', () => {
    const seen: number[] = [];
    BpeTokenizer.learn(texts, { numMerges: 200, onProgress: (done, total) => (expect(total).toBe(200), seen.push(done)) });
    expect(seen[seen.length - 1]).toBe(200);
    expect([...seen].sort((x, y) => x - y)).toEqual(seen);
  });
});

describe('file format', () => {
  const tok = BpeTokenizer.learn(['the cat sat on the mat.', 'die Katze saß auf der Matte.'], { numMerges: 15 });

  test('save / load gives the same tokenizer', () => {
    const path = join(dir, 'tok.json');
    tok.save(path);
    const back = BpeTokenizer.load(path);
    expect(back.toJSON()).toEqual(tok.toJSON());
    expect(back.encode('the Katze sat.')).toEqual(tok.encode('the Katze sat.'));
  });

  const good = () => JSON.parse(JSON.stringify(tok.toJSON())) as Record<string, unknown>;
  const cases: { name: string; obj: () => unknown; mention: RegExp }[] = [
    { name: 'not an object', obj: () => [1, 2], mention: /expected a tokenizer JSON object/ },
    { name: 'wrong version', obj: () => ({ ...good(), version: 2 }), mention: /version: expected 1, got 2/ },
    { name: 'missing version', obj: () => ({ ...good(), version: undefined }), mention: /version/ },
    { name: 'wrong pretokenizer', obj: () => ({ ...good(), pretokenizer: 'ws' }), mention: /pretokenizer/ },
    { name: 'special tokens changed', obj: () => ({ ...good(), specialTokens: ['<pad>', '<unk>', '<s>', '</s>'] }), mention: /specialTokens/ },
    { name: 'chars not strings', obj: () => ({ ...good(), chars: ['a', 3] }), mention: /chars\[1\]: expected a string/ },
    { name: 'char of two letters', obj: () => ({ ...good(), chars: ['ab'] }), mention: /chars\[0\]: expected one character/ },
    { name: 'malformed merge', obj: () => ({ ...good(), merges: ['ab'] }), mention: /merges\[0\]: expected "left right"/ },
    { name: 'merge of unknown pieces', obj: () => ({ ...good(), merges: ['q x'] }), mention: /merges\[0\].*not defined/ },
    {
      name: 'vocab does not match merges',
      obj: () => {
        const o = good();
        const v = [...(o.vocab as string[])];
        v[v.length - 1] = 'zzz';
        return { ...o, vocab: v };
      },
      mention: /vocab\[\d+\]: expected/,
    },
    { name: 'vocab too short', obj: () => ({ ...good(), vocab: ['<pad>'] }), mention: /vocab: expected \d+ entries/ },
  ];
  test.each(cases)('fromJSON rejects: $name', ({ obj, mention }) => {
    let err: unknown;
    try {
      BpeTokenizer.fromJSON(obj(), 'runs/x/tokenizer.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toMatch(/^runs\/x\/tokenizer\.json: /);
    expect((err as Error).message).toMatch(mention);
  });

  test('load names the file on invalid JSON or a missing file', () => {
    const path = join(dir, 'broken.json');
    writeFileSync(path, '{"version": 1,');
    expect(() => BpeTokenizer.load(path)).toThrow(new RegExp(`${path}: invalid JSON`));
    expect(() => BpeTokenizer.load(join(dir, 'none.json'))).toThrow(/none\.json: tokenizer file not found/);
  });

  test('checkVocabSize', () => {
    expect(() => tok.checkVocabSize(tok.vocabSize, 'ckpt')).not.toThrow();
    expect(() => tok.checkVocabSize(tok.vocabSize + 1, 'ckpt')).toThrow(/ckpt: vocabulary size mismatch/);
  });
});

describe('tokenFrequencies', () => {
  test('counts ids', () => {
    expect(Array.from(tokenFrequencies([[4, 5, 4], [], [0, 4]], 6))).toEqual([1, 0, 0, 0, 3, 1]);
    expect(() => tokenFrequencies([[6]], 6)).toThrow(RangeError);
  });
});
