/** `heads analyze`: the CLI handler in-process against a run folder written like training writes it. */
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { BpeTokenizer } from '../data/tokenizer.js';
import { createTransformer } from '../model/transformer.js';
import { writeCheckpoint } from '../io/checkpoint.js';
import { Rng } from '../util/random.js';
import { useTestBackend } from '../test-utils/backend.js';
import * as analyzeCommand from './commands/analyze.js';
import { readHeadReport } from '../analysis/report.js';
import { tinyConfig } from '../analysis/test-fixtures.js';

type HandlerArgs = Parameters<typeof analyzeCommand.handler>[0];

const FIXTURE = join(process.cwd(), 'data', 'conllu', 'sample.conllu');
const dev = [
  ['The cat cannot sleep.', 'Die Katze kann nicht schlafen.'],
  ['Old dogs chase red balls quickly.', 'Alte Hunde jagen rote Bälle schnell.'],
  ['The dog sleeps.', 'Der Hund schläft.'],
];
const train = [...dev, ['A cat chases a dog.', 'Eine Katze jagt einen Hund.'], ['Red balls.', 'Rote Bälle.']];

let root: string;
let runDir: string;

beforeAll(async () => {
  await useTestBackend();
  root = mkdtempSync(join(tmpdir(), 'heads-analyze-cli-'));
  runDir = join(root, 'run');
  const tok = BpeTokenizer.learn(train.flat(), { numMerges: 20 });
  tok.save(join(runDir, 'tokenizer.json'));
  const config = { ...tinyConfig(), name: 'tiny' };
  const model = createTransformer(config.model, tok.vocabSize, new Rng(1));
  writeCheckpoint(runDir, { step: 5, dataPosition: { epoch: 0, batch: 0 }, adamStep: 5, config, extra: {} }, await model.params.toArrays(), {}, 3);
  model.dispose();
  writeFileSync(join(root, 'dev.tsv'), dev.map((p) => p.join('\t')).join('\n') + '\n');
  writeFileSync(join(root, 'train.tsv'), train.map((p) => p.join('\t')).join('\n') + '\n');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const args = (extra: Partial<HandlerArgs>): HandlerArgs =>
  ({
    _: ['analyze'],
    $0: 'heads',
    model: runDir,
    data: join(root, 'dev.tsv'),
    'train-data': join(root, 'train.tsv'),
    'split-name': 'dev',
    'runs-dir': join(root, 'runs'),
    rare: true,
    ablation: true,
    'bleu-sentences': 2,
    lrp: true,
    'lrp-rule': 'lrp',
    'lrp-sentences': 2,
    'positional-threshold': 0.9,
    'rare-threshold': 0.5,
    'rare-min-rank': 0,
    'syntactic-gain': 0.1,
    'syntactic-min-instances': 1,
    figures: true,
    'html-per-score': false,
    top: 3,
    backend: tf.getBackend() as 'wasm',
    quiet: true,
    ...extra,
  }) as HandlerArgs;

function capture(): { out: () => string; err: () => string; restore: () => void } {
  const log = jest.spyOn(console, 'log').mockImplementation(() => {});
  const err = jest.spyOn(console, 'error').mockImplementation(() => {});
  // mockRestore also forgets the calls: keep the text first
  let out = '';
  let errText = '';
  return {
    out: () => out,
    err: () => errText,
    restore: () => {
      out = log.mock.calls.map((c) => String(c[0])).join('\n');
      errText = err.mock.calls.map((c) => String(c[0])).join('\n');
      log.mockRestore();
      err.mockRestore();
    },
  };
}

describe('heads analyze (CLI handler, in-process)', () => {
  it('writes the report, the CSV, the figures, and prints the top heads', async () => {
    const out = join(root, 'out');
    const c = capture();
    await analyzeCommand.handler(args({ out, conllu: FIXTURE, 'attention-sentences': '1', heads: 'enc-self.0.1,dec-enc.1.0' }));
    c.restore();
    expect(process.exitCode ?? 0).toBe(0);
    expect(c.out()).toMatch(/top 3 heads per score \(dev, 3 sentences; importance: per example, normalisation layer\)/);
    expect(c.out()).toMatch(/importance_per_token +\S+\.\d+\.\d+ /);
    expect(c.out()).toMatch(/importance_per_example +\S+\.\d+\.\d+ /);
    for (const f of [
      'head-report.json',
      'head-report.csv',
      'config.json',
      'command.txt',
      'env.json',
      'plots/heads-overview.html',
      'plots/heads-overview.json',
      'plots/roles.html',
      'plots/heads-confidence.json',
      'plots/attention-sentence-1.html',
    ])
      expect(existsSync(join(out, f))).toBe(true);
    // per-score pages only on request (plotly.js is 4.8 MB per page)
    expect(existsSync(join(out, 'plots/heads-confidence.html'))).toBe(false);
    const report = readHeadReport(join(out, 'head-report.json'));
    expect(report.model.step).toBe(5);
    // the default importance: Michel's per-example form, layer-normalised
    expect(report.settings.importance).toMatchObject({ form: 'example', normalize: 'layer', sentences: 3 });
    for (const e of Object.values(report.heads)) expect(e.importance.score).toBe(e.importance.perExampleLayerNorm);
    expect(report.data.sentences).toBe(3);
    expect(report.settings.conllu).toEqual({ path: FIXTURE, sentences: 2, aligned: 2, skipped: 0 });
    // nsubj: cat -> sleep, dogs -> chase; amod: only the second sentence
    expect(report.syntacticBaselines!['nsubj:dep->head']!.instances).toBe(2);
    expect(report.syntacticBaselines!['amod:dep->head']).toEqual({ instances: 2, offset: 1, accuracy: 1 });
    expect(Object.keys(report.heads['enc-self.0.0']!.roles.syntactic!.relations)).toContain('obj:head->dep');
    expect(report.heads['dec-enc.0.0']!.roles.syntactic).toBeNull();
    expect(report.settings.frequencies!.source).toBe(join(root, 'train.tsv'));
    const fig = JSON.parse(readFileSync(join(out, 'plots/attention-sentence-1.json'), 'utf8')) as {
      data: Array<{ z: number[][] }>;
      layout: Record<string, { ticktext?: string[] }>;
    };
    expect(fig.data).toHaveLength(2);
    expect(fig.layout.xaxis!.ticktext!.at(-1)).toBe('&lt;/s&gt;'); // enc-self keys: the source and </s>
    expect(fig.layout.yaxis2!.ticktext![0]).toBe('&lt;s&gt;'); // dec-enc queries: the decoder input
    const html = readFileSync(join(out, 'plots/roles.html'), 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.includes('(function(){var fig=')).toBe(true);
  });

  it.each([
    ['an unknown head', { heads: 'enc-self.0.9' }, /^error: --heads: the model has no head enc-self\.0\.9$/],
    ['a sentence out of range', { 'attention-sentences': '7' }, /^error: --attention-sentences: sentence 7 out of range 0\.\.2$/],
    ['a bad attention type', { stacks: 'enc-self,cross' }, /^error: --stacks: unknown attention type cross/],
    // numeric flags (--sentences 0, ...) are refused while parsing (src/cli/options.ts, src/cli/bad-input.test.ts)
    ['an unknown importance form', { 'importance-form': 'sentence' }, /^error: --importance-form: expected example, batch, token, got "sentence"$/],
    ['an unknown importance normalisation', { 'importance-normalize': 'l1' }, /^error: --importance-normalize: expected layer, none, got "l1"$/],
  ])('reports %s as one error line with exit code 2', async (_name, extra, message) => {
    const c = capture();
    const out = join(root, `bad-${_name.replace(/\W+/g, '-')}`);
    await analyzeCommand.handler(args({ ...extra, out, ablation: false, lrp: false, figures: false }));
    c.restore();
    const code = process.exitCode;
    process.exitCode = 0;
    expect(code).toBe(2);
    expect(existsSync(out)).toBe(false); // nothing written before the input is validated
    expect(
      c
        .err()
        .split('\n')
        .filter((l) => l.startsWith('error:')),
    ).toEqual([expect.stringMatching(message)]);
  });

  it('--importance-form token --importance-normalize none reports the raw per-token form as the importance', async () => {
    const out = join(root, 'out-token');
    const c = capture();
    await analyzeCommand.handler(args({ out, 'importance-form': 'token', 'importance-normalize': 'none', ablation: false, lrp: false, figures: false }));
    c.restore();
    expect(process.exitCode ?? 0).toBe(0);
    const report = readHeadReport(join(out, 'head-report.json'));
    expect(report.settings.importance).toMatchObject({ form: 'token', normalize: 'none' });
    for (const e of Object.values(report.heads)) expect(e.importance.score).toBe(e.importance.perToken);
  });

  it('a bad CoNLL-U file is a DataError naming the file and line', async () => {
    const bad = join(root, 'bad.conllu');
    writeFileSync(bad, '1\tThe\tthe\tDET\n');
    const c = capture();
    await analyzeCommand.handler(args({ out: join(root, 'bad-conllu'), conllu: bad, ablation: false, lrp: false, figures: false }));
    c.restore();
    expect(process.exitCode).toBe(2);
    process.exitCode = 0;
    expect(c.err()).toContain(`error: ${bad}:1: expected 10 tab-separated fields, got 4`);
  });
});
