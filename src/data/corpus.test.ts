/**
 * Corpus reader: Moses pairs and TSV, line-ending handling, and one table of malformed inputs whose
 * errors must name the file and the line.
 */
import { describe, expect, test, beforeAll, afterAll } from '@jest/globals';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../util/errors.js';
import { describeCorpus, readParallelCorpus, splitLines, writeMosesCorpus, type CorpusSpec } from './corpus.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'heads-corpus-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
/** Write a Moses pair under a fresh prefix; returns the spec and both paths. */
function moses(en: string | Uint8Array, de: string | Uint8Array) {
  const prefix = join(dir, `m${counter++}`);
  writeFileSync(`${prefix}.en`, en);
  writeFileSync(`${prefix}.de`, de);
  const spec: CorpusSpec = { format: 'moses', prefix, srcLang: 'en', tgtLang: 'de' };
  return { spec, en: `${prefix}.en`, de: `${prefix}.de` };
}
function tsv(text: string | Uint8Array, extra: Partial<Extract<CorpusSpec, { format: 'tsv' }>> = {}) {
  const path = join(dir, `t${counter++}.tsv`);
  writeFileSync(path, text);
  const spec: CorpusSpec = { format: 'tsv', path, ...extra };
  return { spec, path };
}

describe('readParallelCorpus (moses)', () => {
  test('reads aligned lines, strips a final newline and \\r', () => {
    const { spec } = moses('Hello world\r\nA second  line\r\n', 'Hallo Welt\nEine zweite Zeile');
    expect(readParallelCorpus(spec)).toEqual([
      { src: 'Hello world', tgt: 'Hallo Welt' },
      { src: 'A second  line', tgt: 'Eine zweite Zeile' },
    ]);
  });

  test('keeps quotes, tabs and unicode verbatim', () => {
    const { spec } = moses('"quoted"\ta 👍🏽\n', 'über «x»\n');
    expect(readParallelCorpus(spec)).toEqual([{ src: '"quoted"\ta 👍🏽', tgt: 'über «x»' }]);
  });

  test('the real DDTP files line up, if present', () => {
    const prefix = join(process.cwd(), '..', 'shared', 'data', 'ddtp', 'en-de', 'valid');
    let pairs;
    try {
      pairs = readParallelCorpus({ format: 'moses', prefix, srcLang: 'en', tgtLang: 'de' });
    } catch (e) {
      if (e instanceof DataError && /not found/.test(e.message)) return; // corpus not on this machine
      throw e;
    }
    expect(pairs).toHaveLength(1000);
  });
});

describe('readParallelCorpus (tsv)', () => {
  test('two columns, no header; quotes are literal by default', () => {
    const { spec } = tsv('"Hi" there\t"Hallo" da\nb\tc\n');
    expect(readParallelCorpus(spec)).toEqual([
      { src: '"Hi" there', tgt: '"Hallo" da' },
      { src: 'b', tgt: 'c' },
    ]);
  });

  test('columns by header name', () => {
    const { spec } = tsv('id\tde\ten\n1\tHallo\tHello\n2\tJa\tYes\n', { srcColumn: 'en', tgtColumn: 'de' });
    expect(readParallelCorpus(spec)).toEqual([
      { src: 'Hello', tgt: 'Hallo' },
      { src: 'Yes', tgt: 'Ja' },
    ]);
  });

  test('columns by index, no header', () => {
    const { spec } = tsv('1\tHallo\tHello\r\n2\tJa\tYes', { srcColumn: 2, tgtColumn: 1 });
    expect(readParallelCorpus(spec)).toEqual([
      { src: 'Hello', tgt: 'Hallo' },
      { src: 'Yes', tgt: 'Ja' },
    ]);
  });

  test('quoted mode: fields may contain tabs and quotes', () => {
    const { spec } = tsv('"a\tb"\t"say ""hi"""\nc\td\n', { isQuoted: true });
    expect(readParallelCorpus(spec)).toEqual([
      { src: 'a\tb', tgt: 'say "hi"' },
      { src: 'c', tgt: 'd' },
    ]);
  });
});

