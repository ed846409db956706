/**
 * The live progress line of long loops: `step 1200/20000 | loss 3.41 | 2.1k tok/s | lr 7.0e-4 | ETA 41m`.
 * On a TTY it rewrites one line; otherwise (CI, files) it prints a line per update.
 */
/**
 * `42s`, `3m05s`, `2h07m`. Rounds to the unit shown first and splits after, so a carry moves up
 * (59.5 s is `1m00s`, 3599.6 s is `1h00m`), never `3m60s`.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const m = Math.round(seconds / 60);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function formatRate(perSec: number): string {
  return perSec >= 1000 ? `${(perSec / 1000).toFixed(1)}k` : perSec.toFixed(0);
}

export interface ProgressLineOptions {
  /** not a TTY: print an update only when this long has passed since the last printed one (default 0: every update) */
  everyMs?: number;
  /** the clock (ms), for tests */
  now?: () => number;
}

export class ProgressLine {
  private readonly isTty: boolean;
  private lastLength = 0;
  private lastPrinted = -Infinity;
  constructor(
    private readonly out: Pick<NodeJS.WriteStream, 'write' | 'isTTY'> = process.stderr,
    private readonly quiet = false,
    private readonly opts: ProgressLineOptions = {},
  ) {
    this.isTty = Boolean(out.isTTY);
  }
  update(text: string): void {
    if (this.quiet) return;
    if (this.isTty) {
      this.out.write('\r' + text.padEnd(this.lastLength));
      this.lastLength = text.length;
      return;
    }
    const now = (this.opts.now ?? performance.now.bind(performance))();
    if (now - this.lastPrinted < (this.opts.everyMs ?? 0)) return;
    this.lastPrinted = now;
    this.out.write(text + '\n');
  }
  /** Print a permanent line (ends the rewritten line first). */
  log(text: string): void {
    if (this.quiet) return;
    if (this.isTty && this.lastLength) {
      this.out.write('\n');
      this.lastLength = 0;
    }
    this.out.write(text + '\n');
  }
  done(): void {
    if (this.isTty && this.lastLength && !this.quiet) this.out.write('\n');
    this.lastLength = 0;
  }
}

/** Smoothed ETA from steps done and elapsed time. */
export function eta(stepsDone: number, stepsTotal: number, elapsedMs: number): number {
  if (stepsDone <= 0) return NaN;
  return ((stepsTotal - stepsDone) * elapsedMs) / stepsDone / 1000;
}

/**
 * A training run's ETA: to the cap (`41m`), or, when early stopping could end it sooner, from its
 * earliest stop (every evaluation from now on without a gain) to the cap: `1h10m-17h05m`.
 */
export function trainingEta(o: { step: number; startStep: number; maxSteps: number; elapsedMs: number; earliestStop?: number }): string {
  const done = o.step - o.startStep;
  const toCap = formatDuration(eta(done, o.maxSteps - o.startStep, o.elapsedMs));
  if (o.earliestStop === undefined || o.earliestStop >= o.maxSteps) return toCap;
  return `${formatDuration(eta(done, Math.max(o.step, o.earliestStop) - o.startStep, o.elapsedMs))}-${toCap}`;
}
