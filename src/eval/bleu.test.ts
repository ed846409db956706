/**
 * Tests for the sacreBLEU-compatible BLEU (bleu.ts, tokenizer-13a.ts, bleu-command.ts). Every expected value is
 * derived by hand in the comments (n-gram counts, then the formula) or is a published sacreBLEU result (its README
 * example and its own test-suite numbers), re-derived by hand here as well.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ConfigError, DataError } from '../util/errors.js';
import {
  BLEU_SIGNATURE_VERSION,
  bleuSignature,
  closestRefLen,
  computeBleu,
  corpusBleu,
  preprocessSegment,
  pyFixed,
  pyFloatRepr,
  sentenceBleu,
  tokenizedLowercaseBleu,
  type BleuOptions,
  type SmoothMethod,
} from './bleu.js';
import { runBleuCommand, splitLines, splitStdinLines, type BleuCommandOptions } from './bleu-command.js';
import { pyRstrip, pySplit, tokenize13a } from './tokenizer-13a.js';

const V = BLEU_SIGNATURE_VERSION;
/** BLEU from per-order precisions in percent: the geometric mean, as a plain product (independent of the code). */
const geo = (ps: number[]): number =>
  Math.pow(
    ps.reduce((a, b) => a * b, 1),
    1 / ps.length,
  );

describe('tokenize13a (sacreBLEU tokenizer_13a)', () => {
  it.each([
    ['Hello, world!', 'Hello , world !'],
    // $ is split off; the comma and inner period of a number stay; the final period is split (followed by a space)
    ['It costs $1,000.50.', 'It costs $ 1,000.50 .'],
    // a dash is split only right after a digit
    ['the 1990-1995 period', 'the 1990 - 1995 period'],
    ['state-of-the-art x-1', 'state-of-the-art x-1'],
    // period/comma: split when preceded by a non-digit, or followed by a non-digit
    ['U.S. e.g. 3.14 .5 5.', 'U . S . e . g . 3.14 . 5 5 .'],
    ['a,b 1,a a.1', 'a , b 1 , a a . 1'],
    // the apostrophe (0x27) is not in the symbol class, so contractions stay whole
    ["don't", "don't"],
    [
      '(a) [b] {c} a/b a:b a;b a?b a_b a^b a`b a|b a~b a@b a#b a%b a*b a+b a=b',
      '( a ) [ b ] { c } a / b a : b a ; b a ? b a _ b a ^ b a ` b a | b a ~ b a @ b a # b a % b a * b a + b a = b',
    ],
    // the four mteval entities are unescaped before splitting; the resulting symbols are then split off
    ['&quot;Tom &amp; Jerry&quot; &lt;3 &gt;', '" Tom & Jerry " < 3 >'],
    // &quot; is replaced before &amp;, so a double-escaped quote comes out as the literal text &quot;, split up
    ['&amp;quot;', '& quot ;'],
    // other entities are not unescaped
    ['&apos;', '& apos ;'],
    ['a <skipped> b', 'a b'],
    ['hyphen-\nated\nline', 'hyphenated line'],
    // non-ASCII punctuation is not split
    ['¿Qué? «Oui»', '¿Qué ? «Oui»'],
    ['  multiple   spaces\t', 'multiple spaces'],
    ['', ''],
  ])('%j -> %j', (input, expected) => {
    expect(tokenize13a(input)).toBe(expected);
  });

  it('splits on Python whitespace (U+001C-U+001F, U+0085 yes; U+FEFF no), unlike JS \\s', () => {
    expect(pySplit('a\x1cb\x85c\u00a0d\u3000e')).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(pySplit('\ufeffa b')).toEqual(['\ufeffa', 'b']);
    expect(pyRstrip('x \t\r\x1f\x85')).toBe('x');
    expect(pyRstrip('x\ufeff')).toBe('x\ufeff');
  });

  it('lowercases before unescaping, so &QUOT; becomes a quote only with lowercase on (as sacreBLEU)', () => {
    expect(preprocessSegment('&QUOT;hi&QUOT;', { lowercase: true, tokenize: '13a' })).toEqual(['"', 'hi', '"']);
    expect(preprocessSegment('&QUOT;hi&QUOT;', { lowercase: false, tokenize: '13a' })).toEqual(['&', 'QUOT', ';', 'hi', '&', 'QUOT', ';']);
    expect(preprocessSegment('Hello, world!  ', { lowercase: false, tokenize: 'none' })).toEqual(['Hello,', 'world!']);
  });
});

