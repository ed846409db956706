/**
 * `heads prune --from <run>`: prune heads by fine-tuning with Hard Concrete gates (Voita et al. 2019),
 * to a lambda (`--lambda`) or to an exact head budget (`--target-heads`). The run starts from the
 * parent's config and weights; `-c` and `--set` change what differs.
 */
import { DEFAULT_ANALYSIS } from '../../config/defaults.js';
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type CommonArgs, createRun, installStopHandler, runHandler, startBackend, withCommonOptions } from '../common.js';
import { intFlag, numFlag } from '../options.js';
import { ignoredIn, isGiven, refuseIgnoredFlags } from '../options.js';
import { resumeRun } from '../resume.js';
import { loadConfigOn } from '../../config/load.js';
import { isAttentionType } from '../../config/head-id.js';
import { BpeTokenizer } from '../../data/tokenizer.js';
import { findModelCheckpoint } from '../../io/checkpoint.js';
import { runFolderOf } from '../../io/load-model.js';
import { runPruning } from '../../train/prune.js';
import { loadModel, openModelFiles } from '../../io/load-model.js';
import { loadCorpora } from '../../data/prepare.js';
import { runImportancePruning, type PruningMethod } from '../../analysis/importance-pruning.js';
import { type ImportanceForm, type ImportanceNormalization, importanceSettingProblems } from '../../analysis/importance.js';
import { importanceFlag } from '../importance-flags.js';
import type { AttentionType } from '../../config/head-id.js';
import { ConfigError, CheckpointError } from '../../util/errors.js';
import { runtimeOptions } from '../environment.js';

interface Args extends CommonArgs {
  from?: string;
  resume?: string;
  method: 'l0' | 'importance' | 'confidence' | 'random';
  'step-percent': number;
  reestimate: boolean;
  'min-heads-per-layer': number;
  'bleu-sentences': number;
  lambda?: number;
  'target-heads'?: string;
  attention?: string;
  steps?: number;
  'freeze-decoder': boolean;
  'dev-sentences'?: number;
  'importance-form'?: string;
  'importance-normalize'?: string;
}

export const command = 'prune';
export const describe = 'Prune attention heads by fine-tuning a trained model with Hard Concrete L0 gates';

