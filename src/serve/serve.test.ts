/**
 * `heads serve` end to end. A tiny run (random weights, as the export tests make it) is exported three times
 * with --format onnx: in full; pruned, one encoder layer left with no heads; and pruned to two decoder
 * layers without heads, in int8. Then:
 * - readServedExport refuses what is not a complete, consistent export, one line naming the file;
 * - the server answers on 127.0.0.1 only what the page needs, refuses foreign Host headers (403) and files
 *   outside its list (404);
 * - the real command (child process) refuses a bad folder or port with one line and exit 2;
 * - in headless Chromium, the page served by the real command shows, for each model, the translations
 *   `heads translate` prints for the same export (beam 3, the export's default, and greedy), a latency per
 *   sentence, the graphs' size and the heads kept per layer, with no console error and no failed request.
 *   For the int8 export the reference is `heads translate --engine onnx` (onnxruntime-node on the same
 *   graphs): the toolkit's own int8 keeps activations in float32, and its wasm beam search cannot run
 *   decoder layers without heads.
 * The Chromium part skips with a message where Chromium is not installed; the command-line parts need dist/
 * (npm test builds it first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { DEFAULT_CONFIG } from '../config/defaults.js';
import type { HeadsConfig } from '../config/schema.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { createTransformer } from '../model/transformer.js';
import { type NamedArrays, writeCheckpoint } from '../io/checkpoint.js';
import { exportModel } from '../export/export-model.js';
import { maskFromKeptSets } from '../io/head-mask.js';
import { originalMaskShape } from '../config/head-layout.js';
import { chromiumMissingMessage, findChromium } from '../plots/write.js';
import { useTestBackend } from '../test-utils/backend.js';
import { Rng } from '../util/random.js';
import { DataError } from '../util/errors.js';
import { formatBytes, formatCount, headsKept } from './model-info.js';
import { readServedExport } from './served-export.js';
import { type RunningServer, startServer } from './server.js';

const CHROMIUM = findChromium();
if (!CHROMIUM) console.warn(`serve/serve.test.ts: the browser test is skipped: ${chromiumMissingMessage()}`);
const bin = join(process.cwd(), 'bin', 'heads.js');
const built = existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'));
if (!built) console.warn('serve/serve.test.ts: the command-line tests are skipped: dist/ is not built (npm run build)');

const root = mkdtempSync(join(tmpdir(), 'heads-serve-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TRAIN = ['the cat sat on the mat .', 'a dog ran in the park', 'the bird sings', 'cats and dogs are friends .', 'on the mat sat a cat'];
const SENTENCES = ['the cat sat on the mat .', 'a dog sings', 'the bird ran in the park', 'cats sat on a dog .'];
const PRUNED_KEPT = {
  'enc-self': [[0, 2, 3], []],
  'dec-self': [
    [0, 1, 2, 3],
    [2, 3],
  ],
  'dec-enc': [
    [1, 3],
    [0, 1, 2],
  ],
};
const INT8_KEPT = {
  'enc-self': [
    [0, 1, 2, 3],
    [1, 2],
  ],
  'dec-self': [[0, 1], []],
  'dec-enc': [[], [0, 3]],
};

function tinyConfig(): HeadsConfig {
  return {
    ...DEFAULT_CONFIG,
    name: 'tiny',
    seed: 3,
    model: { ...DEFAULT_CONFIG.model, encoderLayers: 2, decoderLayers: 2, heads: 4, dModel: 16, dFF: 32, maxPositions: 64 },
    gates: { ...DEFAULT_CONFIG.gates, attention: [] },
    eval: { ...DEFAULT_CONFIG.eval, beamSize: 3, maxLenA: 1, maxLenB: 4, batchSentences: 8 },
  };
}

/** A run folder as training writes it (tokenizer, config, one checkpoint), with random weights. */
async function makeRun(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tok = BpeTokenizer.learn(TRAIN, { numMerges: 30 });
  tok.save(join(dir, 'tokenizer.json'));
  const config = tinyConfig();
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const model = createTransformer(config.model, tok.vocabSize, new Rng(1));
  const rng = new Rng(2);
  for (const [n, v] of model.params.vars)
    model.params.assign(
      n,
      v.shape,
      Float32Array.from({ length: v.size }, () => rng.normal() * 0.5 + (n.endsWith('.g') ? 1 : 0)),
    );
  const params: NamedArrays = await model.params.toArrays();
  writeCheckpoint(dir, { step: 10, dataPosition: { epoch: 1, batch: 0 }, adamStep: 10, config, extra: {} }, params, {}, 1);
  model.dispose();
}

const run = join(root, 'run');
const full = join(root, 'export-full');
const pruned = join(root, 'export-pruned');
const int8 = join(root, 'export-int8');

