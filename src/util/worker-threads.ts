/**
 * What every worker-thread pool shares (training's train/workers, decoding's eval/decode-pool): how to
 * start a worker module from compiled JS or from TypeScript, and errors across the thread boundary.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HeadsError, OutOfMemoryError } from './errors.js';

/**
 * How to start the worker module `worker`: the compiled file itself (dist/), or, for a .ts module (tests,
 * tsx), a small bootstrap that registers tsx's loader in the worker through its API and then imports it
 * (a worker does not inherit the parent's loader hooks, and tsx's own `--import` entry registers itself on
 * the main thread only). Callers pass `./x.ts` or `./x.js` after their own import.meta.url.
 */
export function workerEntry(worker: URL): { entry: URL | string; eval: boolean } {
  if (worker.href.endsWith('.ts')) {
    const req = createRequire(import.meta.url);
    const api = pathToFileURL(join(dirname(req.resolve('tsx/package.json')), 'dist', 'esm', 'api', 'index.mjs')).href;
    return { entry: `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(worker.href)}); });`, eval: true };
  }
  return { entry: worker, eval: false };
}

/** `./name.ts` next to a TypeScript caller, `./name.js` next to a compiled one. */
export function siblingModule(callerUrl: string, name: string): URL {
  return new URL(`./${name}${callerUrl.endsWith('.ts') ? '.ts' : '.js'}`, callerUrl);
}

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof Error) return { name: e.name, message: e.message, ...(e.stack !== undefined ? { stack: e.stack } : {}) };
  return { name: 'Error', message: String(e) };
}

/**
 * A worker entry's start-up handshake: once `starting` resolves, post `ready`; if it fails, post
 * `init-error` with the error. Resolves to the started value, or null after a failed start.
 */
export function announceStart<T>(
  starting: Promise<T>,
  post: (m: { type: 'ready' } | { type: 'init-error'; error: SerializedError }) => void,
): Promise<T | null> {
  return starting.then(
    (v) => {
      post({ type: 'ready' });
      return v;
    },
    (e: unknown) => {
      post({ type: 'init-error', error: serializeError(e) });
      return null;
    },
  );
}

/** A worker's serialized error as an Error on the main thread (out-of-memory and user errors keep their class); `who` prefixes the rest. */
export function reviveWorkerError(e: SerializedError, who: string): Error {
  if (e.name === 'OutOfMemoryError') return new OutOfMemoryError(e.message);
  if (e.name === 'HeadsError') return new HeadsError(e.message);
  const err = new Error(`${who}: ${e.message}`);
  if (e.stack !== undefined) err.stack = `${err.message}\n(worker) ${e.stack}`;
  return err;
}