describe('Python number formatting', () => {
  it.each([
    [12.25, 1, '12.2'], // exact tie: Python rounds half to even, JS toFixed would give 12.3
    [0.125, 2, '0.12'],
    [0.375, 2, '0.38'],
    [2.5, 0, '2'],
    [3.5, 0, '4'],
    [12.35, 1, '12.3'], // 12.35 is really 12.3499999...
    [48.530827, 2, '48.53'],
    [100, 1, '100.0'],
    [0, 3, '0.000'],
  ])('pyFixed(%d, %d) = %s', (x, d, s) => {
    expect(pyFixed(x, d)).toBe(s);
  });

  it.each([
    [34, '34.0'],
    [34.1, '34.1'],
    [0, '0.0'],
    [1e-5, '1e-05'],
    [0.0001, '0.0001'],
    [1e16, '1e+16'],
    [123.456, '123.456'],
  ])('pyFloatRepr(%d) = %s', (x, s) => {
    expect(pyFloatRepr(x)).toBe(s);
  });

  it('precisions that are exact ties print as sacreBLEU does (100*1/400 = 0.25 -> "0.2")', () => {
    const s = computeBleu([10, 5, 2, 1], [20, 20, 20, 400], 20, 20, { smoothMethod: 'none', smoothValue: undefined, effectiveOrder: false, maxNgramOrder: 4 });
    expect(s.verbose).toBe('50.0/25.0/10.0/0.2 (BP = 1.000 ratio = 1.000 hyp_len = 20 ref_len = 20)');
  });
});

describe('corpusBleu: hand-computed single segment', () => {
  // hyp "the cat sat on the mat" vs ref "the cat is on the mat" (6 tokens each, 13a changes nothing):
  //  1-grams: the x2, cat, on, mat match, sat not            -> 5/6
  //  2-grams: the cat, on the, the mat match; cat sat, sat on -> 3/5
  //  3-grams: only "on the mat"                               -> 1/4
  //  4-grams: none                                            -> 0/3
  //  BP = 1 (6 = 6)
  const hyp = ['the cat sat on the mat'];
  const ref = [['the cat is on the mat']];

  it('exp smoothing (default): a zero-match order gets 100 / (2^k * total)', () => {
    const s = corpusBleu(hyp, ref);
    expect(s.counts).toEqual([5, 3, 1, 0]);
    expect(s.totals).toEqual([6, 5, 4, 3]);
    // p4 = 100 / (2 * 3)
    expect(s.score).toBeCloseTo(geo([500 / 6, 60, 25, 100 / 6]), 10);
    expect(s.format()).toBe('BLEU = 37.99 83.3/60.0/25.0/16.7 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)');
    expect(s.bp).toBe(1);
    expect([s.sys_len, s.ref_len]).toEqual([6, 6]);
  });

  it('no smoothing: a zero-match order makes the score 0', () => {
    const s = corpusBleu(hyp, ref, { smoothMethod: 'none' });
    expect(s.score).toBe(0);
    expect(s.format()).toBe('BLEU = 0.00 83.3/60.0/25.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)');
  });

  it('floor smoothing (default 0.1): p4 = 100 * 0.1 / 3', () => {
    const s = corpusBleu(hyp, ref, { smoothMethod: 'floor' });
    expect(s.score).toBeCloseTo(geo([500 / 6, 60, 25, 10 / 3]), 10);
    expect(s.format({ width: 2 })).toBe('BLEU = 25.41 83.3/60.0/25.0/3.3 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)');
  });

  it('add-k smoothing (default 1): adds k to matches and totals of orders >= 2 only, and reports them', () => {
    const s = corpusBleu(hyp, ref, { smoothMethod: 'add-k' });
    // 1-gram 5/6 untouched; 2-gram 4/6; 3-gram 2/5; 4-gram 1/4
    expect(s.counts).toEqual([5, 4, 2, 1]);
    expect(s.totals).toEqual([6, 6, 5, 4]);
    expect(s.score).toBeCloseTo(geo([500 / 6, 400 / 6, 40, 25]), 10);
  });

  it('smoothValue overrides the default (add-k 0.5, floor 1)', () => {
    expect(corpusBleu(hyp, ref, { smoothMethod: 'add-k', smoothValue: 0.5 }).score).toBeCloseTo(geo([500 / 6, 350 / 5.5, 150 / 4.5, 50 / 3.5]), 10);
    expect(corpusBleu(hyp, ref, { smoothMethod: 'floor', smoothValue: 1 }).score).toBeCloseTo(geo([500 / 6, 60, 25, 100 / 3]), 10);
    // exp takes no value: ignored, as in sacreBLEU
    expect(corpusBleu(hyp, ref, { smoothMethod: 'exp', smoothValue: 7 }).score).toBe(corpusBleu(hyp, ref).score);
  });

  it('exp smoothing halves again for each further zero-match order', () => {
    // hyp "a b x y" vs ref "a b c d": 1-gram 2/4, 2-gram 1/3 (a b), 3-gram 0/2, 4-gram 0/1
    // p3 = 100 / (2 * 2) = 25, p4 = 100 / (4 * 1) = 25
    const s = corpusBleu(['a b x y'], [['a b c d']]);
    expect(s.precisions[2]).toBe(25);
    expect(s.precisions[3]).toBe(25);
    expect(s.score).toBeCloseTo(geo([50, 100 / 3, 25, 25]), 10);
  });
});

