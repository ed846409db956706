/** usageErrorLine: yargs' multi-line usage messages become one line that names the option. */
import { describe, expect, it } from '@jest/globals';
import { usageErrorLine } from './options.js';

describe('usageErrorLine', () => {
  it('a bad choice names the option, the allowed values and what was given', () => {
    const msg = 'Invalid values:\n  Argument: lrp-rule, Given: "bogus", Choices: "lrp", "gradient-x-input"';
    expect(usageErrorLine(msg, undefined, ['analyze', 'x', '--lrp-rule', 'bogus'])).toBe(
      '--lrp-rule: expected one of lrp, gradient-x-input, got "bogus" (see npx heads analyze --help)',
    );
  });

  it('two bad choices in one line, a one-letter alias with one dash', () => {
    const msg = 'Invalid values:\n  Argument: backend, Given: "x", Choices: "auto", "wasm"\n  Argument: m, Given: "y", Choices: "bleu", "chrf"';
    const line = usageErrorLine(msg, undefined, ['bleu']);
    expect(line).toBe('--backend: expected one of auto, wasm, got "x"; -m: expected one of bleu, chrf, got "y" (see npx heads bleu --help)');
    expect(line).not.toContain('\n');
  });

  it('other messages are folded onto one line', () => {
    expect(usageErrorLine('first\nsecond', undefined, [])).toBe('first; second (see npx heads --help)');
  });
});
