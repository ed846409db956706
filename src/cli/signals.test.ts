import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
const TINY = [
  'name=sig', 'data.synthetic.task=reverse', 'data.synthetic.trainPairs=400', 'data.synthetic.validPairs=8', 'data.synthetic.testPairs=8', 'data.bpeMerges=20',
  'model.dModel=16', 'model.dFF=32', 'model.heads=2', 'model.encoderLayers=1', 'model.decoderLayers=1',
  'train.maxSteps=100000', 'train.logEverySteps=1', 'train.evalEverySteps=0', 'train.devBleuSentences=0', 'train.checkpointEverySteps=100000', 'train.maxTokensPerBatch=200',
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
  it.each(['SIGTERM', 'SIGINT'] as const)('%s finishes the step, writes a checkpoint, names it, and the run resumes from it', async (sig) => {
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
      const c = spawn('node', [bin, 'train', '--resume', run, '--set', `train.maxSteps=${step + 2}`, 'data.synthetic.testPairs=2'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let e = '';
      c.stderr.on('data', (d: Buffer) => (e += d.toString()));
      c.on('exit', () => resolve(e));
    });
    expect(r).toContain(`resume: step ${step} from`);
    expect(r).toContain(`step ${step + 2}/${step + 2}`);
  }, 120000);
});
