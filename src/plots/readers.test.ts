/** Readers of the result files: fixture files parse to the expected values; bad input names file and line. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataError } from '../util/errors.js';
import {
  parseAttentionMaps,
  parseExperimentResults,
  parseGateTrajectory,
  parseHeadScoresCsv,
  parseHeadScoresJson,
  parseMetrics,
  parsePruningCurve,
  readAttentionMaps,
  readExperimentResults,
  readGateTrajectory,
  readHeadScores,
  readMetrics,
  readPruningCurve,
  selectScore,
} from './readers.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const fx = (name: string) => join(FIXTURES, name);

describe('metrics.jsonl', () => {
  it('splits training and eval records, keeps gate fields, skips the torn last line', () => {
    const log = readMetrics(FIXTURES);
    expect(log.train.map((r) => r.step)).toEqual([10, 20, 30, 40]);
    expect(log.eval).toEqual([
      { step: 20, devLoss: 4.2, devPerplexity: 66.7, devBleu: 3.5 },
      { step: 40, devLoss: 3.1, devPerplexity: 22.2, devBleu: 12.25 },
    ]);
    expect(log.train[1]).toMatchObject({
      loss: 5,
      tgtTokensPerSec: 6000,
      expectedOpenHeads: 3.1,
      keptHeads: 3,
      expectedOpen: { 'enc-self': 1.6, 'dec-enc': 1.5 },
      lambda1: { all: 0.03 },
    });
  });

  it('reads early stopping and reduce on plateau from evaluation lines (best step, patience left, cuts so far)', () => {
    const text = [
      '{"step":200,"devLoss":3,"bestStep":200,"patienceLeft":5,"lrCuts":0}',
      '{"step":400,"devLoss":2.9,"bestStep":400,"patienceLeft":5,"lrCuts":1}',
    ].join('\n');
    expect(parseMetrics(text, 'm').eval).toEqual([
      { step: 200, devLoss: 3, devPerplexity: undefined, devBleu: undefined, bestStep: 200, patienceLeft: 5, lrCuts: 0 },
      { step: 400, devLoss: 2.9, devPerplexity: undefined, devBleu: undefined, bestStep: 400, patienceLeft: 5, lrCuts: 1 },
    ]);
  });

  it('a resumed run supersedes the records from its restart step', () => {
    const text = ['{"step":10,"loss":3}', '{"step":20,"loss":2}', '{"step":30,"loss":1}', '{"step":20,"loss":2.5}', '{"step":30,"loss":1.5}'].join('\n');
    expect(parseMetrics(text, 'm').train.map((r) => [r.step, r.loss])).toEqual([
      [10, 3],
      [20, 2.5],
      [30, 1.5],
    ]);
  });

  it.each([
    ['{"step":1,"loss":2}\nnot json\n{"step":2,"loss":1}\n', 'm.jsonl:2: invalid JSON'],
    ['{"loss":2}\n', 'm.jsonl:1: step: expected a number'],
    ['[1,2]\n{"step":1,"loss":1}\n', 'm.jsonl:1: expected a JSON object'],
  ])('bad line %# names the line', (text, message) => {
    expect(() => parseMetrics(text, 'm.jsonl')).toThrow(DataError);
    expect(() => parseMetrics(text, 'm.jsonl')).toThrow(message);
  });
});

describe('gate-trajectory.csv', () => {
  it('reads P(open) per head per step', () => {
    const t = readGateTrajectory(fx('gate-trajectory.csv'));
    expect(t.steps).toEqual([10, 20, 30, 40]);
    expect(t.heads.map((h) => h.key)).toEqual(['enc-self.0.0', 'enc-self.0.1', 'dec-enc.0.0', 'dec-enc.0.1']);
    expect(t.heads[1]!.pOpen).toEqual([0.9, 0.6, 0.4, 0.2]);
    expect(t.heads[2]!.id).toEqual({ stack: 'dec-enc', layer: 0, head: 0 });
  });

  it.each([
    ['', 'g.csv: empty gate trajectory'],
    ['time,enc-self.0.0\n1,0.5\n', 'g.csv:1: first column: expected "step"'],
    ['step,encoder.0.0\n1,0.5\n', 'g.csv:1: column "encoder.0.0": expected a head key'],
    ['step,enc-self.0.0\n1,0.5\n2,1.5\n', 'g.csv:3: enc-self.0.0: expected a probability in [0, 1], got "1.5"'],
    ['step,enc-self.0.0\n1,0.5\n2,abc\n', 'g.csv:3: enc-self.0.0: expected a number, got "abc"'],
    ['step,enc-self.0.0,enc-self.0.1\n1,0.5\n', 'g.csv:2: expected 3 columns, got 2'],
  ])('bad file %# names the line', (text, message) => {
    expect(() => parseGateTrajectory(text, 'g.csv')).toThrow(message);
  });
});

describe('head scores', () => {
  it('reads the numeric columns of a head-report CSV (empty cells are missing values)', () => {
    const t = readHeadScores(FIXTURES); // head-report.csv comes first in a folder
    expect(t.columns).toEqual(['gate_p_open', 'importance_per_token', 'confidence']);
    expect(t.rows['enc-self.1.0']).toEqual({ gate_p_open: 0.7, importance_per_token: 0.33, confidence: 0.6 });
    expect(t.rows['enc-self.1.1']!.gate_p_open).toBeUndefined();
    expect(t.shape).toEqual({ 'enc-self': [2, 2], 'dec-self': [2], 'dec-enc': [2] }); // from the folder's config.json
    const s = selectScore(t, 'gate_p_open');
    expect(s.values['enc-self.1.1']).toBeNull();
    expect(s.label).toBe('P(gate open) = P(g ≠ 0)');
    expect(s.range).toEqual([0, 1]);
  });

  it('reads the gate states of a run results.json', () => {
    const t = readHeadScores(fx('results.json'));
    expect(t.columns).toEqual(['logAlpha', 'pOpen', 'pZero', 'pOne', 'testGate']);
    expect(t.rows['dec-enc.0.0']!.pOpen).toBe(0.55);
  });

  it('flattens a head report JSON to dot paths and takes its shape', () => {
    const report = {
      format: 'heads.head-report',
      model: { headsPerLayer: { 'enc-self': [2], 'dec-self': [], 'dec-enc': [] } },
      heads: {
        'enc-self.0.1': {
          stack: 'enc-self',
          layer: 0,
          head: 1,
          position: 1,
          importance: { perToken: 0.4 },
          attention: { confidence: 0.7, offsetHistogram: { shares: [0.1, 0.9] } },
        },
      },
    };
    const t = parseHeadScoresJson(report, 'r.json');
    expect(t.rows['enc-self.0.1']).toEqual({ 'importance.perToken': 0.4, 'attention.confidence': 0.7 });
    expect(t.shape).toEqual({ 'enc-self': [2], 'dec-self': [], 'dec-enc': [] });
  });

  it('an unknown score lists the available ones; bad keys name the line', () => {
    expect(() => selectScore(readHeadScores(fx('results.json')), 'importance')).toThrow(
      'no score "importance" (available: logAlpha, pOpen, pZero, pOne, testGate)',
    );
    expect(() => parseHeadScoresCsv('key,x\nenc-self.0.0,1\nfoo,2\n', 'h.csv')).toThrow('h.csv:3: key: expected a head key');
    expect(() => parseHeadScoresCsv('head,x\n0,1\n', 'h.csv')).toThrow('h.csv:1: per-head CSV: missing column key');
    expect(() => parseHeadScoresJson({ gates: null }, 'res.json')).toThrow('this run has no gates');
  });
});

describe('pruning-curve.csv and results.csv', () => {
  it('reads a pruning curve', () => {
    const rows = readPruningCurve(fx('pruning-curve.csv'));
    expect(rows).toHaveLength(4);
    expect(rows[3]).toEqual({
      step: 3,
      headsKept: 5,
      headsRemoved: 3,
      headsKeptTotal: 21,
      percentPruned: 37.5,
      bleu: 25.25,
      loss: 1.7,
      maskFile: 'masks/step-03.json',
      removed: ['enc-self.0.0', 'enc-self.1.1'],
      isConstrained: true,
    });
  });

  it('reads experiment results with empty cells as null', () => {
    const rows = readExperimentResults(fx('results.csv'));
    expect(rows).toHaveLength(8);
    expect(rows[1]).toMatchObject({
      stage: 'l0',
      id: 'l0@lambda=0.01',
      kind: 'prune',
      method: 'l0',
      attention: 'enc-self',
      lambda: 0.01,
      targetHeads: null,
      keptEnc: 6,
      keptDecSelf: 8,
      keptDecEnc: 8,
      bleu: 30.1,
      bleuTokLc: 30.8,
      devBleu: null,
    });
    expect(rows[0]!.lambda).toBeNull();
  });

  it.each([
    [() => parseExperimentResults('stage,method\nx,y\n', 'r.csv'), 'r.csv:1: experiment results: missing column bleu'],
    [() => parseExperimentResults('stage,method,bleu\nx,y,high\n', 'r.csv'), 'r.csv:2: bleu: expected a number, got "high"'],
    [() => parsePruningCurve('step,heads_kept,bleu\n0,,3\n', 'p.csv'), 'p.csv:2: heads_kept: expected a number, got an empty cell'],
  ])('bad table %# names the file and line', (f, message) => {
    expect(f).toThrow(message);
  });
});

describe('attention maps', () => {
  it('reads a list of maps', () => {
    const maps = readAttentionMaps(fx('attention-maps.json'));
    expect(maps.map((m) => m.key)).toEqual(['dec-enc.0.1', 'enc-self.0.0']);
    expect(maps[0]!.weights[2]).toEqual([0.1, 0.85, 0.05]);
  });

  it('weights must be queries x keys', () => {
    expect(() => parseAttentionMaps({ key: 'enc-self.0.0', queryTokens: ['a'], keyTokens: ['a', 'b'], weights: [[1]] }, 'a.json')).toThrow(
      'a.json: weights: expected 1 rows of 2 numbers',
    );
  });

  it('a folder without the file says what it looked for', () => {
    expect(() => readAttentionMaps(FIXTURES)).not.toThrow();
    expect(() => readPruningCurve(join(FIXTURES, '..'))).toThrow('no pruning-curve.csv in this folder');
  });
});
