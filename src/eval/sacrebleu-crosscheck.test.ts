/**
 * Independent cross-check against sacreBLEU itself (Python, 2.x) on randomly generated corpora: corpus and sentence
 * BLEU, chrF (several settings, chrF++ included) and TER (every tokenizer switch) must agree to 1e-9 (the last
 * bits may differ through exp/log of the two math libraries), and signatures must agree apart from the version.
 * Skips, saying so, where `python3 -c 'import sacrebleu'` fails; .ci/run installs it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../util/random.js';
import { makeMetric, type MetricName, type MetricOptions } from './metric.js';
import { scoreFromSegmentStats, segmentStatistics } from './significance.js';

const probe = spawnSync('python3', ['-c', 'import sacrebleu; print(sacrebleu.__version__)'], { encoding: 'utf8' });
const sacrebleuVersion = probe.status === 0 ? probe.stdout.trim() : undefined;
const describeIf = sacrebleuVersion !== undefined ? describe : describe.skip;
if (sacrebleuVersion === undefined) {
  // jest shows skipped tests only as a count; say why
  console.warn('sacrebleu-crosscheck: SKIPPED, python3 cannot import sacrebleu (pip install sacrebleu==2.6.0; .ci/run installs it)');
}

const WORDS = [
  'the',
  'The',
  'cat',
  'CAT',
  'sat',
  'on',
  'mat',
  'Hello,',
  'world!',
  '(hi)',
  "don't",
  'U.S.',
  '1,000.50',
  '3.14',
  'state-of-the-art',
  '1990-1995',
  "Jim's",
  'über',
  'Straße',
  'ÄÖÜ',
  '美国',
  '众院',
  'りの',
  'カタカナ',
  '😀',
  '"quoted"',
  'end.',
  "Nima's,",
  "Jim's.",
  'a',
  'b',
  'c',
  '&amp;',
  '&quot;x&quot;',
  '<skipped>',
  'e.g.',
  ';',
  '-',
  '...',
  '¿Qué?',
  'naïve',
  '、',
  '。',
];

function sentence(rng: Rng, len: number): string {
  return Array.from({ length: len }, () => WORDS[rng.int(WORDS.length)]!).join(rng.next() < 0.1 ? '  ' : ' ');
}

/** A reference and a hypothesis made from it by substitutions, deletions, insertions and block moves. */
function pair(rng: Rng, len: number): [string, string] {
  const ref = sentence(rng, len).split(' ');
  let hyp = ref.filter(() => rng.next() > 0.1).map((w) => (rng.next() < 0.2 ? WORDS[rng.int(WORDS.length)]! : w));
  if (rng.next() < 0.3) hyp.splice(rng.int(hyp.length + 1), 0, ...sentence(rng, 1 + rng.int(3)).split(' '));
  if (hyp.length > 4 && rng.next() < 0.5) {
    const a = rng.int(hyp.length - 3);
    const block = hyp.splice(a, 1 + rng.int(3));
    hyp.splice(rng.int(hyp.length + 1), 0, ...block);
  }
  if (rng.next() < 0.05) hyp = [];
  return [ref.join(' '), hyp.join(' ')];
}

function makeCorpus(seed: number, n: number): { hyps: string[]; refs: string[][] } {
  const rng = new Rng(seed);
  const hyps: string[] = [];
  const r1: string[] = [];
  const r2: string[] = [];
  for (let i = 0; i < n; i++) {
    // mostly short sentences; some long enough for TER's beam and 50-position shift limit to matter
    const len = i % 20 === 0 ? 52 + rng.int(10) : rng.int(25);
    const [ref, hyp] = pair(rng, len);
    hyps.push(hyp);
    r1.push(ref);
    r2.push(rng.next() < 0.5 ? pair(rng, len)[0] : sentence(rng, rng.int(20)));
  }
  return { hyps, refs: [r1, r2] };
}

interface Case {
  readonly id: MetricName;
  readonly heads: MetricOptions;
  /** keyword arguments of sacrebleu.metrics.<Class> */
  readonly py: Record<string, unknown>;
}

