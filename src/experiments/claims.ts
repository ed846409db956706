/**
 * The paper's claims answered: each claim of the spec (`claims:`, src/experiments/spec.ts) with the
 * comparisons it rests on, every comparison decided by a rule fixed in advance, and the claim's verdict
 * derived from its comparisons' outcomes. The numbers are the report's: test BLEU per seed, the paired
 * bootstrap per seed and pooled over the seeds (src/experiments/replicates.ts), and the pooled bootstrap's
 * 95% interval of the difference.
 *
 * A comparison's outcome (ALPHA = 0.05; p is the pooled p with several seeds, the one seed's otherwise):
 *  - better: met when the difference (system - reference) is positive in every seed and p < ALPHA;
 *    contradicted when it is negative in every seed and p < ALPHA; otherwise not shown;
 *  - notWorse with margin m: met when every seed's difference is above -m and so is the interval's lower end;
 *    contradicted when every seed's difference is below -m and so is the interval's upper end; otherwise not
 *    shown;
 *  - missing when no seed has both sides' translations yet.
 * A role (claim d): met when every seed's analysis has a head with the role by the analysis's thresholds,
 * contradicted when none has one, not shown when some have; untestable where the analysis could not test it
 * (syntactic heads need parses of the source), missing without an analysis.
 *
 * A claim holds when every outcome that could be decided is met, holds in part when some are, does not hold
 * when none is, and cannot be tested when none could be decided (nothing run yet, or untestable here). It is
 * provisional while a comparison is still missing or has fewer seeds than the study.
 */
import { ConfigError } from '../util/errors.js';
import type { TestOutput } from './hyps.js';
import { BINARISED, type ResultRow } from './result-row.js';
import { formatMeanSd, formatP, meanSd, pairedTestSetPValues, REPORT_BOOTSTRAP, type PairedComparison } from './replicates.js';
import { bestHeadCell, pct, seedRoleRow, type SeedRoles } from './roles-summary.js';
import { parseClaimSide, type ClaimComparisonSpec, type ClaimSide, type ClaimSpec } from './spec.js';
import type { ResolvedStage } from './stage.js';

export const ALPHA = 0.05;

export type Outcome = 'met' | 'contradicted' | 'not shown' | 'untestable' | 'missing';
export type Verdict = 'holds' | 'holds in part' | 'does not hold' | 'cannot be tested';

export interface ComparisonResult {
  spec: ClaimComparisonSpec;
  /** the seeds the study runs this comparison's system at */
  expectedSeeds: number;
  /** per seed with both sides: the seed, the two rows */
  pairs: Array<{ seed: number | null; system: ResultRow; reference: ResultRow }>;
  /** the paired tests on the pairs with translations (null when none has them) */
  test: PairedComparison | null;
  outcome: Outcome;
}

export interface RoleResult {
  role: (typeof import('./spec.js').CLAIM_ROLES)[number];
  expectedSeeds: number;
  /** per seed analysed: heads with the role (null: not testable there) and the closest head */
  seeds: Array<{ seed: number | null; count: number | null; closest: string | null }>;
  outcome: Outcome;
  /** why the role cannot be tested here */
  reason: string | null;
}

export interface ClaimResult {
  id: string;
  spec: ClaimSpec;
  comparisons: ComparisonResult[];
  roles: RoleResult[];
  verdict: Verdict;
  /** some comparison still missing, or with fewer seeds than the study */
  provisional: boolean;
}

/** The decision rule of one comparison (see the module header). */
export function comparisonOutcome(expect: ClaimComparisonSpec['expect'], margin: number | undefined, c: PairedComparison | null): Outcome {
  if (!c || !c.diffs.length) return 'missing';
  const p = c.pooledP ?? c.pValues[0]!;
  if (expect === 'better') {
    if (c.diffs.every((d) => d > 0) && p < ALPHA) return 'met';
    if (c.diffs.every((d) => d < 0) && p < ALPHA) return 'contradicted';
    return 'not shown';
  }
  const m = margin!;
  if (c.diffs.every((d) => d > -m) && c.interval[0] > -m) return 'met';
  if (c.diffs.every((d) => d < -m) && c.interval[1] < -m) return 'contradicted';
  return 'not shown';
}

