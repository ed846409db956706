/** `heads plot`: the handler run in-process on the fixture files writes each kind's figures. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ArgumentsCamelCase } from 'yargs';
import { jest } from '@jest/globals';
import { defaultOutDir, handler } from './commands/plot.js';

const FIXTURES = fileURLToPath(new URL('../plots/fixtures/', import.meta.url));

type HandlerArgs = Parameters<typeof handler>[0];

function args(kind: string, inputs: string[], extra: Record<string, unknown> = {}): HandlerArgs {
  return {
    _: ['plot'],
    $0: 'heads',
    kind,
    inputs,
    png: false,
    scale: 2,
    threshold: 0.5,
    metric: 'bleu',
    backend: 'auto',
    ...extra,
  } as unknown as ArgumentsCamelCase<Parameters<typeof handler>[0]>;
}

let out: string;
let logs: string[];
let errors: string[];
beforeEach(() => {
  out = mkdtempSync(join(tmpdir(), 'heads-plot-cmd-'));
  logs = [];
  errors = [];
  jest.spyOn(console, 'log').mockImplementation((m: unknown) => void logs.push(String(m)));
  jest.spyOn(console, 'error').mockImplementation((m: unknown) => void errors.push(String(m)));
  process.exitCode = undefined;
});
afterEach(() => {
  jest.restoreAllMocks();
  rmSync(out, { recursive: true, force: true });
  process.exitCode = undefined;
});

describe('heads plot', () => {
  it.each([
    ['training', [FIXTURES], {}, ['training-curves']],
    ['gates', [FIXTURES], {}, ['gate-trajectories', 'gate-closing-order', 'expected-open-heads']],
    ['heatmap', [FIXTURES], { score: 'confidence' }, ['heatmap-confidence']],
    ['attention', [join(FIXTURES, 'attention-maps.json')], {}, ['attention']],
    ['bleu-vs-heads', [join(FIXTURES, 'results.csv'), join(FIXTURES, 'pruning-curve.csv')], {}, ['bleu-vs-heads']],
    ['heads-per-type', [FIXTURES], {}, ['heads-per-type']],
    ['mask', [FIXTURES], {}, ['mask-map']],
  ])('%s writes %j', async (kind, inputs, extra, names) => {
    await handler(args(kind, inputs, { out, ...extra }));
    expect(errors).toEqual([]);
    expect(process.exitCode).toBeUndefined();
    for (const n of names) {
      expect(existsSync(join(out, `${n}.json`))).toBe(true);
      expect(existsSync(join(out, `${n}.html`))).toBe(true);
    }
    expect(logs.join('\n').split('\n')).toHaveLength(2 * names.length);
  });

  it('a pruning curve takes its method name from pruning-result.json', async () => {
    await handler(args('bleu-vs-heads', [join(FIXTURES, 'pruning-curve.csv')], { out }));
    const fig = JSON.parse(readFileSync(join(out, 'bleu-vs-heads.json'), 'utf8')) as { data: Array<{ name: string }> };
    expect(fig.data.map((d) => d.name)).toEqual(['importance']);
  });

  it('heatmap without --score lists the scores and exits 2', async () => {
    await handler(args('heatmap', [FIXTURES], { out }));
    expect(process.exitCode).toBe(2);
    expect(errors.join('\n')).toContain('--score: name the score to draw; ');
    expect(errors.join('\n')).toContain('gate_p_open, importance_per_token, confidence');
  });

  it('a missing input is one line naming it', async () => {
    await handler(args('training', [join(out, 'nope')], { out }));
    expect(process.exitCode).toBe(2);
    expect(errors).toEqual([`error: ${join(out, 'nope')}: not found (expected a run folder or a metrics.jsonl file)`]);
  });

  it('writes into <run folder>/plots by default', () => {
    expect(defaultOutDir(FIXTURES)).toBe(join(FIXTURES, 'plots'));
    expect(defaultOutDir(join(FIXTURES, 'mask.json'))).toBe(join(FIXTURES, 'plots'));
  });
});
