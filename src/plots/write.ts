/**
 * Saving a figure: `<name>.json` (the spec), `<name>.html` (a standalone page with plotly.js inlined, so
 * it opens offline; about 4.8 MB) and, when Chromium is installed, `<name>.png` rendered headless.
 * PNGs go through playwright-core driving the system Chromium when that package is installed (one
 * browser for many figures), else through `chromium --headless --screenshot`. Without Chromium the PNG
 * is skipped with a one-line note; JSON and HTML are always written (atomically).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import { figureSize } from './figure.js';

/** Anything shaped like a plotly figure (this module's FigureSpec, or a plain-JSON spec from elsewhere). */
export interface FigureLike {
  data: readonly unknown[];
  layout?: unknown;
}

/** Where Chromium is looked for when no path is given. */
export const CHROMIUM_CANDIDATES: readonly string[] = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
];

/** The first installed Chromium of `candidates`, or null. */
export function findChromium(candidates: readonly string[] = CHROMIUM_CANDIDATES): string | null {
  return candidates.find((p) => existsSync(p)) ?? null;
}

/** The one-line note printed when a PNG is asked for and no Chromium is installed. */
export function chromiumMissingMessage(looked: readonly string[] = CHROMIUM_CANDIDATES): string {
  return `PNG skipped: Chromium not found (looked for ${looked.join(', ')}); install it with "apt-get install -y --no-install-recommends chromium" or give its path (--chromium); the JSON and HTML are written`;
}

/** The plotly.js bundle (plotly.js-dist-min), read from node_modules. */
export function plotlySource(): string {
  return readFileSync(createRequire(import.meta.url).resolve('plotly.js-dist-min'), 'utf8');
}

/** JSON that is safe inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/**
 * The standalone page of a figure: plotly.js inlined, the plot div sized like the figure, the figure
 * script wrapped in an IIFE (a top-level `var fig` would clash when a page is reused). When drawn, the
 * body gets `data-rendered="1"` (or `data-error` with the message).
 */
export function figureHtml(fig: FigureLike, opts: { title?: string; plotly?: string } = {}): string {
  const { width, height } = figureSize(fig);
  const title = escapeHtml(opts.title ?? 'heads figure');
  return [
    '<!doctype html>',
    `<html><head><meta charset="utf-8"><title>${title}</title>`,
    '<style>html,body{margin:0;padding:0;background:#fff}</style></head><body>',
    `<script>${opts.plotly ?? plotlySource()}</script>`,
    `<div id="plot" style="width:${width}px;height:${height}px"></div>`,
    `<script>(function(){var fig=${scriptJson(fig)};Plotly.newPlot('plot',fig.data,fig.layout||{},{responsive:false,displaylogo:false}).then(function(){document.body.setAttribute('data-rendered','1');},function(e){document.body.setAttribute('data-error',String(e));});})();</script>`,
    '</body></html>',
    '',
  ].join('\n');
}

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export interface PngRendererOptions {
  /** default: the first of CHROMIUM_CANDIDATES that exists */
  chromiumPath?: string | null;
  /** `auto` (default): playwright-core when installed, else the chromium command line; `cli`: always the command line */
  via?: 'auto' | 'cli';
}

/** The parts of playwright-core used here. */
interface PlaywrightPage {
  setContent(html: string): Promise<void>;
  addScriptTag(o: { content: string }): Promise<unknown>;
  evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
}
interface PlaywrightBrowser {
  newPage(): Promise<PlaywrightPage>;
  close(): Promise<void>;
}

interface PlotlyInPage {
  react(id: string, data: unknown, layout: unknown, config: unknown): Promise<unknown>;
  toImage(id: string, o: { format: 'png'; width: number; height: number; scale: number }): Promise<string>;
}

async function launchPlaywright(executablePath: string): Promise<PlaywrightBrowser | null> {
  let mod: { chromium: { launch(o: { executablePath: string; args: string[] }): Promise<PlaywrightBrowser> } };
  try {
    mod = (await import('playwright-core')) as unknown as typeof mod;
  } catch {
    return null; // not installed (a production install without dev dependencies): use the CLI
  }
  return mod.chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

function runChromium(chromium: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(chromium, args, { timeout: timeoutMs }, (err, _stdout, stderr) => {
      if (err)
        reject(new Error(`${basename(chromium)} failed: ${err.message.split('\n')[0]}${stderr ? ` (${String(stderr).trim().split('\n').slice(-1)[0]})` : ''}`));
      else resolve();
    });
  });
}

/**
 * Renders figures to PNG with one headless Chromium (launch once, render many, then `close()`).
 * `PngRenderer.open()` resolves to null when no Chromium is installed.
 */
export class PngRenderer {
  private page: PlaywrightPage | null = null;

  private constructor(
    readonly chromiumPath: string,
    private readonly browser: PlaywrightBrowser | null,
  ) {}

  /** How PNGs are made: `playwright` (one browser) or `cli` (one chromium process per figure). */
  get mode(): 'playwright' | 'cli' {
    return this.browser ? 'playwright' : 'cli';
  }

