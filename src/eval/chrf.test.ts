/**
 * chrF / chrF++ against sacreBLEU 2.x's own published test values (test/test_chrf.py: corpus chrF with beta 3 in
 * both smoothing modes, with whitespace kept, and sentence chrF), plus hand-derived cases for chrF++'s word n-grams.
 */
import { ConfigError } from '../util/errors.js';
import { CHRF_DEFAULTS, chrfFromStats, chrfSegmentStats, chrfWords, resolveChrfConfig, type ChrfOptions } from './chrf.js';

function corpusChrf(hyps: string[], refs: string[], opts: ChrfOptions): number {
  const cfg = resolveChrfConfig(opts);
  const sum = new Array<number>(3 * (cfg.charOrder + cfg.wordOrder)).fill(0);
  hyps.forEach((h, i) => chrfSegmentStats(h, [refs[i]!], cfg).forEach((v, j) => (sum[j]! += v)));
  return chrfFromStats(sum, cfg);
}

const EPS = 1e-4; // sacreBLEU's test tolerance

describe('chrF: sacreBLEU test_chrf.py, beta 3, epsilon smoothing', () => {
  it.each([
    [['abcdefg'], ['hijklmnop'], 0.0],
    [['a'], ['b'], 0.0],
    [[''], ['b'], 0.0],
    [[''], ['ref'], 0.0],
    [[''], ['reference'], 0.0],
    [['aa'], ['ab'], 8.3333],
    [['a', 'b'], ['a', 'c'], 8.3333],
    [['a'], ['a'], 16.6667],
    [['a b c'], ['a b c'], 50.0],
    [['a b c'], ['abc'], 50.0],
    [
      [' risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .'],
      ['risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .'],
      63.36173,
    ],
    [
      [' Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. '],
      ['Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.'],
      64.1302698,
    ],
    [['Niemand hat die Absicht, eine Mauer zu errichten'], ['Niemand hat die Absicht, eine Mauer zu errichten'], 100.0],
  ])('%j vs %j = %d', (h, r, expected) => {
    expect(Math.abs(corpusChrf(h, r, { beta: 3, epsSmoothing: true }) - expected)).toBeLessThan(EPS);
  });
});

describe('chrF: sacreBLEU test_chrf.py, beta 3, effective order (the sacreBLEU 2 default)', () => {
  it.each([
    [['a'], ['a'], 100.0],
    [[''], ['reference'], 0.0],
    [['a b c'], ['a b c'], 100.0],
    [['a b c'], ['abc'], 100.0],
    [[''], ['c'], 0.0],
    [['a', 'b'], ['a', 'c'], 50.0],
    [['aa'], ['ab'], 25.0],
  ])('%j vs %j = %d', (h, r, expected) => {
    expect(Math.abs(corpusChrf(h, r, { beta: 3 }) - expected)).toBeLessThan(EPS);
  });
});

describe('chrF: sacreBLEU test_chrf.py, whitespace kept', () => {
  it.each([
    [
      ['Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich.'],
      ['Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.'],
      67.3481606,
    ],
    [
      ['risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .'],
      ['risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .'],
      65.2414427,
    ],
  ])('%j', (h, r, expected) => {
    expect(Math.abs(corpusChrf(h, r, { beta: 3, whitespace: true }) - expected)).toBeLessThan(EPS);
  });
});

describe('sentence chrF: sacreBLEU test_chrf.py (beta 2, epsilon smoothing)', () => {
  it.each([
    [
      'Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.',
      'Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.',
      39.14078509,
    ],
    [
      'Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.',
      'A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.',
      31.22557079,
    ],
    [
      'Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.',
      'Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.',
      57.15704367,
    ],
  ])('%s', (h, r, expected) => {
    const cfg = resolveChrfConfig({ epsSmoothing: true });
    expect(Math.abs(chrfFromStats(chrfSegmentStats(h, [r], cfg), cfg) - expected)).toBeLessThan(EPS);
  });
});

describe('chrF++ word n-grams and details', () => {
  it('splits one trailing, else one leading, punctuation mark off each word longer than one character', () => {
    // '"yes,"' loses only its final quote; '.' is one character and stays
    expect(chrfWords('(hi) "yes," . a. ,b ok')).toEqual(['(hi', ')', '"yes,', '"', '.', 'a', '.', ',', 'b', 'ok']);
  });

  it('counts characters as code points (an astral character is one character, as in Python)', () => {
    const cfg = resolveChrfConfig({ charOrder: 1 });
    // 3 code points in the hypothesis, 2 in the reference, 2 matches
    expect(chrfSegmentStats('😀😀a', ['😀a'], cfg)).toEqual([3, 2, 2]);
  });

  it('chrF++ of a hand-counted pair: "a b" vs "a c", char order 1, word order 2, beta 1', () => {
    const cfg = resolveChrfConfig({ charOrder: 1, wordOrder: 2, beta: 1 });
    const st = chrfSegmentStats('a b', ['a c'], cfg);
    // chars {a,b} vs {a,c}: 2,2,1; words {a,b} vs {a,c}: 2,2,1; bigrams {"a b"} vs {"a c"}: 1,1,0
    expect(st).toEqual([2, 2, 1, 2, 2, 1, 1, 1, 0]);
    // effective order: all three orders have n-grams; P = R = (0.5 + 0.5 + 0) / 3 = 1/3; F1 = 1/3
    expect(chrfFromStats(st, cfg)).toBeCloseTo(100 / 3, 10);
  });

  it('an order whose reference has no n-gram drops out of the average (sacreBLEU counts no hypothesis n-grams there)', () => {
    const cfg = resolveChrfConfig({ charOrder: 2, beta: 1 });
    // hyp "ab": 1-grams {a,b}, 2-grams {ab}; ref "a": 1-grams {a}, no 2-gram -> [2,1,1, 0,0,0]
    const st = chrfSegmentStats('ab', ['a'], cfg);
    expect(st).toEqual([2, 1, 1, 0, 0, 0]);
    // only order 1 counts: P = 0.5, R = 1, F1 = 2 * 0.5 / 1.5 = 2/3
    expect(chrfFromStats(st, cfg)).toBeCloseTo(200 / 3, 10);
  });

  it('with several references keeps the statistics of the best-scoring one', () => {
    const cfg = resolveChrfConfig({});
    const good = chrfSegmentStats('the cat sat', ['the cat sat'], cfg);
    expect(chrfSegmentStats('the cat sat', ['a dog ran', 'the cat sat', 'the cat'], cfg)).toEqual(good);
    expect(chrfFromStats(good, cfg)).toBe(100);
  });

  it('lowercase makes case irrelevant', () => {
    const lc = resolveChrfConfig({ lowercase: true });
    expect(chrfFromStats(chrfSegmentStats('The CAT', ['the cat'], lc), lc)).toBe(100);
    expect(chrfFromStats(chrfSegmentStats('The CAT', ['the cat'], CHRF_DEFAULTS), CHRF_DEFAULTS)).toBeLessThan(100);
  });

  it('rejects bad orders and beta', () => {
    expect(() => resolveChrfConfig({ charOrder: -1 })).toThrow(ConfigError);
    expect(() => resolveChrfConfig({ beta: 1.5 })).toThrow(/--chrf-beta: expected an integer >= 0, got 1.5/);
    expect(() => resolveChrfConfig({ charOrder: 0, wordOrder: 0 })).toThrow(/at least one n-gram order/);
  });
});