/** A claim's verdict from its outcomes (see the module header). */
export function claimVerdict(outcomes: readonly Outcome[]): Verdict {
  const decided = outcomes.filter((o) => o !== 'missing' && o !== 'untestable');
  if (!decided.length) return 'cannot be tested';
  const met = decided.filter((o) => o === 'met').length;
  return met === decided.length ? 'holds' : met > 0 ? 'holds in part' : 'does not hold';
}

const headsOf = (r: ResultRow): number =>
  r.attention
    .split('+')
    .map((a) => (a === 'enc-self' ? r.keptEnc : a === 'dec-self' ? r.keptDecSelf : a === 'dec-enc' ? r.keptDecEnc : null) ?? 0)
    .reduce((x, y) => x + y, 0);

/** The row of one seed for a side: the setting's row, its binarised row (the folded one where the gates settled), or the step keeping N heads. */
export function sideRow(side: ClaimSide, seed: number | null, rows: readonly ResultRow[]): ResultRow | null {
  const ofSeed = rows.filter((r) => (r.seed ?? null) === seed);
  const group = (r: ResultRow) => r.group ?? r.id;
  if (side.heads !== null) return ofSeed.find((r) => group(r).startsWith(`${side.setting}#`) && !r.id.endsWith(BINARISED) && headsOf(r) === side.heads) ?? null;
  if (side.binarised) return ofSeed.find((r) => group(r) === `${side.setting}${BINARISED}`) ?? ofSeed.find((r) => group(r) === side.setting) ?? null;
  return ofSeed.find((r) => group(r) === side.setting) ?? null;
}

/** The seeds of the stage instances of a setting (one null entry without seeds). */
function seedsOf(setting: string, stages: readonly ResolvedStage[]): Array<number | null> {
  return [...new Set(stages.filter((s) => s.instance.baseId === setting).map((s) => s.instance.seed))];
}

/**
 * Every claim side must be a setting of the spec's stages as written (the spec check names only stages; the
 * sweep points exist only after expansion): ConfigError naming the claim and side otherwise, before anything
 * is written. `settings`: the instances' ids without seed of the spec without preset (a preset's smaller
 * sweeps leave some comparisons missing, which its report says, rather than refusing the spec).
 */
export function checkClaimSettings(claims: Record<string, ClaimSpec> | undefined, settings: ReadonlySet<string>, specFile: string): void {
  const problems: string[] = [];
  for (const [id, c] of Object.entries(claims ?? {}))
    for (const [i, cmp] of (c.compare ?? []).entries())
      for (const key of ['system', 'reference'] as const) {
        const side = parseClaimSide(cmp[key])!;
        if (!settings.has(side.setting)) {
          const same = [...settings].filter((x) => x.split('[')[0] === side.stage);
          problems.push(
            `${specFile}: claims.${id}.compare[${i}].${key}: no setting '${side.setting}' in this study (${same.length ? `settings of ${side.stage}: ${same.join(', ')}` : `stage ${side.stage} has no instance`})`,
          );
        }
      }
  if (problems.length) throw new ConfigError(problems);
}

function compareClaim(
  cmp: ClaimComparisonSpec,
  stages: readonly ResolvedStage[],
  rows: readonly ResultRow[],
  outputs: ReadonlyMap<string, TestOutput>,
): ComparisonResult {
  const sys = parseClaimSide(cmp.system)!;
  const ref = parseClaimSide(cmp.reference)!;
  const seeds = seedsOf(sys.setting, stages);
  const pairs: ComparisonResult['pairs'] = [];
  for (const seed of seeds) {
    const system = sideRow(sys, seed, rows);
    const reference = sideRow(ref, seed, rows);
    if (system && reference) pairs.push({ seed, system, reference });
  }
  const withText = pairs.filter((p) => outputs.has(p.system.id) && outputs.has(p.reference.id));
  const test = withText.length
    ? pairedTestSetPValues(withText.map((p) => ({ system: outputs.get(p.system.id)!, reference: outputs.get(p.reference.id)! })))
    : null;
  return { spec: cmp, expectedSeeds: seeds.length, pairs: withText, test, outcome: comparisonOutcome(cmp.expect, cmp.margin, test) };
}

