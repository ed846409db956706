/**
 * `heads analyze <run or checkpoint> --data <dev set>`: the head report (JSON + CSV), its figures
 * (a layer x head heatmap per score, the roles map, attention maps of chosen sentences) and a summary
 * table of the top heads per score. A thin shell over `analyzeHeads` (src/analysis/analyze.ts).
 */
import { DEFAULT_ANALYSIS } from '../../config/defaults.js';
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type BackendChoice, BACKEND_CHOICES } from '../../backend/select.js';
import { runHandler, startBackend } from '../common.js';
import { checkOutputFolder, makeDirs } from '../../util/dirs.js';
import { ignoredIn, intFlag, numFlag, refuseIgnoredFlags } from '../options.js';
import { loadModel, openModelFiles } from '../../io/load-model.js';
import { ATTENTION_TYPES, type AttentionType, isAttentionType } from '../../config/head-id.js';
import type { ResolvedConfig } from '../../config/schema.js';
import { readParallelCorpus, type SentencePair } from '../../data/corpus.js';
import { corpusSpec, loadCorpora } from '../../data/prepare.js';
import type { BpeTokenizer } from '../../data/tokenizer.js';
import { RunFolder } from '../../util/run-folder.js';
import { ConfigError, DataError } from '../../util/errors.js';
import { FOREIGN_TEXT_UNKNOWN_RATE, describeCoverage, unknownTokenRate } from '../../data/coverage.js';
import { analyzeHeads, trainingFrequencies } from '../../analysis/analyze.js';
import { readConllu } from '../../analysis/conllu.js';
import { ABLATION_METRICS, type AblationMetric, DEFAULT_ABLATION_METRIC } from '../../analysis/batched-ablation.js';
import { RELEVANCE_RULES, type RelevanceRule } from '../../analysis/lrp.js';
import { type ImportanceForm, type ImportanceNormalization, importanceSettingProblems } from '../../analysis/importance.js';
import { importanceFlag } from '../importance-flags.js';
import { type HeadReport, SCORE_COLUMNS, scoreColumn, topHeads, writeHeadReport, writeHeadReportCsv } from '../../analysis/report.js';
import { attentionMaps } from '../../analysis/attention-pass.js';
import { writeHeadReportFigures } from '../../plots/head-report.js';
import { headLayout, parseHeadList } from '../../config/head-layout.js';
import { testGateMultipliers } from '../../analysis/multipliers.js';

interface Args {
  model: string;
  data?: string;
  'split-name': string;
  sentences?: number;
  conllu?: string;
  'attention-sentences'?: string;
  heads?: string;
  out?: string;
  'runs-dir': string;
  stacks?: string;
  'train-data'?: string;
  rare: boolean;
  /** 'loss' | 'bleu'; false with --no-ablation (true, from a direct call: the default metric) */
  ablation: string | boolean;
  'bleu-sentences': number;
  lrp: boolean;
  'lrp-rule': RelevanceRule;
  'lrp-sentences': number;
  'max-tokens'?: number;
  'label-smoothing'?: number;
  'importance-form'?: string;
  'importance-normalize'?: string;
  'positional-threshold': number;
  'rare-threshold': number;
  'rare-min-rank': number;
  'syntactic-gain': number;
  'syntactic-min-instances': number;
  figures: boolean;
  'html-per-score': boolean;
  top: number;
  backend: BackendChoice;
  quiet: boolean;
}

