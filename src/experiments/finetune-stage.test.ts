/**
 * @jest-environment ./src/test-utils/shared-typed-arrays-environment.mjs
 */
import { existsSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadSpec, expandStages } from './spec.js';
import { resolveStages, stageState, experimentRoot } from './stage.js';
import { runStage } from './run-stage.js';
import { writeReport, writeReportFigures } from './report.js';
import { initialWeights } from './finetune-stage.js';
import { readDecodeBench, readMethodRows } from './methods-table.js';
import { DECODE_BENCH_FILE, benchExportStages, decodeBenchMarkdown, fnv1a } from './methods-bench.js';
import { translateSentences } from '../eval/translate.js';
import { loadCorpora } from '../data/prepare.js';
import { writeJsonAtomic } from '../util/fs.js';
import { ProgressLine } from '../train/progress.js';
import { useTestBackend } from '../test-utils/backend.js';
import { loadModel } from '../io/load-model.js';
import { findModelCheckpoint } from '../io/checkpoint.js';
import { createTransformer } from '../model/transformer.js';
import { Rng } from '../util/random.js';
import { ConfigError } from '../util/errors.js';

const hasOrt = existsSync(join(process.cwd(), 'node_modules', 'onnxruntime-node'));
if (!hasOrt) console.warn('finetune-stage.test: onnxruntime-node is not installed; the engine: onnx rows are skipped (npm install onnxruntime-node@1.30.0)');
const dir = mkdtempSync(join(tmpdir(), 'heads-finetune-'));
const TINY_SET = `{ data.synthetic.task: reverse, data.synthetic.trainPairs: 300, data.synthetic.validPairs: 8, data.synthetic.testPairs: 8, data.bpeMerges: 20,
      model.dModel: 16, model.dFF: 32, model.heads: 2, model.encoderLayers: 2, model.decoderLayers: 1, train.maxTokensPerBatch: 200,
      train.evalEverySteps: 0, train.devBleuSentences: 0, train.logEverySteps: 2, eval.beamSize: 1 }`;
const MOE = '{ experts: 2, topK: 2, capacityFactor: 1.0, auxLossWeight: 0.01, layers: all }';

function spec(name: string, text: string): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, text);
  return p;
}

