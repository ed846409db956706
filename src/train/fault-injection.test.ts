/**
 * Fault injection: kill a training process at random moments and resume, many times, and check that the
 * resumed run always finds a valid checkpoint and ends with the uninterrupted run's losses; corrupt and
 * truncate checkpoint files and check that loading refuses them by name and falls back to an older one;
 * load checkpoints into models they do not fit.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, existsSync, readFileSync, writeFileSync, copyFileSync, mkdirSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Rng } from '../util/random.js';
import { CheckpointError } from '../util/errors.js';
import { readCheckpoint, findLatestValidCheckpoint } from '../io/checkpoint.js';
import { loadModel } from '../io/load-model.js';
import { useTestBackend } from '../test-utils/backend.js';

const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
const STEPS = 60;
const TINY = [
  'name=fault',
  'data.synthetic.task=reverse',
  'data.synthetic.trainPairs=300',
  'data.synthetic.validPairs=6',
  'data.synthetic.testPairs=4',
  'data.bpeMerges=20',
  'data.maxLen=20',
  'model.dModel=16',
  'model.dFF=32',
  'model.heads=2',
  'model.encoderLayers=1',
  'model.decoderLayers=1',
  'model.dropout=0.1',
  `train.maxSteps=${STEPS}`,
  'train.logEverySteps=1',
  'train.evalEverySteps=0',
  'train.devBleuSentences=0',
  'train.checkpointEverySteps=3',
  'train.keepCheckpoints=2',
  'train.maxTokensPerBatch=150',
  'eval.beamSize=1',
];

/** step -> loss from metrics.jsonl; a step logged twice (re-done after a resume) keeps its last value. */
function lossesOf(run: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of readFileSync(join(run, 'metrics.jsonl'), 'utf8').split('\n')) {
    try {
      const r = JSON.parse(line) as { step?: number; loss?: number };
      if (r.loss !== undefined && r.step !== undefined) out.set(r.step, r.loss);
    } catch {
      /* a torn last line after SIGKILL */
    }
  }
  return out;
}

