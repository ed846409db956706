/**
 * Claim (d) of Voita et al. 2019 (section 5): the baseline's encoder heads with a role, per seed and over
 * seeds, from the head report (`head-report.json`) of each finished analyze stage of a baseline. A role is
 * decided by the thresholds the analysis recorded (`settings.roles`): positional (the argmax key at offset
 * -1 or +1 for at least positionalMinFraction of the queries), rare-token (the argmax key holds the
 * sentence's rarest token for more than rareMinRate of them) and syntactic (needs CoNLL-U parses of the
 * source). Where no head reaches a threshold, the closest head and its score say how far the model is from
 * the paper's role, instead of only "none".
 */
import { basename, join } from 'node:path';
import { type HeadReport, type HeadReportEntry, readHeadReport } from '../analysis/report.js';
import { RECORDS_DIR, stageFile } from './records.js';
import { formatMeanSd, meanSd } from './replicates.js';
import type { ResolvedStage } from './stage.js';

export interface SeedRoles {
  seed: number | null;
  /** the analyze stage's id and its head report's record in the results folder (`stages/<folder>/head-report.json`) */
  stage: string;
  /** the spec's name of that stage (`analyze-baseline`) */
  stageName: string;
  source: string;
  report: HeadReport;
}

/** An analyze stage of a baseline (a train stage without a parent): the analyses claim (d) and the survivors read. */
export function isBaselineAnalysis(s: ResolvedStage): boolean {
  return s.instance.spec.kind === 'analyze' && s.parent !== null && s.parent.parent === null && s.parent.instance.spec.kind === 'train';
}

/**
 * The head report of every finished analyze stage of a baseline (a train stage without a parent): from its
 * run folder, else from its committed record under `<outDir>/stages/` (so the section rebuilds without runs).
 */
export function baselineRoleReports(stages: readonly ResolvedStage[], outDir: string): SeedRoles[] {
  return roleReports(stages, outDir, isBaselineAnalysis);
}

/** The head report of every finished analyze stage that `pick` selects, as baselineRoleReports reads them. */
export function roleReports(stages: readonly ResolvedStage[], outDir: string, pick: (s: ResolvedStage) => boolean): SeedRoles[] {
  const out: SeedRoles[] = [];
  for (const s of stages) {
    if (s.instance.spec.kind !== 'analyze' || !pick(s)) continue;
    const path = stageFile(s, outDir, 'head-report.json');
    if (!path) continue;
    // named by its record in the results folder (where results.md is; the report writes the records of the
    // stages done here), not by this machine's run folder, so results.md reads the same wherever it was made
    const source = join(RECORDS_DIR, basename(s.folder), 'head-report.json');
    out.push({ seed: s.instance.seed, stage: s.instance.id, stageName: s.instance.stage, source, report: readHeadReport(path) });
  }
  return out.sort((a, b) => (a.seed ?? -1) - (b.seed ?? -1));
}

export interface Best {
  key: string;
  value: number;
  detail: string;
}

function best(
  heads: ReadonlyArray<[string, HeadReportEntry]>,
  score: (h: HeadReportEntry) => number | null,
  detail: (h: HeadReportEntry) => string,
): Best | null {
  let top: Best | null = null;
  for (const [key, h] of heads) {
    const v = score(h);
    if (v === null || !Number.isFinite(v)) continue;
    if (!top || v > top.value) top = { key, value: v, detail: detail(h) };
  }
  return top;
}

/** A fraction as a percentage with one decimal (`57.1%`). */
export const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The closest head of a role: `enc-self.5.7 57.1% (offset -1)`, with what the role needs when given. */
export function bestHeadCell(b: Best, needs?: string): string {
  return `${b.key} ${pct(b.value)} (${b.detail}${needs ? `; needs ${needs}` : ''})`;
}

