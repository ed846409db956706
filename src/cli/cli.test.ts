import { jest } from '@jest/globals';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import type { ArgumentsCamelCase } from 'yargs';
import * as train from './commands/train.js';
import * as translate from './commands/translate.js';
import * as bleu from './commands/bleu.js';
import * as data from './commands/data.js';
import { useTestBackend } from '../test-utils/backend.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-cli-'));
const runs = join(dir, 'runs');
const TINY = [
  'name=tiny',
  'data.synthetic.task=reverse',
  'data.synthetic.trainPairs=300',
  'data.synthetic.validPairs=10',
  'data.synthetic.testPairs=12',
  'data.bpeMerges=20',
  'model.dModel=16',
  'model.dFF=32',
  'model.heads=2',
  'model.encoderLayers=1',
  'model.decoderLayers=1',
  'train.maxSteps=6',
  'train.logEverySteps=3',
  'train.evalEverySteps=3',
  'train.devBleuSentences=4',
  'train.checkpointEverySteps=3',
  'train.maxTokensPerBatch=300',
  'eval.beamSize=2',
];

function args<T>(a: T): ArgumentsCamelCase<T> {
  return { _: [], $0: 'heads', ...a } as ArgumentsCamelCase<T>;
}

/** Run a handler, capturing stdout and stderr. */
async function capture(fn: () => Promise<void>): Promise<{ out: string; err: string; exitCode: number | undefined }> {
  let out = '';
  let err = '';
  const o = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  const l = jest.spyOn(console, 'log').mockImplementation((...m: unknown[]) => void (out += m.join(' ') + '\n'));
  const c = jest.spyOn(console, 'error').mockImplementation((...m: unknown[]) => void (err += m.join(' ') + '\n'));
  process.exitCode = undefined;
  try {
    await fn();
  } finally {
    [o, e, l, c].forEach((s) => s.mockRestore());
  }
  const exitCode = process.exitCode as number | undefined;
  process.exitCode = undefined;
  return { out, err, exitCode };
}

beforeAll(() => useTestBackend());

