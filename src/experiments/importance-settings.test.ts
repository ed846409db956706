/** Michel importance settings in experiment specs: validated at load, defaults in an importance stage's identity. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandStages, loadSpec } from './spec.js';
import { resolveStages } from './stage.js';
import { ConfigError } from '../util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-imp-spec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A spec file `file`.yaml; the spec's name (part of every stage's identity) is `name`. */
function spec(file: string, stages: string, name = file): string {
  const p = join(dir, `${file}.yaml`);
  writeFileSync(p, `name: ${name}\nset: { data.synthetic.task: reverse }\nstages:\n  b: { kind: train }\n${stages}`);
  return p;
}

/** The one-line problems loading the spec at `p` reports. */
function problems(p: string): string[] {
  try {
    loadSpec(p);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  return [];
}

describe('importanceForm / importanceNormalize in experiment specs', () => {
  it('an importance prune stage gets the defaults (example, layer); an analyze stage keeps what it is given', () => {
    const s = loadSpec(
      spec(
        'defaults',
        '  imp: { kind: prune, from: b, method: importance }\n  tok: { kind: prune, from: b, method: importance, importanceForm: token, importanceNormalize: none }\n  an: { kind: analyze, of: b }\n  an2: { kind: analyze, of: b, importanceForm: batch }\n',
      ),
    );
    expect(s.stages['imp']).toMatchObject({ importanceForm: 'example', importanceNormalize: 'layer' });
    expect(s.stages['tok']).toMatchObject({ importanceForm: 'token', importanceNormalize: 'none' });
    expect(s.stages['an']).not.toHaveProperty('importanceForm');
    expect(s.stages['an2']).toMatchObject({ importanceForm: 'batch' });
  });

  it('the settings are part of the stage identity: another form is another stage folder; the default written out is the same stage', () => {
    const hashOf = (name: string, extra: string) => {
      const s = loadSpec(spec(name, `  imp: { kind: prune, from: b, method: importance${extra} }\n`, 'same'));
      return resolveStages(s, expandStages(s), join(dir, 'runs')).find((r) => r.instance.id === 'imp')!.hash;
    };
    const implicit = hashOf('h1', '');
    expect(hashOf('h2', ', importanceForm: example, importanceNormalize: layer')).toBe(implicit);
    expect(hashOf('h3', ', importanceForm: token')).not.toBe(implicit);
    expect(hashOf('h4', ', importanceNormalize: none')).not.toBe(implicit);
  });

  it.each([
    ['an unknown form', '  imp: { kind: prune, from: b, method: importance, importanceForm: sentence }\n', /stages\.imp\.importanceForm.*"sentence"/],
    ['an unknown normalisation', '  an: { kind: analyze, of: b, importanceNormalize: l2 }\n', /stages\.an\.importanceNormalize.*"l2"/],
    [
      'a form on an l0 stage',
      '  p: { kind: prune, from: b, lambda: 0.1, importanceForm: token }\n',
      /stages\.p\.importanceForm: only for method: importance \(this stage has method: l0\)$/,
    ],
    [
      'a normalisation on a confidence stage',
      '  p: { kind: prune, from: b, method: confidence, importanceNormalize: none }\n',
      /stages\.p\.importanceNormalize: only for method: importance \(this stage has method: confidence\)$/,
    ],
  ])('refuses %s with one line naming the file and the key', (name, stages, line) => {
    const p = spec(`bad-${name.replace(/\W+/g, '-')}`, stages);
    const found = problems(p);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(p);
    expect(found[0]).toMatch(line);
    expect(found[0]).not.toContain('\n');
  });
});
