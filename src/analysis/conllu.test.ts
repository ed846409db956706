import { join } from 'node:path';
import { BpeTokenizer } from '../data/tokenizer.js';
import { DataError } from '../util/errors.js';
import { alignWordsToPieces, parseConllu, readConllu } from './conllu.js';

const FIXTURE = join(process.cwd(), 'data', 'conllu', 'sample.conllu');

const row = (...f: string[]) => f.join('\t');
const word = (id: number, form: string, head: number, deprel: string, misc = '_') =>
  row(String(id), form, form.toLowerCase(), 'X', '_', '_', String(head), deprel, '_', misc);

describe('parseConllu', () => {
  it('reads the fixture: comments, a multi-word token, an empty node, SpaceAfter=No', () => {
    const s = readConllu(FIXTURE);
    expect(s).toHaveLength(2);
    const [a, b] = s as [(typeof s)[0], (typeof s)[0]];
    expect(a.sentId).toBe('s1');
    expect(a.text).toBe('The cat cannot sleep.');
    expect(a.line).toBe(1);
    expect(a.words.map((w) => w.form)).toEqual(['The', 'cat', 'can', 'not', 'sleep', '.']);
    expect(a.words.map((w) => w.head)).toEqual([2, 5, 5, 5, 0, 5]);
    // "cannot" is one surface token holding words 3 and 4; the empty node 5.1 is not a word
    expect(a.tokens.map((t) => t.form)).toEqual(['The', 'cat', 'cannot', 'sleep', '.']);
    expect(a.tokens[2]!.words).toEqual([3, 4]);
    expect(a.words[2]!.token).toBe(2);
    expect(a.words[3]!.token).toBe(2);
    expect(a.tokens[3]!.hasNoSpaceAfter).toBe(true);
    expect(b.line).toBe(12);
    expect(b.words.map((w) => w.deprel)).toEqual(['amod', 'nsubj', 'root', 'amod', 'obj', 'advmod', 'punct']);
  });

  it('accepts CRLF line ends, a BOM and no final blank line', () => {
    const text = '\ufeff' + ['# text = a b', word(1, 'a', 2, 'nsubj'), word(2, 'b', 0, 'root')].join('\r\n');
    const s = parseConllu(text, 'x.conllu');
    expect(s).toHaveLength(1);
    expect(s[0]!.words.map((w) => w.form)).toEqual(['a', 'b']);
  });

  const cases: Array<[string, string[], RegExp]> = [
    ['too few fields', ['# c', '1\tThe\tthe\tDET'], /^bad\.conllu:2: expected 10 tab-separated fields, got 4$/],
    ['non-integer ID', [word(1, 'a', 0, 'root'), row('x', 'b', 'b', 'X', '_', '_', '1', 'dep', '_', '_')], /^bad\.conllu:2: ID: expected an integer/],
    ['skipped ID', [word(1, 'a', 0, 'root'), word(3, 'b', 1, 'dep')], /^bad\.conllu:2: ID: expected word 2, got 3$/],
    ['HEAD not a number', [word(1, 'a', 0, 'root'), row('2', 'b', 'b', 'X', '_', '_', '_', 'dep', '_', '_')], /^bad\.conllu:2: HEAD: expected an integer/],
    ['HEAD out of range', [word(1, 'a', 0, 'root'), word(2, 'b', 7, 'dep'), word(3, 'c', 1, 'dep')], /^bad\.conllu:2: HEAD 7 out of range 0\.\.3$/],
    ['own head', [word(1, 'a', 1, 'root')], /^bad\.conllu:1: HEAD: word 1 cannot be its own head$/],
    ['missing DEPREL', [word(1, 'a', 0, '_')], /^bad\.conllu:1: DEPREL: missing$/],
    [
      'MWT not at the next word',
      [word(1, 'a', 0, 'root'), row('3-4', 'cd', '_', '_', '_', '_', '_', '_', '_', '_')],
      /^bad\.conllu:2: multi-word token 3-4 must start at word 2$/,
    ],
    [
      'MWT past the sentence',
      ['', row('1-2', 'ab', '_', '_', '_', '_', '_', '_', '_', '_'), word(1, 'a', 0, 'root')],
      /^bad\.conllu:2: multi-word token reaches word 2, but the sentence has 1 words$/,
    ],
  ];
  it.each(cases)('names the file and line: %s', (_name, lines, re) => {
    expect(() => parseConllu(lines.join('\n') + '\n', 'bad.conllu')).toThrow(DataError);
    expect(() => parseConllu(lines.join('\n') + '\n', 'bad.conllu')).toThrow(re);
  });
});

describe('alignWordsToPieces', () => {
  const [s1] = parseConllu(
    [
      word(1, 'The', 2, 'det'),
      word(2, 'cat', 5, 'nsubj'),
      row('3-4', 'cannot', '_', '_', '_', '_', '_', '_', '_', '_'),
      word(3, 'can', 5, 'aux'),
      word(4, 'not', 5, 'advmod'),
      word(5, 'sleep', 0, 'root', 'SpaceAfter=No'),
      word(6, '.', 5, 'punct'),
    ].join('\n'),
    't',
  );

  it('maps words to BPE pieces; the two words of a multi-word token share theirs', () => {
    const a = alignWordsToPieces(s1!, ['▁The', '▁c', 'at', '▁can', 'not', '▁sleep', '.'])!;
    expect(a.wordPieces).toEqual([[0], [1, 2], [3, 4], [3, 4], [5], [6]]);
    expect(a.pieceWords).toEqual([[0], [1], [1], [2, 3], [2, 3], [4], [5]]);
  });

  it('gives a piece that spans two tokens to both', () => {
    const [s] = parseConllu([word(1, 'do', 0, 'root'), word(2, "n't", 1, 'advmod')].join('\n'), 't');
    const a = alignWordsToPieces(s!, ['▁don', "'", 't'])!;
    expect(a.wordPieces).toEqual([[0], [0, 1, 2]]);
  });

  it('lets <unk> stand for one character and a lone word-start marker join the next piece', () => {
    const [s] = parseConllu([word(1, 'naïve', 2, 'amod'), word(2, 'ïx', 0, 'root')].join('\n'), 't');
    const a = alignWordsToPieces(s!, ['▁na', '<unk>', 've', '▁', '<unk>', 'x'])!;
    expect(a.wordPieces).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
  });

  it('returns null when the characters differ', () => {
    expect(alignWordsToPieces(s1!, ['▁The', '▁dog', '▁cannot', '▁sleep', '.'])).toBeNull();
    expect(alignWordsToPieces(s1!, ['▁The', '▁cat'])).toBeNull();
  });

  it('aligns the pieces of the real tokenizer (punctuation split off by pretokenize)', () => {
    const tok = BpeTokenizer.learn(['The cat cannot sleep.', 'the cat sat', 'cannot cannot'], { numMerges: 30 });
    const pieces = tok.encodeToPieces('The cat cannot sleep.');
    const a = alignWordsToPieces(s1!, pieces)!;
    expect(a).not.toBeNull();
    // every word's pieces spell the word's surface token
    const spelled = a.wordPieces.map((ps) => ps.map((p) => pieces[p]!.replace('▁', '')).join(''));
    expect(spelled).toEqual(['The', 'cat', 'cannot', 'cannot', 'sleep', '.']);
  });
});
