import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, editDistance, deepMerge, applyOverrides } from './load.js';
import { DEFAULT_CONFIG } from './defaults.js';
import { ConfigError } from '../util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('returns the defaults for no file', () => {
    const c = loadConfig(null);
    expect(c.model.dModel).toBe(DEFAULT_CONFIG.model.dModel);
    expect(Object.isFrozen(c.model)).toBe(true);
  });

  it('merges a file that lists only differences and applies --set overrides last', () => {
    const p = file('ok.yaml', 'name: small\nmodel:\n  heads: 8\n  dModel: 128\ngates:\n  attention: [enc-self]\n');
    const c = loadConfig(p, ['train.maxSteps=77', 'train.peakLr=1e-4', 'gates.attention=[enc-self, dec-enc]']);
    expect(c.name).toBe('small');
    expect(c.model.heads).toBe(8);
    expect(c.model.dFF).toBe(DEFAULT_CONFIG.model.dFF);
    expect(c.train.maxSteps).toBe(77);
    expect(c.train.peakLr).toBeCloseTo(1e-4);
    expect(c.gates.attention).toEqual(['enc-self', 'dec-enc']);
  });

  // each case: config text, fragments the one-line message must contain
  const bad: Array<[string, string, string[]]> = [
    ['unknown key with a near miss', 'model:\n  dmodel: 64\n', ['model.dmodel', 'unknown key', "did you mean 'dModel'"]],
    ['unknown top-level key', 'trian:\n  maxSteps: 5\n', ['trian', "did you mean 'train'"]],
    ['wrong type', 'train:\n  l0Lambda: "0.05x"\n', ['train.l0Lambda', 'expected number', '"0.05x"']],
    ['negative where positive expected', 'model:\n  heads: -2\n', ['model.heads', '-2']],
    ['bad enum', 'model:\n  norm: middle\n', ['model.norm', '"middle"']],
    ['bad attention type', 'gates:\n  attention: [enc-self, encoder]\n', ['gates.attention[1]', '"encoder"']],
    ['d_model not divisible by heads', 'model:\n  dModel: 100\n  heads: 3\n', ['model.dModel', 'not divisible', 'model.heads = 3']],
    ['dev set missing for a real corpus', 'data:\n  train: corpus/train\n', ['data.valid', 'expected a dev set']],
    ['top level not a mapping', '- 1\n- 2\n', ['expected a mapping']],
    ['invalid YAML', 'model: [\n', ['not valid YAML']],
    ['duplicate key', 'seed: 1\nseed: 2\n', ['not valid YAML']],
    ['more workers than can make sense', 'train:\n  workers: 1000\n', ['train.workers', 'at most 64', '1000']],
  ];
  it.each(bad)('%s', (_label, text, fragments) => {
    const p = file(`bad-${Math.abs(text.length * 31 + text.charCodeAt(0))}-${fragments[0]!.length}.yaml`, text);
    const msg = errorOf(() => loadConfig(p));
    expect(msg).toContain(p);
    for (const f of fragments) expect(msg).toContain(f);
  });

  it('lists every problem, not just the first', () => {
    const p = file('two.yaml', 'model:\n  heads: 0\ntrain:\n  maxSteps: "x"\n');
    const msg = errorOf(() => loadConfig(p));
    expect(msg).toContain('2 problems');
    expect(msg).toContain('model.heads');
    expect(msg).toContain('train.maxSteps');
  });

  it('names a missing file and a directory', () => {
    expect(errorOf(() => loadConfig(join(dir, 'nope.yaml')))).toContain('config file not found');
    mkdirSync(join(dir, 'adir.yaml'));
    expect(errorOf(() => loadConfig(join(dir, 'adir.yaml')))).toContain('found a directory');
  });

  it('rejects a malformed --set', () => {
    expect(errorOf(() => loadConfig(null, ['train.maxSteps']))).toContain('expected key=value');
    expect(errorOf(() => loadConfig(null, ['train.maxStesp=3']))).toContain("did you mean 'maxSteps'");
  });
});

describe('helpers', () => {
  it('edit distance against hand-computed values', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('dmodel', 'dModel')).toBe(1);
  });
  it('deep merge replaces arrays and merges objects', () => {
    expect(deepMerge({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } })).toEqual({ a: { b: 1, c: [3] } });
    expect(applyOverrides({ a: { b: 1 } }, ['a.b=true', 'a.d=null'])).toEqual({ a: { b: true, d: null } });
  });
});
