/**
 * Command-line values, checked once while the command line is parsed (before a backend starts or a file
 * is written). A value that breaks its rule stops the command with one line naming the flag, what was
 * expected and what was given, exit code 2 (main.ts prints usage errors):
 * - every numeric option declares its rule with `intFlag` / `numFlag` (integer, bounds, finite);
 * - `strictValues` makes every option of a command take a value (`-c` alone is an error, not "no config"),
 *   refuses empty values and a single-valued option given twice;
 * - `isGiven` tells an option the user typed from one that holds its default, for refusing conflicts.
 */
import type { Argv, Options } from 'yargs';
import { ConfigError } from '../util/errors.js';

export interface NumberRule {
  integer?: boolean;
  /** inclusive bounds */
  min?: number;
  max?: number;
  /** exclusive bounds */
  above?: number;
  below?: number;
}

/** "an integer >= 1", "a number in [0, 1)", "an integer from 1 to 256" */
export function describeRule(r: NumberRule): string {
  const kind = r.integer ? 'an integer' : 'a number';
  const lo = r.min !== undefined ? { v: r.min, open: false } : r.above !== undefined ? { v: r.above, open: true } : null;
  const hi = r.max !== undefined ? { v: r.max, open: false } : r.below !== undefined ? { v: r.below, open: true } : null;
  if (lo && hi)
    return r.integer && !lo.open && !hi.open ? `${kind} from ${lo.v} to ${hi.v}` : `${kind} in ${lo.open ? '(' : '['}${lo.v}, ${hi.v}${hi.open ? ')' : ']'}`;
  if (lo) return `${kind} ${lo.open ? '>' : '>='} ${lo.v}`;
  if (hi) return `${kind} ${hi.open ? '<' : '<='} ${hi.v}`;
  return r.integer ? kind : 'a finite number';
}

/** A flag's raw value as a number that obeys `rule`, or an Error saying `--flag: expected ..., got ...`. */
export function parseNumberFlag(flag: string, raw: unknown, rule: NumberRule): number {
  const fail = (got: string) => new Error(`--${flag}: expected ${describeRule(rule)}, got ${got}`);
  if (Array.isArray(raw)) throw new Error(`--${flag}: given ${raw.length} times (${raw.map((x) => JSON.stringify(x)).join(', ')}); expected one value`);
  const text = typeof raw === 'string' ? raw.trim() : raw;
  // yargs turns numeric-looking text into a number already; anything else stays text
  const v =
    typeof text === 'number' ? text : typeof text === 'string' && text !== '' && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(text) ? Number(text) : NaN;
  const shown = typeof raw === 'string' ? JSON.stringify(raw) : String(raw);
  if (!Number.isFinite(v)) throw fail(shown);
  if (rule.integer && !Number.isInteger(v)) throw fail(shown);
  if ((rule.min !== undefined && v < rule.min) || (rule.max !== undefined && v > rule.max)) throw fail(shown);
  if ((rule.above !== undefined && !(v > rule.above)) || (rule.below !== undefined && !(v < rule.below))) throw fail(shown);
  return v;
}

/** The rules declared while the current command's builder runs, appended to its --help (strictCommand). */
const declaredRules = new Map<string, string>();

/**
 * The yargs definition of a numeric flag: no yargs `type` (yargs would turn `abc` into NaN and `--x=`
 * into 0 before we see it), a value required, checked against `rule` while parsing. `array` flags check
 * every value.
 */
function numberFlag(flag: string, rule: NumberRule, array = false): Pick<Options, 'coerce' | 'requiresArg' | 'array'> {
  declaredRules.set(flag, describeRule(rule));
  return {
    requiresArg: true,
    ...(array ? { array: true } : {}),
    coerce: (raw: unknown) => {
      if (raw === undefined) return undefined;
      if (array) return (Array.isArray(raw) ? raw : [raw]).map((x) => parseNumberFlag(flag, x, rule));
      return parseNumberFlag(flag, raw, rule);
    },
  };
}

