/** Test helper: loading an experiment spec fails with one ConfigError that names the file and every fragment. */
import { loadSpec } from '../experiments/spec.js';
import { ConfigError } from '../util/errors.js';

export function expectSpecRefused(path: string, fragments: readonly string[]): void {
  let err: unknown = null;
  try {
    loadSpec(path);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const msg = (err as Error).message;
  expect(msg).toContain(path);
  for (const f of fragments) expect(msg).toContain(f);
}