beforeAll(async () => {
  await useTestBackend();
  await makeRun(run);
  // the exporter's own self-check is tested with it (export-model.test.ts, onnx-export.test.ts)
  await exportModel({ from: run, mask: 'none', outDir: full, formats: ['heads', 'onnx'], verify: false });
  const mask = maskFromKeptSets(PRUNED_KEPT, originalMaskShape(tinyConfig().model), 'manual');
  await exportModel({ from: run, mask, outDir: pruned, formats: ['heads', 'onnx'], verify: false });
  const int8Mask = maskFromKeptSets(INT8_KEPT, originalMaskShape(tinyConfig().model), 'manual');
  await exportModel({ from: run, mask: int8Mask, outDir: int8, formats: ['onnx'], int8: true, verify: false });
}, 180000);

describe('readServedExport', () => {
  it('reads an export folder or its onnx/ folder: graph sizes, heads kept, decoding defaults', () => {
    for (const folder of [pruned, join(pruned, 'onnx')]) {
      const s = readServedExport(folder);
      expect(s.info.name).toBe('export-pruned');
      expect(s.info.sizeBytes).toBe(statSync(join(pruned, 'onnx', 'encoder.onnx')).size + statSync(join(pruned, 'onnx', 'decoder.onnx')).size);
      expect(s.info.metadata.keptHeads).toEqual(PRUNED_KEPT);
      expect(headsKept(s.info)).toEqual({ kept: 14, original: 24 });
      expect(s.info.metadata.generation.beamSize).toBe(3);
      expect([...s.files.keys()].sort()).toEqual(['decoder.onnx', 'encoder.onnx', 'tokenizer.json']);
    }
    expect(headsKept(readServedExport(full).info)).toEqual({ kept: 24, original: 24 });
  });

  it('refuses a missing folder, a folder without an export, a bad model.json, a missing graph and a foreign tokenizer, naming the file', () => {
    const copy = (name: string): string => {
      const dir = join(root, name);
      cpSync(pruned, dir, { recursive: true });
      return dir;
    };
    const refusal = (folder: string): string => {
      try {
        readServedExport(folder);
      } catch (e) {
        expect(e).toBeInstanceOf(DataError);
        expect((e as Error).message).not.toContain('\n');
        return (e as Error).message;
      }
      throw new Error(`${folder} was accepted`);
    };
    expect(refusal(join(root, 'nowhere'))).toMatch(/nowhere: no such export folder/);
    expect(refusal(run)).toMatch(/run: not an ONNX export: expected .*onnx\/model\.json \(write one with heads export <run> --format onnx\)/);
    const badMeta = copy('bad-meta');
    const meta = JSON.parse(readFileSync(join(badMeta, 'onnx', 'model.json'), 'utf8')) as Record<string, unknown>;
    // written without the integrity record, as a hand edit would be
    rmSync(join(badMeta, 'onnx', '.heads-integrity.json'), { force: true });
    writeFileSync(join(badMeta, 'onnx', 'model.json'), JSON.stringify({ ...meta, vocabSize: 'many' }));
    expect(refusal(badMeta)).toMatch(/bad-meta\/onnx\/model\.json: vocabSize: expected an integer, found "many"/);
    const noGraph = copy('no-graph');
    rmSync(join(noGraph, 'onnx', 'decoder.onnx'));
    expect(refusal(noGraph)).toMatch(/no-graph\/onnx\/decoder\.onnx: graph missing/);
    const otherTok = copy('other-tokenizer');
    rmSync(join(otherTok, 'onnx', '.heads-integrity.json'), { force: true });
    BpeTokenizer.learn(['another text entirely'], { numMerges: 3 }).save(join(otherTok, 'onnx', 'tokenizer.json'));
    expect(refusal(otherTok)).toMatch(/other-tokenizer\/onnx\/tokenizer\.json: not the tokenizer .*model\.json names \(sha256/);
  });
});

/** GET `path` with a Host header; status and body. */
function get(port: number, path: string, host = `127.0.0.1:${port}`): Promise<{ status: number; type: string; body: Buffer }> {
  return new Promise((done, fail) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
    });
    req.on('error', fail);
    req.end();
  });
}

