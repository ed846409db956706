/**
 * What the tslab notebooks need beyond the builders: showing a figure (a PNG rendered by headless
 * Chromium, which every Jupyter front end and nbconvert's HTML display, plus the plotly JSON bundle for
 * front ends with a plotly renderer), and finding the newest run folder a previous notebook made.
 * The display object is passed in (`tslab.display`), so this module does not depend on tslab.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type FigureLike, type PngRenderer, chromiumMissingMessage } from './write.js';

/** The part of tslab's `Display` used here. */
export interface NotebookDisplay {
  png(b: Uint8Array): void;
  /** tslab declares `b: string | Uint8Array` but passes any value through (method parameters are bivariant) */
  raw(contentType: string, data: unknown): unknown;
  text(s: string): void;
}

export const PLOTLY_MIME = 'application/vnd.plotly.v1+json';

export interface ShowFigureOptions {
  /** PNG pixels per CSS pixel (default 1, keeps committed notebooks small) */
  scale?: number;
  /** also send the plotly JSON bundle (default true) */
  isBundled?: boolean;
}

/**
 * Show a figure in a notebook: its PNG (when a renderer is open: `await PngRenderer.open()`, null without
 * Chromium) and its plotly JSON bundle. The renderer is a positional argument on purpose: tslab 1.0.22
 * does not rewrite shorthand properties (`{ renderer }`) that name a variable of an earlier cell.
 */
export async function showFigure(fig: FigureLike, display: NotebookDisplay, renderer: PngRenderer | null, opts: ShowFigureOptions = {}): Promise<void> {
  if (renderer) display.png(await renderer.render(fig, { scale: opts.scale ?? 1 }));
  else display.text(chromiumMissingMessage());
  // tslab passes the value through as the bundle's data; an object gives a real JSON mime bundle
  if (opts.isBundled ?? true) display.raw(PLOTLY_MIME, JSON.parse(JSON.stringify(fig)) as unknown);
}

/**
 * The newest run folder under `runsDir` whose name contains `nameContains` and that holds `mustHave`
 * (default `results.json`, written when a run finishes), or null.
 */
export function latestRunFolder(runsDir: string, nameContains: string, mustHave = 'results.json'): string | null {
  if (!existsSync(runsDir)) return null;
  const found = readdirSync(runsDir)
    .filter((n) => n.includes(nameContains))
    .map((n) => join(runsDir, n))
    .filter((p) => statSync(p).isDirectory() && existsSync(join(p, mustHave)))
    .sort(); // folder names start with yyyymmdd-hhmmss
  const last = found[found.length - 1];
  return last ? resolve(last) : null;
}
