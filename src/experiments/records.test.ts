/**
 * Stage records across sessions: a report's --out folder keeps the small files of every finished stage
 * (no weights), and `experiment run --restore <out>` on a fresh runs folder (a new machine) brings them
 * back so a layout trained from scratch runs on its pruning stage's committed mask without re-running the
 * baseline or the pruning, while a stage that needs a restored parent's weights is refused up front.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';

const dir = mkdtempSync(join(tmpdir(), 'heads-records-'));
const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
if (!built) console.warn('stage records test skipped: dist/ is not built (npm run build)');

const SPEC = `name: rec
set: { data.synthetic.task: reverse, data.synthetic.trainPairs: 300, data.synthetic.validPairs: 8, data.synthetic.testPairs: 8, data.bpeMerges: 20,
      model.dModel: 16, model.dFF: 32, model.heads: 2, model.encoderLayers: 2, model.decoderLayers: 1, train.maxTokensPerBatch: 200,
      train.evalEverySteps: 0, train.devBleuSentences: 0, train.logEverySteps: 5, eval.beamSize: 1 }
stages:
  baseline: { kind: train, set: { train.maxSteps: 20, train.checkpointEverySteps: 10 } }
  l0: { kind: prune, from: baseline, steps: 8, lambda: 0.5, attention: [enc-self, dec-self, dec-enc], set: { gates.lrScale: 20 } }
  scratch: { kind: train, fixedMaskFrom: l0, set: { train.maxSteps: 10 } }
  an: { kind: analyze, of: l0 }
`;

const heads = (args: string[]) => spawnSync('node', [bin, ...args], { encoding: 'utf8', env: { ...process.env, HEADS_CORES: '1', HEADS_BLAS_THREADS: '1' } });
const folderOf = (runs: string, prefix: string) => {
  const root = join(runs, 'experiments', 'rec');
  const name = readdirSync(root).find((n) => n.startsWith(`${prefix}-`));
  if (!name) throw new Error(`no ${prefix}-* folder in ${root}`);
  return join(root, name);
};

(built ? describe : describe.skip)('stage records across sessions', () => {
  const spec = join(dir, 'rec.yaml');
  const out = join(dir, 'results');
  writeFileSync(spec, SPEC);

  it('a report keeps each finished stage without weights; a fresh runs folder restores them and trains the scratch layout on the committed mask; the merged report keeps the committed rows', () => {
    // session 1: the baseline and the pruning, then the report that would be committed
    const a = join(dir, 'runs-a');
    const r1 = heads(['experiment', 'run', spec, '--runs-dir', a, '--only', 'l0', '--no-report']);
    expect([r1.status, r1.stderr.match(/Error.*/g)]).toEqual([0, null]);
    const rep1 = heads(['experiment', 'report', spec, '--runs-dir', a, '--out', out, '--no-html']);
    expect(rep1.status).toBe(0);
    expect(rep1.stderr).toContain(`2 stage record(s) in ${join(out, 'stages')}`);
    const records = readdirSync(join(out, 'stages')).sort();
    expect(records.map((n) => n.replace(/-[0-9a-f]+$/, ''))).toEqual(['baseline', 'l0']);
    for (const r of records) {
      const files = readdirSync(join(out, 'stages', r));
      // the provenance and the summary, never weights, the tokenizer, the log or translations (those are in hyps/)
      expect(files).toEqual(expect.arrayContaining(['stage.json', 'config.json', 'git.json', 'command.txt', 'compute.json']));
      expect(files.filter((f) => f === 'checkpoints' || f === 'tokenizer.json' || f === 'stage.log' || f.endsWith('.hyp'))).toEqual([]);
      // byte copies of the stage folder's files
      for (const f of files.filter((x) => !x.startsWith('.') && x !== 'weights.json'))
        expect(readFileSync(join(out, 'stages', r, f)).equals(readFileSync(join(folderOf(a, r.replace(/-[0-9a-f]+$/, '')), f)))).toBe(true);
    }
    // the digest of each model, as its children load it (the baseline's last checkpoint here: no early stopping)
    const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
    const baseWeights = JSON.parse(readFileSync(join(out, 'stages', records[0]!, 'weights.json'), 'utf8')) as { checkpoint: string; sha256: string };
    expect(baseWeights).toEqual(
      expect.objectContaining({ checkpoint: 'step-0000020', sha256: sha(join(folderOf(a, 'baseline'), 'checkpoints', 'step-0000020', 'model.safetensors')) }),
    );
    const l0Record = join(out, 'stages', records[1]!);
    expect(existsSync(join(l0Record, 'mask.json'))).toBe(true);
    const committedCsv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n');
    // the machine is gone
    renameSync(a, `${a}-gone`);

    // session 2, a fresh runs folder: the scratch layout alone, on the restored records
    const b = join(dir, 'runs-b');
    const r2 = heads(['experiment', 'run', spec, '--runs-dir', b, '--restore', out, '--only', 'scratch', '--no-report']);
    expect([r2.status, r2.stderr.match(/Error.*/g)]).toEqual([0, null]);
    expect(r2.stderr).toMatch(/\[baseline\] restored from .*\(its record, no checkpoints\)/);
    expect(r2.stderr).toMatch(/\[l0\] restored from /);
    expect(r2.stderr).not.toContain('[baseline] started');
    expect(r2.stderr).toContain('[scratch] done');
    for (const p of ['baseline', 'l0']) {
      expect(existsSync(join(folderOf(b, p), 'restored.json'))).toBe(true);
      expect(existsSync(join(folderOf(b, p), 'checkpoints'))).toBe(false);
    }
    // the scratch stage trained the layout of the committed mask (the head-mask file read here by its format)
    const mask = JSON.parse(readFileSync(join(l0Record, 'mask.json'), 'utf8')) as { stacks: Record<string, { layers: Array<{ kept: number[] }> }> };
    const kept = Object.fromEntries(Object.entries(mask.stacks).map(([stack, v]) => [stack, v.layers.map((l) => l.kept)]));
    expect(Object.values(kept).flat(2).length).toBeGreaterThan(0);
    const scratchCfg = JSON.parse(readFileSync(join(folderOf(b, 'scratch'), 'config.json'), 'utf8')) as { model: { keptHeads: unknown } };
    expect(scratchCfg.model.keptHeads).toEqual(kept);
    // running again restores nothing (done here now) and runs nothing
    const r3 = heads(['experiment', 'run', spec, '--runs-dir', b, '--restore', out, '--only', 'scratch', '--no-report']);
    expect(r3.status).toBe(0);
    expect(r3.stderr).not.toMatch(/restored from|started/);

    // the merged report: the committed rows of the restored stages unchanged, the scratch row added
    const rep2 = heads(['experiment', 'report', spec, '--runs-dir', b, '--out', out, '--merge', '--no-html']);
    expect(rep2.status).toBe(0);
    expect(rep2.stderr).toContain(`1 stage record(s) in ${join(out, 'stages')}`);
    const merged = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n');
    expect(merged.filter((l) => !l.startsWith('scratch,'))).toEqual(committedCsv);
    expect(merged.filter((l) => l.startsWith('scratch,'))).toHaveLength(1);
    expect(
      readdirSync(join(out, 'stages'))
        .map((n) => n.replace(/-[0-9a-f]+$/, ''))
        .sort(),
    ).toEqual(['baseline', 'l0', 'scratch']);

    // session 3 trains the baseline again: the same model bit for bit (fixed seed, one BLAS thread), so no warning
    const d = join(dir, 'runs-d');
    expect(heads(['experiment', 'run', spec, '--runs-dir', d, '--only', 'baseline', '--no-report']).status).toBe(0);
    const rep3 = heads(['experiment', 'report', spec, '--runs-dir', d, '--out', out, '--merge', '--no-html']);
    expect([rep3.status, rep3.stderr.match(/warning.*/g)]).toEqual([0, null]);
    // had an earlier session committed another model for it, the report says the stages are not comparable
    writeFileAtomic(join(out, 'stages', records[0]!, 'weights.json'), JSON.stringify({ ...baseWeights, sha256: '0'.repeat(64) }));
    const rep4 = heads(['experiment', 'report', spec, '--runs-dir', d, '--out', out, '--merge', '--no-html']);
    expect(rep4.status).toBe(0);
    expect(rep4.stderr).toMatch(
      /warning: baseline: its model \(step-0000020, sha256 \w{12}\.\.\.\) is not the one of its committed record \(step-0000020, sha256 000000000000\.\.\.\); stages run on the committed model in other sessions are not comparable/,
    );
    expect(JSON.parse(readFileSync(join(out, 'stages', records[0]!, 'weights.json'), 'utf8'))).toEqual(baseWeights);
  }, 300000);

  it("refuses, with one line and exit 2 before writing anything: a stage needing a restored parent's weights, a missing records folder, a record of another stage, --restore outside run", () => {
    const c = join(dir, 'runs-c');
    const an = heads(['experiment', 'run', spec, '--runs-dir', c, '--restore', out, '--only', 'an']);
    expect(an.status).toBe(2);
    expect(an.stderr.trim().split('\n')).toHaveLength(1);
    expect(an.stderr).toMatch(/stage an needs the checkpoint of l0, which is restored from its committed record without weights/);
    expect(existsSync(c)).toBe(false);

    const missing = heads(['experiment', 'run', spec, '--runs-dir', c, '--restore', join(dir, 'nowhere')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr.trim()).toMatch(new RegExp(`^error: --restore: ${join(dir, 'nowhere')} has no stages/ folder`));
    expect(existsSync(c)).toBe(false);

    // the l0 record filed under the scratch stage's folder name: its hash is not the scratch stage's
    const forged = join(dir, 'forged');
    cpSync(out, forged, { recursive: true });
    const names = readdirSync(join(forged, 'stages'));
    const scratchName = names.find((n) => n.startsWith('scratch-'))!;
    const l0Name = names.find((n) => n.startsWith('l0-'))!;
    cpSync(join(forged, 'stages', l0Name), join(forged, 'stages', `${scratchName}`), { recursive: true, force: true });
    const wrong = heads(['experiment', 'run', spec, '--runs-dir', c, '--restore', forged, '--only', 'scratch']);
    expect(wrong.status).toBe(2);
    expect(wrong.stderr.trim()).toMatch(
      new RegExp(
        `--restore: .*${scratchName}/stage.json: field hash: expected ${scratchName.split('-').at(-1)} \\(stage scratch as the spec resolves it\\), found "${l0Name.split('-').at(-1)}"$`,
      ),
    );
    expect(existsSync(c)).toBe(false);

    // damaged records: a mask cut short (its integrity entry says so) and a metrics line that does not parse
    // (its entry removed, as after a hand edit): every problem named, nothing copied, not even the sound records
    const damaged = join(dir, 'damaged');
    cpSync(out, damaged, { recursive: true });
    const l0Dir = join(damaged, 'stages', l0Name);
    const baseDir = join(
      damaged,
      'stages',
      names.find((n) => n.startsWith('baseline'))!,
    );
    writeFileSync(join(l0Dir, 'mask.json'), readFileSync(join(l0Dir, 'mask.json'), 'utf8').slice(0, 20));
    const integrity = JSON.parse(readFileSync(join(baseDir, '.heads-integrity.json'), 'utf8'));
    delete integrity.files['metrics.jsonl'];
    writeFileSync(join(baseDir, '.heads-integrity.json'), JSON.stringify(integrity));
    writeFileSync(join(baseDir, 'metrics.jsonl'), readFileSync(join(baseDir, 'metrics.jsonl'), 'utf8') + '{"step": 3, "loss\n');
    const nLines = readFileSync(join(baseDir, 'metrics.jsonl'), 'utf8').split('\n').length - 1;
    const bad = heads(['experiment', 'run', spec, '--runs-dir', c, '--restore', damaged, '--only', 'scratch']);
    expect(bad.status).toBe(2);
    const lines = bad.stderr.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('error: 2 problems:');
    expect(
      lines.some((l) => new RegExp(`--restore: .*${l0Name}/mask.json: damaged or changed since heads wrote it \\(cut short: 20 of \\d+ bytes\\)`).test(l)),
    ).toBe(true);
    expect(
      lines.some((l) => new RegExp(`--restore: .*/metrics.jsonl:${nLines}: expected a JSON object per line, found text that does not parse`).test(l)),
    ).toBe(true);
    expect(existsSync(c)).toBe(false);

    const report = heads(['experiment', 'report', spec, '--runs-dir', c, '--out', join(dir, 'other'), '--restore', out]);
    expect(report.status).toBe(2);
    expect(report.stderr).toMatch(/--restore/);
    expect(existsSync(join(dir, 'other'))).toBe(false);
  }, 120000);
  it("an importance stage's record keeps its masks per step, so a restored one still gives its fine-tuned masks their layouts (and hashes)", () => {
    const impSpec = join(dir, 'imp.yaml');
    writeFileSync(
      impSpec,
      SPEC.replace('name: rec', 'name: rec-imp').replace(
        /  l0:[\s\S]*$/,
        `  imp: { kind: prune, from: baseline, method: importance, attention: [enc-self], stepPercent: 50 }\n  ft: { kind: prune, method: fixed-mask, from: imp, attention: [enc-self], steps: 2, maskHeads: 2 }\n`,
      ),
    );
    const impOut = join(dir, 'imp-results');
    const root = (runs: string) => join(runs, 'experiments', 'rec-imp');
    const folderNamed = (runs: string, prefix: string) => readdirSync(root(runs)).find((n) => n.startsWith(`${prefix}-`))!;
    const e = join(dir, 'runs-e');
    const r1 = heads(['experiment', 'run', impSpec, '--runs-dir', e, '--only', 'imp', '--no-report']);
    expect([r1.status, r1.stderr.match(/Error.*/g)]).toEqual([0, null]);
    const ftFolder = (runs: string) => {
      const st = heads(['experiment', 'status', impSpec, '--runs-dir', runs]);
      expect([st.status, st.stderr.match(/error.*/g)]).toEqual([0, null]);
      return st.stdout.match(/ft-[0-9a-f]{10}/)![0];
    };
    // the fine-tune's identity includes the layout it reads from the importance stage's masks
    const ftName = ftFolder(e);
    expect(heads(['experiment', 'report', impSpec, '--runs-dir', e, '--out', impOut, '--no-html']).status).toBe(0);
    const impName = folderNamed(e, 'imp');
    const masks = readdirSync(join(root(e), impName, 'masks')).filter((f) => f.endsWith('.json'));
    expect(masks.length).toBeGreaterThan(1);
    for (const m of masks)
      expect(readFileSync(join(impOut, 'stages', impName, 'masks', m)).equals(readFileSync(join(root(e), impName, 'masks', m)))).toBe(true);
    renameSync(e, `${e}-gone`);

    // a fresh runs folder: the importance stage restored, with its masks; the fine-tune resolves to the same folder
    const f = join(dir, 'runs-f');
    const r2 = heads(['experiment', 'run', impSpec, '--runs-dir', f, '--restore', impOut, '--only', 'imp', '--no-report']);
    expect([r2.status, r2.stderr.match(/Error.*/g)]).toEqual([0, null]);
    expect(readdirSync(join(root(f), impName, 'masks')).filter((x) => x.endsWith('.json'))).toEqual(masks);
    expect(ftFolder(f)).toBe(ftName);
  }, 120000);
});