describe('corpusBleu: brevity penalty, corpus sums, references, case', () => {
  it('sums statistics over segments before computing (not an average of sentence scores)', () => {
    // seg 1 as above: counts [5,3,1,0] totals [6,5,4,3], len 6/6
    // seg 2 "the cat" vs "the cat sat on the mat": counts [2,1,0,0] totals [2,1,0,0], len 2/6
    // corpus: counts [7,4,1,0] totals [8,6,4,3], sys 8, ref 12, BP = exp(1 - 12/8); p4 = 100/(2*3)
    const s = corpusBleu(['the cat sat on the mat', 'the cat'], [['the cat is on the mat', 'the cat sat on the mat']]);
    expect(s.counts).toEqual([7, 4, 1, 0]);
    expect(s.totals).toEqual([8, 6, 4, 3]);
    expect(s.bp).toBeCloseTo(Math.exp(-0.5), 14);
    expect(s.score).toBeCloseTo(Math.exp(-0.5) * geo([87.5, 400 / 6, 25, 100 / 6]), 10);
    // 0.6065 * (87.5 * 66.67 * 25 * 16.67)^(1/4) = 0.6065 * 39.48 = 23.948
    expect(s.format()).toBe('BLEU = 23.95 87.5/66.7/25.0/16.7 (BP = 0.607 ratio = 0.667 hyp_len = 8 ref_len = 12)');
  });

  it('clips each n-gram by its maximum count over references', () => {
    // hyp "the the the the"; refs "the cat" and "the the dog"
    // 1-gram "the" x4, max ref count max(1,2)=2 -> 2/4; 2-gram "the the" x3, ref2 has 1 -> 1/3
    // 3-gram 0/2, 4-gram 0/1; closest ref length to 4 among {2,3} is 3; p3 = 100/(2*2), p4 = 100/(4*1)
    const s = corpusBleu(['the the the the'], [['the cat'], ['the the dog']]);
    expect(s.counts).toEqual([2, 1, 0, 0]);
    expect(s.totals).toEqual([4, 3, 2, 1]);
    expect(s.ref_len).toBe(3);
    expect(s.score).toBeCloseTo(geo([50, 100 / 3, 25, 25]), 10);
    expect(s.signature).toBe(`nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:${V}`);
  });

  it.each([
    [4, [3, 5], 3], // tie -> shorter
    [4, [5, 3], 3],
    [4, [2, 7], 2],
    [4, [4, 9], 4],
    [0, [0, 2], 0],
    [10, [1], 1],
  ])('closest ref length to %d among %j is %d', (h, refs, expected) => {
    expect(closestRefLen(h, refs)).toBe(expected);
  });

  it('brevity penalty exp(1 - r/c) when shorter, 0 for an empty system output', () => {
    // "a b c" vs "a b c d e f": 1..3-grams all match, 4-gram total 0 -> break -> p4 = 0 -> score 0 without eff. order
    const s = corpusBleu(['a b c'], [['a b c d e f']]);
    expect(s.bp).toBeCloseTo(Math.exp(-1), 14);
    expect(s.score).toBe(0);
    expect(s.precisions).toEqual([100, 100, 100, 0]);
    const empty = corpusBleu([''], [['a b']]);
    expect(empty.bp).toBe(0);
    expect(empty.score).toBe(0);
    expect(empty.format()).toBe('BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 0.000 ratio = 0.000 hyp_len = 0 ref_len = 2)');
  });

  it('lowercase option', () => {
    // mixed: "The CAT sat ON the mat" vs "the cat sat on the mat": 1-grams sat, the, mat -> 3/6; 2-grams "the mat" -> 1/5;
    // 3-grams 0/4 -> 100/(2*4); 4-grams 0/3 -> 100/(4*3)
    const mixed = corpusBleu(['The CAT sat ON the mat'], [['the cat sat on the mat']]);
    expect(mixed.counts).toEqual([3, 1, 0, 0]);
    expect(mixed.score).toBeCloseTo(geo([50, 20, 12.5, 100 / 12]), 10);
    const lc = corpusBleu(['The CAT sat ON the mat'], [['the cat sat on the mat']], { lowercase: true });
    expect(lc.score).toBeCloseTo(100, 10);
    expect(lc.signature).toBe(`nrefs:1|case:lc|eff:no|tok:13a|smooth:exp|version:${V}`);
  });

  it('no match at all gives 0 with any smoothing, counts untouched (sacreBLEU #141)', () => {
    for (const m of ['exp', 'floor', 'add-k', 'none'] as SmoothMethod[]) {
      const s = corpusBleu(['this is a cat'], [['okay thanks']], { smoothMethod: m });
      expect(s.score).toBe(0);
      expect(s.counts).toEqual([0, 0, 0, 0]);
      expect(s.totals).toEqual([4, 3, 2, 1]);
    }
  });
});

