/**
 * Bad input, end to end: each malformed config, corpus, mask, spec, CoNLL-U file, damaged result file
 * or flag value is fed to the real `heads` command (a child process), which must exit with code 2 and
 * print one clear message naming the file, key or line and what was expected, without a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
const dir = mkdtempSync(join(tmpdir(), 'heads-bad-'));
const TINY = [
  'data.synthetic.task=reverse', 'data.synthetic.trainPairs=200', 'data.synthetic.validPairs=6', 'data.synthetic.testPairs=4', 'data.bpeMerges=20',
  'model.dModel=16', 'model.dFF=32', 'model.heads=2', 'model.encoderLayers=2', 'model.decoderLayers=1',
  'train.maxSteps=2', 'train.evalEverySteps=0', 'train.devBleuSentences=0', 'train.maxTokensPerBatch=200', 'train.workers=1', 'eval.beamSize=1',
];

function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  return p;
}

function heads(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync('node', [bin, ...args], { encoding: 'utf8', cwd: dir });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

(built ? describe : describe.skip)('bad input through the command line: exit 2, one clear message, no stack', () => {
  let run = '';
  beforeAll(() => {
    const r = heads(['train', '--runs-dir', join(dir, 'runs'), '--set', 'name=tiny', ...TINY]);
    expect(r.status).toBe(0);
    run = join(dir, 'runs', readdirSync(join(dir, 'runs'))[0]!);
  }, 120000);

  // a two-line corpus pair whose files disagree or are broken in one way each
  const corpus = (name: string, en: string | Buffer, de: string | Buffer) => {
    file(`${name}/train.en`, en);
    file(`${name}/train.de`, de);
    for (const s of ['valid', 'test']) {
      file(`${name}/${s}.en`, 'a b\n');
      file(`${name}/${s}.de`, 'b a\n');
    }
    return join(dir, name);
  };
  const withData = (c: string) => ['--set', `data.train="${c}/train"`, `data.valid="${c}/valid"`, `data.test="${c}/test"`];

  const cases: Array<[string, () => string[], RegExp[]]> = [
    ['a config with an unknown key', () => ['train', '-c', file('c1.yaml', 'trian:\n  maxSteps: 3\n')], [/c1\.yaml/, /trian: unknown key \(did you mean 'train'\?\)/]],
    ['a config value of the wrong type', () => ['train', '-c', file('c2.yaml', 'model:\n  heads: eight\n')], [/c2\.yaml/, /model\.heads/, /expected.*number/i]],
    ['d_model not divisible by the heads', () => ['train', '-c', file('c3.yaml', 'model:\n  dModel: 30\n  heads: 4\n')], [/c3\.yaml/, /dModel.*divisible|divisible.*heads/]],
    ['a config that is not YAML', () => ['train', '-c', file('c4.yaml', 'model: [1, 2\n')], [/c4\.yaml/, /YAML/]],
    ['a missing config file', () => ['train', '-c', join(dir, 'nope.yaml')], [/nope\.yaml/, /not found/]],
    ['a --set value that is not a number', () => ['train', '--set', 'train.peakLr=fast'], [/train\.peakLr/, /expected.*number/i]],
    ['corpus files with different line counts', () => ['train', ...withData(corpus('k1', 'a\nb\nc\n', 'a\nb\n')), ...TINY.slice(5)], [/k1\/train\.(en|de)/, /3 lines.*2 lines|2 lines.*3 lines|line counts/]],
    ['an empty line in a corpus', () => ['train', ...withData(corpus('k2', 'a\n\nc\n', 'a\nb\nc\n')), ...TINY.slice(5)], [/k2\/train\.en:2/, /empty/]],
    ['invalid UTF-8 in a corpus', () => ['train', ...withData(corpus('k3', Buffer.from([0x61, 0x0a, 0xff, 0xfe, 0x0a]), 'a\nb\n')), ...TINY.slice(5)], [/k3\/train\.en:2/, /invalid UTF-8/]],
    ['a corpus path that is a directory', () => {
      const c = corpus('k4', 'a\n', 'b\n');
      mkdirSync(join(c, 'dir.en'), { recursive: true });
      file('k4/dir.de', 'b\n');
      return ['train', '--set', `data.train="${c}/dir"`, `data.valid="${c}/valid"`, `data.test="${c}/test"`, ...TINY.slice(5)];
    }, [/k4\/dir\.en/, /directory/]],
    ['a missing corpus file', () => ['train', '--set', `data.train="${dir}/none/train"`, `data.valid="${dir}/none/valid"`, `data.test="${dir}/none/test"`, ...TINY.slice(5)], [/none\/train\.en/, /not found/]],
    ['a head mask with more layers than the model', () => ['export', run, '--mask', file('m1.json', JSON.stringify({ format: 'heads.head-mask', version: 1, source: 'by hand', stacks: { 'enc-self': { layers: [0, 1, 2].map(() => ({ kept: [0], removed: [1] })) } } }))], [/m1\.json: stacks\.enc-self\.layers\[2\]: the model has 2 enc-self layers/]],
    ['a head mask field that is not the format', () => ['export', run, '--mask', file('m2.json', JSON.stringify({ format: 'heads.head-mask', version: 1, source: 'x', heads: {} }))], [/m2\.json/, /heads: unknown field/, /stacks: expected an object keyed by attention type/]],
    ['a mask descriptor head out of range', () => ['export', run, '--mask-descriptor', 'E:1:9'], [/E:1:9|head 9/]],
    ['an experiment spec with an unknown stage key', () => ['experiment', 'status', file('s1.yaml', 'name: s\nstages:\n  a: { kind: train, sett: {} }\n')], [/s1\.yaml/, /stages\.a\.sett/, /unknown key/]],
    ['an experiment spec depending on a missing stage', () => ['experiment', 'status', file('s2.yaml', 'name: s\nstages:\n  p: { kind: prune, from: base, lambda: 0.1 }\n')], [/s2\.yaml/, /'base', which is not a stage/]],
    ['a CoNLL-U file that does not parse', () => ['analyze', run, '-n', '2', '--no-ablation', '--no-lrp', '--no-figures', '--out', join(dir, 'an1'), '--conllu', file('bad.conllu', '1\tword\n\n')], [/bad\.conllu:1/, /10 (tab-separated )?(fields|columns)/i]],
    ['a run file damaged after it was written (its tokenizer)', () => {
      // a copy of the run whose tokenizer.json (integrity recorded when written) then loses a byte
      const copy = join(dir, 'damaged-run');
      spawnSync('cp', ['-r', run, copy]);
      const tok = join(copy, 'tokenizer.json');
      writeFileSync(tok, readFileSync(tok).subarray(1));
      return ['translate', '--model', copy, '--input', file('src.txt', 'a b\n')];
    }, [/damaged-run\/tokenizer\.json: damaged or changed since heads wrote it \(cut short/, /remove its entry "tokenizer\.json"/]],
    ['a negative lambda', () => ['prune', '--from', run, '--lambda', '-1'], [/train\.l0Lambda/, /expected number to be >=0, got -1/]],
    ['a model folder that does not exist', () => ['translate', '--model', join(dir, 'no-such-run')], [/no-such-run/]],
    ['a missing required option (a usage error)', () => ['translate', join(dir, 'no-such-run')], [/Missing required argument: model/, /--help/]],
    ['an unknown option', () => ['train', '--maxSteps', '3'], [/Unknown argument/i, /maxSteps/]],
  ];

  it.each(cases)('%s', (_name, argv, patterns) => {
    const r = heads(argv());
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 2, stderr: expect.any(String) });
    for (const p of patterns) expect(r.stderr).toMatch(p);
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace
    expect(r.stderr).toMatch(/^error: /m);
  });
});
