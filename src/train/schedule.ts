/**
 * Learning-rate schedule: linear warm-up to `peakLr` over `warmupSteps`, then inverse square root decay
 * (Vaswani et al. 2017, written in terms of the peak rate instead of d_model^-0.5). Steps are 1-based.
 */
export function inverseSqrtLr(step: number, peakLr: number, warmupSteps: number): number {
  const s = Math.max(step, 1);
  if (warmupSteps <= 0) return peakLr;
  return peakLr * Math.min(s / warmupSteps, Math.sqrt(warmupSteps / s));
}
