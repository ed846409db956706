/**
 * The fixed-mask prune stage (the fine-tuned importance control): spec validation, its layout taken from
 * the importance stage's mask at maskHeads heads, its identity, and the weights it starts from (the
 * baseline's with the masked heads removed: fine-tuned at a negligible learning rate it scores on test
 * what the importance stage scored for that mask).
 */
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSpec, expandStages } from './spec.js';
import { resolveStages, stageState } from './stage.js';
import { runStage, type StageSummary } from './run-stage.js';
import { ProgressLine } from '../train/progress.js';
import { expectSpecRefused } from '../test-utils/spec-refused.js';
import { originalMaskShape } from '../config/head-layout.js';
import { readHeadMask, maskToKeptSets } from '../io/head-mask.js';
import { useTestBackend } from '../test-utils/backend.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-fixed-mask-'));
const quiet = new ProgressLine(process.stderr, true);
function spec(name: string, text: string): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, text);
  return p;
}
const TINY_SET = `{ data.synthetic.task: reverse, data.synthetic.trainPairs: 300, data.synthetic.validPairs: 8, data.synthetic.testPairs: 8, data.bpeMerges: 20,
      model.dModel: 32, model.dFF: 64, model.heads: 2, model.encoderLayers: 2, model.decoderLayers: 1, train.maxTokensPerBatch: 200, train.workers: 1,
      train.evalEverySteps: 0, train.devBleuSentences: 0, train.logEverySteps: 5, eval.beamSize: 1 }`;

beforeAll(() => useTestBackend());

describe('fixed-mask prune stages', () => {
  it.each([
    [
      'from an l0 stage',
      'p: { kind: prune, from: b, lambda: 0.1 }\n  f: { kind: prune, method: fixed-mask, from: p, maskHeads: 2 }',
      ['stages.f.from', "'p' is a l0 prune stage"],
    ],
    [
      'without maskHeads',
      'p: { kind: prune, from: b, method: importance }\n  f: { kind: prune, method: fixed-mask, from: p }',
      ['stages.f', 'needs maskHeads'],
    ],
    ['maskHeads elsewhere', 'p: { kind: prune, from: b, method: importance, maskHeads: 2 }', ['stages.p.maskHeads', 'only for method fixed-mask']],
  ])('%s is refused with the file and key', (_l, stages, fragments) => {
    expectSpecRefused(spec(`bad-${fragments[0]!.replace(/\W/g, '')}`, `name: x\nstages:\n  b: { kind: train }\n  ${stages}\n`), fragments);
  });

  it("prune stages do not inherit their parent's early stopping (their set can ask for it)", () => {
    const p = spec(
      'es',
      `name: es\nset: ${TINY_SET}\nstages:\n  b: { kind: train, set: { train.evalEverySteps: 10, train.earlyStopping: { metric: devLoss, patience: 2 } } }\n` +
        `  l0: { kind: prune, from: b, lambda: 0.1 }\n  l0es: { kind: prune, from: b, lambda: 0.1, set: { train.evalEverySteps: 5, train.earlyStopping: { metric: devLoss, patience: 3 } } }\n` +
        `  imp: { kind: prune, from: b, method: importance }\n  ft: { kind: prune, method: fixed-mask, from: imp, maskHeads: 2 }\n`,
    );
    const stages = resolveStages(loadSpec(p), expandStages(loadSpec(p)), join(dir, 'runs-es'));
    expect(stages.map((s) => [s.instance.id, s.config.train.earlyStopping?.patience ?? null])).toEqual([
      ['b', 2],
      ['l0', null],
      ['l0es', 3],
      ['imp', null],
      ['ft', null],
    ]);
  });

  it('fine-tunes the baseline with the importance mask at maskHeads heads fixed', async () => {
    const runs = join(dir, 'runs');
    const p = spec(
      'ft',
      `name: ft\nset: ${TINY_SET}\nstages:\n  base: { kind: train, set: { train.maxSteps: 150, train.peakLr: 0.01, train.warmupSteps: 20, train.checkpointEverySteps: 150, model.dropout: 0 } }\n` +
        `  imp: { kind: prune, from: base, method: importance, stepPercent: 25, testHeads: [2] }\n` +
        `  ft: { kind: prune, method: fixed-mask, from: imp, steps: 2, sweep: { maskHeads: [2, 3] }, set: { train.peakLr: 1.0e-12, train.warmupSteps: 0 } }\n`,
    );
    const plan = () => resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
    let stages = plan();
    expect(stages.map((s) => s.instance.id)).toEqual(['base', 'imp', 'ft[maskHeads=2]', 'ft[maskHeads=3]']);
    // before the importance stage has run, the layout is unknown; the two head counts are two identities
    expect(stages[2]!.config.model.keptHeads).toBeNull();
    expect(stages[2]!.hash).not.toBe(stages[3]!.hash);
    const before = stages.map((s) => s.hash);
    for (const id of ['base', 'imp'])
      await runStage(
        stages.find((s) => s.instance.id === id)!,
        { progress: quiet, isStopRequested: () => false, argv: [] },
      );
    stages = plan();
    // the layout is now known, and the identity did not change with it
    expect(stages.map((s) => s.hash)).toEqual(before);
    const ft = stages[2]!;
    const imp = JSON.parse(readFileSync(join(stages[1]!.folder, 'pruning-result.json'), 'utf8')) as { table: Array<{ headsKept: number; maskFile: string }> };
    const row = imp.table.find((r) => r.headsKept === 2)!;
    const shape = originalMaskShape(ft.config.model);
    expect(ft.config.model.keptHeads).toEqual(maskToKeptSets(readHeadMask(join(stages[1]!.folder, row.maskFile), shape), shape));
    expect([ft.config.gates.attention, ft.config.train.trainOnly, ft.config.train.maxSteps]).toEqual([[], ['encoder'], 2]);
    const summary = (await runStage(ft, { progress: quiet, isStopRequested: () => false, argv: [] })) as StageSummary;
    expect(stageState(ft)).toBe('done');
    expect(summary.keptHeads).toEqual({ 'enc-self': 2, 'dec-self': 2, 'dec-enc': 2 });
    expect(summary['maskFrom']).toMatchObject({ stage: 'imp', maskFile: row.maskFile });
    // at a learning rate of 1e-12 the fine-tuned model is the baseline with those heads removed: its test
    // translations are the importance stage's for the same mask (gates 0/1 on the full model), and not
    // the full baseline's
    const impSummary = JSON.parse(readFileSync(join(stages[1]!.folder, 'stage.json'), 'utf8')) as StageSummary;
    const point = impSummary.curve!.find((c) => c.maskFile === row.maskFile)!;
    const hyps = readFileSync(join(ft.folder, 'test.hyp'), 'utf8');
    expect(hyps).toBe(readFileSync(join(stages[1]!.folder, point.hyp!), 'utf8'));
    expect(hyps).not.toBe(readFileSync(join(stages[0]!.folder, 'test.hyp'), 'utf8'));
    expect(summary.bleu).toBeCloseTo(point.bleu, 6);
    console.log(
      `fixed-mask at 2 of 4 encoder heads: test BLEU ${summary.bleu!.toFixed(2)} (importance stage, same mask: ${point.bleu.toFixed(2)}; baseline ${(JSON.parse(readFileSync(join(stages[0]!.folder, 'stage.json'), 'utf8')) as StageSummary).bleu!.toFixed(2)})`,
    );
  }, 120_000);
});