export function builder(y: Argv): Argv<Args> {
  return withCommonOptions(y)
    .option('from', { type: 'string', describe: 'the converged model: a run folder or checkpoint folder (required unless --resume)' })
    .option('resume', {
      type: 'string',
      describe:
        'continue an interrupted L0 prune run folder from its newest valid checkpoint, ending with its mask and pruned scores (same as heads train --resume)',
    })
    .option('method', {
      type: 'string',
      choices: ['l0', 'importance', 'confidence', 'random'] as const,
      default: 'l0' as const,
      describe:
        'l0: Hard Concrete gates trained with an L0 penalty; importance (Michel et al.), confidence (Voita et al.) or random: remove the lowest-scoring heads step by step, no training',
    })
    .option('step-percent', {
      ...numFlag('step-percent', { above: 0, max: 100 }),
      default: DEFAULT_ANALYSIS.pruning.stepPercent,
      describe: 'importance/confidence/random: share of heads removed per step (Michel: 10)',
    })
    .option('reestimate', { type: 'boolean', default: false, describe: 'importance/confidence: re-estimate scores under the current mask after each step' })
    .option('min-heads-per-layer', {
      ...intFlag('min-heads-per-layer', 0),
      default: DEFAULT_ANALYSIS.pruning.minHeadsPerLayer,
      describe: 'importance/confidence/random: never leave a layer with fewer heads',
    })
    .option('bleu-sentences', {
      ...intFlag('bleu-sentences', 0),
      default: DEFAULT_ANALYSIS.pruning.bleuSentences,
      describe: 'importance/confidence/random: dev sentences scored (greedy) after each step',
    })
    .option(
      'importance-form',
      importanceFlag(
        'importance-form',
        `importance: example (mean over sentences of |dL(x)/dxi|, the paper's eq. 2; default), token (Michel's MT code) or batch (HF bertology)`,
      ),
    )
    .option(
      'importance-normalize',
      importanceFlag('importance-normalize', "importance: layer (l2 over the heads of a layer, as Michel's MT scripts; default) or none"),
    )
    .option('lambda', { ...numFlag('lambda', { min: 0 }), describe: 'weight of the expected-L0 penalty (train.l0Lambda)' })
    .option('target-heads', { type: 'string', describe: 'exact head budget instead of a lambda: N overall, or per type as enc-self=10,dec-enc=20' })
    .option('attention', { type: 'string', describe: 'gated attention types, comma-separated (default enc-self)' })
    .option('steps', { ...intFlag('steps', 1), describe: 'fine-tuning steps (train.maxSteps)' })
    .option('freeze-decoder', {
      type: 'boolean',
      default: true,
      describe: 'with only enc-self gated, train only the encoder and the gates (the reference recipe)',
    })
    .option('dev-sentences', { ...intFlag('dev-sentences', 1), describe: 'dev sentences scored with the pruned model (default: all)' })
    .example('$0 prune --from runs/X-train-ddtp --lambda 0.05 --steps 300', 'encoder-head pruning at lambda 0.05')
    .example(
      '$0 prune --from runs/X-quickstart-quickstart --lambda 0.05 --steps 100 --set gates.lrScale=50',
      'minutes on the quickstart model: gates.lrScale lets the gates settle in few steps (README)',
    )
    .example('$0 prune --from runs/X-train-ddtp --target-heads 10', 'keep exactly 10 encoder heads')
    .example(
      `$0 prune --from runs/X-train-ddtp --lambda 0.01 --steps 1000 --set 'gates.settle={checkEvery: 50}'`,
      'train the gates until none is strictly between 0 and 1 (at most 1000 steps)',
    )
    .example('$0 prune --resume runs/X-prune-ddtp-l0-lambda0.05', 'continue an interrupted L0 prune run') as unknown as Argv<Args>;
}

/**
 * The name of a pruning run (and of its folder, `runs/<time>-prune-<name>`): the parent's name, the
 * method and its setting, so runs at different lambdas, budgets or methods are told apart by their folders:
 * `quickstart-l0-lambda0.01`, `quickstart-l0-heads8`, `quickstart-l0-all-lambda0.005` (gates on every
 * attention type), `quickstart-importance-10pct`.
 */
export function pruneRunName(
  parent: string,
  s: {
    method: string;
    lambda?: number;
    targetHeads?: number | Record<string, number> | null;
    attention?: readonly string[];
    stepPercent?: number;
    reestimate?: boolean;
  },
): string {
  if (s.method !== 'l0') return [parent, s.method, `${s.stepPercent ?? 10}pct`, ...(s.reestimate ? ['reestimate'] : [])].join('-');
  const types = s.attention ?? ['enc-self'];
  const where = types.length === 3 ? ['all'] : types.length === 1 && types[0] === 'enc-self' ? [] : [types.join('+')];
  const t = s.targetHeads;
  const setting =
    t === null || t === undefined
      ? `lambda${s.lambda ?? 0}`
      : typeof t === 'number'
        ? `heads${t}`
        : `heads-${Object.entries(t)
            .map(([k, v]) => `${k}${v}`)
            .join('-')}`;
  return [parent, 'l0', ...where, setting].join('-');
}