function rolesClaim(c: NonNullable<ClaimSpec['roles']>, stages: readonly ResolvedStage[], reports: readonly SeedRoles[]): RoleResult[] {
  const expectedSeeds = new Set(stages.filter((s) => s.instance.stage === c.of).map((s) => s.instance.seed)).size;
  const analysed = reports.filter((r) => r.stageName === c.of).map((r) => ({ r, x: seedRoleRow(r) }));
  return c.find.map((role): RoleResult => {
    const seeds = analysed.map(({ r, x }) => {
      const o = r.report.settings.roles;
      if (role === 'positional')
        return { seed: r.seed, count: x.positional, closest: x.bestPositional ? bestHeadCell(x.bestPositional, pct(o.positionalMinFraction)) : null };
      if (role === 'rare') return { seed: r.seed, count: x.rare, closest: x.bestRare ? bestHeadCell(x.bestRare, `> ${pct(o.rareMinRate)}`) : null };
      return { seed: r.seed, count: x.syntactic, closest: null };
    });
    if (!seeds.length) return { role, expectedSeeds, seeds, outcome: 'missing', reason: null };
    if (seeds.every((s) => s.count === null))
      return {
        role,
        expectedSeeds,
        seeds,
        outcome: 'untestable',
        reason: 'the analysis had no dependency parses of the source sentences (`heads analyze --conllu`)',
      };
    const counts = seeds.map((s) => s.count ?? 0);
    const outcome: Outcome = counts.every((n) => n > 0) ? 'met' : counts.every((n) => n === 0) ? 'contradicted' : 'not shown';
    return { role, expectedSeeds, seeds, outcome, reason: null };
  });
}

/** Every claim of the spec answered from the report's rows, translations and head reports. */
export function evaluateClaims(
  claims: Record<string, ClaimSpec> | undefined,
  stages: readonly ResolvedStage[],
  rows: readonly ResultRow[],
  outputs: ReadonlyMap<string, TestOutput>,
  reports: readonly SeedRoles[],
): ClaimResult[] {
  return Object.entries(claims ?? {}).map(([id, spec]) => {
    const comparisons = (spec.compare ?? []).map((cmp) => compareClaim(cmp, stages, rows, outputs));
    const roles = spec.roles ? rolesClaim(spec.roles, stages, reports) : [];
    const outcomes = [...comparisons.map((c) => c.outcome), ...roles.map((r) => r.outcome)];
    const provisional =
      outcomes.includes('missing') ||
      comparisons.some((c) => c.pairs.length < c.expectedSeeds) ||
      roles.some((r) => r.outcome !== 'untestable' && r.seeds.length < r.expectedSeeds);
    return { id, spec, comparisons, roles, verdict: claimVerdict(outcomes), provisional };
  });
}

