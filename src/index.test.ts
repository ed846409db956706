import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as heads from './index.js';

/** The names each notebook imports from the built public API (../dist/index.js), types left out. */
function notebookImports(): Array<{ notebook: string; names: string[]; others: string[] }> {
  const dir = join(process.cwd(), 'notebooks');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ipynb'))
    .map((f) => {
      const nb = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { cells: Array<{ cell_type: string; source: string[] | string }> };
      const code = nb.cells
        .filter((c) => c.cell_type === 'code')
        .map((c) => (Array.isArray(c.source) ? c.source.join('') : c.source))
        .join('\n');
      const names: string[] = [];
      const others: string[] = [];
      for (const m of code.matchAll(/import\s*\{([^}]*)\}\s*from\s*'([^']+)'/g)) {
        if (m[2] !== '../dist/index.js') {
          if (m[2]!.startsWith('../')) others.push(m[2]!);
          continue;
        }
        for (const n of m[1]!.split(',').map((x) => x.trim())) if (n && !n.startsWith('type ')) names.push(n);
      }
      return { notebook: f, names, others };
    });
}

describe('public API', () => {
  it('exports the hardConcrete namespace working on plain number arrays', () => {
    // P(g != 0) = sigmoid(logAlpha - beta ln(-gamma/zeta)); at logAlpha 0, beta 0.33: sigmoid(0.33 ln 11)
    const p = heads.hardConcrete.probNonZero([0], { beta: 0.33 }) as number[];
    expect(p[0]).toBeCloseTo(1 / (1 + Math.exp(-0.33 * Math.log(11))), 6);
    expect(heads.hardConcrete.testGate([-3, 3]) as number[]).toEqual([0, 1]);
  });
  it('exports what the notebooks import, and the notebooks import nothing else of the package', () => {
    const nbs = notebookImports();
    expect(nbs.length).toBeGreaterThanOrEqual(4);
    for (const { notebook, names, others } of nbs) {
      expect({ notebook, others }).toEqual({ notebook, others: [] });
      expect(names.length).toBeGreaterThan(0);
      expect({ notebook, missing: names.filter((n) => !(n in heads)) }).toEqual({ notebook, missing: [] });
    }
  });
  it('names its exports one by one: no plot layout helpers or browser lookup', () => {
    for (const internal of ['setAxis', 'findChromium', 'panelAxes', 'columnDomains', 'CHROMIUM_CANDIDATES', 'WorkerPool'])
      expect(internal in heads).toBe(false);
    for (const name of ['Trainer', 'runExperiment', 'loadSpec', 'writeHeadReportFigures', 'penaltyWeight'])
      expect(typeof (heads as Record<string, unknown>)[name]).toBe('function');
  });
  it('exports the pipeline entry points', () => {
    for (const name of [
      'loadConfig',
      'runTraining',
      'runPruning',
      'loadModel',
      'corpusBleu',
      'translateSentences',
      'BpeTokenizer',
      'createTransformer',
      'readHeadMask',
    ] as const)
      expect(typeof heads[name]).toBe('function');
  });
});
