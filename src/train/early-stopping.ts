/**
 * Early stopping (train.earlyStopping): the trainer shows this rule every evaluation; it remembers the
 * best value of the dev metric and its step (the model the run keeps: the best by any margin), and the
 * last evaluation that gained more than `minDelta` over the one before it that did (the anchor); it
 * counts the evaluations since the anchor and says stop once `patience` of them in a row failed to beat
 * it by more than `minDelta` (dev BLEU higher or dev loss lower). With `minDelta: 0` the anchor is the
 * best. (Keras and PyTorch keep the anchor as the model; then a run whose last gains are each below
 * `minDelta` ends on a checkpoint up to `minDelta` worse than its best one.) With `lrDecay` (reduce-on-plateau, as fairseq's), an exhausted patience first cuts the learning
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

/**
 * The step of the `evaluationsToStop`-th evaluation from the next one, evaluations every `evalEvery`
 * steps: where the rule would end a run at `step` if none of them gained. The next one is this step's
 * when it is an evaluation step still to come (the trainer prints its progress line before it).
 */
export function earliestStopStep(step: number, evalEvery: number, evaluationsToStop: number): number {
  return Math.max(step, (Math.ceil(step / evalEvery) + evaluationsToStop - 1) * evalEvery);
}

export class EarlyStopping {
  private best: BestEval | null = null;
  /** the last evaluation that beat the anchor before it by more than minDelta (the patience counts from it) */
  private anchor: { step: number; value: number } | null = null;
  /** evaluations since the anchor */
  private sinceBest = 0;
  private evaluations = 0;
  /** learning-rate cuts so far (lrDecay) */
  private cuts = 0;

  constructor(readonly rule: EarlyStoppingConfig) {}

  private valueOf(e: DevEval): number {
    return this.rule.metric === 'devBleu' ? (e.devBleu ?? NaN) : e.devLoss;
  }

  private beats(value: number, than: number, by: number): boolean {
    return this.rule.metric === 'devBleu' ? value > than + by : value < than - by;
  }

  /**
   * Record one evaluation; `improved`: it is the new best (the caller keeps its checkpoint); `cut`: the
   * patience ran out with a learning-rate cut left, so the rate is now `lrScale` and the patience full
   * again, counted from the best so far.
   */
  observe(step: number, e: DevEval): { improved: boolean; cut: boolean } {
    const value = this.valueOf(e);
    this.evaluations++;
    // a non-finite metric never improves (and the first finite one always does)
    const finite = Number.isFinite(value);
    const improved = finite && (this.best === null || this.beats(value, this.best.value, 0));
    if (improved) this.best = { step, value, devLoss: e.devLoss, devBleu: e.devBleu ?? null };
    if (finite && (this.anchor === null || this.beats(value, this.anchor.value, this.rule.minDelta))) {
      this.anchor = { step, value };
      this.sinceBest = 0;
    } else this.sinceBest++;
    const cut = this.sinceBest >= this.rule.patience && this.cuts < (this.rule.lrDecay?.times ?? 0);
    if (cut) {
      this.cuts++;
      this.sinceBest = 0;
      this.anchor = this.best && { step: this.best.step, value: this.best.value };
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

  /** True once `patience` evaluations in a row have not beaten the anchor by more than minDelta (no cut left). */
  get shouldStop(): boolean {
    return this.sinceBest >= this.rule.patience;
  }

  get bestEval(): BestEval | null {
    return this.best;
  }

  get patienceLeft(): number {
    return Math.max(0, this.rule.patience - this.sinceBest);
  }

  /**
   * The fewest evaluations before the rule stops the run: what is left of the patience, then a full
   * patience for each learning-rate cut still to come (each evaluation from now on without a gain).
   */
  get evaluationsToStop(): number {
    return this.patienceLeft + ((this.rule.lrDecay?.times ?? 0) - this.cuts) * this.rule.patience;
  }

  /** `no gain of more than 0.02 in 5 evaluations` (`no gain in 5 evaluations` with minDelta 0) */
  stallText(): string {
    return `no gain${this.rule.minDelta > 0 ? ` of more than ${this.rule.minDelta}` : ''} in ${this.rule.patience} evaluations`;
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
    /** evaluations since the last gain of more than minDelta (the anchor) */
    evaluationsSinceBest: number;
    best: BestEval | null;
    /** where the patience counts from, when it is not the best (minDelta > 0) */
    anchor?: { step: number; value: number };
    lrDecay?: { factor: number; times: number; cuts: number };
  } {
    return {
      metric: this.rule.metric,
      patience: this.rule.patience,
      minDelta: this.rule.minDelta,
      evaluations: this.evaluations,
      evaluationsSinceBest: this.sinceBest,
      best: this.best,
      ...(this.anchor && this.anchor.step !== this.best?.step ? { anchor: this.anchor } : {}),
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
    // the anchor only where it is not the best (always so with minDelta 0, so those states are as before)
    if (this.anchor && this.anchor.step !== this.best?.step) {
      out['earlyStopping.anchorStep'] = this.anchor.step;
      out['earlyStopping.anchorValue'] = this.anchor.value;
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
    const anchorStep = extra['earlyStopping.anchorStep'];
    this.anchor =
      anchorStep !== undefined
        ? { step: anchorStep, value: extra['earlyStopping.anchorValue']! }
        : this.best && { step: this.best.step, value: this.best.value };
  }
}