const signed = (x: number, digits = 2) => `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;

function expectation(c: ClaimComparisonSpec): string {
  return c.expect === 'better' ? 'better' : `not worse by ${c.margin} or more`;
}

function comparisonLine(c: ComparisonResult): string {
  // a preset's smaller sweep has no instance of some settings
  const seedsCell = c.expectedSeeds ? `${c.pairs.length} of ${c.expectedSeeds}` : 'not in this run';
  if (!c.test) return `| ${c.spec.system} | ${c.spec.reference} | ${expectation(c.spec)} | ${seedsCell} | - | - | - | - | - | - | - | ${c.outcome} |`;
  const t = c.test;
  const bleu = (f: (p: ComparisonResult['pairs'][number]) => ResultRow) => formatMeanSd(meanSd(c.pairs.map((p) => f(p).bleu)), 2, false);
  const perSeed = c.pairs.map((p, i) => `${p.seed ?? '-'}: ${signed(t.diffs[i]!)}`).join(', ');
  const diff = meanSd(t.diffs)!;
  const diffCell = diff.n > 1 ? `${signed(diff.mean)} ± ${diff.sd.toFixed(2)}` : signed(diff.mean);
  return `| ${c.spec.system} | ${c.spec.reference} | ${expectation(c.spec)} | ${seedsCell} | ${bleu((p) => p.system)} | ${bleu((p) => p.reference)} | ${perSeed} | ${diffCell} | ${t.pValues.map(formatP).join(', ')} | ${t.pooledP === null ? '-' : formatP(t.pooledP)} | [${signed(t.interval[0])}, ${signed(t.interval[1])}] | ${c.outcome} |`;
}

function roleLine(r: RoleResult): string {
  const name = r.role === 'rare' ? 'rare-token' : r.role;
  const counts = r.seeds.map((s) => `${s.seed ?? '-'}: ${s.count ?? 'not tested'}`).join(', ') || '-';
  const closest =
    r.seeds
      .map((s) => (s.closest ? `${s.seed ?? '-'}: ${s.closest}` : null))
      .filter(Boolean)
      .join('<br>') || '-';
  return `| ${name} | ${r.seeds.length} of ${r.expectedSeeds} | ${counts} | ${closest} | ${r.outcome}${r.reason ? `: ${r.reason}` : ''} |`;
}

/** One sentence saying what the verdict rests on. */
export function verdictSummary(c: ClaimResult): string {
  const all = [...c.comparisons.map((x) => x.outcome), ...c.roles.map((x) => x.outcome)];
  const count = (o: Outcome) => all.filter((x) => x === o).length;
  const parts = (['met', 'not shown', 'contradicted', 'untestable', 'missing'] as const).filter((o) => count(o)).map((o) => `${count(o)} ${o}`);
  const expected = new Set(c.comparisons.map((x) => x.expectedSeeds));
  const seeds = !c.comparisons.length
    ? ''
    : expected.size === 1
      ? ` (seeds with results, per comparison: ${c.comparisons.map((x) => x.pairs.length).join(', ')} of ${[...expected][0]})`
      : ` (seeds with results, per comparison: ${c.comparisons.map((x) => `${x.pairs.length} of ${x.expectedSeeds}`).join(', ')})`;
  return `${parts.join(', ')} of ${all.length}${seeds}`;
}

/**
 * `**holds** (provisional)`; a claim nothing could decide says why: `**cannot be tested yet** (its stages
 * have not run)` or `**cannot be tested here**: <reason>`.
 */
export function verdictLabel(c: ClaimResult): string {
  if (c.verdict !== 'cannot be tested') return `**${c.verdict}**${c.provisional ? ' (provisional)' : ''}`;
  const untestable = c.roles.filter((r) => r.outcome === 'untestable');
  const missing = c.comparisons.some((x) => x.outcome === 'missing') || c.roles.some((r) => r.outcome === 'missing');
  if (missing) return '**cannot be tested yet** (what it rests on has not run)';
  return `**cannot be tested here**: ${[...new Set(untestable.map((r) => r.reason))].join('; ')}`;
}

/** The Markdown section of the claims ('' without claims). */
export function claimsSection(results: readonly ClaimResult[], specFile: string): string {
  if (!results.length) return '';
  const out = [
    "## The paper's claims",
    '',
    `Each claim as the spec states it (\`claims:\` in \`${specFile}\`) and the comparisons it rests on, every one paired within each seed on the test set: the difference of test BLEU (system − reference) per seed and its mean ± sd over the seeds, sacreBLEU's paired bootstrap p per seed and pooled over the seeds' sentences (${REPORT_BOOTSTRAP.n} resamples, seed ${REPORT_BOOTSTRAP.seed}), and the pooled bootstrap's 95% interval of the difference. The rules, fixed before the results (α = ${ALPHA}; p pooled with several seeds): *better* is met when the difference is positive in every seed and p < α, contradicted when it is negative in every seed and p < α; *not worse by m* is met when every seed's difference and the interval's lower end are above −m, contradicted when every seed's difference and the interval's upper end are below −m; anything else is not shown. A role is met when every seed's baseline has a head with it (the analysis's thresholds), contradicted when none has. A claim **holds** when every outcome that could be decided is met, **holds in part** when some are, **does not hold** when none is, and **cannot be tested** when none could be decided; it is *provisional* while a comparison is missing or has fewer seeds than the study. Both p-values treat the trained models as fixed: the seeds' spread is what "every seed" and the ± sd answer.`,
    '',
  ];
  for (const c of results) {
    out.push(`### (${c.id}) ${c.spec.statement}: ${verdictLabel(c)}`, '');
    if (c.spec.paper) out.push(`The paper: ${c.spec.paper}`, '');
    out.push(`Outcomes: ${verdictSummary(c)}.`, '');
    if (c.comparisons.length)
      out.push(
        '| system | reference | expected | seeds | system BLEU | reference BLEU | difference per seed | mean ± sd | p per seed | pooled p | 95% interval | outcome |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|',
        ...c.comparisons.map(comparisonLine),
        '',
      );
    if (c.roles.length)
      out.push(
        `| role | seeds analysed | heads with the role, per seed | closest head, per seed | outcome |`,
        '|---|---|---|---|---|',
        ...c.roles.map(roleLine),
        '',
      );
  }
  return out.join('\n');
}