describe('effective order and sentenceBleu', () => {
  it('sentence BLEU averages only over orders that have hypothesis n-grams', () => {
    // "the cat" vs "the cat sat on the mat": p1 = 2/2, p2 = 1/1, no 3-grams -> eff. order 2; BP = exp(1 - 6/2)
    const s = sentenceBleu('the cat', ['the cat sat on the mat']);
    expect(s.score).toBeCloseTo(100 * Math.exp(-2), 10);
    expect(s.format()).toBe('BLEU = 13.53 100.0/100.0/0.0/0.0 (BP = 0.135 ratio = 0.333 hyp_len = 2 ref_len = 6)');
    expect(s.signature).toBe(`nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:${V}`);
    // the same statistics at corpus level (no effective order) give 0
    expect(corpusBleu(['the cat'], [['the cat sat on the mat']]).score).toBe(0);
    expect(corpusBleu(['the cat'], [['the cat sat on the mat']], { effectiveOrder: true }).score).toBeCloseTo(100 * Math.exp(-2), 10);
  });

  // sacreBLEU test_bleu.py effective-order cases (tokenize none, floor 0.01, effective order):
  it.each([
    // "test" vs "a test": p1 = 1/1, eff. order 1, BP = exp(1 - 2/1)
    ['test', 'a test', 0.3678794411714425],
    ['a test', 'a test', 1.0],
    // "a little test" vs "a test": p1 = 2/3, p2 = 0/2 -> 100*0.01/2, p3 = 0/1 -> 100*0.01/1, BP 1
    ['a little test', 'a test', Math.cbrt((200 / 3) * 0.5 * 1) / 100],
  ])('%j vs %j', (h, r, expected) => {
    const s = corpusBleu([h], [[r]], { tokenize: 'none', smoothMethod: 'floor', smoothValue: 0.01, effectiveOrder: true });
    expect(s.score / 100).toBeCloseTo(expected, 12);
  });
  it('"a little test" vs "a test" scores the published 0.03218297948685433 (sacreBLEU test_bleu.py, all 17 digits)', () => {
    const s = corpusBleu(['a little test'], [['a test']], { tokenize: 'none', smoothMethod: 'floor', smoothValue: 0.01, effectiveOrder: true });
    expect(s.counts.slice(0, 3)).toEqual([2, 0, 0]);
    expect(s.totals.slice(0, 3)).toEqual([3, 2, 1]);
    expect(s.score / 100).toBeCloseTo(0.03218297948685433, 14);
  });
});

