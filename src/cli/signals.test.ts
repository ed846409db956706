import { spawn } from 'node:child_process';
import { jest } from '@jest/globals';
import { installStopHandler } from './common.js';
import { mkdtempSync, readdirSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
const TINY = [
  'name=sig',
  'data.synthetic.task=reverse',
  'data.synthetic.trainPairs=400',
  'data.synthetic.validPairs=8',
  'data.synthetic.testPairs=8',
  'data.bpeMerges=20',
  'model.dModel=16',
  'model.dFF=32',
  'model.heads=2',
  'model.encoderLayers=1',
  'model.decoderLayers=1',
  'train.maxSteps=100000',
  'train.logEverySteps=1',
  'train.evalEverySteps=0',
  'train.devBleuSentences=0',
  'train.checkpointEverySteps=100000',
  'train.maxTokensPerBatch=200',
];

/** Start a training child, wait until it has logged `steps` steps, send `signal`, collect its output. */
function trainAndSignal(runs: string, signal: NodeJS.Signals, steps: number): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    const child = spawn('node', [bin, 'train', '--runs-dir', runs, '--set', ...TINY], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = [...err.matchAll(/step (\d+)\//g)].pop();
      if (!sent && m && Number(m[1]) >= steps) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on('exit', (code) => resolve({ code, err }));
  });
}

(built ? describe : describe.skip)('signals during training', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s finishes the step, writes a checkpoint, names it, and the run resumes from it',
    async (sig) => {
      const runs = mkdtempSync(join(tmpdir(), 'heads-sig-'));
      const { code, err } = await trainAndSignal(runs, sig, 5);
      expect(code).toBe(0);
      expect(err).toContain(`${sig}: finishing the current step`);
      const m = /stopped at step (\d+); checkpoint (\S+)/.exec(err);
      expect(m).not.toBeNull();
      const step = Number(m![1]);
      expect(step).toBeGreaterThanOrEqual(5);
      const run = join(runs, readdirSync(runs)[0]!);
      expect(JSON.parse(readFileSync(join(run, 'checkpoints', 'latest.json'), 'utf8')).step).toBe(step);
      expect(existsSync(join(m![2]!, 'state.json'))).toBe(true);
      // resume to a few steps more: it starts exactly where the signal stopped it
      const r = await new Promise<string>((resolve) => {
        const c = spawn('node', [bin, 'train', '--resume', run, '--set', `train.maxSteps=${step + 2}`, 'data.synthetic.testPairs=2'], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let e = '';
        c.stderr.on('data', (d: Buffer) => (e += d.toString()));
        c.on('exit', () => resolve(e));
      });
      expect(r).toContain(`resume: step ${step} from`);
      expect(r).toContain(`step ${step + 2}/${step + 2}`);
    },
    120000,
  );
});

(built ? describe : describe.skip)('a signal during the final test translation', () => {
  // 120 test sentences in batches of 10 with beam 4: the translation takes seconds on an untrained model
  const EVAL = [
    ...TINY.filter((a) => !/^(train\.maxSteps|data\.synthetic\.testPairs)=/.test(a)),
    'train.maxSteps=2',
    'data.synthetic.testPairs=120',
    'eval.beamSize=4',
    'eval.batchSentences=10',
  ];

  it('stops it after the current batch (training is complete); a resume redoes only the evaluation', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'heads-sig-eval-'));
    let sentAt = 0;
    const { code, err } = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const child = spawn('node', [bin, 'train', '--runs-dir', runs, '--set', ...EVAL], { stdio: ['ignore', 'pipe', 'pipe'] });
      let e = '';
      child.stderr.on('data', (d: Buffer) => {
        e += d.toString();
        if (!sentAt && /test \d+\/120 sentences/.test(e)) {
          sentAt = performance.now();
          child.kill('SIGTERM');
        }
      });
      child.on('exit', (c) => resolve({ code: c, err: e }));
    });
    const stopMs = performance.now() - sentAt;
    expect(code).toBe(0);
    const run = join(runs, readdirSync(runs)[0]!);
    expect(err).toContain(
      `stopped during the final evaluation; training is complete (checkpoint step 2): resume (heads train --resume ${run}) to redo only the evaluation`,
    );
    const done = Math.max(...[...err.matchAll(/test (\d+)\/120 sentences/g)].map((m) => Number(m[1])));
    expect(done).toBeLessThan(120);
    const stopped = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
    expect(stopped.stoppedEarly).toBe(true);
    expect(stopped.test).toBeNull();
    expect(stopped.devLoss).toEqual(expect.any(Number));
    expect(existsSync(join(run, 'test.hyp'))).toBe(false);
    console.log(`signals: SIGTERM during the test translation: exit ${Math.round(stopMs)} ms after the signal, ${done} of 120 sentences translated`);

    const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const c = spawn('node', [bin, 'train', '--resume', run], { stdio: ['ignore', 'ignore', 'pipe'] });
      let e = '';
      c.stderr.on('data', (d: Buffer) => (e += d.toString()));
      c.on('exit', (x) => resolve({ code: x, err: e }));
    });
    expect(r.code).toBe(0);
    expect(r.err).toContain('resume: step 2 from');
    expect(r.err).not.toMatch(/step \d+\/2 \|/); // no training step re-done
    const finished = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
    expect(finished.stoppedEarly).toBe(false);
    expect(finished.test.sentences).toBe(120);
    expect(finished.devLoss).toBe(stopped.devLoss);
    expect(readFileSync(join(run, 'test.hyp'), 'utf8').split('\n')).toHaveLength(121);
  }, 180000);
});

describe('the stop handler', () => {
  it('leaves the second signal to the default action (exit at once, even mid-step) once the first is handled; a second queued with the first exits', async () => {
    const before = { int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') };
    const logs: string[] = [];
    const isStopRequested = installStopHandler((m) => logs.push(m));
    expect(process.listenerCount('SIGTERM')).toBe(before.term + 1);
    process.emit('SIGTERM', 'SIGTERM');
    expect(isStopRequested()).toBe(true);
    expect(logs[0]).toContain('SIGTERM: finishing the current step');
    await new Promise<void>((resolve) => setImmediate(resolve));
    // no handler of ours left: the kernel's default action ends the process on the next signal
    expect({ int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') }).toEqual(before);

    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    try {
      installStopHandler((m) => logs.push(m));
      process.emit('SIGINT', 'SIGINT');
      process.emit('SIGINT', 'SIGINT'); // read in the same turn of the event loop as the first
      expect(exit).toHaveBeenCalledWith(130);
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect({ int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') }).toEqual(before);
    } finally {
      exit.mockRestore();
    }
  });
});
