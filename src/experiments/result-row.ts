/** One line of an experiment's results.csv, as the report builds it and its sections read it. */

export interface ResultRow {
  stage: string;
  id: string;
  kind: string;
  method: string;
  attention: string;
  lambda: number | null;
  targetHeads: string;
  keptEnc: number | null;
  keptDecSelf: number | null;
  keptDecEnc: number | null;
  bleu: number | null;
  bleuTokLc: number | null;
  devBleu: number | null;
  /** the folder the numbers come from (relative to the repository) */
  run: string;
  /** export stages (src/experiments/export-stage.ts): parameters, non-zero parameters, weights-file bytes, decode time of the fixed batch */
  params: number | null;
  nonZeroParams: number | null;
  modelBytes: number | null;
  decodeSeconds: number | null;
  /** how devBleu was decoded (`greedy`: the trainer's; `beam N`: a pruned model's final dev score) */
  devDecoding: string | null;
  /** the replicate's seed (null without seeds) */
  seed: number | null;
  /** training steps of the stage (train and fine-tuning stages) */
  steps: number | null;
  /** L0 stages: gates still strictly between 0 and 1 at the end (0: settled) */
  fractionalGates: number | null;
  /** the stage's wall time over its attempts (compute per stage) */
  wallSeconds: number | null;
  /** not in results.csv: the instance id without its seed (`#step` for curve rows), shared by a setting's replicates */
  group?: string;
  /** not in results.csv: the file of the row's test translations in its run folder */
  hypPath?: string | null;
}

/** The id suffix of an L0 stage's binarised row (`<instance>#binarised`). */
export const BINARISED = '#binarised';
