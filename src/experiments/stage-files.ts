/**
 * The names of the marker files a stage folder can hold beside stage.json, in one leaf module so that
 * every part of src/experiments (stage.ts, records.ts, fixed-mask.ts, equivalence.ts) names them alike
 * without importing one another.
 */

/** In a train stage folder continued from a run that reached a lower cap: which run, from which step (stage.json's `continuedFrom`). */
export const CONTINUED_FILE = 'continued-from.json';

/** In a stage folder copied back from a committed record (`experiment run --restore`): which record. */
export const RESTORED_MARKER = 'restored.json';
