/**
 * The writer: JSON + standalone HTML always, PNG through headless Chromium. The HTML page is opened in
 * Chromium and must draw (a screenshot with many non-white pixels); the Chromium tests are skipped, with
 * a message, where Chromium is not installed.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { headHeatmap } from './heatmap.js';
import { readGateTrajectory, readHeadScores, readMetrics, selectScore } from './readers.js';
import { gateTrajectories } from './gates.js';
import { trainingCurves } from './training.js';
import { PngRenderer, chromiumMissingMessage, figureHtml, findChromium, writeFigure } from './write.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const CHROMIUM = findChromium();
const itChromium = CHROMIUM ? it : it.skip;
if (!CHROMIUM) console.warn(`plots/write.test.ts: Chromium tests skipped: ${chromiumMissingMessage()}`);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'heads-plots-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** PNG bytes -> count of pixels that are not (near) white, decoded by the browser's canvas. */
async function nonWhitePixels(page: Page, png: Uint8Array): Promise<{ width: number; height: number; inked: number }> {
  const url = `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
  return page.evaluate(async (src: string) => {
    // browser-side code, typed structurally (no DOM lib in this project)
    type Img = { src: string; width: number; height: number; decode(): Promise<void> };
    type Ctx = { drawImage(i: Img, x: number, y: number): void; getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
    type Canvas = { width: number; height: number; getContext(k: '2d'): Ctx };
    const doc = (globalThis as unknown as { document: { createElement(t: 'img'): Img; createElement(t: 'canvas'): Canvas } }).document;
    const img = doc.createElement('img');
    img.src = src;
    await img.decode();
    const canvas = doc.createElement('canvas');
    canvas.width = img.width;
    canvas.height = img.height;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, img.width, img.height).data;
    let inked = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i]! < 235 || d[i + 1]! < 235 || d[i + 2]! < 235) inked++;
    return { width: img.width, height: img.height, inked };
  }, url);
}

describe('figureHtml', () => {
  it('inlines plotly.js once, wraps the figure in an IIFE and escapes "<" in the JSON', () => {
    const html = figureHtml({ data: [{ type: 'scatter', x: [1], y: [2], name: '</script><b>' }], layout: { width: 640, height: 300 } }, { title: 'a <title>' });
    // boolean checks: a failing toContain would print the whole 4.8 MB page
    const has = (s: string) => html.includes(s);
    expect(html.match(/Plotly\.newPlot/g)).toHaveLength(1);
    expect(has('(function(){var fig=')).toBe(true);
    expect(has('</script><b>')).toBe(false);
    expect(has('\\u003c/script>')).toBe(true);
    expect(has('<title>a &lt;title&gt;</title>')).toBe(true);
    expect(has('style="width:640px;height:300px"')).toBe(true);
    expect(html.length).toBeGreaterThan(1_000_000); // plotly.js is in the page: it opens offline
  });
});

describe('writeFigure', () => {
  it('writes <name>.json and <name>.html; no PNG unless asked', async () => {
    const fig = trainingCurves(readMetrics(FIXTURES));
    const w = await writeFigure(fig, join(dir, 'sub', 'training'));
    expect(w).toEqual({ json: join(dir, 'sub', 'training.json'), html: join(dir, 'sub', 'training.html'), png: null, note: null });
    expect(JSON.parse(readFileSync(w.json, 'utf8'))).toEqual(fig);
    expect(existsSync(join(dir, 'sub', 'training.png'))).toBe(false);
  });

  it('without Chromium the PNG is skipped with a one-line note', async () => {
    const w = await writeFigure(trainingCurves(readMetrics(FIXTURES)), join(dir, 'nochrome'), { png: true, chromiumPath: join(dir, 'no-such-chromium') });
    expect(w.png).toBeNull();
    expect(w.note).toMatch(
      /^PNG skipped: Chromium not found \(looked for .*no-such-chromium\); install it with "apt-get install -y --no-install-recommends chromium"/,
    );
    expect(w.note).not.toContain('\n');
    expect(existsSync(w.html!)).toBe(true);
  });

  it('html: false writes the JSON spec only', async () => {
    const w = await writeFigure(trainingCurves(readMetrics(FIXTURES)), join(dir, 'nohtml'), { html: false });
    expect(w).toEqual({ json: join(dir, 'nohtml.json'), html: null, png: null, note: null });
    expect(existsSync(join(dir, 'nohtml.html'))).toBe(false);
    expect(existsSync(w.json)).toBe(true);
  });
});

describe('in headless Chromium', () => {
  let browser: Browser | undefined;
  let page: Page;
  beforeAll(async () => {
    if (!CHROMIUM) return;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage();
  });
  afterAll(async () => {
    await browser?.close();
  });

  itChromium('the standalone HTML page opens offline and the plot draws', async () => {
    const fig = gateTrajectories(readGateTrajectory(FIXTURES));
    const w = await writeFigure(fig, join(dir, 'gates'));
    const p = await browser!.newPage({ viewport: { width: 1000, height: 560 } });
    await p.route('**/*', (route) => (route.request().url().startsWith('file:') ? route.continue() : route.abort())); // offline
    await p.goto(pathToFileURL(w.html!).href);
    await p.waitForSelector('body[data-rendered="1"]', { timeout: 30_000 });
    expect(await p.locator('.main-svg').count()).toBeGreaterThan(0);
    expect(await p.locator('g.trace.scatter').count()).toBe(4); // one line per head
    const shot = await p.screenshot();
    await p.close();
    const px = await nonWhitePixels(page, shot);
    expect(px.width).toBe(1000);
    expect(px.inked / (px.width * px.height)).toBeGreaterThan(0.01);
  });

  itChromium('writeFigure renders a PNG at the figure size times the scale, and it is not blank', async () => {
    const renderer = await PngRenderer.open({ chromiumPath: CHROMIUM });
    try {
      expect(renderer!.mode).toBe('playwright');
      const fig = headHeatmap(selectScore(readHeadScores(FIXTURES), 'gate_p_open'));
      const w = await writeFigure(fig, join(dir, 'heatmap'), { png: true, renderer, scale: 1 });
      expect(w.note).toBeNull();
      const png = new Uint8Array(readFileSync(w.png!));
      expect([...png.slice(1, 4)].map((c) => String.fromCharCode(c)).join('')).toBe('PNG');
      const px = await nonWhitePixels(page, png);
      expect([px.width, px.height]).toEqual([fig.layout.width, fig.layout.height]);
      // the heatmap cells cover a good part of the figure
      expect(px.inked / (px.width * px.height)).toBeGreaterThan(0.1);
    } finally {
      await renderer?.close();
    }
  });

  itChromium('the chromium command line (used without playwright-core) renders the same figure', async () => {
    const renderer = await PngRenderer.open({ chromiumPath: CHROMIUM, via: 'cli' });
    try {
      expect(renderer!.mode).toBe('cli');
      const fig = headHeatmap(selectScore(readHeadScores(FIXTURES), 'gate_p_open'));
      const px = await nonWhitePixels(page, await renderer!.render(fig));
      expect([px.width, px.height]).toEqual([fig.layout.width, fig.layout.height]);
      expect(px.inked / (px.width * px.height)).toBeGreaterThan(0.1);
    } finally {
      await renderer?.close();
    }
  });

  itChromium('an empty figure renders nearly white (the check can fail)', async () => {
    const renderer = await PngRenderer.open({ chromiumPath: CHROMIUM });
    try {
      const png = await renderer!.render({ data: [], layout: { width: 300, height: 200, xaxis: { visible: false }, yaxis: { visible: false } } });
      const px = await nonWhitePixels(page, png);
      expect(px.inked / (px.width * px.height)).toBeLessThan(0.01);
    } finally {
      await renderer?.close();
    }
  });
});
