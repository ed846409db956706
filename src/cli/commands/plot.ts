/**
 * `heads plot <kind> <run folder or file...>`: draw a figure from result files and write it as JSON, a
 * standalone HTML page and (with --png, when Chromium is installed) a PNG, by default into the run
 * folder's plots/. Kinds: training curves, gate trajectories, a layer x head heatmap of a score,
 * attention maps of a sentence, BLEU against heads kept, heads kept per type, and a head mask.
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { type BackendChoice, BACKEND_CHOICES } from '../../backend/select.js';
import { runHandler, startBackend } from '../common.js';
import { checkOutputFolder } from '../../util/dirs.js';
import { ignoredIn, numFlag, refuseIgnoredFlags } from '../options.js';
import { readHeadMask } from '../../io/head-mask.js';
import { loadModel, openModelFiles } from '../../io/load-model.js';
import { ConfigError, DataError } from '../../util/errors.js';
import { readJsonFile } from '../../util/fs.js';
import {
  type BleuPoint,
  type FigureSpec,
  PngRenderer,
  attentionMapFigure,
  bleuPointsFromPruningCurve,
  bleuPointsFromResults,
  bleuVsHeadsFigure,
  chromiumMissingMessage,
  closingOrder,
  closingOrderFigure,
  keepRuleOf,
  expectedOpenHeadsFigure,
  gateTrajectories,
  headHeatmap,
  keptPerTypeFigure,
  maskMap,
  parseExperimentResults,
  parsePruningCurve,
  readAttentionMaps,
  readExperimentResults,
  readGateTrajectory,
  readGateSettings,
  readHeadScores,
  readMetrics,
  resolveInputFile,
  selectScore,
  shapeFromConfig,
  trainingCurves,
  writeFigure,
} from '../../plots/index.js';
import { sentenceAttention } from '../../analysis/sentence-attention.js';
import { readTextFile } from '../../util/fs.js';

export const PLOT_KINDS = ['training', 'gates', 'heatmap', 'attention', 'bleu-vs-heads', 'heads-per-type', 'mask'] as const;
export type PlotKind = (typeof PLOT_KINDS)[number];

interface Args {
  kind: PlotKind;
  inputs: string[];
  out?: string;
  name?: string;
  png: boolean;
  scale: number;
  chromium?: string;
  title?: string;
  score?: string;
  threshold?: number;
  sentence?: string;
  target?: string;
  heads?: string;
  method?: string[];
  metric: 'bleu' | 'bleuTokLc';
  backend: BackendChoice;
}

export const command = 'plot <kind> <inputs..>';
export const describe = 'Draw a figure from a run folder or result files: JSON + standalone HTML (+ PNG with --png)';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('kind', { choices: PLOT_KINDS, demandOption: true, describe: 'which figure' })
    .positional('inputs', { type: 'string', array: true, demandOption: true, describe: 'run folder(s) or file(s)' })
    .option('out', { alias: 'o', type: 'string', describe: 'output folder (default: <run folder>/plots)' })
    .option('name', { type: 'string', describe: 'file name without extension (default: per kind)' })
    .option('png', { type: 'boolean', default: false, describe: 'also render a PNG with headless Chromium' })
    .option('scale', { ...numFlag('scale', { above: 0, max: 10 }), default: 2, describe: 'PNG pixels per CSS pixel' })
    .option('chromium', { type: 'string', describe: 'Chromium executable (default: /usr/bin/chromium, ...)' })
    .option('title', { type: 'string', describe: 'figure title (default: per kind)' })
    .option('score', { type: 'string', describe: 'heatmap: the score column (e.g. pOpen, importance_per_token)' })
    .option('threshold', {
      ...numFlag('threshold', { min: 0, max: 1 }),
      describe: "gates: count a head closed below this P(open) (default: the run's own rule, P(g=1) > P(g=0) or its head budget)",
    })
    .option('sentence', { type: 'string', describe: 'attention: the source sentence' })
    .option('target', { type: 'string', describe: 'attention: the target sentence (default: the greedy translation)' })
    .option('heads', { type: 'string', describe: 'attention: head keys, e.g. enc-self.0.1,dec-enc.1.0 (default: last dec-enc layer)' })
    .option('method', { type: 'string', array: true, describe: 'bleu-vs-heads: series name of each pruning-curve input, in order' })
    .option('metric', { type: 'string', choices: ['bleu', 'bleuTokLc'] as const, default: 'bleu' as const, describe: 'experiment BLEU column' })
    .option('backend', { type: 'string', choices: BACKEND_CHOICES as BackendChoice[], default: 'auto' as BackendChoice, describe: 'attention: tfjs backend' })
    .example('$0 plot training runs/X-quickstart --png', 'loss, dev BLEU and tokens/s against the step')
    .example('$0 plot gates runs/X-prune', 'P(open) trajectories, closing order, expected open heads')
    .example('$0 plot heatmap runs/X-analyze --score importance_per_token', 'layer x head heatmap of a score')
    .example('$0 plot attention runs/X-quickstart --sentence "the cat sleeps ."', 'attention maps of one sentence')
    .example('$0 plot bleu-vs-heads runs/experiments/E/results.csv', 'BLEU against heads kept, one line per method')
    .strict() as unknown as Argv<Args>;
}

/** The default output folder: `<run folder>/plots` (the input folder, or the folder of the input file). */
export function defaultOutDir(input: string): string {
  const p = resolve(input);
  const folder = existsSync(p) && statSync(p).isDirectory() ? p : dirname(p);
  return join(folder, 'plots');
}