const CASES: Case[] = [
  { id: 'bleu', heads: {}, py: {} },
  {
    id: 'bleu',
    heads: { bleu: { tokenize: 'none', lowercase: true, smoothMethod: 'floor', smoothValue: 0.2 } },
    py: { tokenize: 'none', lowercase: true, smooth_method: 'floor', smooth_value: 0.2 },
  },
  { id: 'bleu', heads: { bleu: { smoothMethod: 'add-k' } }, py: { smooth_method: 'add-k' } },
  { id: 'chrf', heads: {}, py: {} },
  { id: 'chrf', heads: { chrf: { wordOrder: 2 } }, py: { word_order: 2 } },
  { id: 'chrf', heads: { chrf: { epsSmoothing: true, beta: 1, charOrder: 4 } }, py: { eps_smoothing: true, beta: 1, char_order: 4 } },
  { id: 'chrf', heads: { chrf: { whitespace: true, lowercase: true, wordOrder: 1 } }, py: { whitespace: true, lowercase: true, word_order: 1 } },
  { id: 'ter', heads: {}, py: {} },
  { id: 'ter', heads: { ter: { normalized: true, caseSensitive: true } }, py: { normalized: true, case_sensitive: true } },
  { id: 'ter', heads: { ter: { normalized: true, asianSupport: true, noPunct: true } }, py: { normalized: true, asian_support: true, no_punct: true } },
];

const PY = `
import json, sys
from sacrebleu.metrics import BLEU, CHRF, TER
job = json.load(open(sys.argv[1], encoding='utf-8'))
out = []
for case in job['cases']:
    cls = {'bleu': BLEU, 'chrf': CHRF, 'ter': TER}[case['id']]
    m = cls(**case['py'])
    corpus = m.corpus_score(job['hyps'], job['refs']).score
    sig = str(m.get_signature())
    if case['id'] == 'bleu':
        m = cls(**case['py'], effective_order=True)
        sent = [m.sentence_score(h, [r[i] for r in job['refs']]).score for i, h in enumerate(job['hyps'])]
    else:
        # chrF and TER sentence scores are the corpus formula on one segment's statistics (what sentence_score
        # does); taking the statistics once halves the slow TER runs
        sent = [m._compute_score_from_stats(st).score for st in m._extract_corpus_statistics(job['hyps'], job['refs'])]
    out.append({'corpus': corpus, 'sentence': sent, 'signature': sig})
print(json.dumps(out))
`;

describeIf(`cross-check against sacreBLEU ${sacrebleuVersion ?? '(not installed: skipped)'} on random corpora`, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'heads-sacrebleu-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([1])('seed %d: corpus and sentence scores and signatures of every setting agree', (seed) => {
    const { hyps, refs } = makeCorpus(seed, 40);
    const job = join(dir, `job-${seed}.json`);
    writeFileSync(job, JSON.stringify({ hyps, refs, cases: CASES.map((c) => ({ id: c.id, py: c.py })) }));
    writeFileSync(join(dir, 'run.py'), PY);
    const r = spawnSync('python3', [join(dir, 'run.py'), job], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.stderr).toBe('');
    const py = JSON.parse(r.stdout) as { corpus: number; sentence: number[]; signature: string }[];
    CASES.forEach((c, k) => {
      const m = makeMetric(c.id, c.heads);
      const label = `${m.name} ${JSON.stringify(c.heads)}`;
      const stats = segmentStatistics(m, hyps, refs);
      expect([label, scoreFromSegmentStats(m, stats)]).toEqual([label, expect.closeTo(py[k]!.corpus, 9)]);
      expect(m.signature(2).replace(/\|version:.*$/, '')).toBe(py[k]!.signature.replace(/\|version:.*$/, ''));
      // sentence level: BLEU with its sentence defaults (effective order); chrF and TER are the same metric
      const ms = c.id === 'bleu' ? makeMetric(c.id, c.heads, true) : m;
      hyps.forEach((h, i) => {
        const st =
          c.id === 'bleu'
            ? ms.segmentStats(
                h,
                refs.map((s) => s[i]!),
              )
            : stats.data.subarray(i * stats.k, (i + 1) * stats.k);
        expect([label, i, ms.scoreFromStats(st)]).toEqual([label, i, expect.closeTo(py[k]!.sentence[i]!, 9)]);
      });
    });
  });
});