describe('startServer', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer([readServedExport(full), readServedExport(pruned)], { port: 0 });
  });
  afterAll(() => server.close());

  it('listens on 127.0.0.1 and serves the page, its bundle, models.json, the runtime and the graphs', async () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
    const page = await get(server.port, '/');
    expect(page.status).toBe(200);
    expect(page.body.toString()).toContain('<script type="importmap">');
    const js = await get(server.port, '/page.js');
    expect(js.type).toMatch(/^text\/javascript/);
    // the bundle holds the toolkit's tokenizer and decode loop, and no Node built-in
    const code = js.body.toString().replace(/\/\/# sourceMappingURL=.*$/m, '');
    expect(code).toContain('BpeTokenizer');
    expect(code).toContain('translateWithOnnx');
    expect(/from\s*["']node:|require\(["']node:/.test(code)).toBe(false);
    const models = JSON.parse((await get(server.port, '/models.json')).body.toString()) as { name: string; base: string; sizeBytes: number }[];
    expect(models.map((m) => [m.name, m.base])).toEqual([
      ['export-full', '/models/0/'],
      ['export-pruned', '/models/1/'],
    ]);
    const graph = await get(server.port, '/models/1/decoder.onnx');
    expect(graph.body.equals(readFileSync(join(pruned, 'onnx', 'decoder.onnx')))).toBe(true);
    const wasm = await get(server.port, '/ort/ort-wasm-simd-threaded.wasm');
    expect(wasm.status).toBe(200);
    expect(wasm.type).toBe('application/wasm');
    expect(wasm.body.subarray(0, 4).toString('latin1')).toBe('\0asm');
  });

  it('answers 404 outside its list and 403 to a foreign Host header', async () => {
    for (const path of ['/models/0/model.json', '/models/0/../export.json', '/models/2/encoder.onnx', '/ort/ort.min.js', '/ort/../package.json', '/etc/passwd'])
      expect((await get(server.port, path)).status).toBe(404);
    expect((await get(server.port, '/', 'evil.example:80')).status).toBe(403);
    expect((await get(server.port, '/', `localhost:${server.port}`)).status).toBe(200);
  });

  it('refuses a port in use with one line', async () => {
    await expect(startServer([readServedExport(full)], { port: server.port })).rejects.toThrow(
      new RegExp(`^--port ${server.port}: the port is in use on 127\\.0\\.0\\.1`),
    );
  });
});

/** The real command as a child process (killed after 120 s: a hang fails the test). */
function heads(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn('node', [bin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}

(built ? describe : describe.skip)('heads serve: bad input', () => {
  it('a missing or non-export folder, a port out of range: exit 2, one line, nothing on stdout', async () => {
    const cases: [string[], RegExp][] = [
      [['serve', join(root, 'nowhere')], /^error: .*nowhere: no such export folder/],
      [['serve', full, run], /^error: .*run: not an ONNX export/],
      [['serve', full, '--port', '70000'], /^error: --port: expected an integer from 0 to 65535, got 70000/],
    ];
    const results = await Promise.all(cases.map(([args]) => heads(args)));
    results.forEach((r, i) => {
      expect({ args: cases[i]![0], status: r.status, lines: r.stderr.trim().split('\n').length, stdout: r.stdout }).toEqual({
        args: cases[i]![0],
        status: 2,
        lines: 1,
        stdout: '',
      });
      expect(r.stderr).toMatch(cases[i]![1]);
    });
  });
});

/** The translations `heads translate` prints for the export, one per sentence. */
async function cliTranslations(folder: string, beam: number, engine: 'tfjs' | 'onnx'): Promise<string[]> {
  const input = join(root, 'sentences.txt');
  if (!existsSync(input)) writeFileSync(input, SENTENCES.join('\n') + '\n');
  const r = await heads(['translate', '-m', folder, '-i', input, '--beam', String(beam), '--engine', engine]);
  expect(r.stderr).not.toMatch(/^error/m);
  expect(r.status).toBe(0);
  return r.stdout.replace(/\n$/, '').split('\n');
}

/** Start `heads serve` (a child process); resolves with its URL once it prints it. */
function serveCommand(folders: string[]): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn('node', [bin, 'serve', ...folders, '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((done, fail) => {
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const m = /serving on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout);
      if (m) done({ child, url: m[1]!, stderr: () => stderr });
    });
    child.on('exit', (code) => fail(new Error(`heads serve exited with ${code}: ${stderr}`)));
  });
}

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

