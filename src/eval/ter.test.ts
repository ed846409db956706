/**
 * TER against sacreBLEU 2.x's own published test values (test/test_ter.py corpus cases, test/test_tokenizer_ter.py
 * tokenizer cases), plus hand-derived shift cases.
 */
import { resolveTerConfig, terFromStats, terSegmentStats, tokenizeTercom, translationEditRate, type TerOptions } from './ter.js';

function corpusTer(hyps: string[], refs: string[], opts: TerOptions = {}): number {
  const cfg = resolveTerConfig(opts);
  const sum = [0, 0];
  hyps.forEach((h, i) => terSegmentStats(h, [refs[i]!], cfg).forEach((v, j) => (sum[j]! += v)));
  return terFromStats(sum);
}

describe('TER: sacreBLEU test_ter.py', () => {
  it.each([
    [['aaaa bbbb cccc dddd'], ['aaaa bbbb cccc dddd'], 0],
    [['dddd eeee ffff'], ['aaaa bbbb cccc'], 1],
    [[''], ['a'], 1],
    [['a'], [''], 1],
    [[''], [''], 0],
    [['d e f g h a b c'], ['a b c d e f g h'], 1 / 8],
    [
      [
        'wählen Sie " Bild neu berechnen , " um beim Ändern der Bildgröße Pixel hinzuzufügen oder zu entfernen , damit das Bild ungefähr dieselbe Größe aufweist wie die andere Größe .',
        'wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im Menü des Aufgabenbedienfelds die Option " Alle Aufgaben aktualisieren . "',
        'klicken Sie auf der Registerkarte " Optionen " auf die Schaltfläche " Benutzerdefiniert " und geben Sie Werte für " Fehlerkorrektur-Level " und " Y / X-Verhältnis " ein .',
        'Sie können beispielsweise ein Dokument erstellen , das ein Auto über die Bühne enthält .',
        'wählen Sie im Dialogfeld " Neu aus Vorlage " eine Vorlage aus und klicken Sie auf " Neu . "',
      ],
      [
        'wählen Sie " Bild neu berechnen , " um beim Ändern der Bildgröße Pixel hinzuzufügen oder zu entfernen , damit die Darstellung des Bildes in einer anderen Größe beibehalten wird .',
        'wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im Menü des Aufgabenbedienfelds die Option " Alle Aufgaben aktualisieren . "',
        'klicken Sie auf der Registerkarte " Optionen " auf die Schaltfläche " Benutzerdefiniert " und geben Sie für " Fehlerkorrektur-Level " und " Y / X-Verhältnis " niedrigere Werte ein .',
        'Sie können beispielsweise ein Dokument erstellen , das ein Auto enthalt , das sich über die Bühne bewegt .',
        'wählen Sie im Dialogfeld " Neu aus Vorlage " eine Vorlage aus und klicken Sie auf " Neu . "',
      ],
      0.136,
    ],
  ])('%j', (h, r, expected) => {
    expect(Math.abs(corpusTer(h, r) - 100 * expected)).toBeLessThan(1e-3);
  });
});

describe('Tercom tokenizer: sacreBLEU test_tokenizer_ter.py', () => {
  it.each([
    [{}, 'a b c d', 'a b c d'],
    [{}, '', ''],
    [{}, 'a b c d.', 'a b c d.'],
    [{}, 'A B C D.', 'a b c d.'],
    [{ noPunct: true }, 'a b c d.', 'a b c d'],
    [{ noPunct: true }, 'A ; B ) C : D.', 'a b c d'],
    [{ normalized: true }, 'a b (c) d.', 'a b ( c ) d .'],
    [{ normalized: true }, "Jim's car.", "jim 's car ."],
    [{ normalized: true }, '4.2', '4.2'],
    [{ normalized: true, asianSupport: true }, '美众院公布对特', '美 众 院 公 布 对 特'],
    [{ normalized: true, asianSupport: true }, 'りの拳銃を持', 'りの 拳 銃 を 持'],
    // case kept when asked
    [{ caseSensitive: true }, 'A B', 'A B'],
    // CJK punctuation removed only with asian support
    [{ noPunct: true, asianSupport: true }, 'a、b。', 'ab'],
    [{ noPunct: true }, 'a、b。', 'a、b。'],
  ] as [TerOptions, string, string][])('%j %j -> %j', (opts, input, expected) => {
    expect(tokenizeTercom(input, resolveTerConfig(opts))).toBe(expected);
  });
});

describe('translationEditRate: shifts', () => {
  it('moves a block with one shift instead of deleting and inserting it', () => {
    // without shifts the edit distance is 6 (3 deletions + 3 insertions); one shift of "a b c" fixes it
    expect(translationEditRate('d e f a b c'.split(' '), 'a b c d e f'.split(' '))).toEqual([1, 6]);
  });
  it('combines a shift with a substitution', () => {
    expect(translationEditRate('x b c a'.split(' '), 'a x b z'.split(' '))).toEqual([2, 4]);
  });
  it('an empty reference costs one edit per hypothesis word and has length 0', () => {
    expect(translationEditRate(['a', 'b'], [])).toEqual([2, 0]);
  });
  it('tokenizes references twice as sacreBLEU does: with normalisation a text against itself is not 0', () => {
    // hyp "nima's , ok" (3 tokens); ref tokenized again: "nima 's , ok" (4); 1 substitution + 1 insertion = 2 edits.
    // sacreBLEU 2.6.0 gives the same: TER(normalized=True) statistics [2, 4.0], TER = 50.00
    const cfg = resolveTerConfig({ normalized: true });
    expect(terSegmentStats("Nima's, ok", ["Nima's, ok"], cfg)).toEqual([2, 4]);
    // without normalisation tokenizing is idempotent and identical texts have no edit
    expect(terSegmentStats("Nima's, ok", ["Nima's, ok"], resolveTerConfig({}))).toEqual([0, 2]);
  });
  it('picks the reference with the fewest edits and averages the reference lengths', () => {
    const cfg = resolveTerConfig({});
    expect(terSegmentStats('a b c', ['a b c', 'x y z w v'], cfg)).toEqual([0, 4]);
  });
});
