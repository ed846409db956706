/**
 * Masks taken from an importance-style prune stage (importance, confidence, random: masks per pruning
 * step, `pruning-result.json`): which step a requested head count means, and, for a `fixed-mask` prune
 * stage, the mask it fine-tunes with. The stage reads them once its parent is done; before that its
 * layout is unknown (null), as for a fixed-mask train stage.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../config/schema.js';
import { originalMaskShape } from '../config/head-layout.js';
import { type HeadMask, readHeadMask } from '../io/head-mask.js';
import { readJsonFile } from '../util/fs.js';
import { HeadsError } from '../util/errors.js';
import type { StageInstance } from './spec.js';
import { RESTORED_MARKER } from './stage-files.js';

/**
 * The pruning steps to score on test: for every requested head count the step that leaves the nearest
 * count (the larger one on a tie), each step once, in curve order.
 */
export function stepsNearest<T extends { step: number; headsKept: number }>(
  table: readonly T[],
  counts: readonly number[],
  log: (m: string) => void = () => {},
): T[] {
  const chosen = new Set<T>();
  for (const c of counts) {
    let best: T | null = null;
    for (const row of table)
      if (
        !best ||
        Math.abs(row.headsKept - c) < Math.abs(best.headsKept - c) ||
        (Math.abs(row.headsKept - c) === Math.abs(best.headsKept - c) && row.headsKept > best.headsKept)
      )
        best = row;
    if (!best) continue;
    if (best.headsKept !== c) log(`testHeads ${c}: no step leaves exactly ${c} heads; scoring step ${best.step} (${best.headsKept} heads)`);
    chosen.add(best);
  }
  return table.filter((row) => chosen.has(row));
}

/** A fixed-mask stage's head count: its sweep point's `maskHeads`, else the stage's. */
export function maskHeadsOf(inst: StageInstance): number | null {
  const st = inst.spec;
  if (st.kind !== 'prune' || st.method !== 'fixed-mask') return null;
  const v = inst.point['maskHeads'] ?? st.maskHeads;
  return typeof v === 'number' ? v : null;
}

export interface ChosenMask {
  /** the parent's pruning step */
  step: number;
  headsKept: number;
  /** relative to the parent's folder */
  maskFile: string;
  mask: HeadMask;
}

/**
 * The mask of the step of an importance-style stage (its folder) that leaves `heads` heads, or the
 * nearest count (`log` says so); null while the stage has not written its pruning-result.json.
 */
export function chooseMask(
  folder: string,
  model: Pick<ModelConfig, 'encoderLayers' | 'decoderLayers' | 'heads'>,
  heads: number,
  log: (m: string) => void = () => {},
): ChosenMask | null {
  const path = join(folder, 'pruning-result.json');
  if (!existsSync(path)) return null;
  const { table } = readJsonFile<{ table: Array<{ step: number; headsKept: number; maskFile: string }> }>(path, 'pruning result');
  const [row] = stepsNearest(table, [heads], log);
  if (!row) throw new HeadsError(`${path}: no pruning steps (expected a table of masks)`);
  const maskPath = join(folder, row.maskFile);
  if (!existsSync(maskPath))
    throw new HeadsError(
      `${maskPath}: head mask not found, though ${path} lists it for step ${row.step}${existsSync(join(folder, RESTORED_MARKER)) ? ' (the stage was restored from a record made before records kept masks/: copy its masks/ folder into the record, or run the stage here)' : ''}`,
    );
  return { step: row.step, headsKept: row.headsKept, maskFile: row.maskFile, mask: readHeadMask(maskPath, originalMaskShape(model)) };
}