export const command = 'analyze <model>';
export const describe = 'Score every attention head (gates, Michel importance, confidence, entropy, ablation, LRP) and find roles';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('model', { type: 'string', demandOption: true, describe: 'run folder or checkpoint folder' })
    .option('data', {
      alias: 'd',
      type: 'string',
      describe: "split to analyse: Moses prefix (dir/valid -> valid.en + valid.de) or .tsv (default: the model config's valid split)",
    })
    .option('split-name', { type: 'string', default: 'dev', describe: 'name of the split, recorded in the report' })
    .option('sentences', { alias: 'n', ...intFlag('sentences', 1), describe: 'analyse only the first N sentences' })
    .option('conllu', { type: 'string', describe: 'CoNLL-U parses of the source sentences (same order) for syntactic heads' })
    .option('attention-sentences', { type: 'string', describe: 'sentence indices (0-based) for attention maps, e.g. 3,17 (default 0)' })
    .option('heads', { type: 'string', describe: 'heads for attention maps, e.g. enc-self.0.1,dec-enc.1.0 (default: the 4 most confident)' })
    .option('out', { alias: 'o', type: 'string', describe: 'output folder (default: a new run folder under --runs-dir)' })
    .option('runs-dir', { type: 'string', default: 'runs', describe: 'where run folders are created' })
    .option('stacks', { type: 'string', describe: `attention types, comma-separated (default: all of ${ATTENTION_TYPES.join(', ')})` })
    .option('train-data', { type: 'string', describe: "training corpus for token frequencies (default: the model config's train split)" })
    .option('rare', { type: 'boolean', default: true, describe: 'rare-token statistics (needs the training corpus); --no-rare skips them' })
    .option('ablation', {
      type: 'string',
      default: DEFAULT_ABLATION_METRIC,
      describe:
        'remove each head alone and measure: loss (dev loss, many heads per forward pass; default) or bleu (also greedy dev BLEU per head, one translation of the BLEU sentences per head: much slower); --no-ablation skips it',
    })
    .option('bleu-sentences', {
      ...intFlag('bleu-sentences', 0),
      default: DEFAULT_ANALYSIS.ablation.bleuSentences,
      describe: 'with --ablation bleu: greedy BLEU of ablations on the first N sentences',
    })
    .option('lrp', { type: 'boolean', default: true, describe: 'LRP relevance of the top-1 logit; --no-lrp skips it' })
    .option('lrp-rule', {
      type: 'string',
      choices: RELEVANCE_RULES as RelevanceRule[],
      default: DEFAULT_ANALYSIS.lrp.rule as RelevanceRule,
      describe: 'lrp: frozen attention weights and LayerNorm scales (Ali et al. 2022); gradient-x-input: plain',
    })
    .option('lrp-sentences', { ...intFlag('lrp-sentences', 0), default: DEFAULT_ANALYSIS.lrp.sentences, describe: 'LRP on the first N sentences' })
    .option('max-tokens', { ...intFlag('max-tokens', 1), describe: 'padded tokens per batch (default: train.maxTokensPerBatch)' })
    .option('label-smoothing', {
      ...numFlag('label-smoothing', { min: 0, below: 1 }),
      describe: 'loss for Michel importance (default: train.labelSmoothing; 0 = NLL)',
    })
    .option(
      'importance-form',
      importanceFlag(
        'importance-form',
        `Michel importance reported as "importance": example (mean over sentences of |dL(x)/dxi|, the paper's eq. 2; default), token (Michel's MT code) or batch (HF bertology); every form is in the report`,
      ),
    )
    .option('importance-normalize', importanceFlag('importance-normalize', "layer (l2 over the heads of a layer, as Michel's MT scripts; default) or none"))
    .option('positional-threshold', {
      ...numFlag('positional-threshold', { min: 0, max: 1 }),
      default: DEFAULT_ANALYSIS.roles.positionalMinFraction,
      describe: 'share at offset -1 or +1 for a positional head',
    })
    .option('rare-threshold', {
      ...numFlag('rare-threshold', { min: 0, max: 1 }),
      default: DEFAULT_ANALYSIS.roles.rareMinRate,
      describe: 'rare-token rate above which a head is a rare-token head',
    })
    .option('rare-min-rank', {
      ...intFlag('rare-min-rank', 0),
      default: DEFAULT_ANALYSIS.roles.rareMinRank,
      describe: 'count queries whose rarest token ranks beyond this (paper: 500)',
    })
    .option('syntactic-gain', {
      ...numFlag('syntactic-gain', { min: 0, max: 1 }),
      default: DEFAULT_ANALYSIS.roles.syntacticMinGain,
      describe: 'accuracy gain over the best fixed-offset baseline (absolute)',
    })
    .option('syntactic-min-instances', {
      ...intFlag('syntactic-min-instances', 0),
      default: DEFAULT_ANALYSIS.roles.syntacticMinInstances,
      describe: 'fewest relation instances for a syntactic decision',
    })
    .option('figures', { type: 'boolean', default: true, describe: 'write plotly figures (HTML + JSON); --no-figures skips them' })
    .option('html-per-score', {
      type: 'boolean',
      default: false,
      describe: 'also a standalone HTML per score (4.8 MB each; the JSON specs are always written)',
    })
    .option('top', { ...intFlag('top', 1), default: 5, describe: 'heads per score in the summary table' })
    .option('backend', { type: 'string', choices: BACKEND_CHOICES as BackendChoice[], default: 'auto' as BackendChoice })
    .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' })
    .example('$0 analyze runs/20261124-072730-quickstart-quickstart', 'analyse the quickstart model on its dev split')
    .example('$0 analyze runs/x --data ../shared/data/ddtp/en-de/valid -n 500 --conllu valid.en.conllu', 'with syntactic heads')
    .strict() as unknown as Argv<Args>;
}