/** An integer flag in [min, max]: `.option('beam', { ...intFlag('beam', 1, 256), describe })`. */
export function intFlag(flag: string, min: number, max?: number, o: { array?: boolean } = {}): Pick<Options, 'coerce' | 'requiresArg' | 'array'> {
  return numberFlag(flag, { integer: true, min, ...(max !== undefined ? { max } : {}) }, o.array);
}

/** A finite-number flag with optional bounds: `{ ...numFlag('length-penalty', { min: 0 }), describe }`. */
export function numFlag(flag: string, rule: Omit<NumberRule, 'integer'> = {}): Pick<Options, 'coerce' | 'requiresArg' | 'array'> {
  return numberFlag(flag, rule);
}

interface YargsOptions {
  key: Record<string, boolean>;
  array: string[];
  boolean: string[];
  count: string[];
  alias: Record<string, string[]>;
}

/** Positional names of a command string: 'plot <kind> <inputs..>' -> kind, inputs. */
export function positionalNames(command: string): string[] {
  return [...command.matchAll(/[<[]([\w-]+)(?:\.\.)?[>\]]/g)].map((m) => m[1]!);
}

/**
 * After a command's builder: every non-boolean option needs a value (yargs' requiresArg), and a check
 * refuses empty values (`--out ''`, `-m=`) and a single-valued option given twice (`-c a.yaml -c b.yaml`).
 */
export function strictValues<T>(y: Argv<T>, positionals: readonly string[]): Argv<T> {
  const opts = (y as unknown as { getOptions(): YargsOptions }).getOptions();
  const flags = Object.keys(opts.key).filter(
    (k) => !opts.boolean.includes(k) && !opts.count.includes(k) && !positionals.includes(k) && k !== 'help' && k !== 'version',
  );
  if (flags.length) y.requiresArg(flags);
  const names = [...flags, ...positionals];
  return y.check((argv) => {
    for (const k of names) {
      const v = (argv as Record<string, unknown>)[k];
      const shown = positionals.includes(k) ? `<${k}>` : `--${k}`;
      if (v === '' || (Array.isArray(v) && v.some((x) => x === ''))) throw new ConfigError([`${shown}: expected a value, got an empty string`]);
      if (Array.isArray(v) && !opts.array.includes(k) && !positionals.includes(k))
        throw new ConfigError([`${shown}: given ${v.length} times (${v.map((x) => JSON.stringify(x)).join(', ')}); expected one value`]);
    }
    return true;
  }) as Argv<T>;
}

/**
 * Whether the user typed `flag` (or one of its aliases, or its --no- form) on the command line, as
 * opposed to it holding its default.
 */
export function isGiven(flag: string, aliases: readonly string[] = [], argv: readonly string[] = process.argv.slice(2)): boolean {
  const camel = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const long = new Set([flag, camel, `no-${flag}`]);
  for (const t of argv) {
    if (t === '--') break;
    if (t.startsWith('--')) {
      if (long.has(t.slice(2).split('=')[0]!)) return true;
    } else if (t.startsWith('-') && t.length > 1 && !/^-\d/.test(t)) {
      if (aliases.includes(t.slice(1).split('=')[0]!)) return true;
    }
  }
  return false;
}

/**
 * Options that would be silently ignored in this invocation (`--lambda` beside `--target-heads`, an
 * importance-pruning flag with --method l0): refused in one line naming each and why.
 */
export function refuseIgnored(rules: ReadonlyArray<{ flag: string; aliases?: readonly string[]; when: boolean; because: string }>): string[] {
  return rules.filter((r) => r.when && isGiven(r.flag, r.aliases)).map((r) => `--${r.flag}: ${r.because}`);
}

interface CommandModuleLike {
  command: string;
  builder: (y: Argv) => Argv<unknown>;
}