describe('known sacreBLEU results', () => {
  // sacreBLEU README example. 13a tokens and matches per segment (best over the two references):
  //  1: "The dog bit the man ." = ref A -> [6,5,4,3]/[6,5,4,3], closest ref len 6 (A 6, B 7)
  //  2: "It wasn't surprising ." -> 1-grams It, . -> [2,0,0,0]/[4,3,2,1], ref lens 5, 5 -> 5
  //  3: "The man had just bitten him ." -> 1-grams The man had bitten him . (6), 2-grams "The man", "man had",
  //     3-gram "The man had" -> [6,2,1,0]/[7,6,5,4]; ref lens 6, 7 -> 7
  //  corpus: [14,7,5,3]/[17,14,11,8], hyp 17, ref 18
  const hyps = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
  const refs = [
    ['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'],
    ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.'],
  ];

  it('README corpus example: 48.53', () => {
    const s = corpusBleu(hyps, refs);
    expect(s.counts).toEqual([14, 7, 5, 3]);
    expect(s.totals).toEqual([17, 14, 11, 8]);
    expect(s.score).toBeCloseTo(Math.exp(1 - 18 / 17) * geo([1400 / 17, 50, 500 / 11, 37.5]), 10);
    expect(s.score).toBeCloseTo(48.530827, 5); // sacreBLEU's test_corpus_bleu value
    expect(s.format()).toBe('BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)');
    expect(corpusBleu(hyps, refs, { smoothMethod: 'none' }).score).toBeCloseTo(48.530827, 5);
    expect(corpusBleu(hyps, refs, { tokenize: 'none' }).score).toBeCloseTo(49.1919566, 5);
  });

  it('empty hypotheses are kept and score 0', () => {
    expect(corpusBleu(['', '', ''], refs).score).toBe(0);
  });

  // sacreBLEU test_sentence_bleu.py (#98): Romanian with cedilla vs comma-below letters.
  // 13a: REF 10 tokens (";" split off), SYS 14 tokens. Matches: 1-grams de, zahăr, în, alb, ; -> 5/14;
  // 2-grams "de zahăr", "alb ;" -> 2/13; 3-grams 0/12; 4-grams 0/11; BP 1.
  const REF = 'produc\u0163ia de zah\u0103r brut se exprim\u0103 \u00een zah\u0103r alb;';
  const SYS = 'Produc\u021bia de zah\u0103r prim\u0103 va fi exprimat\u0103 \u00een ceea ce prive\u0219te zah\u0103rul alb;';
  it.each<[SmoothMethod, number | undefined, number, number]>([
    ['exp', undefined, 8.493, geo([500 / 14, 200 / 13, 100 / 24, 100 / 44])],
    ['none', undefined, 0.0, 0],
    ['floor', undefined, 4.51688, geo([500 / 14, 200 / 13, 10 / 12, 10 / 11])],
    ['floor', 0.5, 10.1, geo([500 / 14, 200 / 13, 50 / 12, 50 / 11])],
    ['add-k', undefined, 14.882, geo([500 / 14, 300 / 14, 100 / 13, 100 / 12])],
    ['add-k', 2, 21.389, geo([500 / 14, 400 / 15, 200 / 14, 200 / 13])],
  ])('sentence BLEU with %s(%s) = %d', (smoothMethod, smoothValue, published, byHand) => {
    const s = sentenceBleu(SYS, [REF], { smoothMethod, smoothValue });
    expect(Math.abs(s.score - published)).toBeLessThan(1e-3);
    expect(s.score).toBeCloseTo(byHand, 10);
  });
  it('sentence BLEU with tokenize none = 7.347', () => {
    // "alb;" stays one token and matches: 1-grams de, zahăr, în, alb; -> 4/13; 2-gram "de zahăr" 1/12; 0/11; 0/10
    const s = sentenceBleu(SYS, [REF], { tokenize: 'none' });
    expect(Math.abs(s.score - 7.347)).toBeLessThan(1e-3);
    expect(s.score).toBeCloseTo(geo([400 / 13, 100 / 12, 100 / 22, 100 / 40]), 10);
  });

  it('statistics and floor offsets of test_bleu.py', () => {
    // "am I am a character sequence" vs "I am a symbol string sequence a a":
    // 1-grams am (clipped 1), I, a, sequence -> 4/6; 2-grams "I am", "am a" -> 2/5; "I am a" -> 1/4; 0/3
    const opts: BleuOptions = { tokenize: 'none', smoothMethod: 'floor', smoothValue: 0.1 };
    const s = corpusBleu(['am I am a character sequence'], [['I am a symbol string sequence a a']], opts);
    expect([s.counts, s.totals]).toEqual([
      [4, 2, 1, 0],
      [6, 5, 4, 3],
    ]);
    // BP = exp(1 - 8/6), p4 = 100 * 0.1 / 3
    expect(s.score / 100).toBeCloseTo(0.1555722182, 9);
    expect(s.score).toBeCloseTo(Math.exp(1 - 8 / 6) * geo([400 / 6, 40, 25, 10 / 3]), 10);
    expect(corpusBleu(['am I am a character sequence'], [['I am a symbol string sequence a a']], { ...opts, smoothValue: 0 }).score).toBe(0);
  });

  it('compute_bleu on given statistics (test_scoring, no smoothing): 0.8375922397', () => {
    const s = computeBleu([9, 7, 5, 3], [10, 8, 6, 4], 11, 11, { smoothMethod: 'none', smoothValue: undefined, effectiveOrder: false, maxNgramOrder: 4 });
    expect(s.score / 100).toBeCloseTo(Math.pow(0.9 * 0.875 * (5 / 6) * 0.75, 0.25), 12);
    expect(s.score / 100).toBeCloseTo(0.8375922397, 9);
  });

  it.each<[number[], number[], number, number, number]>([
    [[0, 0, 0, 0], [4, 4, 2, 1], 0, 1, 0.0],
    [[0, 0, 0, 0], [10, 11, 12, 0], 14, 10, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.0],
    [[6, 5, 4, 0], [6, 5, 4, 3], 6, 6, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.1],
    [[0, 0, 0, 0], [0, 0, 0, 0], 1, 5, 0.01],
  ])('degenerate statistics %j / %j (sys %d, ref %d, floor %d) score 0', (c, t, sys, ref, floor) => {
    const s = computeBleu(c, t, sys, ref, { smoothMethod: 'floor', smoothValue: floor, effectiveOrder: false, maxNgramOrder: 4 });
    expect(s.score).toBe(0);
  });

  it('add-k: an order with no hypothesis n-gram gets k/k = 100% (sacreBLEU quirk)', () => {
    // "a b" vs "a b": 1-gram 2/2; 2-gram (1+1)/(1+1); 3-gram (0+1)/(0+1); 4-gram (0+1)/(0+1) -> 100
    const s = corpusBleu(['a b'], [['a b']], { smoothMethod: 'add-k' });
    expect(s.totals).toEqual([2, 2, 1, 1]);
    expect(s.score).toBeCloseTo(100, 10);
  });
});

