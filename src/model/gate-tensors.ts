/** Frees the tensors of a set of gate values (GateTensors: per attention type, one tensor or null per layer); nothing for none. */
import type { GateTensors } from './transformer.js';

export function disposeGates(g: GateTensors | null | undefined): void {
  if (!g) return;
  for (const list of Object.values(g)) for (const t of list ?? []) t?.dispose();
}