/** One seed's encoder heads by role: counts against the thresholds and the closest head of each role. */
export function seedRoleRow(r: SeedRoles): {
  heads: number;
  positional: number;
  bestPositional: Best | null;
  rare: number;
  bestRare: Best | null;
  syntactic: number | null;
} {
  const enc = Object.entries(r.report.heads).filter(([, h]) => h.stack === 'enc-self');
  const o = r.report.settings.roles;
  const positional = enc.filter(
    ([, h]) => h.roles.positional !== null && h.roles.positional.fraction >= o.positionalMinFraction && h.attention.queries > 0,
  ).length;
  const rare = enc.filter(([, h]) => h.roles.rare !== null && h.roles.rare.rate > o.rareMinRate).length;
  const tested = enc.some(([, h]) => h.roles.syntactic !== null);
  return {
    heads: enc.length,
    positional,
    bestPositional: best(
      enc,
      (h) => h.roles.positional?.fraction ?? null,
      (h) => `offset ${(h.roles.positional?.offset ?? 0) > 0 ? '+' : ''}${h.roles.positional?.offset ?? '-'}`,
    ),
    rare,
    bestRare: best(
      enc,
      (h) => h.roles.rare?.rate ?? null,
      (h) => `chance ${pct(h.roles.rare?.chanceRate ?? 0)}`,
    ),
    syntactic: tested ? enc.filter(([, h]) => h.roles.syntactic?.isSyntactic).length : null,
  };
}

/** The markdown section, or null without an analysis of a baseline. */
export function rolesSection(reports: readonly SeedRoles[]): string | null {
  if (!reports.length) return null;
  const rows = reports.map((r) => ({ r, x: seedRoleRow(r) }));
  const o = reports[0]!.report.settings.roles;
  const cell = (b: Best | null) => (b ? bestHeadCell(b) : '-');
  const lines = rows.map(
    ({ r, x }) =>
      `| ${r.seed ?? '-'} | ${x.heads} | ${x.positional} | ${cell(x.bestPositional)} | ${x.rare} | ${cell(x.bestRare)} | ${x.syntactic === null ? 'not tested' : x.syntactic} | ${r.report.data.sentences} | \`${r.source}\` |`,
  );
  if (rows.length > 1) {
    const ms = (f: (x: ReturnType<typeof seedRoleRow>) => number | null) => formatMeanSd(meanSd(rows.map(({ x }) => f(x))), 1);
    const msPct = (f: (x: ReturnType<typeof seedRoleRow>) => number | null) => {
      const m = meanSd(rows.map(({ x }) => f(x)));
      return m ? formatMeanSd({ ...m, mean: 100 * m.mean, sd: 100 * m.sd }, 1) + ' %' : '-';
    };
    lines.push(
      `| mean ± sd | ${ms((x) => x.heads)} | ${ms((x) => x.positional)} | best ${msPct((x) => x.bestPositional?.value ?? null)} | ${ms((x) => x.rare)} | best ${msPct((x) => x.bestRare?.value ?? null)} | ${rows.every(({ x }) => x.syntactic === null) ? 'not tested' : ms((x) => x.syntactic)} | - | - |`,
    );
  }
  const untested = rows.every(({ x }) => x.syntactic === null);
  return [
    '## Head roles in the baseline (Voita et al. 2019, section 5; claim d)',
    '',
    `The baseline's encoder self-attention heads with a role, by the analysis's thresholds: positional when the argmax key is at offset ${o.positionalOffsets.join(' or ')} for at least ${pct(o.positionalMinFraction)} of the queries; rare-token when it holds the sentence's rarest token (training-corpus frequency) for more than ${pct(o.rareMinRate)} of them. Beside each count, the closest head and its score, so a model without such heads says how far it is from the paper's roles.${untested ? ' Syntactic heads are not tested: the analysis had no CoNLL-U parses of the source sentences (`heads analyze --conllu`).' : ''}`,
    '',
    `| seed | encoder heads | positional (>= ${pct(o.positionalMinFraction)}) | most positional head | rare-token (> ${pct(o.rareMinRate)}) | most rare-token head | syntactic | sentences | head report |`,
    '|---|---|---|---|---|---|---|---|---|',
    ...lines,
    '',
  ].join('\n');
}
