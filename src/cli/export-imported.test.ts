/**
 * `heads export` on an imported Marian model refuses the formats that cannot carry its model options
 * (the PyTorch safetensors layout and the ONNX graphs know ReLU, interleaved positions and no logit bias):
 * one line naming the options and the formats that can, exit 2, before a backend starts or a file is written.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { importFixture } from '../import/marian.test-helpers.js';

describe('heads export on an imported model', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'heads-export-guard-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['both', 'safetensors', 'onnx', 'all'])('--format %s is refused with one line (exit 2), nothing written', async (format) => {
    const run = importFixture(dir, 'safetensors');
    const { handler } = await import('./commands/export.js');
    const err = jest.spyOn(console, 'error').mockImplementation(() => {});
    const out = join(dir, `out-${format}`);
    try {
      await handler({ model: run, 'mask-descriptor': 'E:1:1', format, out, verify: true, 'fold-gates': true, backend: 'auto', _: [], $0: 'heads' } as never);
      expect(process.exitCode).toBe(2);
      expect(err.mock.calls.map((c) => String(c[0]))).toEqual([
        expect.stringMatching(
          /^error: --format: (safetensors|onnx)( and onnx)? cannot carry model\.activation, model\.positions, model\.embedScale, model\.finalLogitsBias, model\.neverGenerate of .*config\.json \(an imported model\); use --format hf-marian/,
        ),
      ]);
    } finally {
      err.mockRestore();
      process.exitCode = 0;
      rmSync(run, { recursive: true, force: true });
      rmSync(join(dir, 'hf-safetensors'), { recursive: true, force: true });
    }
    expect(existsSync(out)).toBe(false);
  });
});
