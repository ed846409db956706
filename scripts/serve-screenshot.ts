/**
 * The README's screenshot of the translator page: opens a running `heads serve` page in headless
 * Chromium, types the sentences of a file (one per line), translates (each sentence `runs` times, the
 * latency shown is the median; default 1), and saves a PNG of the page.
 *
 *   npx heads serve <export>... --port 8321 &
 *   npx tsx scripts/serve-screenshot.ts http://127.0.0.1:8321/ sentences.txt src/serve/screenshot.png [runs] [webgpu]
 *
 * `webgpu` starts Chromium with WebGPU on SwiftShader (a software adapter; no GPU needed), so the page takes
 * its WebGPU path: the way to check that path by hand (slow: seconds per sentence; not in the test suite).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { chromiumMissingMessage, findChromium } from '../src/plots/write.js';

const [url, sentencesFile, out, runsArg = '1', gpuArg] = process.argv.slice(2);
const runs = Number(runsArg);
if (!url || !sentencesFile || !out || !Number.isInteger(runs) || runs < 1 || (gpuArg !== undefined && gpuArg !== 'webgpu')) {
  console.error('usage: npx tsx scripts/serve-screenshot.ts <page url> <sentences file> <out.png> [runs per sentence, an integer >= 1] [webgpu]');
  process.exit(2);
}
const executablePath = findChromium();
if (!executablePath) {
  console.error(chromiumMissingMessage());
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), 'heads-screenshot-'));
const common = [
  '--headless',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const args =
  gpuArg === 'webgpu'
    ? [...common, '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan', '--use-angle=swiftshader']
    : [...common, '--disable-gpu'];
const context = await chromium.launchPersistentContext(profile, { executablePath, args, viewport: { width: 1280, height: 760 } });
try {
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') console.error(`console: ${m.text()}`);
  });
  await page.goto(url);
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { state: 'attached', timeout: 120000 });
  if ((await page.getAttribute('body', 'data-state')) === 'error') throw new Error(`the page failed: ${await page.textContent('#error')}`);
  await page.fill('#source', readFileSync(sentencesFile, 'utf8').trim());
  await page.fill('#runs', String(runs));
  await page.click('#translate');
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { state: 'attached', timeout: 300000 });
  await page.screenshot({ path: out, fullPage: true });
  console.error(
    `${out}: ${(statSync(out).size / 1000).toFixed(1)} kB; ${await page.textContent('#runtime')}; ${(await page.locator('.mean-latency').allTextContents()).join(' | ')}`,
  );
  for (const cell of await page.locator('#results tbody tr').all()) console.log((await cell.locator('td.translation').allTextContents()).join(' | '));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