describe('malformed corpora: one DataError naming the file and line', () => {
  interface Case {
    name: string;
    make: () => { spec: CorpusSpec; mustMention: (string | RegExp)[] };
  }
  const cases: Case[] = [
    {
      name: 'line counts differ',
      make: () => {
        const m = moses('a\nb\nc\n', 'x\ny\n');
        return { spec: m.spec, mustMention: [m.en, m.de, '3', '2', /line counts differ/] };
      },
    },
    {
      name: 'empty source line',
      make: () => {
        const m = moses('a\n\nc\n', 'x\ny\nz\n');
        return { spec: m.spec, mustMention: [`${m.en}:2:`, /empty/] };
      },
    },
    {
      name: 'whitespace-only target line',
      make: () => {
        const m = moses('a\nb\nc\n', 'x\ny\n \t\n');
        return { spec: m.spec, mustMention: [`${m.de}:3:`, /empty/] };
      },
    },
    {
      name: 'invalid UTF-8',
      make: () => {
        const m = moses(Buffer.from([0x61, 0x0a, 0x62, 0xff, 0x0a]), 'x\ny\n');
        return { spec: m.spec, mustMention: [`${m.en}:2:`, /UTF-8/] };
      },
    },
    {
      name: 'missing file',
      make: () => {
        const prefix = join(dir, 'nothing-here');
        return { spec: { format: 'moses', prefix, srcLang: 'en', tgtLang: 'de' }, mustMention: [`${prefix}.en`, /not found/] };
      },
    },
    {
      name: 'a directory instead of a file',
      make: () => {
        const prefix = join(dir, `d${counter++}`);
        mkdirSync(`${prefix}.en`);
        writeFileSync(`${prefix}.de`, 'x\n');
        return { spec: { format: 'moses', prefix, srcLang: 'en', tgtLang: 'de' }, mustMention: [`${prefix}.en`, /directory/] };
      },
    },
    {
      name: 'TSV row with too many fields',
      make: () => {
        const t = tsv('a\tb\nc\td\ne\tf\tg\n');
        return { spec: t.spec, mustMention: [`${t.path}:3:`, /expected 2 .*fields, found 3/] };
      },
    },
    {
      name: 'TSV blank line in the middle',
      make: () => {
        const t = tsv('a\tb\n\nc\td\n');
        return { spec: t.spec, mustMention: [`${t.path}:2:`, /found 1/] };
      },
    },
    {
      name: 'TSV empty target field',
      make: () => {
        const t = tsv('a\tb\nc\t \n');
        return { spec: t.spec, mustMention: [`${t.path}:2:`, /empty target/] };
      },
    },
    {
      name: 'TSV unknown header column',
      make: () => {
        const t = tsv('en\tde\nx\ty\n', { srcColumn: 'source', tgtColumn: 'de' });
        return { spec: t.spec, mustMention: [`${t.path}:1:`, /"source"/, /columns: en, de/] };
      },
    },
    {
      name: 'TSV with three columns and no column choice',
      make: () => {
        const t = tsv('a\tb\tc\n');
        return { spec: t.spec, mustMention: [`${t.path}:1:`, /srcColumn/] };
      },
    },
    {
      name: 'TSV invalid UTF-8',
      make: () => {
        const t = tsv(Buffer.concat([Buffer.from('a\tb\nc\td\n'), Buffer.from([0xc3, 0x28, 0x09, 0x61, 0x0a])]));
        return { spec: t.spec, mustMention: [`${t.path}:3:`, /UTF-8/] };
      },
    },
  ];

  test.each(cases)('$name', ({ make }) => {
    const { spec, mustMention } = make();
    let err: unknown;
    try {
      readParallelCorpus(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataError);
    const msg = (err as DataError).message;
    expect(msg.includes('\n')).toBe(false);
    for (const m of mustMention) {
      if (typeof m === 'string') expect(msg).toContain(m);
      else expect(msg).toMatch(m);
    }
  });
});

describe('helpers', () => {
  test('splitLines', () => {
    expect(splitLines('')).toEqual([]);
    expect(splitLines('a')).toEqual(['a']);
    expect(splitLines('a\n')).toEqual(['a']);
    expect(splitLines('\ufeffa\r\nb\r\n')).toEqual(['a', 'b']);
    expect(splitLines('a\n\n')).toEqual(['a', '']);
  });

  test('describeCorpus counts whitespace words', () => {
    const s = describeCorpus([
      { src: 'a b c', tgt: 'x' },
      { src: ' a ', tgt: 'x  y z w' },
    ]);
    expect(s).toMatchObject({ pairs: 2, srcWords: 4, tgtWords: 5, avgSrcWords: 2, avgTgtWords: 2.5, maxSrcWords: 3, maxTgtWords: 4 });
    expect(s.text).toBe('2 pairs | words/sentence src 2.00 (max 3) tgt 2.50 (max 4)');
  });

  test('writeMosesCorpus round trip', () => {
    const prefix = join(dir, 'out', 'train');
    const pairs = [
      { src: 'a b', tgt: 'c' },
      { src: 'ü', tgt: 'd e' },
    ];
    writeMosesCorpus({ prefix, srcLang: 'en', tgtLang: 'de' }, pairs);
    expect(readParallelCorpus({ format: 'moses', prefix, srcLang: 'en', tgtLang: 'de' })).toEqual(pairs);
    expect(() => writeMosesCorpus({ prefix, srcLang: 'en', tgtLang: 'de' }, [{ src: 'a\nb', tgt: 'c' }])).toThrow(DataError);
  });
});
