/**
 * Bad input, end to end: each malformed config, corpus, mask, spec, CoNLL-U file, damaged result file
 * or flag value is fed to the real `heads` command (a child process), which must exit with code 2 and
 * print one clear message naming the file, key or line and what was expected, without a stack trace.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
const dir = mkdtempSync(join(tmpdir(), 'heads-bad-'));
const TINY = [
  'data.synthetic.task=reverse',
  'data.synthetic.trainPairs=200',
  'data.synthetic.validPairs=6',
  'data.synthetic.testPairs=4',
  'data.bpeMerges=20',
  'model.dModel=16',
  'model.dFF=32',
  'model.heads=2',
  'model.encoderLayers=2',
  'model.decoderLayers=1',
  'model.maxPositions=64',
  'data.maxLen=40',
  'train.maxSteps=2',
  'train.evalEverySteps=0',
  'train.devBleuSentences=0',
  'train.maxTokensPerBatch=200',
  'train.workers=1',
  'eval.beamSize=1',
];

function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  return p;
}

/** The command as a child process with `stdin` (closed empty when not given), killed after 60 s (a hang fails the test). */
function headsAsync(args: string[], stdin: string | Buffer = ''): Promise<{ status: number | null; stderr: string }> {
  return new Promise((done) => {
    const child = spawn('node', [bin, ...args], { cwd: dir, stdio: ['pipe', 'ignore', 'pipe'], timeout: 60000 });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (status) => done({ status, stderr }));
    child.stdin.end(stdin);
  });
}

