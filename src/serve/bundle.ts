/**
 * The page's JavaScript: `page/main.ts` and what it imports (the toolkit's BPE tokenizer, the ONNX decode
 * loop) bundled by esbuild into one ES module at serve time, in memory. `onnxruntime-web` stays outside
 * the bundle: the page's import map points it at the package's own files, which the server serves from
 * node_modules (the machine may be offline). Browser code must not reach Node's built-ins: the only
 * Node-only module the shared code touches is `util/fs.ts` (the tokenizer's load/save), which is
 * replaced by stubs that throw; any other `node:` import fails the build, naming the importer.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { DataError } from '../util/errors.js';

/** The repository root (this file is src/serve/bundle.ts, or dist/serve/bundle.js when built). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PAGE_ENTRY = join(ROOT, 'src', 'serve', 'page', 'main.ts');
const NODE_FS_MODULE = join(ROOT, 'src', 'util', 'fs.ts');
/** Bare specifiers left to the page's import map. */
export const EXTERNAL_MODULES: readonly string[] = ['onnxruntime-web', 'onnxruntime-web/webgpu'];

/** Stubs with the names `util/fs.ts` exports, each throwing if called in the browser. */
export function nodeFsStub(source: string): string {
  const names = [...source.matchAll(/^export\s+(?:async\s+)?function\s+(\w+)/gm)].map((m) => m[1]!);
  const consts = [...source.matchAll(/^export\s+const\s+(\w+)/gm)].map((m) => m[1]!);
  return [
    ...names.map((n) => `export function ${n}() { throw new Error('${n}: file access is not available in the browser'); }`),
    ...consts.map((n) => `export const ${n} = undefined;`),
    '',
  ].join('\n');
}

/** esbuild plugin: util/fs.ts -> stubs; any other Node built-in is an error naming who imports it. */
function browserOnly(): Plugin {
  return {
    name: 'heads-browser-only',
    setup(b) {
      b.onResolve({ filter: /\/util\/fs(\.js)?$/ }, (args) => {
        const target = resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts'));
        return target === NODE_FS_MODULE ? { path: NODE_FS_MODULE, namespace: 'heads-fs-stub' } : undefined;
      });
      b.onLoad({ filter: /.*/, namespace: 'heads-fs-stub' }, (args) => ({ contents: nodeFsStub(readFileSync(args.path, 'utf8')), loader: 'js' }));
      b.onResolve({ filter: /^node:|^(fs|path|os|crypto|child_process|worker_threads|url|module)$/ }, (args) => ({
        errors: [{ text: `${relative(ROOT, args.importer)} imports the Node built-in "${args.path}": page code must run in a browser` }],
      }));
    },
  };
}

export interface PageBundle {
  /** the ES module, UTF-8 */
  code: string;
  bytes: number;
  elapsedMs: number;
}

/** Bundle the page (ES2022, minified identifiers kept readable, an inline source map for the browser's devtools). */
export async function bundlePage(entry: string = PAGE_ENTRY): Promise<PageBundle> {
  if (!existsSync(entry))
    throw new DataError(`${entry}: the translator page's source is missing (heads serve bundles it from the repository's src/serve/page/)`);
  const t0 = performance.now();
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    external: [...EXTERNAL_MODULES],
    sourcemap: 'inline',
    logLevel: 'silent',
    plugins: [browserOnly()],
  });
  const code = result.outputFiles[0]!.text;
  return { code, bytes: Buffer.byteLength(code), elapsedMs: performance.now() - t0 };
}
