/**
 * `heads experiment run|status|report|run-stage <spec>`: run a study described by an experiment spec,
 * show its state, collect its results, or run one stage (what the runner's children and batch
 * schedulers call).
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';

import { runHandler, startBackend, installStopHandler } from '../common.js';
import { checkOutputFolder } from '../../util/dirs.js';
import { ignoredIn, intFlag, refuseIgnoredFlags } from '../options.js';
import { loadSpec, expandStages } from '../../experiments/spec.js';
import { checkClaimSettings } from '../../experiments/claims.js';
import { resolveStages, experimentRoot, stageState, selectStages } from '../../experiments/stage.js';
import { adoptFinished } from '../../experiments/equivalence.js';
import { join, relative } from 'node:path';
import { runExperiment, planTable, stageCommand, shellQuote, headsBin } from '../../experiments/runner.js';
import { runStage } from '../../experiments/run-stage.js';
import { SLURM_DEFAULTS, sbatchScript, slurmOptionProblems } from '../../experiments/sbatch.js';
import { writeReport, writeReportFigures, markdownTable } from '../../experiments/report.js';
import { hasHyps } from '../../experiments/hyps.js';
import { applyRestore, planRestore, restoredParentProblems, writeStageRecords } from '../../experiments/records.js';
import { ProgressLine } from '../../train/progress.js';
import { ConfigError, HeadsError } from '../../util/errors.js';
import { forwardStopSignals, runtimeOptions } from '../environment.js';

interface Args {
  action: 'run' | 'status' | 'report' | 'run-stage' | 'adopt';
  run?: string;
  spec: string;
  preset?: string;
  jobs: number;
  'dry-run': boolean;
  'emit-commands': boolean;
  id?: string;
  'runs-dir': string;
  out?: string;
  only?: string;
  png?: boolean;
  html?: boolean;
  seeds?: string;
  'from-hyps'?: boolean;
  merge: boolean;
  restore?: string;
  emit?: 'sbatch';
  ready: boolean;
  report: boolean;
  partition?: string;
  time: string;
  cpus: number;
  mem: string;
}

export const command = 'experiment <action> <spec>';
export const describe = 'Run a study from an experiment spec (experiments/*.yaml), show its state, or write its report';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('action', { choices: ['run', 'status', 'report', 'run-stage', 'adopt'] as const, demandOption: true })
    .positional('spec', { type: 'string', demandOption: true, describe: 'experiment spec (YAML)' })
    .option('preset', { type: 'string', describe: 'a preset of the spec, e.g. quick' })
    .option('jobs', { ...intFlag('jobs', 1), default: 1, describe: 'stages run side by side' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and stop' })
    .option('emit-commands', {
      type: 'boolean',
      default: false,
      describe:
        'print one command per stage still to run (`node bin/heads.js experiment run-stage ...`, runs as printed from here), parents first (for Slurm arrays, GNU parallel)',
    })
    .option('id', { type: 'string', describe: 'run-stage, adopt: the stage instance id (see status)' })
    .option('run', {
      type: 'string',
      describe:
        "adopt: an existing run folder whose config equals the stage's (apart from its name), or a finished stage folder with the same hash (any kind; parents first), or one that is the same computation under another hash (a raised train.maxSteps it never reached, a stopping rule that ends it alike), or a train run that reached a lower cap or that a new stopping rule would not have stopped yet, or a train stage's run stopped before its end (a signal, a kill) under another cap or stopping rule (copied, to continue from its checkpoint)",
    })
    .option('runs-dir', { type: 'string', default: 'runs', describe: 'where stage folders go' })
    .option('out', {
      type: 'string',
      describe: 'report: output folder (default: the experiment folder, runs/experiments/<study>/; with --preset P its subfolder preset-P/)',
    })
    .option('png', { type: 'boolean', default: false, describe: 'report: also render the figures as PNG (needs Chromium)' })
    .option('html', {
      type: 'boolean',
      default: true,
      describe: "report: write each figure's standalone HTML page (4.8 MB each); --no-html for results you commit",
    })
    .option('ready', {
      type: 'boolean',
      default: false,
      describe: '--emit-commands: only stages whose parents are done (a round for GNU parallel; see experiments/README.md)',
    })
    .option('emit', {
      type: 'string',
      choices: ['sbatch'] as const,
      describe: 'run: print a Slurm submission script (one job per stage, --dependency=afterok along the stage graph) instead of running',
    })
    .option('partition', { type: 'string', describe: "--emit sbatch: Slurm partition (default: the cluster's default)" })
    .option('time', { type: 'string', default: SLURM_DEFAULTS.time, describe: '--emit sbatch: time limit per stage job' })
    .option('cpus', {
      ...intFlag('cpus', 1),
      default: SLURM_DEFAULTS.cpus,
      describe: '--emit sbatch: cores per stage job (also its training workers and BLAS threads)',
    })
    .option('mem', { type: 'string', default: SLURM_DEFAULTS.mem, describe: '--emit sbatch: memory per stage job' })
    .option('report', { type: 'boolean', default: true, describe: 'run: write the report after the stages (--no-report: not, as Slurm stage jobs do)' })
    .option('seeds', {
      type: 'string',
      describe:
        "run, status, report, run-stage: replicate the study over these seeds (comma-separated, e.g. 1,2,3; replaces the spec's seed:); each stage follows its parent's seed",
    })
    .option('merge', {
      type: 'boolean',
      default: false,
      describe:
        'report: keep the rows of <out>/results.csv (re-scored from <out>/hyps/) whose stages are not done here, e.g. the seeds another session ran; rows done here replace them',
    })
    .option('restore', {
      type: 'string',
      describe:
        "run: first copy the committed stage records of an earlier report (<dir>/stages/, written by 'experiment report --out <dir>') into the runs folder where a stage is not done, so stages that need only a parent's record (layouts trained from scratch) run without re-running it",
    })
    .option('from-hyps', {
      type: 'boolean',
      describe:
        'report: rebuild every score and p-value from <out>/hyps/ and <out>/results.csv, without the run folders (default: when no stage folder is done and <out>/hyps/ exists)',
    })
    .option('only', {
      type: 'string',
      describe: 'run, status, --emit-commands: only these stages (comma-separated names or instance ids) and the parents they need',
    })
    .example('$0 experiment run experiments/voita2019-ddtp-ende.yaml --jobs 2', 'run the study')
    .example('$0 experiment status experiments/voita2019-ddtp-ende.yaml', 'what is done') as unknown as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    refuseIgnoredFlags([
      ...ignoredIn(args.action !== 'run-stage' && args.action !== 'adopt', 'only with experiment run-stage or adopt', ['id']),
      ...ignoredIn(args.action !== 'adopt', 'only with experiment adopt', ['run']),
      ...ignoredIn(args.action !== 'run', 'only with experiment run', ['jobs']),
      ...ignoredIn(args.action !== 'report' && args.action !== 'run', 'only with experiment report or run', ['merge']),
      ...ignoredIn(args.action !== 'run' || args['emit-commands'] || args.emit !== undefined, 'only with experiment run (not --emit-commands or --emit)', [
        'restore',
      ]),
    ]);
    const seeds = args.seeds === undefined ? undefined : args.seeds.split(',').map((x) => (/^\s*\d+\s*$/.test(x) ? Number(x) : NaN));
    if (seeds?.some(Number.isNaN))
      throw new ConfigError([`--seeds: expected distinct non-negative integers separated by commas (e.g. 1,2,3), found '${args.seeds}'`]);
    const spec = loadSpec(args.spec, args.preset, { seeds });
    const instances = expandStages(spec);
    const all = resolveStages(spec, instances, args['runs-dir']);
    // the claims' settings are those of the spec as written (a preset's smaller sweeps leave comparisons missing)
    checkClaimSettings(spec.claims, new Set((args.preset || seeds ? expandStages(loadSpec(args.spec)) : instances).map((i) => i.baseId)), args.spec);
    // commas inside an instance id's brackets (`l0[lambda=0.1,seed=2]`) do not separate names
    const only = (args.only ?? '')
      .split(/,(?![^[]*\])/)
      .map((x) => x.trim())
      .filter(Boolean);
    const stages = only.length && args.action !== 'report' ? selectStages(all, only, args.spec, spec) : all;
    const root = experimentRoot(spec, args['runs-dir']);
    // where this action writes must be able to exist before any stage starts
    const writes = args.action !== 'status' && !args['dry-run'] && !args['emit-commands'] && args.emit === undefined;
    if (writes) checkOutputFolder(args['runs-dir'], '--runs-dir');
    if (writes && args.out !== undefined) checkOutputFolder(args.out, '--out');
    // --restore: validated (records that belong to their stages, no stage left needing a restored parent's
    // weights) before anything is written
    const restore = args.restore !== undefined ? planRestore(stages, args.restore) : null;
    if (args.action === 'run' || args.action === 'run-stage') {
      const toRun = args.action === 'run' ? stages : stages.filter((x) => x.instance.id === args.id);
      const problems = restoredParentProblems(toRun, new Set(restore?.restore.map((r) => r.stage.instance.id) ?? []));
      if (problems.length) throw new ConfigError(problems);
    }
    if (restore && args['dry-run']) {
      for (const r of restore.restore)
        console.error(
          `[${r.stage.instance.id}] would be restored from ${r.from}${r.marker ? ` as the same computation: ${(r.marker['equivalentTo'] as { because: string }).because}` : ''}`,
        );
      for (const n of restore.notes) console.error(n);
    }
    if (args.action === 'status' || args['dry-run']) {
      console.log(planTable(stages));
      return;
    }
    if (args.emit === 'sbatch') {
      // every Slurm job resolves the spec as this run did (the same --preset and --seeds)
      const o = { partition: args.partition ?? null, time: args.time, cpus: args.cpus, mem: args.mem };
      const problems = slurmOptionProblems(o);
      if (problems.length) throw new HeadsError(problems.join('; '));
      process.stdout.write(
        sbatchScript(
          stages.filter((s) => stageState(s) !== 'done'),
          { ...o, specPath: args.spec, preset: args.preset, ...(seeds ? { seeds } : {}), runsDir: args['runs-dir'], root },
        ),
      );
      return;
    }
    if (args['emit-commands']) {
      // `node bin/heads.js ...` from the repository root (a bare `heads` is not on PATH): each line runs as printed from here
      const bin = relative(process.cwd(), headsBin());
      for (const s of stages)
        if (stageState(s) !== 'done' && (!args.ready || stageState(s) !== 'blocked'))
          console.log(shellQuote(['node', ...stageCommand(s, { specPath: args.spec, preset: args.preset, runsDir: args['runs-dir'], seeds }, bin)]));
      return;
    }
    if (args.action === 'adopt') {
      const s = stages.find((x) => x.instance.id === args.id);
      const ofStage = stages.filter((x) => x.instance.stage === args.id).map((x) => x.instance.id);
      if (!s)
        throw new HeadsError(
          args.id === undefined
            ? `adopt: --id: expected the stage instance to adopt a run for (instances: ${stages.map((x) => x.instance.id).join(', ')})`
            : ofStage.length
              ? `adopt: --id ${args.id}: expected one stage instance, found a stage with ${ofStage.length} (${ofStage.join(', ')}); give one of them`
              : `adopt: --id ${args.id}: no such stage instance (instances: ${stages.map((x) => x.instance.id).join(', ')})`,
        );
      if (!args.run) throw new HeadsError(`adopt: --run: expected the finished run folder to adopt for ${s.instance.id}`);
      console.error(adoptFinished(s, args.run, process.argv.slice(1)));
      return;
    }
    if (args.action === 'run-stage') {
      const s = stages.find((x) => x.instance.id === args.id);
      if (!s) throw new HeadsError(`${args.spec}: no stage instance '${args.id ?? ''}' (instances: ${stages.map((x) => x.instance.id).join(', ')})`);
      if (stageState(s) === 'done') {
        console.error(`${s.instance.id}: already done (${s.folder})`);
        return;
      }
      await startBackend(s.config.backend);
      const stop = installStopHandler();
      const parentPid = Number(process.env['HEADS_PARENT_PID'] ?? 0);
      // a child of a runner that died stops at the next step boundary, with a checkpoint
      const isStopRequested = () => stop() || (parentPid > 0 && process.ppid !== parentPid);
      const summary = await runStage(s, { progress: new ProgressLine(), isStopRequested, argv: process.argv.slice(1), runtime: runtimeOptions() });
      console.error(summary ? `${s.instance.id}: done (${s.folder})` : `${s.instance.id}: stopped; it resumes on the next run`);
      return;
    }
    if (args.action === 'run') {
      if (restore) applyRestore(restore, (l) => console.error(l));
      console.error(planTable(stages));
      const failed = await runExperiment(stages, {
        specPath: args.spec,
        preset: args.preset,
        seeds,
        runsDir: args['runs-dir'],
        jobs: args.jobs,
        log: (l) => console.error(l),
        argv: process.argv.slice(1),
        env: process.env,
        onStopSignal: forwardStopSignals,
      });
      if (failed) throw new HeadsError(`${failed} stage(s) failed; see their stage.log`);
      if (!args.report) return;
    }
    // a preset's report goes beside the full study's, never over it: runs/experiments/<study>/preset-<name>/
    const reportDir = args.out ?? (args.preset ? join(root, `preset-${args.preset}`) : root);
    // without run folders (a fresh clone), the committed hypotheses rebuild the report
    const fromHyps = args['from-hyps'] ?? (args.action === 'report' && !stages.some((s) => stageState(s) === 'done') && hasHyps(reportDir));
    if (fromHyps && args['from-hyps'] === undefined)
      console.error(
        `report: no stage folder is done under ${args['runs-dir']}; rebuilding from ${join(reportDir, 'hyps')} (--no-from-hyps: from the run folders only)`,
      );
    // --merge with nothing done here is the committed report rebuilt (--from-hyps)
    const { rows, csvPath, mdPath, rescored } = writeReport(stages, reportDir, {
      fromHyps,
      merge: args.merge && !fromHyps,
      claims: spec.claims,
      specFile: args.spec,
    });
    if (rescored)
      console.error(
        `report: ${args.merge ? 'kept' : 're-scored'} ${rescored.rows} committed rows from ${join(reportDir, 'hyps')}; largest change of a test BLEU against results.csv: ${rescored.maxBleuChange.toFixed(6)}`,
      );
    console.log(markdownTable(rows));
    console.error(`report: ${csvPath}, ${mdPath}`);
    const figures = await writeReportFigures(stages, rows, reportDir, { png: args.png, html: args.html });
    for (const f of figures.written)
      console.error(`figure: ${[f.files.json, f.files.html, f.files.png].filter(Boolean).join(', ')}${f.files.note ? ` (${f.files.note})` : ''}`);
    for (const s of figures.skipped) console.error(`figure skipped: ${s}`);
    // what a later session needs to go on from here (experiment run --restore <out>)
    const records = writeStageRecords(stages, reportDir);
    if (records.written)
      console.error(
        `report: ${records.written} stage record(s) in ${join(reportDir, 'stages')} (config, seed, commit, masks, curves, weights digest; no checkpoints)`,
      );
    for (const c of records.changed) console.error(`warning: ${c}`);
    for (const x of records.superseded) console.error(`report: record ${x} (the same computation under its new hash; the old record is removed)`);
  });
}
