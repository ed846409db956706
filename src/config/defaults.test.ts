/**
 * The analysis and export defaults live in config/defaults.ts only: the CLI flags and the library
 * constants that fall back to them read the same values (one number of BLEU sentences after removing heads).
 */
import { describe, expect, it } from '@jest/globals';
import yargs from 'yargs';
import { DEFAULT_ANALYSIS, DEFAULT_EXPORT } from './defaults.js';
import { DEFAULT_ABLATION_BLEU_SENTENCES, DEFAULT_LRP_SENTENCES } from '../analysis/analyze.js';
import { DEFAULT_ABLATION_METRIC } from '../analysis/batched-ablation.js';
import { DEFAULT_IMPORTANCE } from '../analysis/importance.js';
import { DEFAULT_ROLE_OPTIONS } from '../analysis/roles.js';
import * as analyzeCommand from '../cli/commands/analyze.js';
import * as exportCommand from '../cli/commands/export.js';
import * as pruneCommand from '../cli/commands/prune.js';

/** The parsed defaults of a command's flags, run as `<name> [model]` without a handler. */
function defaultsOf(cmd: { command: string; builder: unknown }, argv: string[]): Record<string, unknown> {
  const name = cmd.command.split(' ')[0]!;
  return yargs([name, ...argv])
    .exitProcess(false)
    .command(cmd.command, '', cmd.builder as never)
    .parseSync() as Record<string, unknown>;
}

describe('analysis and export defaults', () => {
  it('one number of greedy-BLEU sentences after removing heads: ablation and heuristic pruning', () => {
    expect(DEFAULT_ANALYSIS.ablation.bleuSentences).toBe(DEFAULT_ANALYSIS.pruning.bleuSentences);
    expect(DEFAULT_ABLATION_BLEU_SENTENCES).toBe(DEFAULT_ANALYSIS.ablation.bleuSentences);
    expect(defaultsOf(analyzeCommand, ['m'])['bleu-sentences']).toBe(DEFAULT_ANALYSIS.ablation.bleuSentences);
    expect(defaultsOf(pruneCommand, [])['bleu-sentences']).toBe(DEFAULT_ANALYSIS.pruning.bleuSentences);
  });

  it('the analysis modules and the analyze flags fall back to DEFAULT_ANALYSIS', () => {
    expect(DEFAULT_IMPORTANCE).toEqual(DEFAULT_ANALYSIS.importance);
    expect(DEFAULT_ABLATION_METRIC).toBe(DEFAULT_ANALYSIS.ablation.metric);
    expect(DEFAULT_LRP_SENTENCES).toBe(DEFAULT_ANALYSIS.lrp.sentences);
    expect(DEFAULT_ROLE_OPTIONS).toMatchObject(DEFAULT_ANALYSIS.roles);
    const a = defaultsOf(analyzeCommand, ['m']);
    expect([
      a['lrp-rule'],
      a['lrp-sentences'],
      a['positional-threshold'],
      a['rare-threshold'],
      a['rare-min-rank'],
      a['syntactic-gain'],
      a['syntactic-min-instances'],
      a['ablation'],
    ]).toEqual([
      DEFAULT_ANALYSIS.lrp.rule,
      DEFAULT_ANALYSIS.lrp.sentences,
      DEFAULT_ANALYSIS.roles.positionalMinFraction,
      DEFAULT_ANALYSIS.roles.rareMinRate,
      DEFAULT_ANALYSIS.roles.rareMinRank,
      DEFAULT_ANALYSIS.roles.syntacticMinGain,
      DEFAULT_ANALYSIS.roles.syntacticMinInstances,
      DEFAULT_ANALYSIS.ablation.metric,
    ]);
    const p = defaultsOf(pruneCommand, []);
    expect([p['step-percent'], p['min-heads-per-layer']]).toEqual([DEFAULT_ANALYSIS.pruning.stepPercent, DEFAULT_ANALYSIS.pruning.minHeadsPerLayer]);
  });

  it('the export flags fall back to DEFAULT_EXPORT', () => {
    const e = defaultsOf(exportCommand, ['m']);
    expect([e['format'], e['verify'], e['fold-gates']]).toEqual([DEFAULT_EXPORT.format, DEFAULT_EXPORT.verify, DEFAULT_EXPORT.foldGates]);
    expect(exportCommand.compressionOptionsOf({ 'magnitude-sparsity': '0.5', 'ffn-prune': '0.25' })).toEqual({
      magnitude: { sparsity: 0.5, scope: 'global', includeEmbeddings: DEFAULT_EXPORT.pruneEmbeddings },
      ffn: { fraction: 0.25, scope: DEFAULT_EXPORT.ffnScope },
    });
  });
});
