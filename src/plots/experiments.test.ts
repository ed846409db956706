import { bleuVsModelBytesFigure } from './experiments.js';
import { EXPERIMENT_RESULT_COLUMNS, type ExperimentResultRow, parseExperimentResults } from './readers.js';

const row = (o: Partial<ExperimentResultRow>): ExperimentResultRow => ({
  stage: 's',
  id: null,
  kind: 'export',
  method: 'float',
  attention: '-',
  lambda: null,
  targetHeads: null,
  keptEnc: 4,
  keptDecSelf: 2,
  keptDecEnc: 2,
  bleu: 30,
  bleuTokLc: 31,
  devBleu: null,
  run: null,
  params: null,
  nonZeroParams: null,
  modelBytes: null,
  decodeSeconds: null,
  ...o,
});

describe('bleuVsModelBytesFigure', () => {
  it('draws one point per method at (MB of the weights file, BLEU), leaving out rows without a size or a BLEU', () => {
    const rows = [
      row({ stage: 'baseline', kind: 'train', method: 'baseline', bleu: 30.5 }), // no size: left out
      row({ stage: 'float', method: 'float', bleu: 30.4, modelBytes: 4_000_000, params: 1_000_000, nonZeroParams: 1_000_000, decodeSeconds: 2.5 }),
      row({ stage: 'magnitude', method: 'magnitude-0.5', bleu: 28, modelBytes: 4_000_000, params: 1_000_000, nonZeroParams: 600_000, decodeSeconds: 2.4 }),
      row({ stage: 'int8', method: 'int8', bleu: 30.1, modelBytes: 1_250_000, params: 1_000_000 }),
      row({ stage: 'broken', method: 'ffn-0.5', bleu: null, modelBytes: 2_000_000 }), // no BLEU: left out
    ];
    const fig = bleuVsModelBytesFigure(rows);
    expect(fig.data.map((t) => t.name)).toEqual(['float', 'magnitude-0.5', 'int8']);
    expect(fig.data.map((t) => [(t as { x: number[] }).x[0], (t as { y: number[] }).y[0]])).toEqual([
      [4, 30.4],
      [4, 28],
      [1.25, 30.1],
    ]);
    expect((fig.data[1] as { text: string[] }).text[0]).toBe('magnitude: 1.00M params (0.60M non-zero)<br>decode 2.40 s');
    expect((fig.data[2] as { text: string[] }).text[0]).toBe('int8: 1.00M params');
    expect(new Set(fig.data.map((t) => (t as { marker: { symbol: string } }).marker.symbol)).size).toBe(3);
    expect(fig.layout.xaxis?.title).toMatchObject({ text: 'weights file (MB)' });
    expect(JSON.parse(JSON.stringify(fig))).toEqual(fig); // plain JSON
  });

  it('uses the tokenized lower-cased BLEU when asked', () => {
    const fig = bleuVsModelBytesFigure([row({ modelBytes: 1e6, bleu: 30, bleuTokLc: 33 })], { metric: 'bleuTokLc' });
    expect((fig.data[0] as { y: number[] }).y).toEqual([33]);
  });
});

describe('results.csv columns', () => {
  it('reads a results.csv written before the size and speed columns existed: they are empty', () => {
    const old =
      'stage,id,kind,method,attention,lambda,targetHeads,keptEnc,keptDecSelf,keptDecEnc,bleu,bleuTokLc,devBleu,run\nbaseline,baseline,train,baseline,-,,,4,2,2,30.5,31.2,29.9,runs/x\n';
    const [r] = parseExperimentResults(old, 'old.csv');
    expect(r).toMatchObject({ stage: 'baseline', bleu: 30.5, run: 'runs/x', params: null, nonZeroParams: null, modelBytes: null, decodeSeconds: null });
  });

  it('reads the new columns', () => {
    const text = `${EXPERIMENT_RESULT_COLUMNS.join(',')}\nint8,int8,export,int8,-,,,4,2,2,30.1,31,,runs/y,1000,1000,1250,0.75\n`;
    expect(parseExperimentResults(text, 'new.csv')[0]).toMatchObject({
      method: 'int8',
      params: 1000,
      nonZeroParams: 1000,
      modelBytes: 1250,
      decodeSeconds: 0.75,
    });
    expect(EXPERIMENT_RESULT_COLUMNS.slice(-4)).toEqual(['params', 'nonZeroParams', 'modelBytes', 'decodeSeconds']);
  });
});
