/**
 * Tests for the head-mask format: construction, file / HF-dict / descriptor round trips, table-driven
 * validation messages that name the entry, composition and idempotence, and the original-id semantics of
 * already-pruned models.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import type { HeadShape } from '../config/head-layout.js';
import {
  composeMasks,
  countKept,
  createFullMask,
  isHeadKept,
  maskFromDescriptor,
  maskFromHfPruneDict,
  maskFromKeptSets,
  maskToDescriptor,
  maskToGateValues,
  maskToHfPruneDict,
  maskToKeptSets,
  parseHeadMask,
  readHeadMask,
  validateMask,
  writeHeadMask,
  type HeadMask,
} from './head-mask.js';
import { MaskError, DataError } from '../util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-mask-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 6+6 layers, 8 heads: the Transformer-base NMT shape. */
const BASE: HeadShape = { 'enc-self': [8, 8, 8, 8, 8, 8], 'dec-self': [8, 8, 8, 8, 8, 8], 'dec-enc': [8, 8, 8, 8, 8, 8] };
/** A small irregular shape: encoder-only model (0 decoder layers) with uneven head counts. */
const SMALL: HeadShape = { 'enc-self': [4, 2, 3], 'dec-self': [], 'dec-enc': [] };

/** The notebook-3 encoder pattern from the reference (anchor-story-of-heads.md §2): 19 of 48 alive. */
const NOTEBOOK_GATES = [
  [0, 0, 1, 1, 0, 0, 0, 1],
  [1, 0, 0, 1, 0, 1, 1, 0],
  [0, 0, 0, 0, 1, 0, 1, 0],
  [1, 0, 1, 0, 1, 1, 0, 0],
  [0, 1, 1, 0, 1, 0, 1, 0],
  [1, 0, 0, 0, 0, 0, 0, 1],
];
const notebookKept = NOTEBOOK_GATES.map((g) => g.flatMap((v, i) => (v ? [i] : [])));

describe('construction and queries', () => {
  it('createFullMask keeps everything, lists every stack (0-layer stacks as [])', () => {
    const m = createFullMask(SMALL);
    expect(m.format).toBe('heads.head-mask');
    expect(m.version).toBe(1);
    expect(m.stacks['enc-self']!.layers).toEqual([
      { kept: [0, 1, 2, 3], removed: [] },
      { kept: [0, 1], removed: [] },
      { kept: [0, 1, 2], removed: [] },
    ]);
    expect(m.stacks['dec-self']).toEqual({ layers: [] });
    expect(countKept(m)).toBe(9);
    expect(countKept(createFullMask(BASE))).toBe(144);
  });

  it('maskFromKeptSets: removed is the complement; absent stacks fully kept; counts', () => {
    const m = maskFromKeptSets({ 'enc-self': notebookKept }, BASE, 'gates');
    expect(countKept(m, BASE, 'enc-self')).toBe(19);
    expect(countKept(m)).toBe(19 + 96);
    expect(m.stacks['enc-self']!.layers[0]).toEqual({ kept: [2, 3, 7], removed: [0, 1, 4, 5, 6] });
    expect(isHeadKept(m, { stack: 'enc-self', layer: 0, head: 2 })).toBe(true);
    expect(isHeadKept(m, { stack: 'enc-self', layer: 0, head: 0 })).toBe(false);
    expect(isHeadKept(m, { stack: 'dec-enc', layer: 5, head: 7 })).toBe(true);
    expect(maskToGateValues(m, BASE)['enc-self']).toEqual(NOTEBOOK_GATES);
    expect(maskToKeptSets(m, BASE)['enc-self']).toEqual(notebookKept);
  });

  it('countKept on a mask that omits stacks: 0 without a shape, full with one', () => {
    const m: HeadMask = {
      format: 'heads.head-mask',
      version: 1,
      source: 'manual',
      stacks: {
        'enc-self': {
          layers: [
            { kept: [1], removed: [0, 2, 3] },
            { kept: [0, 1], removed: [] },
            { kept: [], removed: [0, 1, 2] },
          ],
        },
      },
    };
    validateMask(m, SMALL, 'm');
    expect(countKept(m)).toBe(3);
    expect(countKept(m, BASE, 'dec-self')).toBe(48);
  });

  it('maskFromKeptSets refuses out-of-range and duplicate ids, naming the entry', () => {
    expect(() => maskFromKeptSets({ 'enc-self': [[0, 9], [0], [1]] }, SMALL, 'k')).toThrow('k: stacks.enc-self.layers[0]: head 9 out of range 0..3');
    expect(() => maskFromKeptSets({ 'enc-self': [[0, 0], [0], [1]] }, SMALL, 'k')).toThrow('head 0 is listed twice in kept');
    expect(() => maskFromKeptSets({ 'enc-self': [[0], [0]] }, SMALL, 'k')).toThrow('the mask has 2 layers, the model has 3');
  });
});

