/**
 * Early stopping (train.earlyStopping): the trainer shows this rule every evaluation; it remembers the
 * best value of the dev metric and its step, counts the evaluations since the best, and says stop once
 * `patience` of them in a row failed to improve by more than `minDelta` (dev BLEU higher or dev loss
 * lower). With `lrDecay` (reduce-on-plateau, as fairseq's), an exhausted patience first cuts the learning
 * rate by `factor` and starts the patience again, `times` times, and only the next one stops the run; the
 * weights go on from where they are. Its state is plain numbers kept in the checkpoint's state.json
 * (`earlyStopping.*`), so a resumed run makes the same decision as an uninterrupted one.
 */
import type { EarlyStoppingConfig } from '../config/schema.js';

/** The prefix of this rule's numbers in a checkpoint's state.json `extra` (toExtra, restore). */
const STATE_PREFIX = 'earlyStopping.';

/** True for a checkpoint state key that belongs to early stopping (a replayed rule replaces all of them). */
export function isEarlyStoppingState(key: string): boolean {
  return key.startsWith(STATE_PREFIX);
}

/** The dev figures of one evaluation (what Trainer.evaluate returns). */
export interface DevEval {
  devLoss: number;
  devBleu?: number;
}

export interface BestEval {
  step: number;
  /** the metric's value at that step */
  value: number;
  devLoss: number;
  devBleu: number | null;
}

export class EarlyStopping {
  private best: BestEval | null = null;
  private sinceBest = 0;
  private evaluations = 0;
  /** learning-rate cuts so far (lrDecay) */
  private cuts = 0;

  constructor(readonly rule: EarlyStoppingConfig) {}

  private valueOf(e: DevEval): number {
    return this.rule.metric === 'devBleu' ? (e.devBleu ?? NaN) : e.devLoss;
  }

  private beats(value: number, best: number): boolean {
    return this.rule.metric === 'devBleu' ? value > best + this.rule.minDelta : value < best - this.rule.minDelta;
  }

  /**
   * Record one evaluation; `improved`: it is the new best (the caller keeps its checkpoint); `cut`: the
   * patience ran out with a learning-rate cut left, so the rate is now `lrScale` and the patience full again.
   */
  observe(step: number, e: DevEval): { improved: boolean; cut: boolean } {
    const value = this.valueOf(e);
    this.evaluations++;
    // a non-finite metric never improves (and the first finite one always does)
    const improved = Number.isFinite(value) && (this.best === null || this.beats(value, this.best.value));
    if (improved) {
      this.best = { step, value, devLoss: e.devLoss, devBleu: e.devBleu ?? null };
      this.sinceBest = 0;
    } else this.sinceBest++;
    const cut = this.sinceBest >= this.rule.patience && this.cuts < (this.rule.lrDecay?.times ?? 0);
    if (cut) {
      this.cuts++;
      this.sinceBest = 0;
    }
    return { improved, cut };
  }

  /** The learning rate's factor: lrDecay.factor to the power of the cuts so far (1 without lrDecay). */
  get lrScale(): number {
    return this.cuts === 0 ? 1 : this.rule.lrDecay!.factor ** this.cuts;
  }

  get lrCuts(): number {
    return this.cuts;
  }

  /** True once `patience` evaluations in a row have not improved. */
  get shouldStop(): boolean {
    return this.sinceBest >= this.rule.patience;
  }

  get bestEval(): BestEval | null {
    return this.best;
  }

  get patienceLeft(): number {
    return Math.max(0, this.rule.patience - this.sinceBest);
  }

  /** `best dev BLEU 18.21 @1250 | patience 3/5` */
  describe(): string {
    const name = this.rule.metric === 'devBleu' ? 'dev BLEU' : 'dev loss';
    const best = this.best ? `${this.best.value.toFixed(this.rule.metric === 'devBleu' ? 2 : 3)} @${this.best.step}` : '-';
    const cuts = this.rule.lrDecay ? ` | lr cuts ${this.cuts}/${this.rule.lrDecay.times}` : '';
    return `best ${name} ${best} | patience ${this.patienceLeft}/${this.rule.patience}${cuts}`;
  }

  /** What results.json reports. */
  report(): {
    metric: string;
    patience: number;
    minDelta: number;
    evaluations: number;
    evaluationsSinceBest: number;
    best: BestEval | null;
    lrDecay?: { factor: number; times: number; cuts: number };
  } {
    return {
      metric: this.rule.metric,
      patience: this.rule.patience,
      minDelta: this.rule.minDelta,
      evaluations: this.evaluations,
      evaluationsSinceBest: this.sinceBest,
      best: this.best,
      ...(this.rule.lrDecay ? { lrDecay: { ...this.rule.lrDecay, cuts: this.cuts } } : {}),
    };
  }

  /** The state as checkpoint numbers. */
  toExtra(): Record<string, number> {
    const out: Record<string, number> = { 'earlyStopping.evaluations': this.evaluations, 'earlyStopping.sinceBest': this.sinceBest };
    if (this.cuts) out['earlyStopping.lrCuts'] = this.cuts;
    if (this.best) {
      out['earlyStopping.bestStep'] = this.best.step;
      out['earlyStopping.bestValue'] = this.best.value;
      out['earlyStopping.bestDevLoss'] = this.best.devLoss;
      if (this.best.devBleu !== null) out['earlyStopping.bestDevBleu'] = this.best.devBleu;
    }
    return out;
  }

  /** Restore from checkpoint numbers (a checkpoint without them: no evaluation seen yet). */
  restore(extra: Readonly<Record<string, number>>): void {
    this.evaluations = extra['earlyStopping.evaluations'] ?? 0;
    this.sinceBest = extra['earlyStopping.sinceBest'] ?? 0;
    this.cuts = extra['earlyStopping.lrCuts'] ?? 0;
    const step = extra['earlyStopping.bestStep'];
    this.best =
      step === undefined
        ? null
        : { step, value: extra['earlyStopping.bestValue']!, devLoss: extra['earlyStopping.bestDevLoss']!, devBleu: extra['earlyStopping.bestDevBleu'] ?? null };
  }
}
