import yargs from 'yargs';
import { importanceFlag } from './importance-flags.js';

/** Parse argv with the two flags as `heads analyze` declares them; the error message or the values. */
async function parse(argv: string[]): Promise<{ error: string | null; form?: unknown; normalize?: unknown }> {
  let error: string | null = null;
  const y = yargs(argv)
    .option('importance-form', importanceFlag('importance-form', 'form'))
    .option('importance-normalize', importanceFlag('importance-normalize', 'normalisation'))
    .exitProcess(false)
    .fail((msg, err) => {
      error = err?.message ?? msg;
    });
  const a = await y.parseAsync();
  return { error, form: a['importance-form'], normalize: a['importance-normalize'] };
}

describe('--importance-form / --importance-normalize while parsing', () => {
  it('takes the named choices and leaves absent flags undefined (the defaults are decided downstream)', async () => {
    expect(await parse(['--importance-form', 'token', '--importance-normalize', 'none'])).toEqual({ error: null, form: 'token', normalize: 'none' });
    expect(await parse([])).toEqual({ error: null, form: undefined, normalize: undefined });
  });

  it.each([
    [['--importance-form', 'sentence'], '--importance-form: expected example, batch, token, got "sentence"'],
    [['--importance-normalize', 'l2'], '--importance-normalize: expected layer, none, got "l2"'],
    [['--importance-form', 'Example'], '--importance-form: expected example, batch, token, got "Example"'],
  ])('refuses %j in one line', async (argv, message) => {
    expect((await parse(argv)).error).toBe(message);
  });
});
