/**
 * `heads export`'s flags as the handler reads them: the weight-compression options checked together
 * (compressionOptionsOf) and the one mask source (maskInputOf). The library behind them is tested in
 * src/export/ and src/compress/; the real binary's error lines in bad-input.test.ts.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../util/errors.js';
import { compressionOptionsOf, maskInputOf } from './commands/export.js';

const root = mkdtempSync(join(tmpdir(), 'heads-export-flags-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('heads export flags', () => {
  it.each([
    [{ 'magnitude-sparsity': '1' }, '--magnitude-sparsity: expected a fraction in [0, 1) (e.g. 0.5), got "1"'],
    [{ 'magnitude-sparsity': '-0.2' }, '--magnitude-sparsity: expected a fraction in [0, 1) (e.g. 0.5), got "-0.2"'],
    [{ 'magnitude-sparsity': 'half' }, '--magnitude-sparsity: expected a fraction in [0, 1) (e.g. 0.5), got "half"'],
    [{ 'ffn-prune': '1.5' }, '--ffn-prune: expected a fraction in [0, 1) (e.g. 0.5), got "1.5"'],
    [{ 'ffn-prune': '' }, '--ffn-prune: expected a fraction in [0, 1) (e.g. 0.5), got ""'],
    [{ 'ffn-prune': '0.2', 'ffn-scope': 'layer' }, '--ffn-scope: expected per-layer or global, got "layer"'],
    [{ 'ffn-scope': 'global' }, '--ffn-scope: only applies with --ffn-prune, which was not given'],
    [{ 'per-layer': true }, '--per-layer: only applies with --magnitude-sparsity, which was not given'],
    [{ 'prune-embeddings': true }, '--prune-embeddings: only applies with --magnitude-sparsity, which was not given'],
  ])('%p -> %s', (args, message) => {
    expect(() => compressionOptionsOf(args)).toThrow(ConfigError);
    expect(() => compressionOptionsOf(args)).toThrow(message);
  });

  it('parses good values, and a head mask becomes optional only when compressing', () => {
    expect(compressionOptionsOf({ 'magnitude-sparsity': '0.5', 'per-layer': true, 'ffn-prune': '0.25', 'ffn-scope': 'global', int8: true })).toEqual({
      magnitude: { sparsity: 0.5, scope: 'per-layer', includeEmbeddings: false },
      ffn: { fraction: 0.25, scope: 'global' },
      int8: true,
    });
    expect(compressionOptionsOf({})).toEqual({});
    expect(maskInputOf({}, true)).toEqual({ input: 'none' });
    // two mask sources keep the message they always had
    expect(() => maskInputOf({ mask: 'gates', 'mask-descriptor': 'E:1:1' }, true)).toThrow(
      /^export: expected exactly one of --mask, --mask-descriptor, --hf-prune-dict, got --mask, --mask-descriptor$/,
    );
    expect(() => maskInputOf({}, false)).toThrow(/expected exactly one of --mask, --mask-descriptor, --hf-prune-dict \(or a weight compression/);
  });

  it('maps --mask gates, --mask-descriptor and --hf-prune-dict to mask inputs', () => {
    const hf = join(root, 'hf.json');
    writeFileSync(hf, JSON.stringify({ 'enc-self': { '0': [1] } }));
    expect(maskInputOf({ mask: 'gates' })).toEqual({ input: 'gates' });
    expect(maskInputOf({ 'mask-descriptor': 'E:1:1' })).toEqual({ input: { kind: 'descriptor', text: 'E:1:1' } });
    expect(maskInputOf({ 'hf-prune-dict': hf })).toEqual({ input: { kind: 'hf-prune-dict', value: { 'enc-self': { '0': [1] } }, sourceName: hf }, name: hf });
    expect(() => maskInputOf({})).toThrow(/^export: expected exactly one of .* got none$/);
  });
});