describe('signature', () => {
  const base = { nrefs: 1, lowercase: false, effectiveOrder: false, tokenize: '13a', smoothMethod: 'exp' } as const;
  it.each([
    [{}, false, `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:${V}`],
    [{}, true, `#:1|c:mixed|e:no|tok:13a|s:exp|v:${V}`],
    [{ smoothMethod: 'floor' }, false, `nrefs:1|case:mixed|eff:no|tok:13a|smooth:floor[0.10]|version:${V}`],
    [{ smoothMethod: 'add-k' }, false, `nrefs:1|case:mixed|eff:no|tok:13a|smooth:add-k[1.00]|version:${V}`],
    [{ smoothMethod: 'add-k', smoothValue: 2 }, false, `nrefs:1|case:mixed|eff:no|tok:13a|smooth:add-k[2.00]|version:${V}`],
    [{ smoothMethod: 'exp', smoothValue: 2 }, false, `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:${V}`],
    [
      { smoothMethod: 'none', tokenize: 'none', lowercase: true, effectiveOrder: true, nrefs: 3 },
      false,
      `nrefs:3|case:lc|eff:yes|tok:none|smooth:none|version:${V}`,
    ],
  ] as const)('%j short=%s', (over, short, expected) => {
    expect(bleuSignature({ ...base, ...over }, short)).toBe(expected);
  });

  it('version names heads and the sacreBLEU release it matches, without the reserved : and |', () => {
    expect(V).toMatch(/^heads-\d+\.\d+\.\d+\+sacrebleu-2\.\d+\.\d+$/);
  });

  it('format with signature and as JSON (sacreBLEU -f json layout)', () => {
    const s = corpusBleu(['the cat sat on the mat'], [['the cat is on the mat']]);
    expect(s.format({ width: 1, signature: s.signature })).toBe(
      `BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:${V} = 38.0 83.3/60.0/25.0/16.7 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)`,
    );
    expect(s.format({ scoreOnly: true })).toBe('37.99');
    expect(s.format({ scoreOnly: true, json: true, width: 0 })).toBe('38');
    expect(s.format({ json: true, width: 1, signature: s.signature })).toBe(
      [
        '{',
        ' "name": "BLEU",',
        ' "score": 38.0,',
        ` "signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:${V}",`,
        ' "verbose_score": "83.3/60.0/25.0/16.7 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)",',
        ' "nrefs": "1",',
        ' "case": "mixed",',
        ' "eff": "no",',
        ' "tok": "13a",',
        ' "smooth": "exp",',
        ` "version": "${V}"`,
        '}',
      ].join('\n'),
    );
  });
});

describe('tokenizedLowercaseBleu (Voita et al.)', () => {
  it('lowercases, splits on whitespace only, no smoothing', () => {
    // "The cat sat on the mat ." vs "the cat is on the mat ." (7 tokens each after lowercasing)
    // 1-grams the x2, cat, on, mat, . -> 6/7; 2-grams the cat, on the, the mat, mat . -> 4/6;
    // 3-grams on the mat, the mat . -> 2/5; 4-gram "on the mat ." -> 1/4; BP 1
    const s = tokenizedLowercaseBleu(['The cat sat on the mat .'], [['the cat is on the mat .']]);
    expect(s.counts).toEqual([6, 4, 2, 1]);
    expect(s.totals).toEqual([7, 6, 5, 4]);
    expect(s.score).toBeCloseTo(100 * Math.pow((6 / 7) * (4 / 6) * (2 / 5) * (1 / 4), 0.25), 10);
    expect(s.format()).toBe('BLEU(tok,lc,no-smooth) = 48.89 85.7/66.7/40.0/25.0 (BP = 1.000 ratio = 1.000 hyp_len = 7 ref_len = 7)');
    expect(s.signature).toBe('');
    expect(s.skippedSegments).toEqual([]);
  });

  it('does not split punctuation: "world!" and "world" differ', () => {
    const s = tokenizedLowercaseBleu(['Hello, world!'], [['hello , world !']]);
    expect(s.counts[0]).toBe(0);
    expect(s.score).toBe(0);
  });

  it('an order without matches (or without n-grams) gives 0', () => {
    expect(tokenizedLowercaseBleu(['a b c'], [['a b c']]).score).toBe(0);
  });

  it('closest non-empty reference length, ties to the shorter; all-empty references skip the segment', () => {
    // "a b c d" vs refs "a b c" (3), "a b c d e" (5) and "" (ignored): tie -> 3
    const s = tokenizedLowercaseBleu(['a b c d'], [['a b c'], ['a b c d e'], ['']]);
    expect(s.ref_len).toBe(3);
    const k = tokenizedLowercaseBleu(['x y', 'a b c d e'], [['', 'a b c d e']]);
    expect(k.skippedSegments).toEqual([0]);
    expect([k.sys_len, k.ref_len]).toEqual([5, 5]);
    expect(k.score).toBeCloseTo(100, 10);
  });

  it('brevity penalty exp(1 - r/c) when not longer', () => {
    // "a b c d" vs "a b c d e f g h": 1..4-grams all match, BP = exp(1 - 8/4)
    const s = tokenizedLowercaseBleu(['A B C D'], [['a b c d e f g h']]);
    expect(s.score).toBeCloseTo(100 * Math.exp(-1), 10);
  });
});