/** The ablation metric of `--ablation` (checked: loss or bleu; ConfigError otherwise). */
function ablationMetricOf(value: string | boolean): AblationMetric {
  if (value === true || value === false || value === '') return DEFAULT_ABLATION_METRIC;
  if (!(ABLATION_METRICS as readonly string[]).includes(value))
    throw new ConfigError([`--ablation: expected ${ABLATION_METRICS.join(' or ')} (or --no-ablation), got "${value}"`]);
  return value as AblationMetric;
}

function parseStacks(text: string | undefined): AttentionType[] | undefined {
  if (text === undefined) return undefined;
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = parts.filter((s) => !isAttentionType(s));
  if (bad.length) throw new ConfigError([`--stacks: unknown attention type ${bad.join(', ')} (expected ${ATTENTION_TYPES.join(', ')})`]);
  return parts as AttentionType[];
}

function parseIndices(text: string | undefined, n: number): number[] {
  if (text === undefined) return n > 0 ? [0] : [];
  const out: number[] = [];
  for (const s of text
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    if (!/^\d+$/.test(s)) throw new ConfigError([`--attention-sentences: expected 0-based sentence indices like 3,17, got "${s}"`]);
    const i = Number(s);
    if (i >= n) throw new ConfigError([`--attention-sentences: sentence ${i} out of range 0..${n - 1}`]);
    out.push(i);
  }
  return out;
}

/** The split to analyse: --data, else the config's valid split (regenerated for synthetic data). */
function loadSplit(args: Args, config: ResolvedConfig): { pairs: SentencePair[]; source: string } {
  if (args.data) return { pairs: readParallelCorpus(corpusSpec(args.data, config.data)), source: args.data };
  if (config.data.valid) return { pairs: readParallelCorpus(corpusSpec(config.data.valid, config.data)), source: config.data.valid };
  if (config.data.train === null) {
    const c = loadCorpora(config.data, config.seed);
    return { pairs: c.valid, source: c.sources.valid };
  }
  throw new ConfigError(['--data: not given, and the model config has no valid split']);
}

/** Training-corpus frequencies, or null with a warning when the corpus cannot be read. */
function loadFrequencies(
  args: Args,
  config: ResolvedConfig,
  tokenizer: BpeTokenizer,
  warn: (m: string) => void,
): { src: Int32Array; tgt: Int32Array; source: string } | null {
  if (!args.rare) return null;
  let train: SentencePair[];
  let source: string;
  if (args['train-data']) {
    train = readParallelCorpus(corpusSpec(args['train-data'], config.data));
    source = args['train-data'];
  } else if (config.data.train === null) {
    const c = loadCorpora(config.data, config.seed);
    train = c.train;
    source = c.sources.train;
  } else {
    const spec = corpusSpec(config.data.train, config.data);
    const file = spec.format === 'tsv' ? spec.path : `${spec.prefix}.${spec.srcLang}`;
    if (!existsSync(file)) {
      warn(`training corpus ${config.data.train} not found from ${process.cwd()}: no rare-token statistics (give --train-data)`);
      return null;
    }
    train = readParallelCorpus(spec);
    source = config.data.train;
  }
  return { ...trainingFrequencies(tokenizer, train), source };
}