describe('file round trip', () => {
  it('write → read gives the same mask, and the file is readable JSON with one-line id lists', () => {
    const m = maskFromKeptSets(
      { 'enc-self': notebookKept, 'dec-enc': BASE['dec-enc'].map((_, i) => (i === 2 ? [1, 4] : [0, 1, 2, 3, 4, 5, 6, 7])) },
      BASE,
      'gates',
    );
    const path = join(dir, 'sub', 'mask.json');
    writeHeadMask(path, m);
    expect(readHeadMask(path, BASE)).toEqual(m);
    expect(readHeadMask(path)).toEqual(m);
    const text = readFileSync(path, 'utf8');
    expect(JSON.parse(text)).toEqual(m);
    expect(text).toContain('"kept": [2, 3, 7]');
    expect(text).toContain('"removed": [0, 1, 4, 5, 6]');
    expect(text).toContain('"enc-self": [8, 8, 8, 8, 8, 8]');
  });

  it('list order in the file does not matter; the reader sorts', () => {
    const path = join(dir, 'unsorted.json');
    writeFileSync(
      path,
      JSON.stringify({
        format: 'heads.head-mask',
        version: 1,
        source: 'manual',
        stacks: {
          'enc-self': {
            layers: [
              { kept: [3, 1], removed: [2, 0] },
              { kept: [1, 0], removed: [] },
              { kept: [2], removed: [1, 0] },
            ],
          },
        },
      }),
    );
    expect(readHeadMask(path, SMALL).stacks['enc-self']!.layers[0]).toEqual({ kept: [1, 3], removed: [0, 2] });
  });

  it('source strings that look like arrays survive the formatter', () => {
    const m = { ...createFullMask(SMALL), source: 'manual [1,2] [ 3 ]' };
    const path = join(dir, 'src.json');
    writeHeadMask(path, m);
    expect(readHeadMask(path).source).toBe('manual [1,2] [ 3 ]');
  });

  it('missing file and bad JSON are DataErrors naming the file', () => {
    expect(() => readHeadMask(join(dir, 'nope.json'))).toThrow(DataError);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"format": ');
    expect(() => readHeadMask(bad)).toThrow(/bad\.json: invalid JSON/);
  });

  it('writeHeadMask refuses to write an invalid mask', () => {
    const m = createFullMask(SMALL);
    m.stacks['enc-self']!.layers[0]!.kept.push(0);
    expect(() => writeHeadMask(join(dir, 'never.json'), m)).toThrow(MaskError);
  });
});

