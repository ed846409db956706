import * as heads from './index.js';

describe('public API', () => {
  it('exports the hardConcrete namespace working on plain number arrays', () => {
    // P(g != 0) = sigmoid(logAlpha - beta ln(-gamma/zeta)); at logAlpha 0, beta 0.33: sigmoid(0.33 ln 11)
    const p = heads.hardConcrete.probNonZero([0], { beta: 0.33 }) as number[];
    expect(p[0]).toBeCloseTo(1 / (1 + Math.exp(-0.33 * Math.log(11))), 6);
    expect(heads.hardConcrete.testGate([-3, 3]) as number[]).toEqual([0, 1]);
  });
  it('exports the pipeline entry points', () => {
    for (const name of ['loadConfig', 'runTraining', 'runPruning', 'loadModel', 'corpusBleu', 'translateSentences', 'BpeTokenizer', 'createTransformer', 'readHeadMask'] as const)
      expect(typeof heads[name]).toBe('function');
  });
});
