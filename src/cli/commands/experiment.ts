/**
 * `heads experiment run|status|report|run-stage <spec>`: run a study described by an experiment spec,
 * show its state, collect its results, or run one stage (what the runner's children and batch
 * schedulers call).
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';

import { runHandler, startBackend, installStopHandler } from '../common.js';
import { loadSpec, expandStages } from '../../experiments/spec.js';
import { resolveStages, experimentRoot, stageState, adoptRun, selectStages } from '../../experiments/stage.js';
import { runExperiment, planTable, stageCommand, shellQuote } from '../../experiments/runner.js';
import { runStage } from '../../experiments/run-stage.js';
import { writeReport, writeReportFigures, markdownTable } from '../../experiments/report.js';
import { ProgressLine } from '../../train/progress.js';
import { HeadsError } from '../../util/errors.js';

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
}

export const command = 'experiment <action> <spec>';
export const describe = 'Run a study from an experiment spec (experiments/*.yaml), show its state, or write its report';

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('action', { choices: ['run', 'status', 'report', 'run-stage', 'adopt'] as const, demandOption: true })
    .positional('spec', { type: 'string', demandOption: true, describe: 'experiment spec (YAML)' })
    .option('preset', { type: 'string', describe: 'a preset of the spec, e.g. quick' })
    .option('jobs', { type: 'number', default: 1, describe: 'stages run side by side' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and stop' })
    .option('emit-commands', { type: 'boolean', default: false, describe: 'print one heads command per stage still to run, parents first (for Slurm arrays, GNU parallel)' })
    .option('id', { type: 'string', describe: 'run-stage, adopt: the stage instance id (see status)' })
    .option('run', { type: 'string', describe: 'adopt: an existing run folder whose config equals the stage\'s (apart from its name), or a finished stage folder of another study with the same hash (any kind; parents first)' })
    .option('runs-dir', { type: 'string', default: 'runs', describe: 'where stage folders go' })
    .option('out', { type: 'string', describe: 'report: output folder (default: the experiment folder)' })
    .option('png', { type: 'boolean', default: false, describe: 'report: also render the figures as PNG (needs Chromium)' })
    .option('html', { type: 'boolean', default: true, describe: 'report: write each figure\'s standalone HTML page (4.8 MB each); --no-html for results you commit' })
    .option('only', { type: 'string', describe: 'run, status, --emit-commands: only these stages (comma-separated names or instance ids) and the parents they need' })
    .example('$0 experiment run experiments/voita2019-ddtp-ende.yaml --jobs 2', 'run the study')
    .example('$0 experiment status experiments/voita2019-ddtp-ende.yaml', 'what is done') as unknown as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    const spec = loadSpec(args.spec, args.preset);
    const all = resolveStages(spec, expandStages(spec), args['runs-dir']);
    const stages = args.only && args.action !== 'report' ? selectStages(all, args.only.split(',').map((x) => x.trim()).filter(Boolean), args.spec) : all;
    const root = experimentRoot(spec, args['runs-dir']);
    if (args.action === 'status' || args['dry-run']) {
      console.log(planTable(stages));
      return;
    }
    if (args['emit-commands']) {
      for (const s of stages) if (stageState(s) !== 'done') console.log(shellQuote(stageCommand(s, { specPath: args.spec, preset: args.preset, runsDir: args['runs-dir'] })));
      return;
    }
    if (args.action === 'adopt') {
      const s = stages.find((x) => x.instance.id === args.id);
      if (!s || !args.run) throw new HeadsError(`adopt: give --id <stage> (instances: ${stages.map((x) => x.instance.id).join(', ')}) and --run <folder>`);
      adoptRun(s, args.run);
      console.error(`${s.instance.id}: adopted ${args.run}`);
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
      const summary = await runStage(s, { progress: new ProgressLine(), isStopRequested, argv: process.argv.slice(1) });
      console.error(summary ? `${s.instance.id}: done (${s.folder})` : `${s.instance.id}: stopped; it resumes on the next run`);
      return;
    }
    if (args.action === 'run') {
      console.error(planTable(stages));
      const failed = await runExperiment(stages, { specPath: args.spec, preset: args.preset, runsDir: args['runs-dir'], jobs: args.jobs, log: (l) => console.error(l) });
      if (failed) throw new HeadsError(`${failed} stage(s) failed; see their stage.log`);
    }
    const { rows, csvPath, mdPath } = writeReport(stages, args.out ?? root);
    console.log(markdownTable(rows));
    console.error(`report: ${csvPath}, ${mdPath}`);
    const figures = await writeReportFigures(stages, rows, args.out ?? root, { png: args.png, html: args.html });
    for (const f of figures.written) console.error(`figure: ${[f.files.json, f.files.html, f.files.png].filter(Boolean).join(', ')}${f.files.note ? ` (${f.files.note})` : ''}`);
    for (const s of figures.skipped) console.error(`figure skipped: ${s}`);
  });
}