describe('API errors', () => {
  it.each<[string, () => unknown, typeof DataError | typeof ConfigError, RegExp]>([
    ['fewer reference segments', () => corpusBleu(['a', 'b'], [['a']]), DataError, /reference stream 1 has 1 segments but there are 2 hypotheses/],
    ['second stream too long', () => corpusBleu(['a'], [['a'], ['a', 'b']]), DataError, /reference stream 2 has 2 segments but there are 1 hypotheses/],
    ['no reference stream', () => corpusBleu(['a'], []), DataError, /at least one reference stream/],
    ['no reference (sentence)', () => sentenceBleu('a', []), DataError, /at least one reference stream/],
    ['Voita shape', () => tokenizedLowercaseBleu(['a'], [[]]), DataError, /tokenizedLowercaseBleu: reference stream 1 has 0 segments/],
    [
      'unknown smoothing',
      () => corpusBleu(['a'], [['a']], { smoothMethod: 'foo' as SmoothMethod }),
      ConfigError,
      /smoothMethod: expected one of exp, floor, add-k, none, got "foo"/,
    ],
    ['unknown tokenizer', () => corpusBleu(['a'], [['a']], { tokenize: 'intl' as '13a' }), ConfigError, /tokenize: expected one of 13a, none, got "intl"/],
    [
      'negative smooth value',
      () => corpusBleu(['a'], [['a']], { smoothMethod: 'floor', smoothValue: -1 }),
      ConfigError,
      /smoothValue: expected a finite number >= 0, got -1/,
    ],
    ['NaN smooth value', () => corpusBleu(['a'], [['a']], { smoothValue: NaN }), ConfigError, /got NaN/],
    ['bad order', () => corpusBleu(['a'], [['a']], { maxNgramOrder: 0 }), ConfigError, /maxNgramOrder: expected an integer >= 1, got 0/],
  ])('%s', (_name, fn, cls, msg) => {
    expect(fn).toThrow(cls);
    expect(fn).toThrow(msg);
  });
});

