/**
 * `heads import marian` on broken folders: each problem is one line naming the file and field, what was
 * expected and what was found (exit 2), and nothing is written; a pytorch_model.bin whose pickle would run
 * os.system is refused the same way and runs nothing (that case needs python3-torch to make the file).
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { EVIL_SCRIPT, FIXTURE, torchPython } from '../import/marian.test-helpers.js';

const python = torchPython();
if (!python) console.warn('skipping the malicious pytorch_model.bin case: no python3 with torch (apt-get install python3-torch)');

const FILES = ['config.json', 'generation_config.json', 'vocab.json', 'source.spm', 'target.spm', 'model.safetensors'];

describe('heads import marian: bad folders', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'heads-import-bad-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const cases: Array<[string, (folder: string) => void, RegExp]> = [
    [
      'no vocab.json',
      (f) => rmSync(join(f, 'vocab.json')),
      /vocab\.json: not found \(a MarianMT folder has config\.json, vocab\.json, source\.spm and target\.spm\)$/,
    ],
    ['no weights', (f) => rmSync(join(f, 'model.safetensors')), /: no weights \(expected model\.safetensors or pytorch_model\.bin\)$/],
    ['another model type', (f) => editJson(join(f, 'config.json'), (c) => (c.model_type = 'bart')), /config\.json: model_type: expected "marian", got "bart"$/],
    [
      'vocab_size off by one',
      (f) => editJson(join(f, 'config.json'), (c) => (c.vocab_size = 71)),
      /config\.json: vocab_size: expected 72 \(the entries of vocab\.json\), got 71$/,
    ],
    [
      'pad not last',
      (f) => editJson(join(f, 'config.json'), (c) => (c.pad_token_id = 5)),
      /config\.json: pad_token_id: expected 71 \(vocab_size - 1\), got 5$/,
    ],
    [
      'separate vocabularies',
      (f) => editJson(join(f, 'config.json'), (c) => (c.share_encoder_decoder_embeddings = false)),
      /share_encoder_decoder_embeddings: false .* is not supported, expected true$/,
    ],
    [
      'unknown activation',
      (f) => editJson(join(f, 'config.json'), (c) => (c.activation_function = 'tanh')),
      /activation_function: expected one of swish, silu, relu, gelu, got "tanh"$/,
    ],
    [
      'a vocab id twice',
      (f) => editJson(join(f, 'vocab.json'), (v) => (v['▁cat'] = v['▁dog'])),
      /vocab\.json: id \d+ is given to both "▁\w+" and "▁\w+"|vocab\.json: "[^"]+": expected an id in \[0, 72\)/,
    ],
    [
      'a truncated .spm',
      (f) => writeFileSync(join(f, 'source.spm'), readFileSync(join(f, 'source.spm')).subarray(0, 100)),
      /source\.spm \/ target\.spm: not a usable SentencePiece model \(/,
    ],
    [
      'a missing tensor',
      (f) => corruptSafetensorsName(join(f, 'model.safetensors')),
      /model\.safetensors: missing tensor model\.encoder\.layers\.0\.self_attn\.k_proj\.weight$/,
    ],
  ];

  it.each(cases)('%s', async (_name, breakIt, message) => {
    const folder = join(dir, `hf-${Math.random().toString(36).slice(2)}`);
    mkdirSync(folder);
    for (const f of FILES) copyFileSync(join(FIXTURE, f), join(folder, f));
    breakIt(folder);
    const { handler } = await import('./commands/import.js');
    const err = jest.spyOn(console, 'error').mockImplementation(() => {});
    const out = join(dir, `run-${Math.random().toString(36).slice(2)}`);
    try {
      await handler({ kind: 'marian', folder, out, 'runs-dir': dir, _: [], $0: 'heads' } as never);
      expect(process.exitCode).toBe(2);
      expect(err.mock.calls.length).toBe(1);
      const line = String(err.mock.calls[0]![0]);
      expect(line).not.toContain('\n');
      expect(line).toMatch(/^error: /);
      expect(line).toMatch(message);
    } finally {
      err.mockRestore();
      process.exitCode = 0;
    }
    expect(existsSync(out)).toBe(false);
  });

  (python ? it : it.skip)('a pytorch_model.bin whose pickle calls os.system: one line, exit 2, nothing written, nothing run', async () => {
    const marker = join(dir, 'pwned');
    const hf = join(dir, 'evil-marian');
    mkdirSync(hf);
    for (const f of ['config.json', 'vocab.json', 'source.spm', 'target.spm']) copyFileSync(join(FIXTURE, f), join(hf, f));
    execFileSync(python!, ['-c', EVIL_SCRIPT, join(hf, 'pytorch_model.bin'), marker]);
    const { handler } = await import('./commands/import.js');
    const err = jest.spyOn(console, 'error').mockImplementation(() => {});
    const out = join(dir, 'run-evil');
    try {
      await handler({ kind: 'marian', folder: hf, out, 'runs-dir': dir, _: [], $0: 'heads' } as never);
      expect(process.exitCode).toBe(2);
      expect(err.mock.calls.length).toBe(1);
      expect(String(err.mock.calls[0]![0])).toMatch(/^error: .*pytorch_model\.bin: .*data\.pkl: global (posix|os)\.system at byte \d+: refused/);
    } finally {
      err.mockRestore();
      process.exitCode = 0;
    }
    expect(existsSync(out)).toBe(false);
    expect(existsSync(marker)).toBe(false);
  });
});

function editJson(path: string, f: (o: Record<string, unknown>) => void): void {
  const o = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  f(o);
  writeFileSync(path, JSON.stringify(o));
}

/** Rename one tensor in the header (same length, so the offsets stay valid): k_proj -> x_proj. */
function corruptSafetensorsName(path: string): void {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const header = b
    .subarray(8, 8 + n)
    .toString('utf8')
    .replace('"model.encoder.layers.0.self_attn.k_proj.weight"', '"model.encoder.layers.0.self_attn.x_proj.weight"');
  b.write(header, 8, 'utf8');
  writeFileSync(path, b);
}