function runToEnd(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync('node', [bin, 'train', ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

(built ? describe : describe.skip)('fault injection: SIGKILL during training', () => {
  it('after many kills at random moments, resume always finds a valid checkpoint and ends with the uninterrupted losses', async () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-fault-'));
    expect(runToEnd(['--runs-dir', join(root, 'a'), '--set', ...TINY]).status).toBe(0);
    const runA = join(root, 'a', readdirSync(join(root, 'a'))[0]!);
    const reference = lossesOf(runA);
    expect(reference.size).toBe(STEPS);

    const rng = new Rng(2026);
    const runsB = join(root, 'b');
    let kills = 0;
    let runB = '';
    let lastStep = 0;
    for (let attempt = 0; attempt < 40 && lastStep < STEPS; attempt++) {
      const args = runB ? ['--resume', runB] : ['--runs-dir', runsB, '--set', ...TINY];
      // kill after a random number (1..8) of steps seen in this attempt: somewhere inside training, also
      // mid-checkpoint-write when it falls there
      const killAfter = 1 + rng.int(8);
      const exit = await new Promise<number | null>((resolve) => {
        const child = spawn('node', [bin, 'train', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        let seen = 0;
        child.stderr.on('data', (d: Buffer) => {
          seen += (d.toString().match(/step \d+\//g) ?? []).length;
          if (seen >= killAfter) child.kill('SIGKILL');
        });
        child.on('exit', (code) => resolve(code));
      });
      if (!runB && existsSync(runsB) && readdirSync(runsB).length) runB = join(runsB, readdirSync(runsB)[0]!);
      if (exit === null) kills++;
      if (runB && existsSync(join(runB, 'checkpoints'))) {
        const c = findLatestValidCheckpoint(runB); // never throws: some complete checkpoint is always there
        expect(c.state.step).toBeGreaterThan(0);
        lastStep = exit === 0 ? STEPS : c.state.step;
      }
    }
    if (lastStep < STEPS) expect(runToEnd(['--resume', runB]).status).toBe(0);
    console.log(`fault injection: ${kills} SIGKILLs during training; resumed run matches the uninterrupted one`);
    expect(kills).toBeGreaterThanOrEqual(3);
    const resumed = lossesOf(runB);
    for (let s = 1; s <= STEPS; s++) expect([s, resumed.get(s)]).toEqual([s, reference.get(s)]);
  }, 300000);
});

(built ? describe : describe.skip)('fault injection: non-finite losses', () => {
  const SHORT = [...TINY.filter((a) => !a.startsWith('train.maxSteps')), 'train.maxSteps=12', 'train.workers=1'];
  const records = (run: string) =>
    readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { step: number; loss?: number; skipped?: string; skippedNonFinite?: number });
  const train = (root: string, extra: string[], env: Record<string, string>) => {
    const r = spawnSync('node', [bin, 'train', '--runs-dir', root, '--set', ...SHORT, ...extra], { encoding: 'utf8', env: { ...process.env, ...env } });
    return { ...r, run: join(root, readdirSync(root)[0]!) };
  };

  it('without skipNonFinite the run stops at the step, names it and its batch, exits 2, and keeps the last good checkpoint', () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-nan-'));
    const r = train(root, [], { HEADS_FAULT_NONFINITE: '5' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/non-finite loss at step 5 \(loss NaN, gradient norm NaN\); batch sentences \d+/);
    expect(r.stderr).toContain('the last checkpoint (step 3) is untouched');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(findLatestValidCheckpoint(r.run).state.step).toBe(3);
    expect(Math.max(...records(r.run).map((x) => x.step))).toBe(4);
  });

  it('with skipNonFinite the bad batches are dropped (no update), logged, and counted against the limit', () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-nan-'));
    const ok = train(join(root, 'ok'), ['train.skipNonFinite=2'], { HEADS_FAULT_NONFINITE: '5,9' });
    expect(ok.status).toBe(0);
    const recs = records(ok.run);
    expect(recs.filter((x) => x.skipped === 'non-finite').map((x) => [x.step, x.skippedNonFinite])).toEqual([
      [5, 1],
      [9, 2],
    ]);
    expect(recs.filter((x) => x.loss !== undefined).map((x) => x.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(recs.every((x) => x.loss === undefined || Number.isFinite(x.loss))).toBe(true);
    // the skipped batches were consumed: steps 1-4 match a clean run, step 5 trains on the clean run's step-6 batch
    const clean = train(join(root, 'clean'), [], {});
    expect(clean.status).toBe(0);
    const cleanLoss = new Map(
      records(clean.run)
        .filter((x) => x.loss !== undefined)
        .map((x) => [x.step, x.loss!]),
    );
    const okLoss = new Map(recs.filter((x) => x.loss !== undefined).map((x) => [x.step, x.loss!]));
    for (const st of [1, 2, 3, 4]) expect(okLoss.get(st)).toBeCloseTo(cleanLoss.get(st)!, 6);
    expect(okLoss.get(5)).not.toBeCloseTo(cleanLoss.get(5)!, 6);
    expect(findLatestValidCheckpoint(ok.run).state.extra['trainer.skippedNonFinite']).toBe(2);

    const over = train(join(root, 'over'), ['train.skipNonFinite=1'], { HEADS_FAULT_NONFINITE: '5,9' });
    expect(over.status).toBe(2);
    expect(over.stderr).toContain('batch skipped (1 of train.skipNonFinite = 1)');
    expect(over.stderr).toMatch(/non-finite loss at step 9 .*already used up/);
  }, 120000);

  it('worker training skips a non-finite micro-batch the same way', () => {
    const root = mkdtempSync(join(tmpdir(), 'heads-nan-'));
    const r = train(root, ['train.workers=2', 'train.accumulateSteps=2', 'train.skipNonFinite=1'], { HEADS_FAULT_NONFINITE: '4:1' });
    expect(r.status).toBe(0);
    expect(
      records(r.run)
        .filter((x) => x.skipped === 'non-finite')
        .map((x) => x.step),
    ).toEqual([4]);
    expect(findLatestValidCheckpoint(r.run).state.step).toBe(12);
  }, 120000);
});

(built ? describe : describe.skip)('fault injection: damaged checkpoints', () => {
  let run = '';
  beforeAll(() => {
    const root = mkdtempSync(join(tmpdir(), 'heads-corrupt-'));
    expect(runToEnd(['--runs-dir', root, '--set', ...TINY, 'train.maxSteps=4', 'train.checkpointEverySteps=2', 'train.keepCheckpoints=3']).status).toBe(0);
    run = join(root, readdirSync(root)[0]!);
  });

  function withCopy(damage: (dir: string) => void): string {
    const src = join(run, 'checkpoints', 'step-0000004');
    const dir = mkdtempSync(join(tmpdir(), 'heads-ckpt-'));
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(src)) copyFileSync(join(src, f), join(dir, f));
    damage(dir);
    return dir;
  }

  it('every truncation and every sampled byte flip of a tensor file is refused with the file named', () => {
    const size = readFileSync(join(run, 'checkpoints', 'step-0000004', 'model.safetensors')).length;
    const rng = new Rng(7);
    const cuts = [0, 1, 7, 8, 9, 64, Math.floor(size / 2), size - 1];
    const flips = Array.from({ length: 40 }, () => rng.int(size));
    let tried = 0;
    for (const file of ['model.safetensors', 'optimizer.safetensors']) {
      for (const cut of cuts) {
        const dir = withCopy((d) => truncateSync(join(d, file), Math.min(cut, size - 1)));
        expect(() => readCheckpoint(dir)).toThrow(CheckpointError);
        expect(() => readCheckpoint(dir)).toThrow(join(dir, file));
        tried++;
      }
      for (const at of flips) {
        const dir = withCopy((d) => {
          const b = readFileSync(join(d, file));
          if (at >= b.length) return;
          b[at] = b[at]! ^ 0x5a;
          writeFileSync(join(d, file), b);
        });
        if (readFileSync(join(dir, file)).equals(readFileSync(join(run, 'checkpoints', 'step-0000004', file)))) continue;
        expect(() => readCheckpoint(dir)).toThrow(/checksum mismatch|CheckpointError|safetensors/);
        tried++;
      }
    }
    console.log(`fault injection: ${tried} damaged checkpoint files refused`);
    expect(tried).toBeGreaterThan(90);
  });

  it('a corrupt state.json or a missing file is refused; resume falls back to the previous checkpoint and says so', () => {
    expect(() => readCheckpoint(withCopy((d) => writeFileSync(join(d, 'state.json'), '{"format": "heads.checkp')))).toThrow(/state.json: corrupt/);
    expect(() => readCheckpoint(withCopy((d) => truncateSync(join(d, 'state.json'), 0)))).toThrow(/state.json: corrupt/);
    // damage the newest checkpoint in place: the run resumes from step 2 with a warning naming step 4
    const newest = join(run, 'checkpoints', 'step-0000004', 'model.safetensors');
    const b = readFileSync(newest);
    b[b.length - 3] = b[b.length - 3]! ^ 0xff;
    writeFileSync(newest, b);
    const warnings: string[] = [];
    const c = findLatestValidCheckpoint(run, (m) => warnings.push(m));
    expect(c.state.step).toBe(2);
    expect(warnings.join('\n')).toContain('step-0000004/model.safetensors: checksum mismatch');
  });

  it('a checkpoint loaded into a model of another shape or vocabulary is refused naming the tensor', async () => {
    await useTestBackend();
    const other = mkdtempSync(join(tmpdir(), 'heads-shape-'));
    const r = runToEnd(['--runs-dir', other, '--set', ...TINY, 'model.dModel=32', 'train.maxSteps=2']);
    expect(r.status).toBe(0);
    const otherRun = join(other, readdirSync(other)[0]!);
    // put the first run's tokenizer (another vocabulary) beside the second run's weights
    copyFileSync(join(run, 'tokenizer.json'), join(otherRun, 'tokenizer.json'));
    writeFileSync(join(otherRun, 'tokenizer.json'), readFileSync(join(run, 'tokenizer.json')));
    const stateFile = join(otherRun, 'checkpoints', 'step-0000002', 'state.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    state.config.model.dModel = 16; // the config now disagrees with the stored tensors
    writeFileSync(stateFile, JSON.stringify(state));
    // edited on purpose: take it out of the integrity record, as the refusal of an edited state.json says
    const recordFile = join(otherRun, 'checkpoints', 'step-0000002', '.heads-integrity.json');
    const record = JSON.parse(readFileSync(recordFile, 'utf8'));
    delete record.files['state.json'];
    writeFileSync(recordFile, JSON.stringify(record));
    expect(() => loadModel(otherRun)).toThrow(/does not fit the model: .*checkpoint shape \[\d+,32\] but the model expects \[\d+,16\]/);
  });

  it('a checkpoint beside a tokenizer with another vocabulary is refused naming both sizes and the tokenizer', async () => {
    await useTestBackend();
    const other = mkdtempSync(join(tmpdir(), 'heads-vocab-'));
    expect(runToEnd(['--runs-dir', other, '--set', ...TINY, 'data.bpeMerges=40', 'train.maxSteps=1']).status).toBe(0);
    const otherRun = join(other, readdirSync(other)[0]!);
    // a copy of the first run (without its integrity record, as a user's hand-assembled folder) with that tokenizer
    const mixed = mkdtempSync(join(tmpdir(), 'heads-mixed-'));
    // (the newest valid checkpoint: earlier tests damage some of this run's checkpoints on purpose)
    const good = findLatestValidCheckpoint(run).path;
    const into = join(mixed, 'checkpoints', basename(good));
    mkdirSync(into, { recursive: true });
    for (const f of readdirSync(good)) if (!f.startsWith('.')) copyFileSync(join(good, f), join(into, f));
    copyFileSync(join(otherRun, 'tokenizer.json'), join(mixed, 'tokenizer.json'));
    const theirs = JSON.parse(readFileSync(join(otherRun, 'tokenizer.json'), 'utf8')).vocab.length as number;
    const ours = JSON.parse(readFileSync(join(run, 'tokenizer.json'), 'utf8')).vocab.length as number;
    expect(theirs).not.toBe(ours);
    expect(() => loadModel(mixed)).toThrow(
      `the model was trained with a vocabulary of ${ours} entries, but the tokenizer ${join(mixed, 'tokenizer.json')} has ${theirs}`,
    );
  });
});
