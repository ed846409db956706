/**
 * The claims section (claims.ts): the decision rule of a comparison and a claim's verdict against tables
 * derived by hand from the rules; a side's rows (binarised fallback, a curve's step by heads); the section
 * of a report on finished stages, its differences and p-values against an independent recomputation from
 * the translations; and a spec's bad claims refused, naming the file and key, before anything is written.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkClaimSettings, claimVerdict, comparisonOutcome, sideRow, type Outcome } from './claims.js';
import { loadSpec, expandStages, parseClaimSide } from './spec.js';
import { markDone, resolveStages } from './stage.js';
import { writeReport } from './report.js';
import type { ResultRow } from './result-row.js';
import type { PairedComparison } from './replicates.js';
import { formatP } from './replicates.js';
import { expectSpecRefused } from '../test-utils/spec-refused.js';
import { loadCorpora } from '../data/prepare.js';
import { corpusBleu, tokenizedLowercaseBleu } from '../eval/bleu.js';
import { pairedBootstrap } from '../eval/significance.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-claims-'));
const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));

const cmp = (diffs: number[], p: number, interval: [number, number] = [-1, 1]): PairedComparison => ({
  diffs,
  pValues: diffs.map(() => p),
  pooledP: diffs.length > 1 ? p : null,
  consistent: !(diffs.some((d) => d > 0) && diffs.some((d) => d < 0)),
  interval,
});

describe('the decision rules', () => {
  // each line: the rule's inputs and the outcome read off the rule by hand
  const better: Array<[string, PairedComparison | null, Outcome]> = [
    ['positive in every seed, p below 0.05', cmp([0.4, 0.9, 0.2], 0.01), 'met'],
    ['positive in every seed, p exactly 0.05', cmp([0.4, 0.9, 0.2], 0.05), 'not shown'],
    ['one seed negative, p tiny', cmp([0.4, -0.1, 0.9], 0.001), 'not shown'],
    ['one seed exactly 0', cmp([0.4, 0, 0.9], 0.001), 'not shown'],
    ['negative in every seed, p tiny', cmp([-0.4, -0.9], 0.001), 'contradicted'],
    ['negative in every seed, p 0.2', cmp([-0.4, -0.9], 0.2), 'not shown'],
    ['one seed, positive, its p 0.01', cmp([0.3], 0.01), 'met'],
    ['no translations', null, 'missing'],
  ];
  it.each(better)('better: %s', (_l, c, o) => expect(comparisonOutcome('better', undefined, c)).toBe(o));

  const notWorse: Array<[string, PairedComparison, Outcome]> = [
    ['every seed and the lower end above -m', cmp([-0.2, -0.3], 0.01, [-0.45, 0.1]), 'met'],
    ['a significant loss smaller than m is still met', cmp([-0.2, -0.3], 0.001, [-0.45, -0.05]), 'met'],
    ['lower end below -m', cmp([-0.2, -0.3], 0.01, [-0.6, 0.1]), 'not shown'],
    ['one seed below -m', cmp([-0.2, -0.55], 0.01, [-0.45, 0.1]), 'not shown'],
    ['every seed and the upper end below -m', cmp([-0.8, -0.9], 0.001, [-1.1, -0.6]), 'contradicted'],
    ['every seed below -m, upper end above', cmp([-0.8, -0.9], 0.001, [-1.1, -0.4]), 'not shown'],
  ];
  it.each(notWorse)('notWorse, margin 0.5: %s', (_l, c, o) => expect(comparisonOutcome('notWorse', 0.5, c)).toBe(o));

  const verdicts: Array<[Outcome[], string]> = [
    [['met', 'met'], 'holds'],
    [['met', 'missing'], 'holds'],
    [['met', 'untestable', 'met'], 'holds'],
    [['met', 'not shown'], 'holds in part'],
    [['met', 'contradicted'], 'holds in part'],
    [['not shown', 'contradicted'], 'does not hold'],
    [['contradicted', 'untestable'], 'does not hold'],
    [['missing', 'untestable'], 'cannot be tested'],
    [['missing'], 'cannot be tested'],
  ];
  it.each(verdicts)('%j -> %s', (outcomes, v) => expect(claimVerdict(outcomes)).toBe(v));
});

describe('claim sides', () => {
  const row = (id: string, group: string, seed: number, kept: [number, number, number], attention = 'enc-self'): ResultRow =>
    ({ id, group, seed, keptEnc: kept[0], keptDecSelf: kept[1], keptDecEnc: kept[2], attention, bleu: 1 }) as ResultRow;
  const rows = [
    row('l0[t=2,seed=1]', 'l0[t=2]', 1, [2, 4, 4]),
    row('l0[t=2,seed=1]#binarised', 'l0[t=2]#binarised', 1, [2, 4, 4]),
    row('l0[t=2,seed=2]', 'l0[t=2]', 2, [2, 4, 4]),
    row('imp[seed=1]#masks/step-01.json', 'imp#masks/step-01.json', 1, [6, 4, 4]),
    row('imp[seed=1]#masks/step-02.json', 'imp#masks/step-02.json', 1, [2, 4, 4]),
    row('all[seed=1]#masks/step-01.json', 'all#masks/step-01.json', 1, [2, 3, 4], 'enc-self+dec-self+dec-enc'),
  ];
  it('parses the three forms and refuses others', () => {
    expect(parseClaimSide('l0[t=2]#binarised')).toEqual({ setting: 'l0[t=2]', stage: 'l0', binarised: true, heads: null });
    expect(parseClaimSide('imp@28')).toEqual({ setting: 'imp', stage: 'imp', binarised: false, heads: 28 });
    expect(parseClaimSide('baseline')).toEqual({ setting: 'baseline', stage: 'baseline', binarised: false, heads: null });
    for (const bad of ['l0[t=2', 'imp@', 'l0#folded', 'a b', 'imp@2#binarised']) expect(parseClaimSide(bad)).toBeNull();
  });
  it('#binarised takes the binarised row, else the folded one (settled gates: the same model); @N the step with N heads of its attention types', () => {
    const side = parseClaimSide('l0[t=2]#binarised')!;
    expect(sideRow(side, 1, rows)!.id).toBe('l0[t=2,seed=1]#binarised');
    expect(sideRow(side, 2, rows)!.id).toBe('l0[t=2,seed=2]');
    expect(sideRow(parseClaimSide('l0[t=2]')!, 1, rows)!.id).toBe('l0[t=2,seed=1]');
    expect(sideRow(parseClaimSide('imp@2')!, 1, rows)!.id).toBe('imp[seed=1]#masks/step-02.json');
    expect(sideRow(parseClaimSide('imp@6')!, 1, rows)!.id).toBe('imp[seed=1]#masks/step-01.json');
    expect(sideRow(parseClaimSide('imp@4')!, 1, rows)).toBeNull();
    expect(sideRow(parseClaimSide('imp@2')!, 2, rows)).toBeNull();
    // heads of every attention type the stage prunes: 2 + 3 + 4
    expect(sideRow(parseClaimSide('all@9')!, 1, rows)!.id).toBe('all[seed=1]#masks/step-01.json');
  });
});

const TINY_SET = `{ data.synthetic.task: reverse, data.synthetic.trainPairs: 300, data.synthetic.validPairs: 8, data.synthetic.testPairs: 120, data.bpeMerges: 20,
      model.dModel: 16, model.dFF: 32, model.heads: 2, model.encoderLayers: 2, model.decoderLayers: 1, train.maxTokensPerBatch: 200,
      train.evalEverySteps: 0, train.devBleuSentences: 0, eval.beamSize: 1 }`;

function writeSpec(name: string, claims: string, seeds = '[1, 2, 3]'): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(
    p,
    `name: ${name}\nset: ${TINY_SET}\nseed: ${seeds}\nstages:\n  baseline: { kind: train }\n  l0: { kind: prune, from: baseline, sweep: { lambda: [0, 0.5, 0.9] } }\n  roles: { kind: analyze, of: baseline }\n${claims}`,
  );
  return p;
}

describe('the claims section of a report', () => {
  const claims = `claims:
  a:
    statement: the control beats the pruned model
    paper: a sentence for the reader
    compare:
      - { system: "l0[lambda=0]", reference: "l0[lambda=0.5]", expect: better }
      - { system: "l0[lambda=0.5]", reference: "l0[lambda=0]", expect: notWorse, margin: 0.05 }
  b:
    statement: the pruned model loses less than 100 BLEU
    compare:
      - { system: "l0[lambda=0.5]", reference: baseline, expect: notWorse, margin: 100 }
  c:
    statement: a comparison whose stage has not run
    compare:
      - { system: "l0[lambda=0.9]", reference: baseline, expect: better }
`;

  it('decides each comparison from the per-seed differences and p-values that the translations give, and derives the verdicts', () => {
    const p = writeSpec('claims-fixture', claims);
    const spec = loadSpec(p);
    const runs = join(dir, 'runs');
    const stages = resolveStages(spec, expandStages(spec), runs);
    // translations made from the references by dropping the last word of every k-th sentence: the more
    // sentences lose a word, the lower the BLEU, so which stage is better is known without a model
    const every: Record<string, (seed: number) => number> = { baseline: () => 11, 'l0[lambda=0]': () => 7, 'l0[lambda=0.5]': (seed) => 1 + seed };
    const refs = new Map<number, string[]>();
    const hyps = new Map<string, string[]>();
    for (const s of stages) {
      const k = every[s.instance.baseId];
      if (!k) continue; // l0[lambda=0.9] and the analysis stay unrun
      const seed = s.instance.seed!;
      if (!refs.has(seed))
        refs.set(
          seed,
          loadCorpora(s.config.data, seed).test.map((x) => x.tgt),
        );
      const h = refs.get(seed)!.map((r, i) => (i % k(seed) === 0 ? r.split(' ').slice(0, -1).join(' ') : r));
      hyps.set(s.instance.id, h);
      mkdirSync(s.folder, { recursive: true });
      writeFileSync(join(s.folder, s.instance.spec.kind === 'train' ? 'test.hyp' : 'test.pruned.hyp'), h.join('\n') + '\n');
      markDone(s, {
        bleu: corpusBleu(h, [refs.get(seed)!]).score,
        bleuTokLc: tokenizedLowercaseBleu(h, [refs.get(seed)!]).score,
        keptHeads: { 'enc-self': 2, 'dec-self': 2, 'dec-enc': 2 },
      });
    }
    const out = join(dir, 'report');
    const { mdPath } = writeReport(stages, out, { claims: spec.claims, specFile: 'claims-fixture.yaml' });
    const md = readFileSync(mdPath, 'utf8');
    expect(md.startsWith("## The paper's claims")).toBe(true);
    const section = (id: string) => md.slice(md.indexOf(`### (${id})`), md.indexOf('###', md.indexOf(`### (${id})`) + 3));

    // the independent numbers: corpus BLEU differences per seed and sacreBLEU's paired bootstrap on the files
    const id = (setting: string, seed: number) => (setting === 'baseline' ? `baseline[seed=${seed}]` : setting.replace(']', `,seed=${seed}]`));
    const bleu = (setting: string, seed: number) => corpusBleu(hyps.get(id(setting, seed))!, [refs.get(seed)!]).score;
    const diffs = [1, 2, 3].map((seed) => bleu('l0[lambda=0]', seed) - bleu('l0[lambda=0.5]', seed));
    const pSeed = [1, 2, 3].map(
      (seed) =>
        pairedBootstrap({
          metric: 'bleu',
          baseline: hyps.get(id('l0[lambda=0.5]', seed))!,
          systems: [hyps.get(id('l0[lambda=0]', seed))!],
          refs: [refs.get(seed)!],
        }).systems[0]!.pValue!,
    );
    const pooled = pairedBootstrap({
      metric: 'bleu',
      baseline: [1, 2, 3].flatMap((seed) => hyps.get(id('l0[lambda=0.5]', seed))!),
      systems: [[1, 2, 3].flatMap((seed) => hyps.get(id('l0[lambda=0]', seed))!)],
      refs: [[1, 2, 3].flatMap((seed) => refs.get(seed)!)],
    }).systems[0]!.pValue!;
    expect(Math.min(...diffs)).toBeGreaterThan(0.5);
    expect(pooled).toBeLessThan(0.05);
    const a = section('a');
    const first = a.split('\n').find((l) => l.startsWith('| l0[lambda=0] | l0[lambda=0.5] | better |'))!;
    const cells = first.split('|').map((c) => c.trim());
    expect(cells[4]).toBe('3 of 3');
    expect(cells[7]).toBe(diffs.map((d, i) => `${i + 1}: +${d.toFixed(2)}`).join(', '));
    expect(cells[9]).toBe(pSeed.map(formatP).join(', '));
    expect(cells[10]).toBe(formatP(pooled));
    expect(cells[12]).toBe('met');
    // the interval of the same differences: it contains none of -margin's side, it is centred near the mean
    const [lo, hi] = cells[11]!
      .replace(/[[\]+]/g, '')
      .split(',')
      .map(Number);
    const mean = diffs.reduce((x, y) => x + y, 0) / 3;
    expect(lo).toBeLessThan(mean);
    expect(hi).toBeGreaterThan(mean);
    // the mirror comparison with a small margin: worse by more than 0.05 in every seed and at the interval's top
    const second = a.split('\n').find((l) => l.startsWith('| l0[lambda=0.5] | l0[lambda=0] | not worse by 0.05 or more |'))!;
    expect(second.split('|').map((c) => c.trim())[12]).toBe('contradicted');
    expect(a).toContain('**holds in part**');
    expect(a).not.toContain('provisional');
    expect(a).toContain('The paper: a sentence for the reader');
    expect(section('b')).toContain('**holds**');
    expect(section('c')).toContain('**cannot be tested yet**');
    expect(section('c')).toContain('| 0 of 3 |');

    // with one seed's pruned stage gone, the same claims are provisional and count two seeds
    const two = join(dir, 'report-two');
    const reduced = stages.filter((s) => s.instance.id !== 'l0[lambda=0.5,seed=3]');
    const md2 = readFileSync(writeReport(reduced, two, { claims: spec.claims, specFile: 'x' }).mdPath, 'utf8');
    const a2 = md2.slice(md2.indexOf('### (a)'), md2.indexOf('### (b)'));
    expect(a2).toContain('(provisional)');
    expect(a2).toContain('| 2 of 3 |');
  });

  const bad: Array<[string, string, string[]]> = [
    ['an unknown stage', '- { system: "nope[lambda=0]", reference: baseline, expect: better }', ["claims.a.compare[0].system: 'nope' is not a stage"]],
    [
      'a side that is not a setting',
      '- { system: "l0[lambda=0", reference: baseline, expect: better }',
      ['claims.a.compare[0].system: expected a setting', "found 'l0[lambda=0'"],
    ],
    [
      'notWorse without margin',
      '- { system: "l0[lambda=0]", reference: baseline, expect: notWorse }',
      ['claims.a.compare[0].margin: expect notWorse needs a margin'],
    ],
    [
      'better with a margin',
      '- { system: "l0[lambda=0]", reference: baseline, expect: better, margin: 1 }',
      ['claims.a.compare[0].margin: only for expect notWorse'],
    ],
    ['an unknown expectation', '- { system: "l0[lambda=0]", reference: baseline, expect: worse }', ['claims.a.compare[0].expect', 'worse']],
    [
      '@N on a stage without steps',
      '- { system: "l0[lambda=0]@3", reference: baseline, expect: better }',
      ['@3 picks a step of an importance', "'l0' is a l0 prune stage"],
    ],
    [
      '#binarised on a train stage',
      '- { system: "l0[lambda=0]", reference: "baseline#binarised", expect: better }',
      ["#binarised is an L0 prune stage's scoring"],
    ],
    [
      'a setting compared with itself',
      '- { system: baseline, reference: baseline, expect: better }',
      ['claims.a.compare[0]: system and reference are the same setting'],
    ],
  ];
  it.each(bad)('%s is refused when the spec loads, naming the file and key', (_l, line, fragments) => {
    expectSpecRefused(writeSpec(`bad-${_l.replace(/\W/g, '')}`, `claims:\n  a:\n    statement: s\n    compare:\n      ${line}\n`), fragments);
  });

  it('roles of a stage that is not an analysis, and a claim with nothing to test, are refused', () => {
    const p = writeSpec('bad-roles', 'claims:\n  d: { statement: s, roles: { of: l0, find: [positional] } }\n  e: { statement: t }\n');
    expect(() => loadSpec(p)).toThrow(
      /claims\.d\.roles\.of: expected an analyze stage, found a prune stage[\s\S]*claims\.e: expected compare \(comparisons\) or roles/,
    );
  });

  it('a sweep point the spec does not have is refused, naming the settings it has', () => {
    const p = writeSpec(
      'bad-point',
      'claims:\n  a:\n    statement: s\n    compare:\n      - { system: "l0[lambda=0.3]", reference: baseline, expect: better }\n',
    );
    const spec = loadSpec(p);
    expect(() => checkClaimSettings(spec.claims, new Set(expandStages(spec).map((i) => i.baseId)), p)).toThrow(
      `${p}: claims.a.compare[0].system: no setting 'l0[lambda=0.3]' in this study (settings of l0: l0[lambda=0], l0[lambda=0.5], l0[lambda=0.9])`,
    );
  });

  (built ? it : it.skip)('heads experiment report with such a claim exits 2 with one line and writes nothing', () => {
    const p = writeSpec(
      'bad-point-cli',
      'claims:\n  a:\n    statement: s\n    compare:\n      - { system: "l0[lambda=0.3]", reference: baseline, expect: better }\n',
    );
    const out = join(dir, 'never-written');
    const r = spawnSync('node', [bin, 'experiment', 'report', p, '--runs-dir', join(dir, 'runs-cli'), '--out', out], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `error: ${p}: claims.a.compare[0].system: no setting 'l0[lambda=0.3]' in this study (settings of l0: l0[lambda=0], l0[lambda=0.5], l0[lambda=0.9])`,
    ]);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(join(dir, 'runs-cli'))).toBe(false);
  });
});