interface Figure {
  name: string;
  spec: FigureSpec;
}

/** Points of one bleu-vs-heads input: results.csv, pruning-curve.csv, or a folder holding either. */
function bleuPointsOf(input: string, method: string | undefined, metric: 'bleu' | 'bleuTokLc'): BleuPoint[] {
  const file = resolveInputFile(input, ['results.csv', 'pruning-curve.csv'], 'results.csv or pruning-curve.csv');
  const text = readTextFile(file, 'results');
  const header = text.split('\n', 1)[0] ?? '';
  if (/(^|,)heads_kept(,|$)/.test(header)) {
    // the method of a pruning curve: --method, else pruning-result.json beside it, else the folder name
    let name = method;
    const result = join(dirname(file), 'pruning-result.json');
    if (!name && existsSync(result)) {
      const r = readJsonFile<unknown>(result, 'pruning result');
      const settings = typeof r === 'object' && r !== null ? (r as { settings?: { method?: unknown } }).settings : undefined;
      if (typeof settings?.method === 'string') name = settings.method;
    }
    return bleuPointsFromPruningCurve(parsePruningCurve(text, file), name ?? basename(dirname(file)));
  }
  return bleuPointsFromResults(parseExperimentResults(text, file), { metric });
}

async function buildFigures(args: ArgumentsCamelCase<Args>): Promise<Figure[]> {
  const input = args.inputs[0]!;
  const title = args.title;
  switch (args.kind) {
    case 'training':
      return [{ name: 'training-curves', spec: trainingCurves(readMetrics(input), { title }) }];
    case 'gates': {
      const traj = readGateTrajectory(input);
      // the rule the run applied (its config.json: gates.beta, gates.targetHeads), unless --threshold replaces it
      const rule = args.threshold !== undefined ? { pOpen: args.threshold, targetHeads: null } : keepRuleOf(readGateSettings(input));
      const out: Figure[] = [
        { name: 'gate-trajectories', spec: gateTrajectories(traj, { title, rule, ...(args.threshold !== undefined ? { threshold: args.threshold } : {}) }) },
        { name: 'gate-closing-order', spec: closingOrderFigure(closingOrder(traj, rule), { rule }) },
      ];
      const metrics = existsSync(input) && statSync(input).isDirectory() ? join(input, 'metrics.jsonl') : join(dirname(input), 'metrics.jsonl');
      if (existsSync(metrics)) {
        const log = readMetrics(metrics);
        if (log.train.some((r) => r.expectedOpenHeads !== undefined)) out.push({ name: 'expected-open-heads', spec: expectedOpenHeadsFigure(log) });
      }
      return out;
    }
    case 'heatmap': {
      const table = readHeadScores(input);
      if (!args.score) throw new ConfigError([`--score: name the score to draw; ${table.source} has: ${table.columns.join(', ')}`]);
      const scores = selectScore(table, args.score);
      return [{ name: `heatmap-${args.score.replace(/[^A-Za-z0-9_.-]+/g, '-')}`, spec: headHeatmap(scores, { title }) }];
    }
    case 'attention': {
      if (existsSync(input) && statSync(input).isFile() && input.endsWith('.json'))
        return [{ name: 'attention', spec: attentionMapFigure(readAttentionMaps(input), { title }) }];
      if (!args.sentence) throw new ConfigError(['--sentence: give the source sentence whose attention to draw (or pass an attention-map JSON file)']);
      const files = openModelFiles(input, (m) => console.error(`warning: ${m}`));
      await startBackend(args.backend);
      const loaded = loadModel(files);
      try {
        const heads = args.heads
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const r = await sentenceAttention(loaded, { src: args.sentence, tgt: args.target }, { heads, eval: loaded.config.eval });
        console.error(`source: ${r.source}\ntarget${r.isTranslated ? ' (greedy translation)' : ''}: ${r.target}`);
        return [{ name: 'attention', spec: attentionMapFigure(r.maps, { title }) }];
      } finally {
        loaded.gates?.dispose();
        loaded.model.dispose();
      }
    }
    case 'bleu-vs-heads': {
      const points = args.inputs.flatMap((p, i) => bleuPointsOf(p, args.method?.[i], args.metric));
      if (!points.length) throw new DataError(`${args.inputs.join(', ')}: no rows with BLEU and heads kept`);
      return [
        {
          name: 'bleu-vs-heads',
          spec: bleuVsHeadsFigure(points, { title, bleuLabel: args.metric === 'bleu' ? 'test BLEU' : 'test BLEU (tokenized, lower-cased)' }),
        },
      ];
    }
    case 'heads-per-type':
      return [{ name: 'heads-per-type', spec: keptPerTypeFigure(readExperimentResults(input), { title, metric: args.metric }) }];
    case 'mask': {
      const file = resolveInputFile(input, ['mask.json'], 'mask.json');
      const cfgPath = join(dirname(file), 'config.json');
      const shape = existsSync(cfgPath) ? (shapeFromConfig(readJsonFile<unknown>(cfgPath, 'config')) ?? undefined) : undefined;
      return [{ name: 'mask-map', spec: maskMap(readHeadMask(file), { title, shape }) }];
    }
  }
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    refuseIgnoredFlags([
      ...ignoredIn(args.kind !== 'attention', 'only with plot attention', ['sentence', 'target', 'heads', 'backend']),
      ...ignoredIn(args.kind !== 'heatmap', 'only with plot heatmap', ['score']),
      ...ignoredIn(args.kind !== 'gates', 'only with plot gates', ['threshold']),
      ...ignoredIn(args.kind !== 'bleu-vs-heads', 'only with plot bleu-vs-heads', ['method']),
      ...ignoredIn(args.kind !== 'bleu-vs-heads' && args.kind !== 'heads-per-type', 'only with plot bleu-vs-heads or heads-per-type', ['metric']),
      ...ignoredIn(!args.png, 'only with --png', ['scale', 'chromium']),
    ]);
    if (args.out) checkOutputFolder(args.out, '--out');
    if (args.inputs.length > 1 && args.kind !== 'bleu-vs-heads')
      throw new ConfigError([`${args.kind}: takes one run folder or file, got ${args.inputs.length}`]);
    const figures = await buildFigures(args);
    const outDir = args.out ?? defaultOutDir(args.inputs[0]!);
    const renderer = args.png ? await PngRenderer.open({ chromiumPath: args.chromium }) : null;
    if (args.png && !renderer) console.error(chromiumMissingMessage(args.chromium ? [args.chromium] : undefined));
    try {
      for (const f of figures) {
        const name = args.name && figures.length === 1 ? args.name : args.name ? `${args.name}-${f.name}` : f.name;
        const w = await writeFigure(f.spec, join(outDir, name), { png: renderer !== null, renderer, scale: args.scale });
        console.log([w.json, w.html, w.png].filter(Boolean).join('\n'));
        if (w.note) console.error(w.note);
      }
    } finally {
      await renderer?.close();
    }
  });
}