describe('finetune stages', () => {
  it('refuse a parent with head gates and a bad ffnPrune, naming the stage', () => {
    const gated = spec(
      'gated',
      `name: gated\nset: ${TINY_SET}\nstages:\n  b: { kind: train }\n  l0: { kind: prune, from: b, lambda: 0.1, steps: 2 }\n  t: { kind: finetune, from: l0, steps: 2 }\n`,
    );
    expect(() => resolveStages(loadSpec(gated), expandStages(loadSpec(gated)), join(dir, 'r0'))).toThrow(ConfigError);
    expect(() => resolveStages(loadSpec(gated), expandStages(loadSpec(gated)), join(dir, 'r0'))).toThrow(
      /stages\.t\.from: a finetune stage starts from a model without head gates/,
    );
    const bad = spec('bad', `name: bad\nstages:\n  b: { kind: train }\n  t: { kind: finetune, from: b, steps: 2, ffnPrune: 1 }\n`);
    expect(() => loadSpec(bad)).toThrow(/stages\.t\.ffnPrune/);
  });

  it('train -> finetune (MoE upcycled, sparse attention, FFN units removed) -> export: each row has BLEU, chrF, active parameters, FLOPs and MoE load; the report writes methods.csv and bleu-vs-cost', async () => {
    await useTestBackend();
    const runs = join(dir, 'runs');
    const p = spec(
      'family',
      `name: family\nset: ${TINY_SET}\nstages:
  baseline: { kind: train, set: { train.maxSteps: 40, train.peakLr: 0.01, train.warmupSteps: 10 } }
  float: { kind: export, of: baseline, mask: none }
  tune-moe: { kind: finetune, from: baseline, steps: 4, set: { model.moe: ${MOE} } }
  moe: { kind: export, of: tune-moe, mask: none }
  tune-local: { kind: finetune, from: baseline, steps: 4, set: { model.attentionPatterns: { enc-self: { kind: local, window: 1 } } } }
  local: { kind: export, of: tune-local, mask: none }
  tune-ffn: { kind: finetune, from: baseline, steps: 4, ffnPrune: 0.5 }
  ffn: { kind: export, of: tune-ffn, mask: none }
${hasOrt ? '  float-onnx: { kind: export, of: baseline, mask: none, engine: onnx }\n  int8-dynamic: { kind: export, of: baseline, mask: none, int8: true, engine: onnx }\n' : ''}`,
    );
    const stages = resolveStages(loadSpec(p), expandStages(loadSpec(p)), runs);
    const byId = (id: string) => stages.find((s) => s.instance.id === id)!;
    // the FFN widths are known before anything runs: 32 - round(0.5 * 32) per layer
    expect(byId('tune-ffn').config.model.ffnWidths).toEqual({ encoder: [16, 16], decoder: [16] });
    expect(byId('tune-moe').config.train.maxSteps).toBe(4);

    // upcycling, checked on the baseline's weights before fine-tuning: every expert is the FFN, and with
    // top-2 over identical experts the renormalised mixture is the FFN itself, so the logits are the baseline's
    const quiet = new ProgressLine(process.stderr, true);
    expect(await runStage(byId('baseline'), { progress: quiet, isStopRequested: () => false, argv: [] })).not.toBeNull();
    const parent = loadModel(byId('baseline').folder);
    const ck = findModelCheckpoint(byId('baseline').folder);
    const { params, init } = initialWeights(ck.params, parent.config.model, byId('tune-moe').config, ck.path);
    expect(init.upcycled?.layers).toEqual(['enc.0', 'enc.1', 'dec.0']);
    expect(Array.from(params['enc.1.moe.e1.w1']!.data)).toEqual(Array.from(ck.params['enc.1.ffn.w1']!.data));
    const moeModel = createTransformer(byId('tune-moe').config.model, parent.tokenizer.vocabSize, new Rng(1));
    for (const name of moeModel.params.names()) moeModel.params.assign(name, params[name]!.shape, params[name]!.data);
    const src = tf.tensor2d(
      [
        [5, 6, 7, 2],
        [8, 9, 2, 0],
      ],
      [2, 4],
      'int32',
    );
    const tgt = tf.tensor2d(
      [
        [1, 7, 6],
        [1, 9, 8],
      ],
      [2, 3],
      'int32',
    );
    const a = parent.model.forward(src, tgt, { isTraining: false });
    const b = moeModel.forward(src, tgt, { isTraining: false });
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-4);
    tf.dispose([src, tgt, a, b]);
    moeModel.dispose();
    parent.model.dispose();

    for (const s of stages.slice(1)) expect(await runStage(s, { progress: quiet, isStopRequested: () => false, argv: [] })).not.toBeNull();
    expect(stages.map(stageState)).toEqual(stages.map(() => 'done'));
    const marker = (id: string) => JSON.parse(readFileSync(join(byId(id).folder, 'stage.json'), 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(marker('tune-moe')['steps']).toBe(4);
    expect(marker('tune-moe')['init'].upcycled.experts).toBe(2);
    // the training windows' expert load was logged (two experts' shares sum to 1)
    expect(marker('tune-moe')['trainingRouting']['moe.enc.0.e0'] + marker('tune-moe')['trainingRouting']['moe.enc.0.e1']).toBeCloseTo(1, 2);

    const float = marker('float');
    const moe = marker('moe');
    const local = marker('local');
    const ffn = marker('ffn');
    const d = 16;
    for (const m of [float, moe, local, ffn]) {
      expect(m['chrf']).toBeGreaterThanOrEqual(0);
      expect(m['chrf']).toBeLessThanOrEqual(100);
      expect(m['decodeSeconds']).toBeGreaterThan(0);
      expect(m['engine']).toBe('tfjs');
    }
    // FFN FLOPs per token: 2 * 2 * d * width per layer, three layers
    expect(float['cost'].ffnFlopsPerToken).toBe(3 * 4 * d * 32);
    expect(ffn['cost'].ffnFlopsPerToken).toBe(3 * 4 * d * 16);
    expect(ffn['params']).toBe(float['params'] - 3 * (2 * d * 16 + 16));
    // top-2 of 2 experts: every expert is active, twice the FFN work plus the router
    expect(moe['cost'].activeParams).toBe(moe['params']);
    expect(moe['params']).toBe(float['params'] + 3 * (2 * d * 32 + 32 + d + d * 2));
    expect(moe['cost'].ffnFlopsPerToken).toBe(3 * (2 * 4 * d * 32 + 2 * d * 2));
    expect(moe['moeRouting'].load['enc.0'].reduce((x: number, y: number) => x + y, 0)).toBeCloseTo(1, 3);
    expect(float['moeRouting']).toBeUndefined();
    // dense attention computes every pair; a local window of 1 (|q - k| <= 1) only part of the encoder's
    expect(float['cost'].attnProductShare).toBe(1);
    expect(local['cost'].attnProductShare).toBeLessThan(1);
    expect(local['cost'].attnFlopsPerToken).toBeLessThan(local['cost'].attnDenseFlopsPerToken);

    if (hasOrt) {
      // the float graphs in ORT translate as tfjs does (src/onnx tests: same outputs), so the same BLEU; int8 activations are the dynamic row
      const fo = marker('float-onnx');
      const dyn = marker('int8-dynamic');
      expect(fo['engine']).toBe('onnx');
      expect(fo['method']).toBe('float');
      expect(fo['bleu']).toBeCloseTo(float['bleu'], 6);
      expect(dyn['method']).toBe('int8-dynamic');
      expect(dyn['modelBytes']).toBeLessThan(fo['modelBytes']);
    }
    const root = experimentRoot(loadSpec(p), runs);
    // the decode bench: every finished export in turns, best of the repetitions, the same translations each time
    const logged: string[] = [];
    let load = 0;
    const bench = await benchExportStages(stages, {
      spec: p,
      seeds: null,
      sentences: 3,
      reps: 2,
      blasThreads: '1',
      log: (l) => logged.push(l),
      loadavg: () => [load++, 0, 0],
    });
    const exportIds = stages.filter((s) => s.instance.spec.kind === 'export').map((s) => s.instance.id);
    expect(bench.rows.map((r) => r.stage)).toEqual(exportIds);
    for (const r of bench.rows) {
      expect(r.samplesCpuSeconds).toHaveLength(2);
      expect(r.bestCpuSeconds).toBe(Math.min(...r.samplesCpuSeconds));
      expect(r.bestSeconds).toBe(Math.min(...r.samplesSeconds));
      expect(r.bestCpuSeconds).toBeGreaterThan(0);
    }
    // turns: repetition 2 starts one row later
    const order = logged.filter((l) => l.startsWith('rep ')).map((l) => l.split(': ')[1]!.split(' ')[0]);
    expect(order).toEqual([...exportIds, ...exportIds.slice(1), exportIds[0]]);
    // the float row's hash is the hash of the exported model's own translation of the same 3 sentences
    const floatModel = loadModel(join(byId('float').folder, 'export'));
    const three = loadCorpora(byId('float').config.data, byId('float').config.seed)
      .test.slice(0, 3)
      .map((x) => x.src);
    const direct = await translateSentences(floatModel.model, floatModel.tokenizer, three, floatModel.config.eval);
    floatModel.model.dispose();
    expect(bench.rows[0]!.hash).toBe(fnv1a(direct.outputs.join('\n')));
    expect(bench.rows[0]!.outputTokens).toBe(direct.stats.outputTokens);
    expect(decodeBenchMarkdown(bench).split('\n')[2]).toMatch(/^\| float \|.*\| 1\.00x \|/);
    writeJsonAtomic(join(root, DECODE_BENCH_FILE), bench);
    const { mdPath } = writeReport(stages, root);
    const rows = readMethodRows(join(root, 'methods.csv'));
    expect(rows.map((r) => r.stage)).toEqual(['float', 'moe', 'local', 'ffn', ...(hasOrt ? ['float-onnx', 'int8-dynamic'] : [])]);
    expect(rows.map((r) => r.fineTuneSteps).slice(0, 4)).toEqual([0, 4, 4, 4]);
    expect(rows.map((r) => r.method).slice(0, 4)).toEqual(['float', 'moe-top2x2', 'local(1)', 'ffn-0.5-tuned']);
    expect(rows[3]!.bleu).toBeCloseTo(ffn['bleu'], 6);
    expect(rows.map((r) => r.benchCpuSeconds)).toEqual(bench.rows.map((r) => Number(r.bestCpuSeconds.toFixed(4))));
    expect(readFileSync(mdPath, 'utf8')).toContain('bench decode CPU s (wall s)');
    // each row against the float row of its seed: the BLEU difference, with a paired-bootstrap p (none for float itself)
    expect(rows[0]!.vsFloat).toBeNull();
    for (const r of rows.slice(1)) {
      expect(r.vsFloat).toBeCloseTo(r.bleu - rows[0]!.bleu, 3);
      expect(r.pVsFloat).toBeGreaterThan(0);
      expect(r.pVsFloat).toBeLessThanOrEqual(1);
    }
    // no row of this spec is the tuned control (a finetune stage changing nothing), so no second comparison
    expect(rows.every((r) => r.vsTuned === null)).toBe(true);
    expect(readFileSync(mdPath, 'utf8')).toContain('## Sparsity methods');
    const figures = await writeReportFigures(stages, [], root, { html: false });
    expect(figures.written.map((f) => f.name)).toContain('bleu-vs-cost');
    const fig = JSON.parse(readFileSync(join(root, 'figures', 'bleu-vs-cost.json'), 'utf8')) as {
      data: Array<{ name: string; xaxis: string }>;
      layout: { shapes: Array<{ y0: number }> };
    };
    expect(fig.data.filter((t) => t.xaxis === 'x').map((t) => t.name)).toEqual([
      'float',
      'moe-top2x2',
      'local(w)',
      'ffn-0.5-tuned',
      ...(hasOrt ? ['float (ORT)', 'int8-dynamic (ORT)'] : []),
    ]);
    // the time panel is the bench's CPU seconds once every row has them
    const timeX = (fig.data as unknown as Array<{ xaxis: string; x: number[] }>).filter((t) => t.xaxis !== 'x').flatMap((t) => t.x);
    expect(timeX.sort()).toEqual(rows.map((r) => r.benchCpuSeconds!).sort());
    // the reference line is the float row's BLEU on both panels
    expect(fig.layout.shapes.map((s) => s.y0)).toEqual([float['bleu'], float['bleu']]);
  }, 240_000);

  it('a malformed decode-bench.json is named by file and field, never half-used', () => {
    const d = mkdtempSync(join(tmpdir(), 'heads-bench-'));
    expect(readDecodeBench(d)).toBeNull();
    const good = { what: 'decode-bench', sentences: 3, beamSize: 1, reps: 2, rows: [{ stage: 'float', bestSeconds: 0.5, bestCpuSeconds: 0.4 }] };
    for (const [bad, field] of [
      [{ ...good, what: 'other' }, 'what'],
      [{ ...good, reps: 0 }, 'reps'],
      [{ ...good, rows: {} }, 'rows'],
      [{ ...good, rows: [{ stage: '', bestSeconds: 1, bestCpuSeconds: 1 }] }, 'rows\\[0\\]\\.stage'],
      [{ ...good, rows: [{ stage: 'float', bestSeconds: 1, bestCpuSeconds: -1 }] }, 'rows\\[0\\]\\.bestCpuSeconds'],
    ] as const) {
      writeFileSync(join(d, DECODE_BENCH_FILE), JSON.stringify(bad));
      expect(() => readDecodeBench(d)).toThrow(new RegExp(`decode-bench\\.json: ${field}: expected`));
    }
    writeFileSync(join(d, DECODE_BENCH_FILE), '{ not json');
    expect(() => readDecodeBench(d)).toThrow(/decode-bench\.json: invalid JSON/);
    writeFileSync(join(d, DECODE_BENCH_FILE), JSON.stringify(good));
    expect(readDecodeBench(d)!.rows[0]!.bestCpuSeconds).toBe(0.4);
  });
});