function fmt(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(1) : Math.abs(x) >= 1 ? x.toFixed(3) : x.toPrecision(3);
}

/** Top heads per score, one line per score, and the roles found. */
export function summaryTable(report: HeadReport, n: number): string {
  const lines: string[] = [];
  const names = [
    'importance',
    'importance_per_example',
    'importance_per_token',
    'importance_per_batch',
    'confidence',
    'lrp',
    'ablation_delta_loss',
    'ablation_bleu_drop',
    'gate_p_open',
    'rare_rate',
  ];
  const width = Math.max(...names.map((s) => s.length));
  const imp = report.settings.importance;
  lines.push(
    `top ${n} heads per score (${report.data.split}, ${report.data.sentences} sentences; importance: per ${imp.form ?? 'token'}, normalisation ${imp.normalize ?? 'none'}):`,
  );
  for (const name of names) {
    const top = topHeads(report, scoreColumn(name), n);
    if (top.length) lines.push(`  ${name.padEnd(width)}  ${top.map((t) => `${t.key} ${fmt(t.value)}`).join('  ')}`);
  }
  const a = report.agreement;
  const shown = a.scores.map((name, i) => ({ name, i })).filter(({ i }) => a.spearman[i]!.some((v, j) => j !== i && v !== null));
  if (shown.length > 1) {
    // columns numbered as the rows (full score names do not fit side by side; cut ones were ambiguous)
    const rowWidth = Math.max(...shown.map((r) => r.name.length));
    const tag = (k: number) => `(${k + 1})`;
    const cell = Math.max(5, tag(shown.length - 1).length);
    lines.push('rank agreement (Spearman) between scores:');
    lines.push(`  ${''.padEnd(rowWidth + cell + 1)}  ${shown.map((_, k) => tag(k).padStart(cell)).join(' ')}`);
    for (const [k, r] of shown.entries())
      lines.push(
        `  ${tag(k).padStart(cell)} ${r.name.padEnd(rowWidth)}  ${shown.map((c) => (a.spearman[r.i]![c.i] === null ? '-' : a.spearman[r.i]![c.i]!.toFixed(2)).padStart(cell)).join(' ')}`,
      );
  }
  const roles = Object.entries(report.heads).filter(([, e]) => e.roles.labels.length);
  lines.push(roles.length ? `roles: ${roles.map(([k, e]) => `${k} (${e.roles.labels.join('; ')})`).join(', ')}` : 'roles: none found');
  return lines.join('\n');
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    // a flag the chosen switches would ignore is refused, not dropped
    refuseIgnoredFlags([
      ...ignoredIn(args.ablation === false, 'not with --no-ablation (no ablation BLEU is computed)', ['bleu-sentences']),
      ...ignoredIn(args.ablation !== false && ablationMetricOf(args.ablation) !== 'bleu', 'only with --ablation bleu (the loss ablation computes no BLEU)', [
        'bleu-sentences',
      ]),
      ...ignoredIn(!args.lrp, 'not with --no-lrp', ['lrp-rule', 'lrp-sentences']),
      ...ignoredIn(!args.rare, 'not with --no-rare (no rare-token statistics)', ['train-data', 'rare-threshold', 'rare-min-rank']),
      ...ignoredIn(!args.figures, 'not with --no-figures (no attention maps are drawn)', ['attention-sentences', 'heads', 'html-per-score']),
      ...ignoredIn(args.out !== undefined, 'not with --out, which names the output folder itself', ['runs-dir']),
    ]);
    const log = (m: string) => {
      if (!args.quiet) console.error(m);
    };
    if (args.out) checkOutputFolder(args.out, '--out');
    const files = openModelFiles(args.model, (m) => console.error(`warning: ${m}`));
    const backend = await startBackend(args.backend, log);
    const { model, tokenizer, gates, config, checkpoint, runPath } = loadModel(files);
    try {
      log(`model: ${checkpoint.path} (step ${checkpoint.state.step})`);
      const stacks = parseStacks(args.stacks);
      // yargs checks the choices when parsing; this covers the handler called directly
      const importanceProblems = importanceSettingProblems(args['importance-form'], args['importance-normalize'], {
        form: '--importance-form',
        normalize: '--importance-normalize',
      });
      if (importanceProblems.length) throw new ConfigError(importanceProblems);
      const split = loadSplit(args, config);
      const pairs = args.sentences !== undefined ? split.pairs.slice(0, args.sentences) : split.pairs;
      // text of another vocabulary makes every head a "rare-token" head and every score describe <unk>s
      const coverage = unknownTokenRate(
        tokenizer,
        pairs.flatMap((p) => [p.src, p.tgt]),
      );
      if (coverage.rate > FOREIGN_TEXT_UNKNOWN_RATE)
        throw new DataError(`${split.source}: ${describeCoverage(coverage)}; the analysis would describe <unk>s (is --data in the model's language pair?)`);
      const conlluPath = args.conllu;
      const conllu = conlluPath ? { path: conlluPath, sentences: readConllu(conlluPath) } : null;
      const layout = headLayout(config.model);
      const mapSentences = parseIndices(args['attention-sentences'], pairs.length);
      const mapHeads = args.heads ? parseHeadList(args.heads, layout) : null;
      const notes: string[] = [];
      const frequencies = loadFrequencies(args, config, tokenizer, (m) => {
        notes.push(m);
        console.error(`warning: ${m}`);
      });

      let outDir: string;
      if (args.out) {
        makeDirs(args.out);
        outDir = resolve(args.out);
      } else outDir = RunFolder.create(args['runs-dir'], `analyze-${config.name}`).path;
      const run = RunFolder.open(outDir);
      run.writeProvenance({
        config,
        argv: process.argv.slice(1),
        seed: config.seed,
        env: { backend: backend.name, backendPackage: backend.packageName, kernelFixes: backend.fixes, tfjs: tf.version_core, model: checkpoint.path },
      });

      const t0 = performance.now();
      const report = await analyzeHeads({
        model,
        gates,
        tokenizer,
        config,
        source: { runPath, checkpoint: checkpoint.path, step: checkpoint.state.step },
        split: { name: args['split-name'], source: split.source, pairs },
        stacks,
        frequencies,
        conllu,
        maxTokensPerBatch: args['max-tokens'],
        labelSmoothing: args['label-smoothing'],
        importance: {
          form: args['importance-form'] as ImportanceForm | undefined,
          normalize: args['importance-normalize'] as ImportanceNormalization | undefined,
        },
        ablation: { enabled: args.ablation !== false, metric: ablationMetricOf(args.ablation), bleuSentences: args['bleu-sentences'] },
        lrp: { enabled: args.lrp, rule: args['lrp-rule'], sentences: args['lrp-sentences'] },
        roles: {
          positionalMinFraction: args['positional-threshold'],
          rareMinRate: args['rare-threshold'],
          rareMinRank: args['rare-min-rank'],
          syntacticMinGain: args['syntactic-gain'],
          syntacticMinInstances: args['syntactic-min-instances'],
        },
        onProgress: log,
      });
      report.notes.push(...notes);
      writeHeadReport(run.file('head-report.json'), report);
      writeHeadReportCsv(run.file('head-report.csv'), report);

      if (args.figures) {
        // every score as a JSON spec; one standalone page holds them all (plotly.js is 4.8 MB per page)
        const heads = mapHeads ?? topHeads(report, scoreColumn('confidence'), 4).map((t) => t.key);
        const maps = attentionMaps(model, layout, tokenizer, pairs, mapSentences, heads, testGateMultipliers(layout, gates));
        await writeHeadReportFigures(run.file('plots'), report, SCORE_COLUMNS, maps, { htmlPerScore: args['html-per-score'] });
      }
      console.log(summaryTable(report, args.top));
      console.log(`analysed ${report.data.sentences} sentences, ${Object.keys(report.heads).length} heads in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
      console.log(`report: ${run.file('head-report.json')} (+ .csv${args.figures ? ', plots/' : ''})`);
    } finally {
      gates?.dispose();
      model.dispose();
    }
  });
}