describe('runBleuCommand', () => {
  let dir: string;
  const hypsText = "The dog bit the man.\nIt wasn't surprising.\nThe man had just bitten him.\n";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'heads-bleu-'));
    writeFileSync(join(dir, 'hyp.txt'), hypsText);
    writeFileSync(join(dir, 'refA.txt'), 'The dog bit the man.\nIt was not unexpected.\nThe man bit him first.\n');
    writeFileSync(join(dir, 'refB.txt.gz'), gzipSync('The dog had bit the man.\nNo one was surprised.\nThe man had bitten the dog.'));
    writeFileSync(join(dir, 'short.txt'), 'one\ntwo\n');
    writeFileSync(join(dir, 'bad-utf8.txt'), Buffer.from([0x61, 0x0a, 0x62, 0x0a, 0xff, 0x0a]));
    writeFileSync(join(dir, 'fake.gz'), 'not gzip');
    writeFileSync(join(dir, 'empty.txt'), '');
    writeFileSync(join(dir, 'bom-hyp.txt'), '\ufeffa b c d\n');
    writeFileSync(join(dir, 'bom-ref.txt'), 'a b c d\n');
    mkdirSync(join(dir, 'folder'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const opts = (over: Partial<BleuCommandOptions> = {}): BleuCommandOptions => ({
    hypothesisPath: join(dir, 'hyp.txt'),
    referencePaths: [join(dir, 'refA.txt'), join(dir, 'refB.txt.gz')],
    tokenize: '13a',
    smoothMethod: 'exp',
    lowercase: false,
    sentenceLevel: false,
    scoreOnly: false,
    format: 'text',
    ...over,
  });

  it('text output: signature and width 1 as the sacreBLEU CLI', () => {
    expect(runBleuCommand(opts())).toBe(
      `BLEU|nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:${V} = 48.5 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)`,
    );
    expect(runBleuCommand(opts({ short: true, width: 2 }))).toBe(
      `BLEU|#:2|c:mixed|e:no|tok:13a|s:exp|v:${V} = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)`,
    );
  });

  it('json output and score-only', () => {
    const json = JSON.parse(runBleuCommand(opts({ format: 'json' }))) as Record<string, unknown>;
    expect(json).toEqual({
      name: 'BLEU',
      score: 48.5,
      signature: `nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:${V}`,
      verbose_score: '82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)',
      nrefs: '2',
      case: 'mixed',
      eff: 'no',
      tok: '13a',
      smooth: 'exp',
      version: V,
    });
    expect(runBleuCommand(opts({ scoreOnly: true }))).toBe('48.5');
    expect(runBleuCommand(opts({ scoreOnly: true, format: 'json' }))).toBe('48.5');
  });

  it('sentence level: one line per segment with effective order', () => {
    // seg 1 identical -> 100; seg 2 [2,0,0,0]/[4,3,2,1], closest ref 5, exp smoothing p2..p4 = 100/(2*3), 100/(4*2), 100/(8*1)
    // seg 3 [6,2,1,0]/[7,6,5,4], ref 7, p4 = 100/(2*4)
    const seg2 = Math.exp(1 - 5 / 4) * geo([50, 100 / 6, 12.5, 12.5]);
    const seg3 = geo([600 / 7, 100 / 3, 20, 12.5]);
    expect(runBleuCommand(opts({ sentenceLevel: true, scoreOnly: true, width: 4 })).split('\n')).toEqual(['100.0000', pyFixed(seg2, 4), pyFixed(seg3, 4)]);
    const lines = runBleuCommand(opts({ sentenceLevel: true, format: 'json' })).split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[1]).toBe(
      `BLEU|nrefs:2|case:mixed|eff:yes|tok:13a|smooth:exp|version:${V} = ${pyFixed(seg2, 1)} 50.0/16.7/12.5/12.5 (BP = 0.779 ratio = 0.800 hyp_len = 4 ref_len = 5)`,
    );
  });

  it('stdin text with CRLF / CR line ends (universal newlines) and options passed through', () => {
    const out = runBleuCommand(opts({ hypothesisPath: undefined, hypothesisText: hypsText.replace(/\n/g, '\r\n'), scoreOnly: true }));
    expect(out).toBe('48.5');
    expect(splitStdinLines('a\rb\r\nc')).toEqual(['a', 'b', 'c']);
    expect(splitLines('a\rb\r\nc\n')).toEqual(['a\rb', 'c']);
    expect(splitLines('a\n\n')).toEqual(['a', '']);
    const lc = runBleuCommand(opts({ lowercase: true, smoothMethod: 'floor', smoothValue: 0.2 }));
    expect(lc).toContain('|case:lc|eff:no|tok:13a|smooth:floor[0.20]|');
  });

  it('keeps a UTF-8 byte-order mark as a character, like Python reading with encoding utf-8', () => {
    // "\ufeffa" != "a": [3,2,1,0]/[4,3,2,1]; exp smoothing p4 = 100/(2*1) -> (75 * 66.67 * 50 * 50)^(1/4) = 59.46
    const out = runBleuCommand(opts({ hypothesisPath: join(dir, 'bom-hyp.txt'), referencePaths: [join(dir, 'bom-ref.txt')] }));
    expect(out).toContain(' = 59.5 75.0/66.7/50.0/50.0 ');
  });

  it.each<[string, Partial<BleuCommandOptions>, typeof DataError | typeof ConfigError, RegExp]>([
    [
      'line counts differ',
      { referencePaths: ['refA.txt', 'short.txt'] },
      DataError,
      /hypothesis .*hyp\.txt has 3 lines but reference .*short\.txt has 2 lines/,
    ],
    ['missing reference', { referencePaths: ['nope.txt'] }, DataError, /nope\.txt: reference file not found/],
    ['missing hypothesis', { hypothesisPath: 'nope.txt' }, DataError, /nope\.txt: hypothesis file not found/],
    ['reference is a folder', { referencePaths: ['folder'] }, DataError, /folder: expected a reference file, found a directory/],
    ['invalid UTF-8', { referencePaths: ['bad-utf8.txt'] }, DataError, /bad-utf8\.txt:3: reference file is not valid UTF-8/],
    ['bad gzip', { referencePaths: ['fake.gz'] }, DataError, /fake\.gz: expected a gzip-compressed reference file/],
    ['empty hypothesis', { hypothesisPath: 'empty.txt' }, DataError, /empty\.txt: expected hypothesis lines, found an empty input/],
    [
      'stdin line count',
      { hypothesisPath: undefined, hypothesisText: 'a\n' },
      DataError,
      /hypothesis <stdin> has 1 lines but reference .*refA\.txt has 3 lines/,
    ],
    ['stdin tab', { hypothesisPath: undefined, hypothesisText: 'a\nb\tc\nd\n' }, DataError, /<stdin>:2: expected one hypothesis per line, found a tab/],
    ['no references', { referencePaths: [] }, ConfigError, /expected at least one reference file \(-r\), got none/],
    ['no hypothesis', { hypothesisPath: undefined }, ConfigError, /expected a hypothesis file \(-i\) or text on stdin, got neither/],
    ['bad width', { width: -1 }, ConfigError, /--width: expected an integer from 0 to 20, got -1/],
    ['bad smoothing', { smoothMethod: 'bogus' as SmoothMethod }, ConfigError, /--smooth-method: expected one of exp, floor, add-k, none, got "bogus"/],
    ['bad smooth value', { smoothValue: -0.5 }, ConfigError, /--smooth-value: expected a finite number >= 0, got -0.5/],
  ])('%s', (_name, over, cls, msg) => {
    const resolved: Partial<BleuCommandOptions> = {
      ...over,
      ...(over.referencePaths ? { referencePaths: over.referencePaths.map((p) => join(dir, p)) } : {}),
      ...(over.hypothesisPath ? { hypothesisPath: join(dir, over.hypothesisPath) } : {}),
    };
    const run = (): string => runBleuCommand(opts(resolved));
    expect(run).toThrow(cls);
    expect(run).toThrow(msg);
  });
});
