import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Papa from 'papaparse';
import { DataError } from '../util/errors.js';
import { sampleEntry, sampleReport } from './test-fixtures.js';
import { averageRanks, headReportCsv, rankAgreement, spearman, parseHeadReport, readHeadReport, scoreColumn, topHeads, writeHeadReport } from './report.js';

const report = sampleReport();

describe('head report', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'heads-report-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips through its JSON file', () => {
    const path = join(dir, 'r.json');
    writeHeadReport(path, report);
    expect(readHeadReport(path)).toEqual(report);
  });

  it('ranks heads by a score and writes sorted CSV rows with the offset histogram', () => {
    expect(topHeads(report, scoreColumn('importance_per_token'), 5).map((t) => t.key)).toEqual(['enc-self.0.1', 'enc-self.0.0']);
    expect(topHeads(report, scoreColumn('confidence'), 1)).toEqual([{ key: 'enc-self.0.0', value: 0.9 }]);
    expect(topHeads(report, scoreColumn('lrp'), 5)).toEqual([]); // no values: nothing to rank
    const rows = Papa.parse<Record<string, string>>(headReportCsv(report).trim(), { header: true }).data;
    expect(rows.map((r) => r.key)).toEqual(['enc-self.0.0', 'enc-self.0.1']);
    expect(rows[0]!['offset_-1']).toBe('0.95');
    expect(rows[0]!.offset_other).toBe('0.05');
    expect(rows[0]!.lrp).toBe('');
    expect(rows[0]!.roles).toBe('positional -1');
  });

  it('rank agreement: Spearman with average ranks for ties', () => {
    expect(averageRanks([10, 30, 20, 20])).toEqual([1, 4, 2.5, 2.5]);
    expect(spearman([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(1 - (6 * 2) / (4 * 15), 12); // 0.8
    expect(spearman([1, 2, 2, 3], [1, 2, 3, 4])).toBeCloseTo(3 / Math.sqrt(10), 12); // worked by hand
    expect(spearman([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
    expect(spearman([1, 1, 1], [1, 2, 3])).toBeNull();
    expect(spearman([1, 2], [1, 2])).toBeNull();
    const heads = {
      'enc-self.0.0': sampleEntry('enc-self', 0, 0, 0.1, 0.9),
      'enc-self.0.1': sampleEntry('enc-self', 0, 1, 0.2, 0.5),
      'enc-self.1.0': sampleEntry('enc-self', 1, 0, 0.3, 0.1),
    };
    const a = rankAgreement(heads, ['importance_per_token', 'confidence', 'lrp']);
    expect(a.spearman[0]![0]).toBeCloseTo(1, 12);
    expect(a.spearman[0]![1]).toBeCloseTo(-1, 12);
    expect(a.spearman[0]![2]).toBeNull(); // no LRP values
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', [1], /^bad\.json: expected a head report JSON object$/],
    ['wrong format', { ...report, format: 'heads.head-mask' }, /^bad\.json: format: expected "heads\.head-report", got "heads\.head-mask"$/],
    ['another version', { ...report, version: 2 }, /^bad\.json: version: expected 1, got 2/],
    ['a bad key', { ...report, heads: { 'enc.0.1': report.heads['enc-self.0.1'] } }, /^bad\.json: heads\.enc\.0\.1: not a head key/],
    [
      'a key that disagrees with its entry',
      { ...report, heads: { 'enc-self.0.0': report.heads['enc-self.0.1'] } },
      /^bad\.json: heads\.enc-self\.0\.0: stack\/layer\/head fields do not match the key$/,
    ],
  ];
  it.each(bad)('refuses %s, naming the file', (_name, value, message) => {
    expect(() => parseHeadReport(value, 'bad.json')).toThrow(DataError);
    expect(() => parseHeadReport(value, 'bad.json')).toThrow(message);
  });

  it('names the file when the JSON is broken', () => {
    const path = join(dir, 'broken.json');
    writeFileSync(path, '{"format": ');
    expect(() => readHeadReport(path)).toThrow(path);
  });
});
