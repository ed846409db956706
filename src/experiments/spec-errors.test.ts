/**
 * A spec's unknown key is named with the keys that place accepts, wherever it is: top level, a stage (the
 * keys of its kind), a preset, a claim's comparison; a stage or claim name its pattern refuses says what
 * names may be. Each a ConfigError naming the file, before anything runs.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectSpecRefused } from '../test-utils/spec-refused.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-spec-errors-'));
const STAGES = 'stages:\n  baseline: { kind: train }\n  l0: { kind: prune, from: baseline, lambda: 0.1 }\n';

const cases: Array<[string, string, string]> = [
  [
    'a top-level key',
    `name: t\nsedd: 1\n${STAGES}`,
    "sedd: unknown key (did you mean 'seed'?); expected one of: name, description, base, set, seed, stages, presets, claims",
  ],
  [
    'a train stage key',
    'name: t\nstages:\n  baseline: { kind: train, fixedMaskFrm: x }\n',
    "stages.baseline.fixedMaskFrm: unknown key (did you mean 'fixedMaskFrom'?); expected one of: kind, set, sweep, description, seed, fixedMaskFrom",
  ],
  [
    'a prune stage key',
    'name: t\nstages:\n  baseline: { kind: train }\n  l0: { kind: prune, from: baseline, lambda: 0.1, step: 3 }\n',
    "stages.l0.step: unknown key (did you mean 'steps'?); expected one of: kind, set, sweep, description, seed, from, method, attention, lambda,",
  ],
  [
    'a preset key',
    `name: t\n${STAGES}presets:\n  q: { sett: {} }\n`,
    "presets.q.sett: unknown key (did you mean 'set'?); expected one of: set, seed, stages, only",
  ],
  [
    "a claim comparison's key",
    `name: t\n${STAGES}claims:\n  a: { statement: s, compare: [{ system: l0, reference: baseline, expect: better, marginn: 1 }] }\n`,
    "claims.a.compare[0].marginn: unknown key (did you mean 'margin'?); expected one of: system, reference, expect, margin",
  ],
  [
    'a claim name',
    `name: t\n${STAGES}claims:\n  "a b": { statement: s, compare: [{ system: l0, reference: baseline, expect: better }] }\n`,
    "claims.a b: not a valid name (letters, digits, dash and underscore), got 'a b'",
  ],
  [
    'a stage name',
    'name: t\nstages:\n  "base line": { kind: train }\n',
    "stages.base line: not a valid name (letters, digits, dash and underscore), got 'base line'",
  ],
];

it.each(cases)('%s', (label, text, fragment) => {
  const p = join(dir, `${label.replace(/\W/g, '')}.yaml`);
  writeFileSync(p, text);
  expectSpecRefused(p, [`${p}: ${fragment}`]);
});