describe('heads CLI handlers', () => {
  let runPath = '';

  it('train writes a complete run folder and prints BLEU with its signature', async () => {
    const r = await capture(() => train.handler(args({ set: TINY, 'runs-dir': runs, backend: undefined, quiet: true })));
    expect(r.exitCode).toBeUndefined();
    expect(r.out).toMatch(/^BLEU = \d+\.\d\d /m);
    expect(r.out).toContain('signature: nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp');
    const folders = readdirSync(runs);
    expect(folders).toHaveLength(1);
    runPath = join(runs, folders[0]!);
    for (const f of [
      'config.json',
      'command.txt',
      'git.json',
      'env.json',
      'metrics.jsonl',
      'tokenizer.json',
      'results.json',
      'test.hyp',
      'checkpoints/latest.json',
    ])
      expect([f, existsSync(join(runPath, f))]).toEqual([f, true]);
    const env = JSON.parse(readFileSync(join(runPath, 'env.json'), 'utf8'));
    expect(env.backend).toMatch(/wasm|cpu/);
    expect(env.seed).toBe(1);
    const metrics = readFileSync(join(runPath, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(metrics.filter((m) => 'loss' in m).map((m) => m.step)).toEqual([3, 6]);
    expect(metrics.filter((m) => 'devLoss' in m).map((m) => m.step)).toEqual([3, 6]);
    expect(JSON.parse(readFileSync(join(runPath, 'config.json'), 'utf8')).train.maxSteps).toBe(6);
  });

  it("translate reproduces the run's own test translations and bleu scores them", async () => {
    const cfg = JSON.parse(readFileSync(join(runPath, 'config.json'), 'utf8'));
    expect(cfg.data.train).toBeNull();
    const { generateSyntheticCorpus } = await import('../data/synthetic.js');
    const test = generateSyntheticCorpus('reverse', { seed: 1, trainPairs: 300, validPairs: 10, testPairs: 12 }).test;
    writeFileSync(join(dir, 'test.src'), test.map((p) => p.src).join('\n') + '\n');
    writeFileSync(join(dir, 'test.ref'), test.map((p) => p.tgt).join('\n') + '\n');
    const t = await capture(() =>
      translate.handler(
        args({ model: runPath, input: join(dir, 'test.src'), output: join(dir, 'test.hyp'), backend: 'auto' as const, engine: 'tfjs' as const }),
      ),
    );
    expect(t.exitCode).toBeUndefined();
    expect(readFileSync(join(dir, 'test.hyp'), 'utf8')).toBe(readFileSync(join(runPath, 'test.hyp'), 'utf8'));
    // the same text from two decoding worker threads, batches of 3 sentences side by side
    const w = await capture(() =>
      translate.handler(
        args({
          model: runPath,
          input: join(dir, 'test.src'),
          output: join(dir, 'test-workers.hyp'),
          'batch-sentences': 3,
          workers: 2,
          backend: 'auto' as const,
          engine: 'tfjs' as const,
        }),
      ),
    );
    expect([w.exitCode, /decoding: 2 worker threads/.test(w.err)]).toEqual([undefined, true]);
    expect(readFileSync(join(dir, 'test-workers.hyp'), 'utf8')).toBe(readFileSync(join(runPath, 'test.hyp'), 'utf8'));
    const b = await capture(() =>
      bleu.handler(
        args({
          input: join(dir, 'test.hyp'),
          reference: [join(dir, 'test.ref')],
          tokenize: '13a' as const,
          'smooth-method': 'exp' as const,
          lowercase: false,
          'sentence-level': false,
          'score-only': true,
          format: 'text' as const,
          width: 2,
          short: false,
        }),
      ),
    );
    const results = JSON.parse(readFileSync(join(runPath, 'results.json'), 'utf8'));
    expect(Number(b.out.trim())).toBeCloseTo(results.test.bleu, 2);
  });

  it('a bad config key exits with code 2 and one line naming the key', async () => {
    const r = await capture(() => train.handler(args({ set: ['model.dmodel=3'], 'runs-dir': runs, backend: undefined, quiet: true })));
    expect(r.exitCode).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toContain("model.dmodel: unknown key (did you mean 'dModel'?)");
  });

  it('translate of a folder without checkpoints is a clear error', async () => {
    const r = await capture(() => translate.handler(args({ model: dir, backend: 'auto' as const, engine: 'tfjs' as const })));
    expect(r.exitCode).toBe(2);
    expect(r.err).toContain('no checkpoints found');
  });

  it('data synth writes the three splits', async () => {
    const out = join(dir, 'synth');
    const r = await capture(() =>
      data.handler(
        args({
          action: 'synth' as const,
          task: 'toy-mt' as const,
          out,
          seed: 3,
          'train-pairs': 20,
          'valid-pairs': 5,
          'test-pairs': 5,
          'src-lang': 'en',
          'tgt-lang': 'de',
        }),
      ),
    );
    expect(r.exitCode).toBeUndefined();
    expect(readFileSync(join(out, 'train.de'), 'utf8').trim().split('\n')).toHaveLength(20);
    expect(readFileSync(join(out, 'test.en'), 'utf8').trim().split('\n')).toHaveLength(5);
  });
});

describe('the heads binary', () => {
  const bin = join(process.cwd(), 'bin', 'heads.js');
  const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
  (built ? it : it.skip)('answers --help and exits 2 on a bad config file without a stack trace', () => {
    expect(execFileSync('node', [bin, '--help']).toString()).toContain('heads train');
    writeFileSync(join(dir, 'bad.yaml'), 'train:\n  maxSteps: "many"\n');
    const r = spawnSync('node', [bin, 'train', '-c', join(dir, 'bad.yaml'), '--runs-dir', runs], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('train.maxSteps: expected number, got "many"');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
