/**
 * The decode-speed bench of the sparsity-methods table: every finished export stage of a study decodes
 * the same fixed batch (the first `sentences` test sentences, the config's beam and batching) in ONE
 * process, the rows taking turns (repetition r visits every row, starting r rows later), so the machine's
 * drift and any other load hit all rows alike; the CPU time of this process is taken next to the wall
 * time (with HEADS_BLAS_THREADS=1 and ORT on one thread, CPU seconds are the work done, steadier than
 * wall seconds on a shared machine). Export stages also time the batch while they run, but those
 * figures come from whatever else the machine was doing at that moment; this bench is what the
 * methods table and its figure use when `<results>/decode-bench.json` exists (methods-table.ts).
 *
 *   npm run bench:methods -- experiments/sparsity-methods.yaml --seeds 2 --out experiments/results/sparsity-methods
 */
import type { EvalConfig } from '../config/schema.js';
import { loadCorpora } from '../data/prepare.js';
import { translateSentences } from '../eval/translate.js';
import { loadModel } from '../io/load-model.js';
import { loadOnnxModel } from '../onnx/load-node.js';
import { translateWithOnnx } from '../onnx/decode.js';
import { readGitInfo } from '../util/run-folder.js';
import { type ResolvedStage, stageState } from './stage.js';
import { join } from 'node:path';

export const DECODE_BENCH_FILE = 'decode-bench.json';

export interface DecodeBenchRow {
  stage: string;
  engine: 'tfjs' | 'onnx';
  /** wall and CPU seconds of each repetition, in order */
  samplesSeconds: number[];
  samplesCpuSeconds: number[];
  /** the least disturbed repetition of each */
  bestSeconds: number;
  bestCpuSeconds: number;
  outputTokens: number;
  /** FNV-1a of the batch's translations joined by newlines: every repetition must give the same text */
  hash: string;
}

export interface DecodeBenchRecord {
  what: 'decode-bench';
  spec: string;
  seeds: number[] | null;
  sentences: number;
  beamSize: number;
  reps: number;
  /** HEADS_BLAS_THREADS as the bench ran (CPU seconds count waiting BLAS threads above 1) */
  blasThreads: string | null;
  loadBefore: number[];
  loadAfter: number[];
  commit: string | null;
  /** uncommitted changes to tracked files when the bench ran */
  dirty: boolean | null;
  date: string;
  rows: DecodeBenchRow[];
}

export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

interface Decoder {
  stage: string;
  engine: 'tfjs' | 'onnx';
  translate: () => Promise<{ outputs: string[]; outputTokens: number }>;
  dispose: () => void;
}

/** The finished export stages, in spec order. */
export function finishedExports(stages: readonly ResolvedStage[]): ResolvedStage[] {
  return stages.filter((s) => s.instance.spec.kind === 'export' && stageState(s) === 'done');
}

async function openDecoder(s: ResolvedStage, sentences: number, beamSize: number | undefined): Promise<Decoder & { beamSize: number }> {
  const dir = join(s.folder, 'export');
  const loaded = loadModel(dir, () => {});
  const batch = loadCorpora(s.config.data, s.config.seed)
    .test.slice(0, sentences)
    .map((p) => p.src);
  const g: EvalConfig = { ...loaded.config.eval, beamSize: beamSize ?? loaded.config.eval.beamSize };
  if (s.instance.spec.kind === 'export' && s.instance.spec.engine === 'onnx') {
    const m = await loadOnnxModel(dir, { threads: 1 });
    loaded.model.dispose();
    return {
      stage: s.instance.id,
      engine: 'onnx',
      beamSize: g.beamSize,
      translate: async () => {
        const r = await translateWithOnnx(m, m.tokenizer, batch, g);
        return { outputs: r.outputs, outputTokens: r.stats.outputTokens };
      },
      // the ORT sessions hold no tfjs memory; they go with the process
      dispose: () => {},
    };
  }
  return {
    stage: s.instance.id,
    engine: 'tfjs',
    beamSize: g.beamSize,
    translate: async () => {
      const r = await translateSentences(loaded.model, loaded.tokenizer, batch, g);
      return { outputs: r.outputs, outputTokens: r.stats.outputTokens };
    },
    dispose: () => loaded.model.dispose(),
  };
}

/**
 * Time every finished export stage of `stages` on the same batch, rows in turns; one untimed translation
 * each first (kernels and JIT warm). Throws when there is nothing to time, when the rows disagree on the
 * beam, or when a row's repetitions give different translations.
 */