const hasTfjsNode = (() => {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
})();

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
    [
      'a config with an unknown key',
      () => ['train', '-c', file('c1.yaml', 'trian:\n  maxSteps: 3\n')],
      [/c1\.yaml/, /trian: unknown key \(did you mean 'train'\?\)/],
    ],
    ['a config value of the wrong type', () => ['train', '-c', file('c2.yaml', 'model:\n  heads: eight\n')], [/c2\.yaml/, /model\.heads/, /expected.*number/i]],
    [
      'd_model not divisible by the heads',
      () => ['train', '-c', file('c3.yaml', 'model:\n  dModel: 30\n  heads: 4\n')],
      [/c3\.yaml/, /dModel.*divisible|divisible.*heads/],
    ],
    ['a config that is not YAML', () => ['train', '-c', file('c4.yaml', 'model: [1, 2\n')], [/c4\.yaml/, /YAML/]],
    ['a missing config file', () => ['train', '-c', join(dir, 'nope.yaml')], [/nope\.yaml/, /not found/]],
    ['a --set value that is not a number', () => ['train', '--set', 'train.peakLr=fast'], [/train\.peakLr/, /expected.*number/i]],
    [
      'corpus files with different line counts',
      () => ['train', ...withData(corpus('k1', 'a\nb\nc\n', 'a\nb\n')), ...TINY.slice(5)],
      [/k1\/train\.(en|de)/, /3 lines.*2 lines|2 lines.*3 lines|line counts/],
    ],
    ['an empty line in a corpus', () => ['train', ...withData(corpus('k2', 'a\n\nc\n', 'a\nb\nc\n')), ...TINY.slice(5)], [/k2\/train\.en:2/, /empty/]],
    [
      'invalid UTF-8 in a corpus',
      () => ['train', ...withData(corpus('k3', Buffer.from([0x61, 0x0a, 0xff, 0xfe, 0x0a]), 'a\nb\n')), ...TINY.slice(5)],
      [/k3\/train\.en:2/, /invalid UTF-8/],
    ],
    [
      'a corpus path that is a directory',
      () => {
        const c = corpus('k4', 'a\n', 'b\n');
        mkdirSync(join(c, 'dir.en'), { recursive: true });
        file('k4/dir.de', 'b\n');
        return ['train', '--set', `data.train="${c}/dir"`, `data.valid="${c}/valid"`, `data.test="${c}/test"`, ...TINY.slice(5)];
      },
      [/k4\/dir\.en/, /directory/],
    ],
    [
      'a missing corpus file',
      () => ['train', '--set', `data.train="${dir}/none/train"`, `data.valid="${dir}/none/valid"`, `data.test="${dir}/none/test"`, ...TINY.slice(5)],
      [/none\/train\.en/, /not found/],
    ],
    [
      'a head mask with more layers than the model',
      () => [
        'export',
        run,
        '--mask',
        file(
          'm1.json',
          JSON.stringify({
            format: 'heads.head-mask',
            version: 1,
            source: 'by hand',
            stacks: { 'enc-self': { layers: [0, 1, 2].map(() => ({ kept: [0], removed: [1] })) } },
          }),
        ),
      ],
      [/m1\.json: stacks\.enc-self\.layers\[2\]: the model has 2 enc-self layers/],
    ],
    [
      'a head mask field that is not the format',
      () => ['export', run, '--mask', file('m2.json', JSON.stringify({ format: 'heads.head-mask', version: 1, source: 'x', heads: {} }))],
      [/m2\.json/, /heads: unknown field/, /stacks: expected an object keyed by attention type/],
    ],
    ['a mask descriptor head out of range', () => ['export', run, '--mask-descriptor', 'E:1:9'], [/E:1:9|head 9/]],
    [
      'an experiment spec with an unknown stage key',
      () => ['experiment', 'status', file('s1.yaml', 'name: s\nstages:\n  a: { kind: train, sett: {} }\n')],
      [/s1\.yaml/, /stages\.a\.sett/, /unknown key/],
    ],
    [
      'an experiment spec depending on a missing stage',
      () => ['experiment', 'status', file('s2.yaml', 'name: s\nstages:\n  p: { kind: prune, from: base, lambda: 0.1 }\n')],
      [/s2\.yaml/, /'base', which is not a stage/],
    ],
    [
      'a CoNLL-U file that does not parse',
      () => ['analyze', run, '-n', '2', '--no-ablation', '--no-lrp', '--no-figures', '--out', join(dir, 'an1'), '--conllu', file('bad.conllu', '1\tword\n\n')],
      [/bad\.conllu:1/, /10 (tab-separated )?(fields|columns)/i],
    ],
    [
      'a run file damaged after it was written (its tokenizer)',
      () => {
        // a copy of the run whose tokenizer.json (integrity recorded when written) then loses a byte
        const copy = join(dir, 'damaged-run');
        spawnSync('cp', ['-r', run, copy]);
        const tok = join(copy, 'tokenizer.json');
        writeFileSync(tok, readFileSync(tok).subarray(1));
        return ['translate', '--model', copy, '--input', file('src.txt', 'a b\n')];
      },
      [/damaged-run\/tokenizer\.json: damaged or changed since heads wrote it \(cut short/, /remove its entry "tokenizer\.json"/],
    ],
    [
      'experiment adopt naming a stage with several instances (seeds) instead of one',
      () => [
        'experiment',
        'adopt',
        file('s3.yaml', 'name: s3\nseed: [1, 2]\nstages:\n  base: { kind: train }\n'),
        '--id',
        'base',
        '--run',
        run,
        '--runs-dir',
        join(dir, 'r-s3'),
      ],
      [/adopt: --id base: expected one stage instance, found a stage with 2 \(base\[seed=1\], base\[seed=2\]\); give one of them/],
    ],
    [
      'experiment adopt with an --id that is no instance',
      () => [
        'experiment',
        'adopt',
        file('s4.yaml', 'name: s4\nstages:\n  base: { kind: train }\n'),
        '--id',
        'bsae',
        '--run',
        run,
        '--runs-dir',
        join(dir, 'r-s4'),
      ],
      [/adopt: --id bsae: no such stage instance \(instances: base\)/],
    ],
    [
      'experiment adopt without --run',
      () => ['experiment', 'adopt', file('s5.yaml', 'name: s5\nstages:\n  base: { kind: train }\n'), '--id', 'base', '--runs-dir', join(dir, 'r-s5')],
      [/adopt: --run: expected the finished run folder to adopt for base/],
    ],
    ['a negative lambda', () => ['prune', '--from', run, '--lambda', '-1'], [/--lambda: expected a number >= 0, got -1/]],
    ['a model folder that does not exist', () => ['translate', '--model', join(dir, 'no-such-run')], [/no-such-run/]],
    ['a missing required option (a usage error)', () => ['translate', join(dir, 'no-such-run')], [/Missing required argument: model/, /--help/]],
    ['an unknown option', () => ['train', '--maxSteps', '3'], [/unknown option --maxSteps/]],
  ];

  it.each(cases)('%s', (_name, argv, patterns) => {
    const r = heads(argv());
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 2, stderr: expect.any(String) });
    for (const p of patterns) expect(r.stderr).toMatch(p);
    if (argv()[0] === 'experiment') expect(readdirSync(dir).filter((n) => n.startsWith('r-s'))).toEqual([]);
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace
    expect(r.stderr).toMatch(/^error: /m);
  });

  // ---- by class (issue 15): each malformed input of a kind, run side by side (3 at a time) ----
  // Each case: exit 2, exactly one line on stderr besides the backend/model lines, starting `error: ` and
  // naming the flag, key, file or line; no stack; and nothing written where the command would write.
  describe('by class: refused in one line before anything is written', () => {
    interface Case {
      name: string;
      argv: () => string[];
      stdin?: string | Buffer;
      expect: RegExp[];
      /** paths the command would have written: none may exist afterwards */
      absent?: string[];
    }
    const fresh = (name: string) => join(dir, 'out', name);
    const spec = join(process.cwd(), 'experiments', 'voita2019-ddtp-ende.yaml');
    const classes: Record<string, Case[]> = {
      'numeric options': [
        ...['0', '-1', 'abc', '2.5', '100000', ''].map((v): Case => ({
          name: `translate --beam ${JSON.stringify(v)}`,
          argv: () => ['translate', '-m', run, '--beam', v, '-o', fresh(`beam${v}.txt`)],
          stdin: 'a b\n',
          expect: [/^error: --beam: expected an integer from 1 to 1000, got /],
          absent: [fresh(`beam${v}.txt`)],
        })),
        { name: 'translate --beam given twice', argv: () => ['translate', '-m', run, '--beam', '2', '--beam', '3'], expect: [/--beam: given 2 times/] },
        {
          name: 'translate --batch-sentences 0',
          argv: () => ['translate', '-m', run, '--batch-sentences', '0'],
          expect: [/--batch-sentences: expected an integer >= 1, got 0/],
        },
        {
          name: 'translate --length-penalty NaN',
          argv: () => ['translate', '-m', run, '--length-penalty', 'NaN'],
          expect: [/--length-penalty: expected a number >= 0, got "NaN"/],
        },
        ...['-1', '0'].map((v): Case => ({
          name: `data synth --train-pairs ${v}`,
          argv: () => ['data', 'synth', '--train-pairs', v, '--out', fresh(`synth${v}`)],
          expect: [/--train-pairs: expected an integer from 1 to 2000000, got/],
          absent: [fresh(`synth${v}`)],
        })),
        {
          name: 'experiment run --jobs 0',
          argv: () => ['experiment', 'run', spec, '--jobs', '0', '--runs-dir', fresh('jobs0')],
          expect: [/--jobs: expected an integer >= 1, got 0/],
          absent: [fresh('jobs0')],
        },
        {
          name: 'prune --steps abc names the flag, not the parent',
          argv: () => ['prune', '--from', run, '--lambda', '0.1', '--steps', 'abc', '--runs-dir', fresh('steps')],
          expect: [/--steps: expected an integer >= 1, got "abc"/],
          absent: [fresh('steps')],
        },
        {
          name: 'analyze --top 1.5',
          argv: () => ['analyze', run, '--top', '1.5', '--out', fresh('top')],
          expect: [/--top: expected an integer >= 1, got 1\.5/],
          absent: [fresh('top')],
        },
        {
          name: 'analyze --rare-threshold 2',
          argv: () => ['analyze', run, '--rare-threshold', '2', '--out', fresh('rt')],
          expect: [/--rare-threshold: expected a number in \[0, 1\], got 2/],
          absent: [fresh('rt')],
        },
        { name: 'bench train --steps 0', argv: () => ['bench', 'train', '--steps', '0'], expect: [/--steps: expected an integer >= 1, got 0/] },
        {
          name: 'bleu --width -1',
          argv: () => ['bleu', '-i', file('h.txt', 'a\n'), '-r', file('r.txt', 'a\n'), '--width', '-1'],
          expect: [/--width: expected an integer from 0 to 10, got -1/],
        },
        {
          name: 'plot --scale 0',
          argv: () => ['plot', 'training', run, '--png', '--scale', '0', '-o', fresh('scale')],
          expect: [/--scale: expected a number in \(0, 10\], got 0/],
          absent: [fresh('scale')],
        },
      ],
      'config values that cannot work': [
        {
          name: 'model.dModel: 1e12',
          argv: () => ['train', '-c', file('d1.yaml', 'model:\n  dModel: 1e12\n'), '--runs-dir', fresh('d1')],
          expect: [/d1\.yaml: model\.dModel: .* more than one tensor can hold/],
          absent: [fresh('d1')],
        },
        {
          name: 'model.dModel: 65536 (hung)',
          argv: () => ['train', '-c', file('d2.yaml', 'model:\n  dModel: 65536\n'), '--runs-dir', fresh('d2')],
          expect: [/d2\.yaml: model\.dModel: the model has at least .* parameters .* the wasm backend's heap holds at most 4 GiB/],
          absent: [fresh('d2')],
        },
        {
          name: 'train.maxTokensPerBatch: 1',
          argv: () => ['train', '-c', file('t1.yaml', 'train:\n  maxTokensPerBatch: 1\n'), '--runs-dir', fresh('t1')],
          expect: [/t1\.yaml: train\.maxTokensPerBatch: 1 cannot hold one pair of data\.maxLen = 100 tokens/],
          absent: [fresh('t1')],
        },
        {
          name: 'eval.beamSize: 5000',
          argv: () => ['train', '--set', 'eval.beamSize=5000', '--runs-dir', fresh('b1')],
          expect: [/eval\.beamSize: .*1000/],
          absent: [fresh('b1')],
        },
        {
          name: 'data.synthetic.trainPairs: 1e9',
          argv: () => ['train', '--set', 'data.synthetic.trainPairs=1e9', '--runs-dir', fresh('p1')],
          expect: [/data\.synthetic\.trainPairs: .*2000000/],
          absent: [fresh('p1')],
        },
      ],
      'missing or empty values': [
        {
          name: 'train -c with no value',
          argv: () => ['train', '--runs-dir', fresh('c0'), '-c'],
          expect: [/^error: -c: expected a value after it/],
          absent: [fresh('c0')],
        },
        { name: 'translate -m with no value', argv: () => ['translate', '-m'], expect: [/^error: -m: expected a value after it/] },
        {
          name: 'a bare --set',
          argv: () => ['train', '--runs-dir', fresh('s0'), '--set'],
          expect: [/^error: --set: expected a value after it/],
          absent: [fresh('s0')],
        },
        { name: 'an empty --model', argv: () => ['translate', '--model', ''], expect: [/--model: expected a value, got an empty string/] },
        { name: 'two config files', argv: () => ['train', '-c', 'a.yaml', '-c', 'b.yaml'], expect: [/--config: given 2 times/] },
        {
          name: 'an empty config file',
          argv: () => ['train', '-c', file('empty.yaml', ''), '--runs-dir', fresh('e0')],
          expect: [/empty\.yaml: empty config file/],
          absent: [fresh('e0')],
        },
        { name: '--no-such-flag 3', argv: () => ['train', '--no-such-flag', '3'], expect: [/^error: unknown option --no-such-flag; unexpected argument "3"/] },
      ],
      'YAML and JSON hazards': [
        {
          name: 'a !!js/function tag',
          argv: () => ['train', '-c', file('y1.yaml', 'name: !!js/function "function () {}"\n'), '--runs-dir', fresh('y1')],
          expect: [/y1\.yaml: .*line 1: unknown YAML tag !!js\/function/],
          absent: [fresh('y1')],
        },
        {
          name: '__proto__ inside model:',
          argv: () => ['train', '-c', file('y2.yaml', 'model:\n  __proto__:\n    heads: 99\n'), '--runs-dir', fresh('y2')],
          expect: [/y2\.yaml: model\.__proto__: '__proto__' is not a config key/],
          absent: [fresh('y2')],
        },
        {
          name: 'a top-level __proto__ in JSON',
          argv: () => ['train', '-c', file('y3.json', '{"__proto__": {"polluted": 1}}'), '--runs-dir', fresh('y3')],
          expect: [/y3\.json: __proto__: '__proto__' is not a config key/],
          absent: [fresh('y3')],
        },
        {
          name: 'constructor as a key',
          argv: () => ['train', '-c', file('y4.yaml', 'train:\n  constructor: 1\n'), '--runs-dir', fresh('y4')],
          expect: [/y4\.yaml: train\.constructor: 'constructor' is not a config key/],
          absent: [fresh('y4')],
        },
        {
          name: '--set model.__proto__.heads=99',
          argv: () => ['train', '--set', 'model.__proto__.heads=99', '--runs-dir', fresh('y5')],
          expect: [/--set: model\.__proto__\.heads: '__proto__' is not a config key/],
          absent: [fresh('y5')],
        },
        {
          name: '.nan in a file',
          argv: () => ['train', '-c', file('y6.yaml', 'train:\n  peakLr: .nan\n'), '--runs-dir', fresh('y6')],
          expect: [/y6\.yaml: train\.peakLr: expected a finite number, got NaN/],
          absent: [fresh('y6')],
        },
        {
          name: '.inf through --set',
          argv: () => ['train', '--set', 'train.clipNorm=.inf', '--runs-dir', fresh('y7')],
          expect: [/train\.clipNorm: expected a finite number, got Infinity/],
          absent: [fresh('y7')],
        },
        {
          name: 'a tag in an experiment spec',
          argv: () => ['experiment', 'status', file('s-tag.yaml', 'name: !!js/function "x"\nstages:\n  b: { kind: train }\n')],
          expect: [/s-tag\.yaml: not valid YAML: line 1: unknown YAML tag !!js\/function/],
        },
        {
          name: '__proto__ in an experiment spec',
          argv: () => ['experiment', 'status', file('s-proto.yaml', 'name: s\nset:\n  __proto__: { seed: 3 }\nstages:\n  b: { kind: train }\n')],
          expect: [/s-proto\.yaml: set\.__proto__: '__proto__' is not a config key/],
        },
        {
          name: 'a --set key with an empty part',
          argv: () => ['train', '--set', 'model..heads=2', '--runs-dir', fresh('y8')],
          expect: [/--set: "model\.\.heads=2": expected a dotted key/],
          absent: [fresh('y8')],
        },
      ],
      'options that would be ignored': [
        {
          name: 'prune --lambda with --target-heads',
          argv: () => ['prune', '--from', run, '--lambda', '0.01', '--target-heads', '3', '--runs-dir', fresh('x1')],
          expect: [/--lambda: not with --target-heads/],
          absent: [fresh('x1')],
        },
        {
          name: 'prune --method importance --steps',
          argv: () => ['prune', '--from', run, '--method', 'importance', '--steps', '5', '--runs-dir', fresh('x2')],
          expect: [/--steps: only with --method l0/],
          absent: [fresh('x2')],
        },
        {
          name: 'prune (l0) --step-percent',
          argv: () => ['prune', '--from', run, '--lambda', '0.1', '--step-percent', '20', '--runs-dir', fresh('x3')],
          expect: [/--step-percent: only with --method importance/],
          absent: [fresh('x3')],
        },
        { name: 'train --resume with -c', argv: () => ['train', '--resume', run, '-c', file('ok.yaml', 'seed: 2\n')], expect: [/--config: not with --resume/] },
        {
          name: 'analyze --no-ablation --bleu-sentences',
          argv: () => ['analyze', run, '--no-ablation', '--bleu-sentences', '5', '--out', fresh('x5')],
          expect: [/--bleu-sentences: not with --no-ablation/],
          absent: [fresh('x5')],
        },
        {
          name: 'export --out with --runs-dir',
          argv: () => ['export', run, '--mask-descriptor', 'E:1:1', '--out', fresh('x6'), '--runs-dir', fresh('x6r')],
          expect: [/--runs-dir: not with --out/],
          absent: [fresh('x6'), fresh('x6r')],
        },
      ],
      'output and backend paths': [
        {
          name: 'translate -o a folder (checked before translating)',
          argv: () => ['translate', '-m', run, '-i', file('src1.txt', 'a b\n'), '-o', join(dir, 'outdir')],
          expect: [/--output: .*outdir is a folder; expected a file name/],
        },
        {
          name: '--runs-dir a file',
          argv: () => ['train', '--runs-dir', file('runs-file', 'x')],
          expect: [/--runs-dir: .*runs-file is a file; expected a folder/],
        },
        {
          name: '--runs-dir under a file',
          argv: () => ['train', '--runs-dir', join(dir, 'runs-file2', 'sub')],
          expect: [/--runs-dir: .*runs-file2 is a file, so no folder can be created under it/],
        },
        {
          name: '--runs-dir /proc/x (looped forever)',
          argv: () => ['train', '--runs-dir', '/proc/heads-bad-input/x'],
          expect: [/--runs-dir: \/proc is on the kernel's \/proc file system/],
        },
        {
          name: 'data synth --out a file',
          argv: () => ['data', 'synth', '--train-pairs', '5', '--out', file('synth-file', 'x')],
          expect: [/--out: .*synth-file is a file/],
        },
        ...(hasTfjsNode
          ? []
          : [
              {
                name: '--backend tensorflow without its package',
                argv: () => ['train', '--backend', 'tensorflow', '--runs-dir', fresh('tf')],
                expect: [/backend 'tensorflow': @tensorflow\/tfjs-node cannot be loaded \(it is not installed\)/],
                absent: [fresh('tf')],
              },
            ]),
      ],
      'mask descriptors (as strict as mask files)': [
        {
          name: 'E:1:1,1',
          argv: () => ['export', run, '--mask-descriptor', 'E:1:1,1', '--out', fresh('m1')],
          expect: [/"E:1:1,1": head 1 of E:1 is listed twice/],
          absent: [fresh('m1')],
        },
        {
          name: 'E:1:1 E:1:1',
          argv: () => ['export', run, '--mask-descriptor', 'E:1:1 E:1:1', '--out', fresh('m2')],
          expect: [/"E:1:1": head 1 of E:1 is listed twice/],
          absent: [fresh('m2')],
        },
        {
          name: 'a mask file with the same duplicate',
          argv: () => [
            'export',
            run,
            '--out',
            fresh('m3'),
            '--mask',
            file(
              'dup-mask.json',
              JSON.stringify({
                format: 'heads.head-mask',
                version: 1,
                source: 'by hand',
                stacks: {
                  'enc-self': {
                    layers: [
                      { kept: [1], removed: [0, 0] },
                      { kept: [0, 1], removed: [] },
                    ],
                  },
                },
              }),
            ),
          ],
          expect: [/head 0 is listed twice/],
          absent: [fresh('m3')],
        },
      ],
      'text input': [
        {
          name: 'translate < /dev/null',
          argv: () => ['translate', '-m', run, '-o', fresh('null.txt')],
          stdin: '',
          expect: [/stdin: no sentences to translate \(the input is empty\)/],
          absent: [fresh('null.txt')],
        },
        {
          name: 'invalid UTF-8 on stdin',
          argv: () => ['translate', '-m', run, '-o', fresh('utf8.txt')],
          stdin: Buffer.from([0x61, 0x0a, 0x62, 0xff, 0x0a]),
          expect: [/stdin:2: invalid UTF-8/],
          absent: [fresh('utf8.txt')],
        },
        {
          name: 'analysing text of another vocabulary',
          argv: () => [
            'analyze',
            run,
            '--data',
            `${corpus('cyr', 'привет мир\nкак дела\n', 'мир привет\nдела как\n')}/train`,
            '--no-ablation',
            '--no-lrp',
            '--no-rare',
            '--no-figures',
            '--out',
            fresh('cyr'),
          ],
          expect: [/cyr\/train: \d+\.\d% of its \d+ tokens \(\d+\) are unknown to the model's vocabulary/],
          absent: [fresh('cyr')],
        },
      ],
    };

    const results = new Map<Case, { status: number | null; stderr: string }>();
    beforeAll(async () => {
      mkdirSync(join(dir, 'outdir'), { recursive: true });
      mkdirSync(join(dir, 'out'), { recursive: true });
      file('runs-file2', 'x');
      const all = Object.values(classes).flat();
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < all.length; i = next++) results.set(all[i]!, await headsAsync(all[i]!.argv(), all[i]!.stdin));
      };
      await Promise.all([worker(), worker(), worker()]);
    }, 900000); // ~0.7 s of CPU per case; generous for a loaded machine

    for (const [kind, cases] of Object.entries(classes)) {
      it.each(cases.map((c) => [c.name, c] as const))(`${kind}: %s`, (_name, c) => {
        const r = results.get(c)!;
        const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^(backend|model): /.test(l));
        expect({ status: r.status, lines }).toEqual({ status: 2, lines: [expect.stringMatching(/^error: /)] });
        for (const p of c.expect) expect(lines[0]).toMatch(p);
        for (const p of c.absent ?? []) expect(existsSync(p)).toBe(false);
      });
    }
    it('translate -o a folder: the folder is left as it was (no temp file)', () => expect(readdirSync(join(dir, 'outdir'))).toEqual([]));
  });

  // A model folder, or a file the command reads, that cannot be used is refused before the backend starts:
  // then stderr holds the error line and nothing else (no backend or model line before it).
  describe('a bad model folder or input file: the error is the only line', () => {
    const empty = () => {
      mkdirSync(join(dir, 'empty-run'), { recursive: true });
      return join(dir, 'empty-run');
    };
    const noTokenizer = () => {
      const copy = join(dir, 'no-tok-run');
      if (!existsSync(copy)) {
        spawnSync('cp', ['-r', run, copy]);
        spawnSync('rm', [join(copy, 'tokenizer.json')]);
      }
      return copy;
    };
    const src = () => file('src2.txt', 'a b\n');
    const only: Array<[string, () => string[], RegExp]> = [
      ['translate, a folder with no checkpoint', () => ['translate', '-m', empty(), '-i', src()], /empty-run: no checkpoints found/],
      [
        'translate, a run without its tokenizer',
        () => ['translate', '-m', noTokenizer(), '-i', src()],
        /no-tok-run: no tokenizer\.json beside the checkpoints/,
      ],
      ['translate, a missing input file', () => ['translate', '-m', run, '-i', join(dir, 'nope.en')], /nope\.en/],
      ['translate --engine onnx, a missing input file', () => ['translate', '-m', run, '--engine', 'onnx', '-i', join(dir, 'nope.en')], /nope\.en/],
      ['analyze, a folder with no checkpoint', () => ['analyze', empty(), '--no-figures'], /empty-run: no checkpoints found/],
      ['bench decode, a run without its tokenizer', () => ['bench', 'decode', '--model', noTokenizer(), '--input', src()], /no tokenizer\.json/],
      ['bench decode, a missing input file', () => ['bench', 'decode', '--model', run, '--input', join(dir, 'nope.en')], /nope\.en/],
      [
        'plot attention, a folder with no checkpoint',
        () => ['plot', 'attention', empty(), '--sentence', 'a b', '--out', join(dir, 'pl')],
        /empty-run: no checkpoints found/,
      ],
      ['prune by importance, a folder with no checkpoint', () => ['prune', '--from', empty(), '--method', 'importance'], /empty-run: no checkpoints found/],
    ];
    it.each(only)('%s', (_name, argv, pattern) => {
      const r = heads(argv());
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      expect({ status: r.status, lines }).toEqual({ status: 2, lines: [expect.stringMatching(/^error: /)] });
      expect(lines[0]).toMatch(pattern);
    });
  });

  it('a warning where accepting is right: blank lines stay blank, a line longer than the model reads is named', async () => {
    const long = Array.from({ length: 100 }, (_, i) => `w${i % 7}`).join(' ');
    const out = join(dir, 'out', 'warned.txt');
    const r = await headsAsync(['translate', '-m', run, '--beam', '1', '-o', out], `a b\n\n${long}\n`);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(
      /^warning: stdin: 1 line longer than the model reads \(62 tokens, model\.maxPositions 64\), translated from the first 62 tokens only: line 3 \(\d+ tokens\)$/m,
    );
    const lines = readFileSync(out, 'utf8').split('\n');
    expect(lines).toHaveLength(4); // three outputs and the final newline
    expect(lines[1]).toBe('');
  }, 300000);
});
