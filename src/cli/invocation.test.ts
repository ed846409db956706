/**
 * What a newcomer types and reads: `npx heads` from the repository root (npm 11, strict-allow-scripts),
 * `experiment run --emit-commands` lines that run as printed, a preset's report beside the full study's,
 * pruning runs named by method and setting, and the analyze summary's rank-agreement table.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneRunName } from './commands/prune.js';
import { summaryTable } from './commands/analyze.js';
import { sampleReport } from '../analysis/test-fixtures.js';

const root = process.cwd();
const bin = join(root, 'bin', 'heads.js');
const built = existsSync(join(root, 'dist', 'cli', 'main.js'));
const dir = mkdtempSync(join(tmpdir(), 'heads-invocation-'));

describe('npx heads', () => {
  it('the package has none of the install scripts npx would refuse under strict-allow-scripts (it builds in postprepare)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
    expect(Object.keys(pkg.scripts).filter((k) => ['preinstall', 'install', 'postinstall', 'prepare'].includes(k))).toEqual([]);
    expect(pkg.scripts['postprepare']).toBe(pkg.scripts['build']);
    expect(pkg.bin['heads']).toBe('bin/heads.js');
    expect(readFileSync(join(root, '.npmrc'), 'utf8')).toMatch(/^strict-allow-scripts=true$/m);
  });

  (built ? it : it.skip)(
    'runs from the repository root as the docs print it',
    () => {
      const r = spawnSync('npx', ['heads', '--help'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
      expect(r.stderr).not.toContain('ESTRICTALLOWSCRIPTS');
      expect(r.status).toBe(0);
      // the usage lines print the same invocation
      expect(r.stdout).toContain('npx heads train');
    },
    150_000,
  );
});

(built ? describe : describe.skip)('experiment commands', () => {
  const TINY = `{ data.synthetic.task: reverse, data.synthetic.trainPairs: 200, data.synthetic.validPairs: 6, data.synthetic.testPairs: 6, data.bpeMerges: 20,
      model.dModel: 16, model.dFF: 32, model.heads: 2, model.encoderLayers: 1, model.decoderLayers: 1, train.maxTokensPerBatch: 200, train.workers: 1,
      train.evalEverySteps: 0, train.devBleuSentences: 0, train.logEverySteps: 2, train.checkpointEverySteps: 4, train.maxSteps: 4, eval.beamSize: 1 }`;
  const spec = join(dir, 'tiny.yaml');
  writeFileSync(spec, `name: tiny\nset: ${TINY}\nstages:\n  base: { kind: train }\npresets:\n  quick: { set: { train.maxSteps: 2 } }\n`);
  const runs = join(dir, 'runs');

  it('--emit-commands prints lines that run as printed from the repository root', () => {
    const emit = spawnSync('node', [bin, 'experiment', 'run', spec, '--emit-commands', '--runs-dir', runs], { cwd: root, encoding: 'utf8' });
    expect(emit.status).toBe(0);
    const lines = emit.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^node bin\/heads\.js experiment run-stage /);
    const r = spawnSync('bash', ['-c', lines[0]!], { cwd: root, encoding: 'utf8', timeout: 240_000 });
    expect(r.status).toBe(0);
    // the stage is done: nothing left to emit
    expect(spawnSync('node', [bin, 'experiment', 'run', spec, '--emit-commands', '--runs-dir', runs], { cwd: root, encoding: 'utf8' }).stdout.trim()).toBe('');
  }, 300_000);

  it("--preset quick reports into its own folder, not over the full study's report", () => {
    const full = spawnSync('node', [bin, 'experiment', 'report', spec, '--runs-dir', runs, '--no-html'], { cwd: root, encoding: 'utf8' });
    expect(full.status).toBe(0);
    const study = join(runs, 'experiments', 'tiny');
    const before = readFileSync(join(study, 'results.csv'), 'utf8');
    expect(before.trim().split('\n')).toHaveLength(2); // the finished base stage
    const quick = spawnSync('node', [bin, 'experiment', 'report', spec, '--preset', 'quick', '--runs-dir', runs, '--no-html'], { cwd: root, encoding: 'utf8' });
    expect(quick.status).toBe(0);
    expect(
      readFileSync(join(study, 'preset-quick', 'results.csv'), 'utf8')
        .trim()
        .split('\n'),
    ).toHaveLength(1); // nothing of the preset done
    expect(readFileSync(join(study, 'results.csv'), 'utf8')).toBe(before);
  }, 120_000);
});

describe('pruning run names', () => {
  it('name the method and its setting, so runs at different settings are told apart', () => {
    const names = [
      pruneRunName('quickstart', { method: 'l0', lambda: 0.01, targetHeads: null, attention: ['enc-self'] }),
      pruneRunName('quickstart', { method: 'l0', lambda: 0.05, targetHeads: null, attention: ['enc-self'] }),
      pruneRunName('quickstart', { method: 'l0', lambda: 0, targetHeads: 3, attention: ['enc-self'] }),
      pruneRunName('quickstart', { method: 'l0', lambda: 0, targetHeads: { 'enc-self': 2, 'dec-enc': 4 }, attention: ['enc-self', 'dec-enc'] }),
      pruneRunName('quickstart', { method: 'l0', lambda: 0.01, targetHeads: null, attention: ['enc-self', 'dec-self', 'dec-enc'] }),
      pruneRunName('quickstart', { method: 'importance', stepPercent: 10 }),
      pruneRunName('quickstart', { method: 'importance', stepPercent: 10, reestimate: true }),
      pruneRunName('quickstart', { method: 'random', stepPercent: 25 }),
    ];
    expect(names).toEqual([
      'quickstart-l0-lambda0.01',
      'quickstart-l0-lambda0.05',
      'quickstart-l0-heads3',
      'quickstart-l0-enc-self+dec-enc-heads-enc-self2-dec-enc4',
      'quickstart-l0-all-lambda0.01',
      'quickstart-importance-10pct',
      'quickstart-importance-10pct-reestimate',
      'quickstart-random-25pct',
    ]);
    expect(names.some((n) => n.endsWith('-prune'))).toBe(false);
  });
});

describe('analyze summary', () => {
  it('the rank-agreement table names every score in full (numbered columns), so similar names stay apart', () => {
    const report = sampleReport();
    const scores = ['importance_per_example', 'importance_per_token', 'confidence'];
    report.agreement = {
      scores,
      spearman: [
        [1, 0.9, -0.5],
        [0.9, 1, -0.4],
        [-0.5, -0.4, 1],
      ],
    };
    const text = summaryTable(report, 2);
    const table = text.slice(text.indexOf('rank agreement'));
    for (const s of scores) expect(table).toContain(s);
    const rows = table.split('\n').slice(2, 5);
    expect(rows.map((r) => r.trim().split(/\s+/).slice(0, 2))).toEqual([
      ['(1)', 'importance_per_example'],
      ['(2)', 'importance_per_token'],
      ['(3)', 'confidence'],
    ]);
    expect(rows[0]!.trim().split(/\s+/).slice(2)).toEqual(['1.00', '0.90', '-0.50']);
    expect(table.split('\n')[1]!.trim().split(/\s+/)).toEqual(['(1)', '(2)', '(3)']);
  });
});