export async function benchExportStages(
  stages: readonly ResolvedStage[],
  o: {
    spec: string;
    seeds: number[] | null;
    sentences: number;
    reps: number;
    beamSize?: number;
    blasThreads: string | null;
    log: (line: string) => void;
    loadavg: () => number[];
  },
): Promise<DecodeBenchRecord> {
  const exports = finishedExports(stages);
  if (!exports.length) throw new Error('no finished export stage to time (run the study first: heads experiment run <spec>)');
  const decoders: Array<Decoder & { beamSize: number }> = [];
  try {
    for (const s of exports) decoders.push(await openDecoder(s, o.sentences, o.beamSize));
    const beams = new Set(decoders.map((d) => d.beamSize));
    if (beams.size > 1) throw new Error(`the export stages decode with different beams (${[...beams].join(', ')}); pass --beam to time them alike`);
    const rows: DecodeBenchRow[] = decoders.map((d) => ({
      stage: d.stage,
      engine: d.engine,
      samplesSeconds: [],
      samplesCpuSeconds: [],
      bestSeconds: NaN,
      bestCpuSeconds: NaN,
      outputTokens: 0,
      hash: '',
    }));
    const loadBefore = o.loadavg();
    for (const [i, d] of decoders.entries()) {
      const r = await d.translate();
      rows[i]!.hash = fnv1a(r.outputs.join('\n'));
      rows[i]!.outputTokens = r.outputTokens;
      o.log(`warm-up ${i + 1}/${decoders.length}: ${d.stage}`);
    }
    const n = decoders.length;
    for (let rep = 0; rep < o.reps; rep++) {
      for (let j = 0; j < n; j++) {
        const i = (rep + j) % n;
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const r = await decoders[i]!.translate();
        const wall = (performance.now() - t0) / 1000;
        const c = process.cpuUsage(cpu0);
        const row = rows[i]!;
        if (fnv1a(r.outputs.join('\n')) !== row.hash) throw new Error(`${row.stage}: repetition ${rep + 1} translated the batch differently from the warm-up`);
        row.samplesSeconds.push(wall);
        row.samplesCpuSeconds.push((c.user + c.system) / 1e6);
        o.log(
          `rep ${rep + 1}/${o.reps}, ${j + 1}/${n}: ${row.stage} ${wall.toFixed(2)} s, ${row.samplesCpuSeconds.at(-1)!.toFixed(2)} CPU s (load ${o.loadavg()[0]!.toFixed(2)})`,
        );
      }
    }
    for (const r of rows) {
      r.bestSeconds = Math.min(...r.samplesSeconds);
      r.bestCpuSeconds = Math.min(...r.samplesCpuSeconds);
    }
    const git = readGitInfo();
    return {
      what: 'decode-bench',
      spec: o.spec,
      seeds: o.seeds,
      sentences: o.sentences,
      beamSize: decoders[0]!.beamSize,
      reps: o.reps,
      blasThreads: o.blasThreads,
      loadBefore,
      loadAfter: o.loadavg(),
      commit: git.commit,
      dirty: git.isDirty,
      date: new Date().toISOString(),
      rows,
    };
  } finally {
    for (const d of decoders) d.dispose();
  }
}

/** The bench's table: each row's best wall and CPU seconds, sentences per CPU second, and its CPU time against its engine's float row. */
export function decodeBenchMarkdown(rec: DecodeBenchRecord, methodOf: (stage: string) => string = () => ''): string {
  const ref = (engine: string) => rec.rows.find((r) => r.engine === engine && /^float(-onnx)?(\[|$)/.test(r.stage)) ?? null;
  const lines = [
    `| stage | method | engine | best wall s | best CPU s | sentences / CPU s | CPU time vs its engine's float row | output tokens |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rec.rows) {
    const f = ref(r.engine);
    lines.push(
      `| ${r.stage} | ${methodOf(r.stage)} | ${r.engine === 'onnx' ? 'onnxruntime-node' : 'tfjs'} | ${r.bestSeconds.toFixed(2)} | ${r.bestCpuSeconds.toFixed(2)} | ${(rec.sentences / r.bestCpuSeconds).toFixed(1)} | ${f ? `${(r.bestCpuSeconds / f.bestCpuSeconds).toFixed(2)}x` : '-'} | ${r.outputTokens} |`,
    );
  }
  return lines.join('\n') + '\n';
}
