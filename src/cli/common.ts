/**
 * What every command shares: backend start-up, config loading from --config/--set, run-folder creation
 * with provenance, SIGINT/SIGTERM handling, and the one-line error printer (HeadsError -> exit 2).
 */
import * as tf from '@tensorflow/tfjs';
import type { Argv } from 'yargs';
import { type BackendChoice, BACKEND_CHOICES, type BackendInfo } from '../backend/select.js';
import { loadConfig } from '../config/load.js';
import { initBackendFromEnv } from './environment.js';
import type { ResolvedConfig } from '../config/schema.js';
import { RunFolder } from '../util/run-folder.js';
import { isHeadsError } from '../util/errors.js';

export interface CommonArgs {
  config?: string;
  set?: string[];
  backend?: BackendChoice;
  'runs-dir': string;
  quiet?: boolean;
}

export function withCommonOptions<T>(y: Argv<T>): Argv<T & CommonArgs> {
  return y
    .option('config', { alias: 'c', type: 'string', describe: 'YAML/JSON config listing differences from the defaults' })
    .option('set', { type: 'string', array: true, describe: 'override one key, e.g. --set train.maxSteps=500 (repeatable)' })
    .option('backend', { type: 'string', choices: BACKEND_CHOICES as BackendChoice[], describe: 'tfjs backend (default: config, then auto)' })
    .option('runs-dir', { type: 'string', default: 'runs', describe: 'where run folders are created' })
    .option('quiet', { type: 'boolean', default: false, describe: 'no progress output' }) as unknown as Argv<T & CommonArgs>;
}

/** Start the backend and say which one runs. */
export async function startBackend(requested: BackendChoice, log: (m: string) => void = (m) => console.error(m)): Promise<BackendInfo> {
  tf.env().set('PROD', true); // skip per-op debug checks: measurable on long runs
  const info = await initBackendFromEnv(requested);
  log(`backend: ${info.name} (${info.packageName}${info.fixes.length ? `; fixes: ${info.fixes.join(', ')}` : ''})`);
  return info;
}

export function resolveConfig(args: CommonArgs): ResolvedConfig {
  const overrides = [...(args.set ?? [])];
  if (args.backend) overrides.push(`backend=${args.backend}`);
  return loadConfig(args.config ?? null, overrides);
}

/** Run folders this command created: a failure removes those still half-made (runHandler). */
const createdRuns: RunFolder[] = [];

export function createRun(args: CommonArgs, cfg: ResolvedConfig, backend: BackendInfo, kind: string): RunFolder {
  const run = RunFolder.create(args['runs-dir'], `${kind}-${cfg.name}`);
  createdRuns.push(run);
  run.writeProvenance({
    config: cfg,
    argv: process.argv.slice(1),
    seed: cfg.seed,
    env: { backend: backend.name, backendPackage: backend.packageName, kernelFixes: backend.fixes, tfjs: tf.version_core },
  });
  return run;
}

/**
 * First SIGINT/SIGTERM asks the loop to stop after the current step and checkpoint (or the final
 * evaluation after its current batch). A second one ends the process at once, even mid-step: once the
 * first has been handled these handlers are removed, so the next signal meets the default action (a
 * second signal already queued with the first exits here). Saved files are complete either way.
 */
export function installStopHandler(log: (m: string) => void = (m) => console.error(m)): () => boolean {
  let requested = false;
  const onInt = () => handler('SIGINT');
  const onTerm = () => handler('SIGTERM');
  const handler = (sig: string) => {
    if (requested) {
      log(`\n${sig} again: exiting now (saved files are complete; the step in progress is lost)`);
      process.exit(130);
    }
    requested = true;
    log(`\n${sig}: finishing the current step, then writing a checkpoint (press Ctrl-C again to exit at once)`);
    // after the signals read with this one (a double press) have been dispatched
    setImmediate(() => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    });
  };
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => requested;
}

/**
 * Run a handler: user errors print one line and exit 2; bugs print their stack and exit 1 (caught here
 * so that yargs does not answer an internal error with the usage text).
 */
export async function runHandler(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    // a run folder with nothing but its provenance is no run: a failed command does not leave it behind
    for (const run of createdRuns.splice(0)) run.removeIfHalfMade();
    if (isHeadsError(e)) {
      console.error(`error: ${e.message}`);
      process.exitCode = 2;
      return;
    }
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exitCode = 1;
  }
}