(CHROMIUM && built ? describe : describe.skip)('the page in headless Chromium', () => {
  let browser: BrowserContext;
  let page: Page;
  let served: Awaited<ReturnType<typeof serveCommand>>;
  const problems: string[] = [];
  const profile = join(root, 'chromium-profile');

  /** the command line's translations per beam, started with the browser (child processes, in parallel) */
  let reference: Map<number, Promise<string[][]>>;

  beforeAll(async () => {
    reference = new Map(
      [3, 1].map((beam) => [
        beam,
        Promise.all([cliTranslations(full, beam, 'tfjs'), cliTranslations(pruned, beam, 'tfjs'), cliTranslations(int8, beam, 'onnx')]),
      ]),
    );
    // a failure surfaces in the test that awaits it
    for (const p of reference.values()) p.catch(() => {});
    served = await serveCommand([full, pruned, int8]);
    // a fresh profile: nothing cached from another run
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM!, args: CHROMIUM_ARGS, viewport: { width: 1100, height: 700 } });
    page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    await page.goto(served.url);
    await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { state: 'attached', timeout: 150000 });
  }, 180000);

  afterAll(async () => {
    await browser?.close();
    served?.child.kill('SIGTERM');
  });

  async function translateOnPage(beam: number): Promise<{ translations: string[][]; latencies: number[][] }> {
    await page.fill('#source', SENTENCES.join('\n'));
    await page.fill('#beam', String(beam));
    await page.click('#translate');
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { state: 'attached', timeout: 100000 });
    expect(await page.getAttribute('body', 'data-state')).toBe('done');
    const translations: string[][] = [];
    const latencies: number[][] = [];
    for (const m of [0, 1, 2]) {
      translations.push(await page.locator(`#results td.translation[data-model="${m}"]`).allTextContents());
      latencies.push((await page.locator(`#results td.latency[data-model="${m}"]`).allTextContents()).map((t) => Number(/^(\d+\.\d) ms$/.exec(t)?.[1] ?? NaN)));
    }
    expect(await page.locator('#results td.source').allTextContents()).toEqual([...SENTENCES, 'mean']);
    return { translations, latencies };
  }

  it("loads the three models with onnxruntime-web and shows each one's size and heads kept per layer", async () => {
    expect(await page.getAttribute('body', 'data-state')).toBe('ready');
    const columns: { name: string; size: string; parameters: string; heads: string; grid: string[] }[] = [];
    for (const section of await page.locator('section.model').all()) {
      const grid: string[] = [];
      for (const row of await section.locator('table.grid tr').all()) {
        const cells = await row.locator('td').all();
        grid.push((await Promise.all(cells.map((c) => c.getAttribute('class')))).map((c) => (c === 'kept' ? 1 : 0)).join(''));
      }
      columns.push({
        name: await section.locator('h2').innerText(),
        size: await section.locator('.size').innerText(),
        parameters: await section.locator('.parameters').innerText(),
        heads: await section.locator('.heads-total').innerText(),
        grid,
      });
    }
    const expected = [full, pruned, int8].map((f) => {
      const { info } = readServedExport(f);
      const { kept, original } = headsKept(info);
      // one row per layer: enc-self 0, 1, dec-self 0, 1, dec-enc 0, 1; a 1 per kept head
      const grid = (['enc-self', 'dec-self', 'dec-enc'] as const).flatMap((t) =>
        info.metadata.keptHeads[t].map((ids) => [0, 1, 2, 3].map((h) => (ids.includes(h) ? 1 : 0)).join('')),
      );
      return { name: info.name, size: formatBytes(info.sizeBytes), parameters: formatCount(info.metadata.parameters), heads: `${kept} / ${original}`, grid };
    });
    expect(columns).toEqual(expected);
    // the parameter counts are the exporter's own (export.json), not only model.json's
    const afterExport = [full, pruned, int8].map(
      (f) => (JSON.parse(readFileSync(join(f, 'export.json'), 'utf8')) as { parameters: { after: number } }).parameters.after,
    );
    expect(columns.map((c) => c.parameters)).toEqual(afterExport.map(formatCount));
    expect(afterExport[1]).toBeLessThan(afterExport[0]!);
    expect(columns[1]!.grid).toEqual(['1011', '0000', '1111', '0011', '0101', '1110']);
    expect(columns[2]!.grid).toEqual(['1111', '0110', '1100', '0000', '0000', '1001']);
    expect(await page.inputValue('#beam')).toBe('3');
    expect(await page.textContent('#runtime')).toMatch(/onnxruntime-web 1\.30\.0 .*wasm/);
  });

  it('translates as heads translate does on the same exports (beam 3 and greedy; int8: --engine onnx), with a latency per sentence', async () => {
    for (const beam of [3, 1]) {
      const { translations, latencies } = await translateOnPage(beam);
      const expected = await reference.get(beam)!;
      expect(translations).toEqual(expected);
      // not a vacuous match: the models say something, and removing heads changed some of it
      expect(expected.flat().filter((t) => t !== '').length).toBeGreaterThan(SENTENCES.length);
      expect(expected[0]).not.toEqual(expected[1]);
      for (const ms of latencies.flat()) expect(ms).toBeGreaterThanOrEqual(0);
      expect(latencies.map((l) => l.length)).toEqual([SENTENCES.length, SENTENCES.length, SENTENCES.length]);
    }
    const means = await page.locator('.mean-latency').allTextContents();
    for (const m of means) expect(m).toMatch(/^\d+\.\d ms \/ sentence$/);
  }, 240000);

  it('logged no console error, page error or failed request', () => {
    expect(problems).toEqual([]);
    expect(served.stderr()).not.toMatch(/^(404|500) /m);
  });
});
