/**
 * The committed results are what their hypotheses say: each results folder under experiments/results/ that
 * has hyps/ is rebuilt into a copy without any run folder (`experiment report --from-hyps`: every test score
 * re-scored from the committed translations, every p-value, interval and claim verdict recomputed), and its
 * results.csv and results.md must come out byte for byte as committed. A stage, spec or report change that
 * would change a committed number fails here until the folder is re-rendered.
 */
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandStages, loadSpec } from './spec.js';
import { resolveStages } from './stage.js';
import { writeReport } from './report.js';

const STUDIES: Array<{ folder: string; spec: string; preset?: string; seeds?: number[] }> = [
  { folder: 'voita2019-ddtp-ende-devloss', spec: 'experiments/voita2019-ddtp-ende.yaml', seeds: [1, 2, 3] },
  { folder: 'voita2019-ddtp-ende-3seeds', spec: 'experiments/voita2019-ddtp-ende-devbleu.yaml', seeds: [1, 2, 3] },
  { folder: 'voita2019-ddtp-ende-quick-3seeds', spec: 'experiments/voita2019-ddtp-ende.yaml', preset: 'quick' },
  { folder: 'sparsity-methods', spec: 'experiments/sparsity-methods.yaml' },
];

describe('committed results rebuild from their hypotheses', () => {
  const dir = mkdtempSync(join(tmpdir(), 'heads-committed-'));
  it.each(STUDIES)('$folder', ({ folder, spec: specPath, preset, seeds }) => {
    const committed = join('experiments', 'results', folder);
    const out = join(dir, folder);
    cpSync(committed, out, { recursive: true });
    const spec = loadSpec(specPath, preset, seeds ? { seeds } : {});
    const stages = resolveStages(spec, expandStages(spec), join(dir, 'no-runs'));
    const { csvPath, mdPath, rescored } = writeReport(stages, out, { fromHyps: true, claims: spec.claims, specFile: specPath });
    expect(rescored!.rows).toBeGreaterThan(0);
    expect(rescored!.maxBleuChange).toBeLessThan(1e-9);
    expect(readFileSync(csvPath, 'utf8')).toBe(readFileSync(join(committed, 'results.csv'), 'utf8'));
    expect(readFileSync(mdPath, 'utf8')).toBe(readFileSync(join(committed, 'results.md'), 'utf8'));
  });
});
