/**
 * The translator page's server: a static HTTP server on 127.0.0.1 only. It answers GET and HEAD for
 *   /              the page (page-html.ts)
 *   /page.js       the page's bundled TypeScript (bundle.ts)
 *   /ort/<file>    onnxruntime-web's own ES modules and wasm binaries, from node_modules
 *   /models.json   what the page shows about each export (served-export.ts)
 *   /models/<i>/<file>  the files of export i that the page loads (graphs, tokenizer), by name
 * and nothing else (404). Requests whose Host header is not this server's loopback address are refused
 * (403), so a web page elsewhere cannot reach it through DNS rebinding. Nothing is written to disk.
 */
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { HeadsError } from '../util/errors.js';
import { bundlePage } from './bundle.js';
import { pageHtml } from './page-html.js';
import type { ServedExport } from './served-export.js';

export const SERVE_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8321;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.onnx': 'application/octet-stream',
  '.data': 'application/octet-stream',
};

function contentTypeOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return CONTENT_TYPES[dot >= 0 ? name.slice(dot) : ''] ?? 'application/octet-stream';
}

/** onnxruntime-web's dist folder: the files /ort/ serves. */
export function ortDistFolder(): string {
  // the package's exports map hides package.json; every entry it names lives in dist/
  return dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
}

/** The runtime files of onnxruntime-web the page may load (ES modules and wasm; no source maps, no CommonJS). */
export function ortFiles(dir: string = ortDistFolder()): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of readdirSync(dir)) if (/^ort[\w.-]*\.(mjs|wasm)$/.test(name)) files.set(name, join(dir, name));
  return files;
}

/** The port is taken or cannot be bound: the user's choice, so one line and exit 2. */
export class ServeError extends HeadsError {}

export interface ServeOptions {
  /** 0 picks a free port */
  port: number;
  /** log one line per request that failed (default: nothing) */
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  /** bytes of /page.js and how long esbuild took */
  bundle: { bytes: number; elapsedMs: number };
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

function sendFile(req: IncomingMessage, res: ServerResponse, path: string, name: string): void {
  const size = statSync(path).size;
  res.writeHead(200, { 'Content-Type': contentTypeOf(name), 'Content-Length': size, 'Cache-Control': 'no-store' });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(path).pipe(res);
}

/** Start serving `exports` (already validated) on 127.0.0.1:`port`. */
export async function startServer(exports: readonly ServedExport[], opts: ServeOptions): Promise<RunningServer> {
  const bundle = await bundlePage();
  const ort = ortFiles();
  const modelsJson = JSON.stringify(exports.map((e, i) => ({ ...e.info, base: `/models/${i}/` })));
  let allowedHosts = new Set<string>();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (!allowedHosts.has(req.headers.host ?? '')) return send(res, 403, 'forbidden: this server answers only on its loopback address\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n');
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    if (path === '/' || path === '/index.html') return send(res, 200, pageHtml(), CONTENT_TYPES['.html']);
    if (path === '/page.js') return send(res, 200, bundle.code, CONTENT_TYPES['.js']);
    if (path === '/models.json') return send(res, 200, modelsJson, CONTENT_TYPES['.json']);
    const ortMatch = /^\/ort\/([^/]+)$/.exec(path);
    if (ortMatch && ort.has(ortMatch[1]!)) return sendFile(req, res, ort.get(ortMatch[1]!)!, ortMatch[1]!);
    const modelMatch = /^\/models\/(\d+)\/([^/]+)$/.exec(path);
    if (modelMatch) {
      const file = exports[Number(modelMatch[1])]?.files.get(modelMatch[2]!);
      if (file && existsSync(file)) return sendFile(req, res, file, modelMatch[2]!);
    }
    opts.log?.(`404 ${path}`);
    return send(res, 404, 'not found\n');
  };

  const server: Server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      opts.log?.(`500 ${req.url}: ${(e as Error).message}`);
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    }
  });
  await new Promise<void>((done, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') fail(new ServeError(`--port ${opts.port}: the port is in use on ${SERVE_HOST}: choose another (--port 0 picks a free one)`));
      else if (e.code === 'EACCES')
        fail(new ServeError(`--port ${opts.port}: not allowed to listen on it (ports below 1024 need privileges): choose one from 1024 to 65535`));
      else fail(e);
    });
    server.listen(opts.port, SERVE_HOST, () => done());
  });
  const port = (server.address() as AddressInfo).port;
  allowedHosts = new Set([`${SERVE_HOST}:${port}`, `localhost:${port}`]);
  return {
    url: `http://${SERVE_HOST}:${port}/`,
    port,
    bundle: { bytes: bundle.bytes, elapsedMs: bundle.elapsedMs },
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