describe('validation errors name the entry (table)', () => {
  const good = (): HeadMask => JSON.parse(JSON.stringify(maskFromKeptSets({ 'enc-self': notebookKept }, BASE, 'gates'))) as HeadMask;
  /** Loose views for writing ill-typed values into the parsed JSON. */
  const obj = (x: unknown): Record<string, unknown> => x as Record<string, unknown>;
  const arr = (x: unknown): unknown[] => x as unknown[];
  const enc = (m: HeadMask) => m.stacks['enc-self']!.layers;
  const cases: Array<[string, (m: HeadMask) => void, string]> = [
    [
      'too many layers',
      (m) => enc(m).push({ kept: [0], removed: [1, 2, 3, 4, 5, 6, 7] }, { kept: [], removed: [] }),
      'mask.json: stacks.enc-self.layers[6]: the model has 6 enc-self layers',
    ],
    ['too few layers', (m) => enc(m).pop(), 'mask.json: stacks.enc-self.layers: the mask has 5 layers, the model has 6'],
    ['head out of range', (m) => (enc(m)[3]!.removed = [1, 3, 6, 7, 9]), 'mask.json: stacks.enc-self.layers[3]: head 9 out of range 0..7'],
    ['kept and removed', (m) => enc(m)[1]!.kept.push(1), 'mask.json: stacks.enc-self.layers[1]: head 1 is both kept and removed'],
    ['duplicate', (m) => enc(m)[2]!.removed.push(0), 'mask.json: stacks.enc-self.layers[2]: head 0 is listed twice in removed'],
    ['missing head', (m) => enc(m)[2]!.removed.splice(0, 2), 'mask.json: stacks.enc-self.layers[2]: heads 0, 1 are neither kept nor removed'],
    [
      'unknown stack',
      (m) => (obj(m.stacks)['enc-dec'] = { layers: [] }),
      'mask.json: stacks.enc-dec: unknown attention type (expected enc-self, dec-self, dec-enc)',
    ],
    ['non-integer id', (m) => (enc(m)[0]!.kept[0] = 2.5), 'mask.json: stacks.enc-self.layers[0].kept[0]: expected a non-negative integer head id, got 2.5'],
    [
      'string id',
      (m) => (arr(m.stacks['dec-self']!.layers[4]!.kept)[0] = '0'),
      'mask.json: stacks.dec-self.layers[4].kept[0]: expected a non-negative integer head id, got "0"',
    ],
    ['typo field', (m) => (obj(enc(m)[0])['keep'] = []), 'mask.json: stacks.enc-self.layers[0].keep: unknown field'],
    ['layers missing', (m) => (obj(m.stacks)['dec-enc'] = {}), 'mask.json: stacks.dec-enc: expected { "layers": [...] }'],
    ['wrong format', (m) => (obj(m)['format'] = 'hf'), 'mask.json: format: expected "heads.head-mask", got "hf"'],
    ['newer version', (m) => (obj(m)['version'] = 2), 'mask.json: version: expected 1, got 2 (written by a newer toolkit)'],
    ['no source', (m) => delete obj(m)['source'], 'mask.json: source: expected a string, got undefined'],
    [
      'other model',
      (m) => (m.model!.headsPerLayer['enc-self'] = [16, 16, 16, 16, 16, 16]),
      'mask.json: model.headsPerLayer.enc-self: the mask was made for [16, 16, 16, 16, 16, 16], the model has [8, 8, 8, 8, 8, 8]',
    ],
    ['not an object', (m) => (obj(m)['stacks'] = [1]), 'mask.json: stacks: expected an object keyed by attention type, got an array'],
  ];
  it.each(cases)('%s', (_name, edit, message) => {
    const m = good();
    edit(m);
    let err: unknown;
    try {
      parseHeadMask(m, 'mask.json', BASE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MaskError);
    expect((err as Error).message).toContain(message);
  });

  it('several problems are all listed', () => {
    const m = good();
    enc(m)[0]!.kept.push(12);
    m.stacks['dec-self']!.layers[1]!.removed.push(9);
    expect(() => parseHeadMask(m, 'mask.json', BASE)).toThrow(
      'mask.json: 2 problems in the head mask:\n  mask.json: stacks.enc-self.layers[0]: head 12 out of range 0..7\n  mask.json: stacks.dec-self.layers[1]: head 9 out of range 0..7',
    );
    // structural problems are reported before the model is looked at
    m.stacks['dec-self']!.layers[2]!.removed.push(0);
    expect(() => parseHeadMask(m, 'mask.json', BASE)).toThrow('mask.json: stacks.dec-self.layers[2]: head 0 is both kept and removed');
  });

  it('without a shape only structure is checked', () => {
    const m = good();
    delete m.model;
    enc(m).pop();
    expect(() => parseHeadMask(m, 'mask.json')).not.toThrow();
    expect(() => parseHeadMask(m, 'mask.json', BASE)).toThrow(MaskError);
  });

  it('a stack with 0 layers: a non-empty layer list is refused', () => {
    const m = createFullMask(SMALL);
    m.stacks['dec-self'] = { layers: [{ kept: [0], removed: [] }] };
    expect(() => validateMask(m, SMALL, 'x')).toThrow('x: stacks.dec-self.layers[0]: the model has 0 dec-self layers');
  });
});

describe('composition and idempotence', () => {
  const a = maskFromKeptSets(
    {
      'enc-self': [
        [0, 1, 3],
        [0, 1],
        [0, 1, 2],
      ],
    },
    SMALL,
    'step 1',
  );
  const b = maskFromKeptSets({ 'enc-self': [[1, 2, 3], [1], [0, 1, 2]] }, SMALL, 'step 2');

  it('a head is kept iff both masks keep it', () => {
    const c = composeMasks(a, b);
    expect(maskToKeptSets(c, SMALL)['enc-self']).toEqual([[1, 3], [1], [0, 1, 2]]);
    expect(c.stacks['enc-self']!.layers[0]!.removed).toEqual([0, 2]);
    expect(c.source).toBe('step 1 + step 2');
    validateMask(c, SMALL, 'c');
  });

  it('applying a mask twice equals applying it once; composition is commutative in the kept sets', () => {
    expect(composeMasks(a, a)).toEqual(a);
    const once = composeMasks(a, b);
    expect(composeMasks(once, b)).toEqual(once);
    expect(composeMasks(once, composeMasks(a, b)).source).toBe('step 1 + step 2');
    expect(maskToKeptSets(composeMasks(b, a), SMALL)).toEqual(maskToKeptSets(once, SMALL));
    const full = createFullMask(SMALL);
    expect(maskToKeptSets(composeMasks(full, a), SMALL)).toEqual(maskToKeptSets(a, SMALL));
  });

  it('a stack missing on one side is taken from the other', () => {
    const encOnly: HeadMask = { format: 'heads.head-mask', version: 1, source: 'enc', stacks: { 'enc-self': a.stacks['enc-self']! } };
    const full = createFullMask(SMALL);
    expect(maskToKeptSets(composeMasks(encOnly, full), SMALL)).toEqual(maskToKeptSets(a, SMALL));
  });

  it('masks over different heads cannot be composed', () => {
    const other = maskFromKeptSets({ 'enc-self': [[0], [0], [0]] }, { 'enc-self': [4, 2, 4], 'dec-self': [], 'dec-enc': [] }, 'other');
    expect(() => composeMasks(a, other)).toThrow(MaskError);
    expect(() => composeMasks(a, other)).toThrow(/different models|layers\[2\]/);
  });

  it('already-pruned model: second-round ids are original ids, and the position map follows the layout', () => {
    // round 1 prunes heads 1 and 5 of encoder layer 0; the pruned model stores layout [0,2,3,4,6,7]
    const round1 = maskFromKeptSets(
      { 'enc-self': BASE['enc-self'].map((h, i) => (i === 0 ? [0, 2, 3, 4, 6, 7] : Array.from({ length: h }, (_, j) => j))) },
      BASE,
      'round 1',
    );
    const layout = maskToKeptSets(round1, BASE)['enc-self'][0]!;
    expect(layout).toEqual([0, 2, 3, 4, 6, 7]);
    // the pruned layer's position 3 is original head 4
    expect(layout[3]).toBe(4);
    // round 2 (computed on the pruned model) removes positions 0 and 3 → original ids 0 and 4
    const positionsRemoved = [0, 3];
    const keptOriginal = layout.filter((_, pos) => !positionsRemoved.includes(pos));
    const round2 = maskFromKeptSets(
      { 'enc-self': BASE['enc-self'].map((h, i) => (i === 0 ? keptOriginal : Array.from({ length: h }, (_, j) => j))) },
      BASE,
      'round 2',
    );
    validateMask(round2, BASE, 'round2', { current: round1 });
    const after = composeMasks(round1, round2);
    expect(after.stacks['enc-self']!.layers[0]).toEqual({ kept: [2, 3, 6, 7], removed: [0, 1, 4, 5] });
    expect(maskToDescriptor(after)).toBe('E:1:1,2,5,6');
    expect(maskToHfPruneDict(after)['enc-self']).toEqual({ '0': [0, 1, 4, 5] });
    // a mask that keeps an already-pruned head is refused against the current layout
    const revive = maskFromKeptSets(
      { 'enc-self': BASE['enc-self'].map((h, i) => (i === 0 ? [1, 2] : Array.from({ length: h }, (_, j) => j))) },
      BASE,
      'revive',
    );
    expect(() => validateMask(revive, BASE, 'revive.json', { current: round1 })).toThrow(
      'revive.json: stacks.enc-self.layers[0]: keeps head 1, which the model has already pruned',
    );
    // ... while composing simply leaves it pruned
    expect(maskToKeptSets(composeMasks(round1, revive), BASE)['enc-self'][0]).toEqual([2]);
  });
});

describe('Hugging Face prune dicts', () => {
  it('round trip, string keys, only layers with pruned heads (HF semantics)', () => {
    const m = maskFromKeptSets({ 'enc-self': notebookKept }, BASE, 'gates');
    const d = maskToHfPruneDict(m);
    expect(d['enc-self']!['0']).toEqual([0, 1, 4, 5, 6]);
    expect(Object.keys(d['enc-self']!)).toEqual(['0', '1', '2', '3', '4', '5']);
    expect(d['dec-self']).toEqual({});
    const back = maskFromHfPruneDict(JSON.parse(JSON.stringify(d)) as typeof d, BASE, 'gates');
    expect(back).toEqual(m);
  });

  it("HF's integration-test dict {0: [0], 1: [1, 2]} on a 2-layer, 4-head model", () => {
    const shape: HeadShape = { 'enc-self': [4, 4], 'dec-self': [], 'dec-enc': [] };
    const m = maskFromHfPruneDict({ 'enc-self': { '0': [0], '1': [1, 2, 2] } }, shape);
    expect(maskToKeptSets(m, shape)['enc-self']).toEqual([
      [1, 2, 3],
      [0, 3],
    ]);
    expect(m.source).toBe('hf pruned_heads');
  });

  const shape: HeadShape = { 'enc-self': [4, 4], 'dec-self': [], 'dec-enc': [4] };
  const bad: Array<[string, unknown, string]> = [
    ['negative key', { 'enc-self': { '-1': [0] } }, 'hf: enc-self["-1"]: layer key must be a non-negative integer'],
    ['padded key', { 'enc-self': { '01': [0] } }, 'hf: enc-self["01"]: layer key must be a non-negative integer'],
    ['layer out of range', { 'dec-enc': { '1': [0] } }, 'hf: dec-enc["1"]: layer 1 out of range 0..0 (the model has 1 dec-enc layers)'],
    ['head out of range', { 'enc-self': { '1': [4] } }, 'hf: enc-self["1"]: head 4 out of range 0..3'],
    ['unknown type', { encoder: {} }, 'hf: encoder: unknown attention type'],
    ['not a list', { 'enc-self': { '0': 3 } }, 'hf: enc-self["0"]: expected an array of head ids, got 3'],
  ];
  it.each(bad)('refuses %s', (_n, dict, message) => {
    expect(() => maskFromHfPruneDict(dict as never, shape, 'hf')).toThrow(message);
  });
});

describe('Michel descriptors', () => {
  it('E:3:1,5 A:6:2 D:1:1 is 1-based and lists removed heads', () => {
    const m = maskFromDescriptor('E:3:1,5 A:6:2 D:1:1', BASE);
    expect(m.stacks['enc-self']!.layers[2]!.removed).toEqual([0, 4]);
    expect(m.stacks['dec-enc']!.layers[5]!.removed).toEqual([1]);
    expect(m.stacks['dec-self']!.layers[0]!.removed).toEqual([0]);
    expect(countKept(m)).toBe(144 - 4);
    expect(maskToDescriptor(m)).toBe('E:3:1,5 A:6:2 D:1:1');
    expect(m.source).toBe('descriptor "E:3:1,5 A:6:2 D:1:1"');
  });

  it('round trip (mask → descriptor → mask), merges repeated layers, empty = full', () => {
    const m = maskFromKeptSets({ 'enc-self': notebookKept }, BASE, 'x');
    const d = maskToDescriptor(m);
    expect(d.startsWith('E:1:1,2,5,6,7 E:2:2,3,5,8')).toBe(true);
    expect(maskToKeptSets(maskFromDescriptor(d, BASE), BASE)).toEqual(maskToKeptSets(m, BASE));
    expect(maskToKeptSets(maskFromDescriptor('E:2:1 E:2:3', BASE), BASE)['enc-self'][1]).toEqual([1, 3, 4, 5, 6, 7]);
    expect(maskToDescriptor(createFullMask(BASE))).toBe('');
    expect(maskFromDescriptor('  ', BASE, 'none')).toEqual(createFullMask(BASE, 'none'));
  });

  const bad: Array<[string, string]> = [
    ['E:0:1', '"E:0:1": layer 0 out of range 1..6 (enc-self, 1-based)'],
    ['E:2:1 E:2:3,1', '"E:2:3,1": head 1 of E:2 is listed twice'],
    ['E:7:1', '"E:7:1": layer 7 out of range 1..6'],
    ['D:1:9', '"D:1:9": head 9 out of range 1..8 (1-based)'],
    ['D:1:0', '"D:1:0": head 0 out of range 1..8'],
    ['X:1:1', '"X:1:1": expected {E,A,D}:layer:head[,head...]'],
    ['E:1:', '"E:1:": expected'],
    ['E:1:1,,2', '"E:1:1,,2": expected'],
  ];
  it.each(bad)('refuses %s', (text, message) => {
    expect(() => maskFromDescriptor(text, BASE, 'cli')).toThrow(`cli: ${message}`);
  });

  it('a stack with no layers', () => {
    expect(() => maskFromDescriptor('D:1:1', SMALL, 'cli')).toThrow('cli: "D:1:1": the model has no dec-self layers');
  });
});
