/** Durations as progress lines print them, and the progress line on a terminal and in a log file. */
import { formatDuration, ProgressLine, trainingEta } from './progress.js';

/** An independent reading of a printed duration back into seconds. */
function secondsOf(text: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [59.4, '59s'],
    [59.5, '1m00s'],
    [119.5, '2m00s'],
    [239.6, '4m00s'],
    [3569.4, '59m29s'],
    [3599.4, '59m59s'],
    [3599.6, '1h00m'],
    [3629, '1h00m'],
    [5399.9, '1h30m'],
    [7170, '2h00m'],
  ])('%p s -> %p', (s, text) => {
    expect(formatDuration(s)).toBe(text);
  });

  it('never prints 60 in a seconds or minutes field, and stays within the shown unit of the value', () => {
    const bad: string[] = [];
    for (let s = 0; s < 4 * 3600; s += 0.7) {
      const text = formatDuration(s);
      const unit = s < 3599.5 ? 1 : 60;
      if (/(^|[hm])60[ms]/.test(text) || Math.abs(secondsOf(text) - s) > unit / 2 + 1e-9) bad.push(`${s.toFixed(1)} s -> ${text}`);
    }
    expect(bad).toEqual([]);
  });

  it('unknown durations are "?"', () => {
    expect(formatDuration(NaN)).toBe('?');
    expect(formatDuration(-1)).toBe('?');
    expect(formatDuration(Infinity)).toBe('?');
  });
});

describe('ProgressLine', () => {
  const sink = (isTTY: boolean) => {
    const writes: string[] = [];
    return { writes, out: { isTTY, write: (s: string) => (writes.push(s), true) } as unknown as NodeJS.WriteStream };
  };

  it('rewrites one line on a terminal', () => {
    const { writes, out } = sink(true);
    const p = new ProgressLine(out, false, { everyMs: 10_000 });
    p.update('translate 1/3');
    p.update('translate 2/3');
    p.done();
    expect(writes).toEqual(['\rtranslate 1/3', '\rtranslate 2/3', '\n']);
  });

  it('in a log file: plain lines, no carriage returns, at most one per everyMs', () => {
    const { writes, out } = sink(false);
    let now = 0;
    const p = new ProgressLine(out, false, { everyMs: 10_000, now: () => now });
    for (let i = 1; i <= 50; i++) {
      now = i * 1000; // one update a second
      p.update(`translate ${i}/50`);
    }
    p.done();
    expect(writes.join('')).not.toContain('\r');
    // the first update, then one every 10 s
    expect(writes).toEqual(['translate 1/50\n', 'translate 11/50\n', 'translate 21/50\n', 'translate 31/50\n', 'translate 41/50\n']);
  });

  it('in a log file without everyMs, every update is a line (the trainer logs at its log steps)', () => {
    const { writes, out } = sink(false);
    const p = new ProgressLine(out);
    p.update('step 10/20');
    p.update('step 20/20');
    expect(writes).toEqual(['step 10/20\n', 'step 20/20\n']);
  });
});

describe('trainingEta', () => {
  it('is the time to the cap, or from the earliest early stop to the cap, at the rate so far', () => {
    // 100 steps from 1000 in 50 s: 0.5 s per step
    const base = { step: 1100, startStep: 1000, maxSteps: 5000, elapsedMs: 50_000 };
    expect(trainingEta(base)).toBe(formatDuration(3900 * 0.5));
    // early stopping could end it at step 1600: 500 steps (4m10s) at the soonest, 3900 (32m30s) at the cap
    expect(trainingEta({ ...base, earliestStop: 1600 })).toBe('4m10s-32m30s');
    // an earliest stop at or past the cap is the cap
    expect(trainingEta({ ...base, earliestStop: 5000 })).toBe('32m30s');
    expect(trainingEta({ ...base, earliestStop: 7000 })).toBe('32m30s');
    // an earliest stop now (the evaluation of this step ends it) is 0
    expect(trainingEta({ ...base, earliestStop: 1100 })).toBe('0s-32m30s');
    expect(trainingEta({ ...base, step: 1000, elapsedMs: 0 })).toBe('?');
  });
});
