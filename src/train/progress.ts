/**
 * The live progress line of long loops: `step 1200/20000 | loss 3.41 | 2.1k tok/s | lr 7.0e-4 | ETA 41m`.
 * On a TTY it rewrites one line; otherwise (CI, files) it prints a line per update.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.round((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatRate(perSec: number): string {
  return perSec >= 1000 ? `${(perSec / 1000).toFixed(1)}k` : perSec.toFixed(0);
}

export class ProgressLine {
  private readonly isTty: boolean;
  private lastLength = 0;
  constructor(private readonly out: NodeJS.WriteStream = process.stderr, private readonly quiet = false) {
    this.isTty = Boolean(out.isTTY);
  }
  update(text: string): void {
    if (this.quiet) return;
    if (this.isTty) {
      this.out.write('\r' + text.padEnd(this.lastLength));
      this.lastLength = text.length;
    } else this.out.write(text + '\n');
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
