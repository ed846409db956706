/**
 * `heads bleu` command body with the metrics and tests of issue 16: several metrics at once (values from
 * sacreBLEU's own tests), sentence-level lines per metric, --confidence, paired tests as table and JSON, and bad
 * input refused before anything is computed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DataError } from '../util/errors.js';
import { BLEU_SIGNATURE_VERSION as V } from './bleu.js';
import { runBleuCommand, type BleuCommandOptions } from './bleu-command.js';

// sacreBLEU test_ter.py's realistic example (TER 13.6) and test_chrf.py's sentence-level cases
const TER_HYP = [
  'wählen Sie " Bild neu berechnen , " um beim Ändern der Bildgröße Pixel hinzuzufügen oder zu entfernen , damit das Bild ungefähr dieselbe Größe aufweist wie die andere Größe .',
  'wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im Menü des Aufgabenbedienfelds die Option " Alle Aufgaben aktualisieren . "',
  'klicken Sie auf der Registerkarte " Optionen " auf die Schaltfläche " Benutzerdefiniert " und geben Sie Werte für " Fehlerkorrektur-Level " und " Y / X-Verhältnis " ein .',
  'Sie können beispielsweise ein Dokument erstellen , das ein Auto über die Bühne enthält .',
  'wählen Sie im Dialogfeld " Neu aus Vorlage " eine Vorlage aus und klicken Sie auf " Neu . "',
];
const TER_REF = [
  'wählen Sie " Bild neu berechnen , " um beim Ändern der Bildgröße Pixel hinzuzufügen oder zu entfernen , damit die Darstellung des Bildes in einer anderen Größe beibehalten wird .',
  'wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im Menü des Aufgabenbedienfelds die Option " Alle Aufgaben aktualisieren . "',
  'klicken Sie auf der Registerkarte " Optionen " auf die Schaltfläche " Benutzerdefiniert " und geben Sie für " Fehlerkorrektur-Level " und " Y / X-Verhältnis " niedrigere Werte ein .',
  'Sie können beispielsweise ein Dokument erstellen , das ein Auto enthalt , das sich über die Bühne bewegt .',
  'wählen Sie im Dialogfeld " Neu aus Vorlage " eine Vorlage aus und klicken Sie auf " Neu . "',
];
const CHRF_HYP = [
  'Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.',
  'Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.',
  'Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.',
];
const CHRF_REF = [
  'Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.',
  'A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.',
  'Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.',
];

// created at load time: the it.each tables below name files in it
const dir = mkdtempSync(join(tmpdir(), 'heads-bleu-cmd-'));
const f = (name: string): string => join(dir, name);
beforeAll(() => {
  writeFileSync(f('ter.hyp'), TER_HYP.join('\n') + '\n');
  writeFileSync(f('ter.ref'), TER_REF.join('\n') + '\n');
  writeFileSync(f('chrf.hyp'), CHRF_HYP.join('\n') + '\n');
  writeFileSync(f('chrf.ref'), CHRF_REF.join('\n') + '\n');
  // a system made much worse: every second word dropped
  writeFileSync(
    f('worse.hyp'),
    TER_HYP.map((l) =>
      l
        .split(' ')
        .filter((_, i) => i % 2 === 0)
        .join(' '),
    ).join('\n') + '\n',
  );
  writeFileSync(f('four.hyp'), TER_HYP.slice(0, 4).join('\n') + '\n');
  // 20 sentences for approximate randomization: with 5 there are only 2^5 swap patterns and p >= 2/32 exactly
  const x4 = (lines: string[]): string => [...lines, ...lines, ...lines, ...lines].join('\n') + '\n';
  writeFileSync(f('ter4.hyp'), x4(TER_HYP));
  writeFileSync(f('ter4.ref'), x4(TER_REF));
  writeFileSync(
    f('worse4.hyp'),
    x4(
      TER_HYP.map((l) =>
        l
          .split(' ')
          .filter((_, i) => i % 2 === 0)
          .join(' '),
      ),
    ),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const opts = (over: Partial<BleuCommandOptions>): BleuCommandOptions => ({
  hypothesisPaths: [f('ter.hyp')],
  referencePaths: [f('ter.ref')],
  tokenize: '13a',
  smoothMethod: 'exp',
  lowercase: false,
  sentenceLevel: false,
  scoreOnly: false,
  format: 'text',
  ...over,
});

describe('metrics', () => {
  it('-m ter prints sacreBLEU test_ter.py value 13.6 with the TER signature', () => {
    expect(runBleuCommand(opts({ metrics: ['ter'] }))).toBe(`TER|nrefs:1|case:lc|tok:tercom|norm:no|punct:yes|asian:no|version:${V} = 13.6`);
  });

  it('several metrics: BLEU, chrF, TER in that order, aligned on " = " as sacreBLEU prints them', () => {
    const lines = runBleuCommand(opts({ metrics: ['ter', 'chrf', 'bleu'], short: true })).split('\n');
    expect(lines.map((l) => l.trim().split('|')[0])).toEqual(['BLEU', 'chrF2', 'TER']);
    const eq = lines.map((l) => l.indexOf(' = '));
    expect(new Set(eq).size).toBe(1);
    expect(lines[2]).toMatch(/^ *TER\|#:1\|c:lc\|t:tercom\|nr:no\|pn:yes\|as:no\|v:.* = 13\.6$/);
  });

  it('JSON with several metrics is a list of sacreBLEU score objects', () => {
    const json = JSON.parse(runBleuCommand(opts({ metrics: ['chrf', 'ter'], format: 'json', chrf: { wordOrder: 2 } }))) as Record<string, unknown>[];
    expect(json.map((o) => o.name)).toEqual(['chrF2++', 'TER']);
    expect(json[0]).toMatchObject({ nrefs: '1', case: 'mixed', eff: 'yes', nc: '6', nw: '2', space: 'no', version: V });
    expect(json[1]).toMatchObject({ score: 13.6, tok: 'tercom', norm: 'no', punct: 'yes', asian: 'no' });
  });

  it('sentence-level chrF lines: sacreBLEU test_chrf.py values (epsilon smoothing)', () => {
    const out = runBleuCommand(
      opts({
        hypothesisPaths: [f('chrf.hyp')],
        referencePaths: [f('chrf.ref')],
        metrics: ['chrf'],
        chrf: { epsSmoothing: true },
        sentenceLevel: true,
        width: 4,
      }),
    );
    expect(out.split('\n')).toEqual(['39.1408', '31.2256', '57.1570'].map((v) => `chrF2|nrefs:1|case:mixed|eff:no|nc:6|nw:0|space:no|version:${V} = ${v}`));
  });

  it('sentence-level BLEU has effective order on by default and --no-effective-order turns it off', () => {
    const on = runBleuCommand(opts({ sentenceLevel: true, scoreOnly: true, hypothesisPaths: [f('worse.hyp')] })).split('\n');
    const off = runBleuCommand(opts({ sentenceLevel: true, scoreOnly: true, hypothesisPaths: [f('worse.hyp')], effectiveOrder: false })).split('\n');
    expect(runBleuCommand(opts({ sentenceLevel: true }))).toContain('|eff:yes|');
    expect(runBleuCommand(opts({ sentenceLevel: true, effectiveOrder: false }))).toContain('|eff:no|');
    expect(on).toHaveLength(5);
    // effective order only drops orders without hypothesis n-grams, whose zero precision otherwise sinks the score
    on.forEach((v, i) => expect(Number(v)).toBeGreaterThanOrEqual(Number(off[i])));
  });
});

describe('--confidence', () => {
  it("prints sacreBLEU's μ = mean ± half-width and bs/seed in the signature", () => {
    const out = runBleuCommand(opts({ metrics: ['ter'], confidence: true, confidenceN: 200 }));
    expect(out).toMatch(
      new RegExp(`^TER\\|nrefs:1\\|bs:200\\|seed:12345\\|case:lc\\|.*version:${V.replace(/\+/g, '\\+')} = 13\\.6 \\(μ = [0-9.]+ ± [0-9.]+\\)$`),
    );
    const json = JSON.parse(runBleuCommand(opts({ metrics: ['ter'], confidence: true, format: 'json', width: 2 }))) as Record<string, unknown>;
    expect(json).toMatchObject({ name: 'TER', score: 13.6, bs: '1000', seed: '12345' });
    expect(typeof json.confidence_mean).toBe('number');
    expect(json.confidence).toBe(`μ = ${(json.confidence_mean as number).toFixed(2)} ± ${(json.confidence_var as number).toFixed(2)}`);
    // the interval itself: covers the score, and its half-width is the ±
    expect(json.ci_low as number).toBeLessThanOrEqual(13.6);
    expect(json.ci_high as number).toBeGreaterThanOrEqual(13.6);
    expect(((json.ci_high as number) - (json.ci_low as number)) / 2).toBeCloseTo(json.confidence_var as number, 1);
  });
});

describe('paired tests', () => {
  const paired = (over: Partial<BleuCommandOptions>): BleuCommandOptions =>
    opts({ hypothesisPaths: [f('ter.hyp'), f('ter.hyp'), f('worse.hyp')], metrics: ['bleu', 'ter'], pairedBs: true, pairedBsN: 300, ...over });

  it('JSON: sacreBLEU shape, p = 1 for a copy of the baseline, p < 0.05 for a much worse system, CI around the score', () => {
    const json = JSON.parse(runBleuCommand(paired({ format: 'json' }))) as {
      system: string;
      BLEU: Record<string, number | null | string>;
      TER: Record<string, number | null | string>;
    }[];
    expect(json.map((s) => s.system)).toEqual([`Baseline: ${f('ter.hyp')}`, f('ter.hyp'), f('worse.hyp')]);
    expect(json[0]!.BLEU.p_value).toBeNull();
    expect(json[1]!.BLEU.p_value).toBe(1);
    expect(json[1]!.TER.p_value).toBe(1);
    expect(json[2]!.BLEU.p_value as number).toBeLessThan(0.05);
    expect(json[0]!.TER.score).toBeCloseTo(13.6, 1);
    for (const s of json) {
      for (const r of [s.BLEU, s.TER]) {
        expect(r.ci_low as number).toBeLessThanOrEqual(r.score as number);
        expect(r.ci_high as number).toBeGreaterThanOrEqual(r.score as number);
        expect(r.ci as number).toBeCloseTo(((r.ci_high as number) - (r.ci_low as number)) / 2, 10);
      }
    }
    expect(json[0]!.TER.signature).toMatch(/^nrefs:1\|bs:300\|seed:12345\|case:lc\|/);
  });

  it('table: one row per system and metric with the p-value, a legend and the signatures', () => {
    const out = runBleuCommand(paired({ width: 1 }));
    expect(out).toContain('Paired bootstrap resampling test with 300 resampling trials (seed 12345)');
    const rows = out.split('\n').filter((l) => /\b(BLEU|TER)\s+\d/.test(l));
    expect(rows).toHaveLength(6);
    expect(rows[3]).toMatch(/TER\s+13\.6\s+[0-9.]+\s+\[[0-9.]+, [0-9.]+\]\s+[0-9.]+\s+1\.0000/);
    expect(out).toMatch(/ - TER +nrefs:1\|bs:300\|seed:12345\|/);
  });

  it('approximate randomization: ar and bs (its CI) in the signature, p = 1 for the copy', () => {
    const json = JSON.parse(
      runBleuCommand(
        paired({
          hypothesisPaths: [f('ter4.hyp'), f('ter4.hyp'), f('worse4.hyp')],
          referencePaths: [f('ter4.ref')],
          pairedBs: false,
          pairedAr: true,
          pairedArN: 500,
          confidenceN: 100,
          metrics: ['chrf'],
          format: 'json',
        }),
      ),
    ) as { chrF2: Record<string, unknown> }[];
    expect(json[1]!.chrF2.p_value).toBe(1);
    expect(json[2]!.chrF2.p_value as number).toBeLessThan(0.05);
    expect(json[0]!.chrF2.signature).toMatch(/^nrefs:1\|bs:100\|ar:500\|seed:12345\|case:mixed\|eff:yes\|/);
  });

  it('the same seed gives the same table; another seed other resamples', () => {
    expect(runBleuCommand(paired({ seed: 3 }))).toBe(runBleuCommand(paired({ seed: 3 })));
    expect(runBleuCommand(paired({ seed: 4 }))).not.toBe(runBleuCommand(paired({ seed: 3 })));
  });
});

describe('bad input: one problem line each, nothing computed', () => {
  it.each([
    [{ hypothesisPaths: [f('ter.hyp'), f('four.hyp')], pairedBs: true }, DataError, /hypothesis .*ter\.hyp has 5 lines but hypothesis .*four\.hyp has 4 lines/],
    [{ pairedBs: true, hypothesisPaths: [f('ter.hyp'), f('ter.hyp')], pairedBsN: 0 }, ConfigError, /^bleu --paired-bs-n: expected an integer >= 1, got 0$/],
    [{ pairedAr: true, hypothesisPaths: [f('ter.hyp'), f('ter.hyp')], pairedArN: 1.5 }, ConfigError, /^bleu --paired-ar-n: expected an integer >= 1, got 1.5$/],
    [{ metrics: ['bleu', 'meteor'] }, ConfigError, /^bleu --metrics: expected one of bleu, chrf, ter, got "meteor"$/],
    [{ pairedBs: true }, ConfigError, /expected a baseline and at least one system/],
    [{ pairedBs: true, pairedAr: true, hypothesisPaths: [f('ter.hyp'), f('ter.hyp')] }, ConfigError, /exclude each other/],
    [{ confidence: true, hypothesisPaths: [f('ter.hyp'), f('ter.hyp')] }, ConfigError, /--confidence: gives one system's CI, got 2 systems/],
    [{ sentenceLevel: true, confidence: true }, ConfigError, /--sentence-level: expected one system and no statistical test/],
    [{ metrics: ['chrf'], chrf: { beta: -1 } }, ConfigError, /^chrf --chrf-beta: expected an integer >= 0, got -1$/],
  ] as [Partial<BleuCommandOptions>, typeof DataError, RegExp][])('%j', (over, cls, msg) => {
    expect(() => runBleuCommand(opts(over))).toThrow(cls);
    expect(() => runBleuCommand(opts(over))).toThrow(msg);
  });
});
