/**
 * `--resume RUN` (heads train, heads prune): continue a run in its own folder from its newest valid
 * checkpoint. Everything is checked before anything is written: the folder, the config with the
 * `--set` overrides, and that the overrides leave the model as it is (a resumed run keeps its
 * parameters, so a change of the model's shape or gated heads is refused in one line). The resuming
 * command line is recorded only once the checkpoint is restored. An L0 prune run (parent.json beside
 * gates) resumes as a prune run: it ends with its mask and pruned scores as `heads prune` would.
 */
import { join } from 'node:path';
import { installStopHandler, startBackend } from './common.js';
import type { BackendChoice } from '../backend/select.js';
import { loadConfigOn } from '../config/load.js';
import type { ResolvedConfig } from '../config/schema.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { runTraining, type RunTrainingResult } from '../train/run-training.js';
import { runPruning } from '../train/prune.js';
import { ConfigError, HeadsError } from '../util/errors.js';
import { readJsonFile, statOrNull } from '../util/fs.js';
import { RunFolder } from '../util/run-folder.js';
import { runtimeOptions } from './environment.js';

/** Model keys a resume may change: they do not touch the parameters (dropout rates). */
const RESUMABLE_MODEL_KEYS = new Set(['dropout', 'attentionDropout']);

/** The differences between a run's saved config and a resume's that would change the model, as `key a -> b`. */
export function modelChanges(saved: ResolvedConfig, next: ResolvedConfig): string[] {
  const out: string[] = [];
  const show = (v: unknown) => JSON.stringify(v) ?? 'undefined';
  for (const key of new Set([...Object.keys(saved.model), ...Object.keys(next.model)])) {
    if (RESUMABLE_MODEL_KEYS.has(key)) continue;
    const a = (saved.model as Record<string, unknown>)[key];
    const b = (next.model as Record<string, unknown>)[key];
    if (show(a) !== show(b)) out.push(`model.${key} ${show(a)} -> ${show(b)}`);
  }
  if (show(saved.gates.attention) !== show(next.gates.attention)) out.push(`gates.attention ${show(saved.gates.attention)} -> ${show(next.gates.attention)}`);
  return out;
}

export interface ResumeArgs {
  resume: string;
  set?: string[];
  backend?: BackendChoice;
}

/** Resume a run (see the header); returns what training returned and the run folder. */
export async function resumeRun(args: ResumeArgs, argv: readonly string[]): Promise<{ result: RunTrainingResult; run: RunFolder }> {
  const configPath = join(args.resume, 'config.json');
  if (!statOrNull(configPath)) throw new HeadsError(`${args.resume}: not a run folder (no config.json)`);
  // over the defaults: a run saved before a config key existed still resumes
  const saved = loadConfigOn(readJsonFile<ResolvedConfig>(configPath), null, [], configPath);
  const overrides = [...(args.set ?? [])];
  if (args.backend) overrides.push(`backend=${args.backend}`);
  const cfg = loadConfigOn(saved, null, overrides, configPath);
  const changes = modelChanges(saved, cfg);
  if (changes.length)
    throw new ConfigError([
      `${configPath}: a resumed run keeps its model, but --set changes ${changes.join(', ')}; start a new run instead (heads train, or heads prune --from ${args.resume} to fine-tune from it)`,
    ]);
  const run = RunFolder.open(args.resume);
  const parentPath = run.file('parent.json');
  const isPruneRun = cfg.gates.attention.length > 0 && statOrNull(parentPath) !== null;
  const parent = isPruneRun ? readJsonFile<{ devSentences?: number }>(parentPath) : null;
  await startBackend(args.backend ?? cfg.backend);
  console.error(`run folder: ${run.path}`);
  const isStopRequested = installStopHandler();
  const onResumed = () => run.recordResume(cfg, argv);
  if (isPruneRun) {
    const tokenizer = BpeTokenizer.load(run.file('tokenizer.json'));
    const result = await runPruning({
      config: cfg,
      run,
      tokenizer,
      isResume: true,
      onResumed,
      isStopRequested,
      devSentences: parent?.devSentences,
      runtime: runtimeOptions(),
    });
    return { result, run };
  }
  return { result: await runTraining({ config: cfg, run, isResume: true, isStopRequested, onResumed, runtime: runtimeOptions() }), run };
}
