/** Frees the tensors of a set of gate values (GateTensors: per attention type, one tensor or null per layer). */
import type { GateTensors } from './transformer.js';

export function disposeGates(g: GateTensors): void {
  for (const list of Object.values(g)) for (const t of list ?? []) t?.dispose();
}