/** A command module whose builder ends in `strictValues` (main.ts registers every command this way). */
export function strictCommand<M extends CommandModuleLike>(m: M): M {
  return {
    ...m,
    builder: (y: Argv) => {
      declaredRules.clear();
      const built = m.builder(y);
      // --help shows each numeric flag's rule: "beam size (1 = greedy) [an integer from 1 to 1000]"
      const usage = (built as unknown as { getInternalMethods(): { getUsageInstance(): { getDescriptions(): Record<string, string | undefined> } } })
        .getInternalMethods()
        .getUsageInstance();
      const descriptions = usage.getDescriptions();
      for (const [flag, rule] of declaredRules) built.describe(flag, `${descriptions[flag] ?? ''} (${rule})`.trim());
      return strictValues(built, positionalNames(m.command));
    },
  };
}

/**
 * The one line for a usage error: yargs' message in the toolkit's words. "Unknown arguments: such-flag,
 * suchFlag, 3" (yargs strips --no- and adds the camelCase twin) names what was typed instead:
 * "unknown option --no-such-flag; unexpected argument "3"".
 */
export function usageErrorLine(msg: string | null | undefined, err: Error | undefined, argv: readonly string[] = process.argv.slice(2)): string {
  const text = msg ?? err?.message ?? 'invalid command line';
  const cmd = argv[0] && !argv[0].startsWith('-') ? `${argv[0]} ` : '';
  const help = `(see npx heads ${cmd}--help)`;
  const noValue = /^Not enough arguments following: (.+)$/.exec(text);
  if (noValue) return `${noValue[1]!.length === 1 ? '-' : '--'}${noValue[1]}: expected a value after it ${help}`;
  const unknown = /^Unknown arguments?: (.+)$/.exec(text);
  if (unknown) {
    const names = new Set(unknown[1]!.split(', '));
    const flags: string[] = [];
    const extra: string[] = [];
    for (const t of argv) {
      if (t.startsWith('-') && !/^-\d/.test(t)) {
        const name = t.replace(/^-+/, '').split('=')[0]!;
        const base = name.startsWith('no-') ? name.slice(3) : name;
        if ((names.has(name) || names.has(base)) && !flags.includes(t.split('=')[0]!)) flags.push(t.split('=')[0]!);
      } else if (names.has(t) && !extra.includes(t)) extra.push(t);
    }
    const parts = [];
    if (flags.length) parts.push(`unknown option${flags.length > 1 ? 's' : ''} ${flags.join(', ')}`);
    if (extra.length) parts.push(`unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map((x) => JSON.stringify(x)).join(', ')}`);
    if (parts.length) return `${parts.join('; ')} ${help}`;
  }
  // yargs' choices: 'Invalid values:\n  Argument: lrp-rule, Given: "x", Choices: "lrp", "gradient-x-input"' (one per bad option)
  const choices = [...text.matchAll(/Argument: ([^,]+), Given: (.+?), Choices: (.+)$/gm)];
  if (/^Invalid values:/.test(text) && choices.length) {
    const lines = choices.map(([, name, given, allowed]) => {
      const list = allowed!
        .split(', ')
        .map((c) => c.replace(/^"(.*)"$/, '$1'))
        .join(', ');
      return `${name!.length === 1 ? '-' : '--'}${name}: expected one of ${list}, got ${given}`;
    });
    return `${lines.join('; ')} ${help}`;
  }
  return `${text.replace(/\n+/g, '; ')} ${help}`;
}

/** `refuseIgnored`, thrown as one ConfigError (call it first in a handler: nothing is written yet). */
export function refuseIgnoredFlags(rules: Parameters<typeof refuseIgnored>[0]): void {
  const problems = refuseIgnored(rules);
  if (problems.length) throw new ConfigError(problems);
}

/** Rules for flags that a mode ignores: each of `flags` is refused when `when` holds. */
export function ignoredIn(
  when: boolean,
  because: string,
  flags: ReadonlyArray<string | [string, string]>,
): Array<{ flag: string; aliases?: string[]; when: boolean; because: string }> {
  return flags.map((f) => (typeof f === 'string' ? { flag: f, when, because } : { flag: f[0], aliases: [f[1]], when, because }));
}