  static async open(opts: PngRendererOptions = {}): Promise<PngRenderer | null> {
    const path = opts.chromiumPath ?? findChromium();
    if (!path || !existsSync(path)) return null;
    return new PngRenderer(path, opts.via === 'cli' ? null : await launchPlaywright(path));
  }

  /** The figure as PNG bytes at its layout size times `scale` (default 1). */
  async render(fig: FigureLike, opts: { scale?: number } = {}): Promise<Uint8Array> {
    const { width, height } = figureSize(fig);
    const scale = opts.scale ?? 1;
    if (!this.browser) return this.renderWithCli(fig, width, height, scale);
    if (!this.page) {
      const page = await this.browser.newPage();
      await page.setContent('<!doctype html><html><body style="margin:0;background:#fff"><div id="plot"></div></body></html>');
      await page.addScriptTag({ content: plotlySource() });
      this.page = page;
    }
    const url = await this.page.evaluate(
      async (a: { fig: FigureLike; width: number; height: number; scale: number }) => {
        const P = (globalThis as unknown as { Plotly: PlotlyInPage }).Plotly;
        const layout = { ...((a.fig.layout as object | undefined) ?? {}), width: a.width, height: a.height };
        await P.react('plot', a.fig.data, layout, { staticPlot: true });
        return P.toImage('plot', { format: 'png', width: a.width, height: a.height, scale: a.scale });
      },
      { fig: JSON.parse(JSON.stringify(fig)) as FigureLike, width, height, scale },
    );
    const comma = url.indexOf(',');
    return new Uint8Array(Buffer.from(url.slice(comma + 1), 'base64'));
  }

  private async renderWithCli(fig: FigureLike, width: number, height: number, scale: number): Promise<Uint8Array> {
    const dir = mkdtempSync(join(tmpdir(), 'heads-png-'));
    try {
      const html = join(dir, 'figure.html');
      const png = join(dir, 'figure.png');
      writeFileSync(html, figureHtml(fig));
      await runChromium(
        this.chromiumPath,
        [
          '--headless',
          ...CHROMIUM_ARGS,
          `--user-data-dir=${join(dir, 'profile')}`,
          '--hide-scrollbars',
          `--window-size=${width},${height}`,
          `--force-device-scale-factor=${scale}`,
          '--virtual-time-budget=10000',
          `--screenshot=${png}`,
          `file://${html}`,
        ],
        60_000,
      );
      if (!existsSync(png)) throw new Error(`${basename(this.chromiumPath)} wrote no screenshot`);
      return new Uint8Array(readFileSync(png));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async close(): Promise<void> {
    this.page = null;
    await this.browser?.close();
  }
}

export interface WriteFigureOptions {
  /** also write `<name>.png` (needs Chromium; skipped with a note when absent) */
  png?: boolean;
  /** PNG pixels per CSS pixel (default 2: sharp in papers and on screens) */
  scale?: number;
  /** reuse a renderer across figures; otherwise one is opened and closed for this figure */
  renderer?: PngRenderer | null;
  chromiumPath?: string | null;
  /** the HTML page's title (default: the file name) */
  title?: string;
  /** write the standalone HTML page (default true; it inlines plotly.js, about 4.8 MB) */
  html?: boolean;
}

export interface WrittenFigure {
  json: string;
  /** null when `html: false` */
  html: string | null;
  png: string | null;
  /** why there is no PNG although one was asked for */
  note: string | null;
}

/** Write `<path>.json`, `<path>.html` and (with `png`) `<path>.png`; `path` has no extension. */
export async function writeFigure(fig: FigureLike, pathWithoutExt: string, opts: WriteFigureOptions = {}): Promise<WrittenFigure> {
  const json = `${pathWithoutExt}.json`;
  const html = `${pathWithoutExt}.html`;
  writeFileAtomic(json, JSON.stringify(fig, null, 1) + '\n');
  const htmlPath = opts.html === false ? null : html;
  if (htmlPath) writeFileAtomic(htmlPath, figureHtml(fig, { title: opts.title ?? basename(pathWithoutExt) }));
  if (!opts.png) return { json, html: htmlPath, png: null, note: null };
  const renderer = opts.renderer ?? (await PngRenderer.open({ chromiumPath: opts.chromiumPath }));
  if (!renderer) return { json, html: htmlPath, png: null, note: chromiumMissingMessage(opts.chromiumPath ? [opts.chromiumPath] : CHROMIUM_CANDIDATES) };
  try {
    const bytes = await renderer.render(fig, { scale: opts.scale ?? 2 });
    const png = `${pathWithoutExt}.png`;
    writeFileAtomic(png, bytes);
    return { json, html: htmlPath, png, note: null };
  } catch (e) {
    return { json, html: htmlPath, png: null, note: `PNG failed: ${(e as Error).message.split('\n')[0]}` };
  } finally {
    if (!opts.renderer) await renderer.close();
  }
}
