/**
 * `--importance-form` and `--importance-normalize` (heads analyze, heads prune --method importance),
 * checked while the command line is parsed: a value outside the choices stops the command with one line
 * naming the flag, the choices and what was given (exit 2), before anything is loaded or written.
 */
import type { Options } from 'yargs';
import { importanceSettingProblems } from '../analysis/importance.js';

export function importanceFlag(flag: 'importance-form' | 'importance-normalize', describe: string): Options {
  return {
    type: 'string',
    requiresArg: true,
    describe,
    coerce: (raw: unknown) => {
      if (raw === undefined) return undefined;
      const [problem] =
        flag === 'importance-form'
          ? importanceSettingProblems(raw, undefined, { form: `--${flag}`, normalize: '' })
          : importanceSettingProblems(undefined, raw, { form: '', normalize: `--${flag}` });
      if (problem) throw new Error(problem);
      return raw;
    },
  };
}
