/** Mean and spread of a handful of numbers (replicates over seeds). */

export interface MeanSd {
  mean: number;
  /** sample standard deviation (n - 1); 0 for one value */
  sd: number;
  n: number;
}

/** Mean and sample sd of the finite values (null when there are none). */
export function meanSd(values: ReadonlyArray<number | null | undefined>): MeanSd | null {
  const xs = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!xs.length) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd, n: xs.length };
}
