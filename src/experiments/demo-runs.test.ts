/** resultRowOfRun: a finished train or prune run folder becomes one results.csv row. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeJsonAtomic } from '../util/fs.js';
import { resultRowOfRun } from './demo-runs.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'heads-demo-runs-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const model = { encoderLayers: 2, decoderLayers: 1, heads: 4 };

describe('resultRowOfRun', () => {
  it('a train run: the full model, its test BLEU', () => {
    writeJsonAtomic(join(dir, 'config.json'), { model, gates: { attention: [], targetHeads: null }, train: { l0Lambda: 0 } });
    writeJsonAtomic(join(dir, 'results.json'), { devBleu: 30, test: { bleu: 31.5, tokenizedLowercaseBleu: 32 }, gates: null });
    expect(resultRowOfRun(dir, { stage: 'baseline' })).toEqual({
      stage: 'baseline',
      id: 'baseline',
      kind: 'train',
      method: 'baseline',
      attention: '-',
      lambda: null,
      targetHeads: null,
      keptEnc: 8,
      keptDecSelf: 4,
      keptDecEnc: 4,
      bleu: 31.5,
      bleuTokLc: 32,
      devBleu: 30,
      run: dir,
    });
  });

  it("a prune run: the heads it keeps and the pruned model's test BLEU; lambda or budget", () => {
    writeJsonAtomic(join(dir, 'config.json'), { model, gates: { attention: ['enc-self'], targetHeads: null }, train: { l0Lambda: 0.05 } });
    writeJsonAtomic(join(dir, 'results.json'), {
      test: null,
      pruning: { keptHeads: { 'enc-self': 3, 'dec-self': 4, 'dec-enc': 4 }, devBleuPruned: 28, testScores: { bleu: 29.25, tokenizedLowercaseBleu: 30 } },
    });
    expect(resultRowOfRun(dir, { stage: 'l0' })).toMatchObject({
      kind: 'prune',
      method: 'l0',
      attention: 'enc-self',
      lambda: 0.05,
      targetHeads: null,
      keptEnc: 3,
      keptDecSelf: 4,
      bleu: 29.25,
      bleuTokLc: 30,
      devBleu: 28,
    });
    writeJsonAtomic(join(dir, 'config.json'), { model, gates: { attention: ['enc-self', 'dec-enc'], targetHeads: 6 }, train: { l0Lambda: 0 } });
    expect(resultRowOfRun(dir, { stage: 'b' })).toMatchObject({ method: 'l0-budget', attention: 'enc-self+dec-enc', lambda: null, targetHeads: '6' });
  });

  it('a folder that is not a finished run names the missing file', () => {
    expect(() => resultRowOfRun(dir, { stage: 'x' })).toThrow(`${join(dir, 'results.json')}: run results not found`);
  });
});