/** `10` -> 10; `enc-self=10,dec-enc=4` -> { 'enc-self': 10, 'dec-enc': 4 } */
export function parseTargetHeads(text: string): number | Record<string, number> {
  if (/^\d+$/.test(text.trim())) return Number(text);
  const out: Record<string, number> = {};
  for (const part of text.split(',')) {
    const m = /^\s*([a-z-]+)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m || !isAttentionType(m[1]!))
      throw new ConfigError([`--target-heads: expected N or type=N[,type=N] with types enc-self, dec-self, dec-enc; got ${JSON.stringify(part)}`]);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    // a flag the chosen mode would ignore is refused, not dropped (--lambda beside --target-heads did nothing)
    const resuming = args.resume !== undefined;
    refuseIgnoredFlags([
      ...ignoredIn(resuming, 'not with --resume, which continues the run as it was configured (change its settings with --set, e.g. --set train.maxSteps=N)', [
        'method',
        ['config', 'c'],
        'lambda',
        'target-heads',
        'attention',
        'steps',
        'freeze-decoder',
        'dev-sentences',
        'step-percent',
        'reestimate',
        'min-heads-per-layer',
        'bleu-sentences',
        'runs-dir',
      ]),
      ...ignoredIn(
        !resuming && args.method !== 'l0',
        `only with --method l0 (got --method ${args.method}, which scores the model as it is, without fine-tuning)`,
        [['config', 'c'], 'set', 'lambda', 'target-heads', 'steps', 'freeze-decoder', 'dev-sentences'],
      ),
      ...ignoredIn(!resuming && args.method === 'l0', 'only with --method importance, confidence or random (the L0 method trains gates instead)', [
        'step-percent',
        'reestimate',
        'min-heads-per-layer',
        'bleu-sentences',
      ]),
      {
        flag: 'lambda',
        when: isGiven('target-heads'),
        because: 'not with --target-heads: an exact head budget replaces the L0 penalty weight (the lambda would be ignored); give one of them',
      },
    ]);
    if (args.resume !== undefined) {
      if (args.from !== undefined)
        throw new ConfigError(['--resume continues a prune run from its own checkpoints: give --resume RUN or --from MODEL, not both']);
      await resumeRun({ resume: args.resume, set: args.set, backend: args.backend }, process.argv.slice(1));
      return;
    }
    if (args.from === undefined)
      throw new ConfigError([
        '--from: expected the converged model to prune (a run or checkpoint folder), or --resume RUN to continue a prune run; got neither',
      ]);
    const from = args.from;
    const importanceProblems = importanceSettingProblems(args['importance-form'], args['importance-normalize'], {
      form: '--importance-form',
      normalize: '--importance-normalize',
    });
    for (const k of ['importance-form', 'importance-normalize'] as const)
      if (args[k] !== undefined && args.method !== 'importance') importanceProblems.push(`--${k}: only with --method importance (got --method ${args.method})`);
    if (importanceProblems.length) throw new ConfigError(importanceProblems);
    if (args.method !== 'l0') return pruneByScores({ ...args, from });
    const parent = findModelCheckpoint(from, (m) => console.error(`warning: ${m}`));
    const runPath = runFolderOf(parent.path);
    if (!existsSync(join(runPath, 'tokenizer.json'))) throw new CheckpointError(`${runPath}: no tokenizer.json beside the checkpoints`);
    const tokenizer = BpeTokenizer.load(join(runPath, 'tokenizer.json'));
    const attention = (args.attention ?? 'enc-self').split(',').map((s) => s.trim());
    for (const a of attention)
      if (!isAttentionType(a)) throw new ConfigError([`--attention: unknown attention type ${JSON.stringify(a)}; expected enc-self, dec-self or dec-enc`]);
    const encoderOnly = attention.length === 1 && attention[0] === 'enc-self';
    const defaults = [
      `name=${parent.state.config.name}-prune`,
      `gates.attention=${JSON.stringify(attention)}`,
      `train.trainOnly=${encoderOnly && args['freeze-decoder'] ? '[encoder, gates]' : 'null'}`,
      // the parent's early stopping is not the fine-tuning's (--set train.earlyStopping=... asks for it)
      'train.earlyStopping=null',
    ];
    const flags = [...(args.set ?? [])];
    if (args.lambda !== undefined) flags.push(`train.l0Lambda=${args.lambda}`);
    if (args['target-heads'] !== undefined) flags.push(`gates.targetHeads=${JSON.stringify(parseTargetHeads(args['target-heads']))}`);
    if (args.steps !== undefined) flags.push(`train.maxSteps=${args.steps}`);
    if (args.backend) flags.push(`backend=${args.backend}`);
    const base = loadConfigOn(parent.state.config, null, defaults, `${parent.path}/state.json`);
    const loaded = loadConfigOn(base, args.config ?? null, flags, `${parent.path}/state.json`);
    // named by method and setting unless -c / --set name=... chose a name
    const isDefaultName = loaded.name === `${parent.state.config.name}-prune`;
    const cfg = isDefaultName
      ? {
          ...loaded,
          name: pruneRunName(parent.state.config.name, {
            method: 'l0',
            lambda: loaded.train.l0Lambda,
            targetHeads: loaded.gates.targetHeads,
            attention: loaded.gates.attention,
          }),
        }
      : loaded;
    if (cfg.gates.targetHeads === null && cfg.train.l0Lambda === 0)
      throw new ConfigError(['prune: give --lambda > 0 (train.l0Lambda) or --target-heads (gates.targetHeads); with neither, nothing pushes heads closed']);
    const backend = await startBackend(args.backend ?? cfg.backend);
    const run = createRun(args, cfg, backend, 'prune');
    run.writeJson('parent.json', { checkpoint: parent.path, step: parent.state.step, devSentences: args['dev-sentences'] });
    console.error(`run folder: ${run.path}\nparent: ${parent.path} (step ${parent.state.step})`);
    const r = await runPruning({
      config: cfg,
      run,
      parent,
      tokenizer,
      isStopRequested: installStopHandler(),
      devSentences: args['dev-sentences'],
      runtime: runtimeOptions(),
    });
    if (r.stoppedEarly) return;
    console.log(
      `kept heads: ${Object.entries(r.keptHeads)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.log(`dev BLEU (pruned): ${r.devBleuPruned?.toFixed(2) ?? '-'}; test BLEU (pruned): ${r.testBleuPruned?.toFixed(2) ?? '-'}`);
    console.log(`mask: ${r.maskPath}`);
  });
}

/** Michel et al.'s schedule: remove the lowest-scoring heads, `--step-percent` at a time, scoring BLEU after each step. */
async function pruneByScores(args: ArgumentsCamelCase<Args> & { from: string }): Promise<void> {
  const files = openModelFiles(args.from, (m) => console.error(`warning: ${m}`));
  await startBackend(args.backend ?? 'auto');
  const loaded = loadModel(files);
  const cfg = loaded.config;
  const corpora = loadCorpora(cfg.data, cfg.seed);
  const stacks = (args.attention ?? 'enc-self').split(',').map((s) => s.trim());
  for (const a of stacks)
    if (!isAttentionType(a)) throw new ConfigError([`--attention: unknown attention type ${JSON.stringify(a)}; expected enc-self, dec-self or dec-enc`]);
  const name = pruneRunName(cfg.name, { method: args.method, stepPercent: args['step-percent'], reestimate: args.reestimate });
  const run = createRun(args, { ...cfg, name }, await startBackend(args.backend ?? 'auto', () => {}), 'prune');
  console.error(`run folder: ${run.path}`);
  // scores are estimated on the dev set and BLEU reported on the test set, so the ranking is not tuned on what it is judged on
  const r = await runImportancePruning({
    model: loaded.model,
    gates: loaded.gates,
    tokenizer: loaded.tokenizer,
    config: cfg,
    data: { estimate: corpora.valid, eval: corpora.test.length ? corpora.test : corpora.valid },
    method: args.method as PruningMethod,
    importanceForm: args['importance-form'] as ImportanceForm | undefined,
    importanceNormalize: args['importance-normalize'] as ImportanceNormalization | undefined,
    stepPercent: args['step-percent'],
    reestimate: args.reestimate,
    minHeadsPerLayer: args['min-heads-per-layer'],
    stacks: stacks as AttentionType[],
    bleuSentences: args['bleu-sentences'],
    run,
    seed: cfg.seed,
    onProgress: (m) => console.error(m),
  });
  for (const s of r.table) console.log(`step ${s.step}: ${s.headsKept} heads kept, BLEU ${s.bleu.toFixed(2)}, loss ${s.loss.toFixed(3)}  ${s.maskFile}`);
  console.log(`curve: ${r.curvePath}`);
}
