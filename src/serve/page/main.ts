/**
 * The translator page (browser side): loads every served export with onnxruntime-web, then translates
 * the typed sentences with each, one sentence at a time, and shows side by side the translations, the
 * latency per sentence, the model's size and the heads it kept per layer.
 *
 * For the end-to-end test the page states its progress on <body data-state>: loading -> ready ->
 * translating -> done (or error, with the message in #error and on the console).
 */
import * as ort from 'onnxruntime-web/webgpu';
import { headKey } from '../../config/head-id.js';
import type { ServedModelInfo } from '../model-info.js';
import { ATTENTION_TYPES, formatBytes, formatCount, headsKept } from '../model-info.js';
import { type Translator, loadTranslator } from './translator.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function setState(state: 'loading' | 'ready' | 'translating' | 'done' | 'error'): void {
  document.body.dataset.state = state;
}

function showError(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  $('error').textContent = msg;
  setState('error');
  console.error(`heads page: ${msg}`);
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; title?: string } = {},
  children: Node[] = [],
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props.className) e.className = props.className;
  if (props.text !== undefined) e.textContent = props.text;
  if (props.title) e.title = props.title;
  for (const c of children) e.appendChild(c);
  return e;
}

/** Layers x heads: a filled cell per kept head, a pale one per removed head (original ids). */
function headGrid(info: ServedModelInfo): HTMLTableElement {
  const table = el('table', { className: 'grid' });
  const original = info.metadata.originalHeads;
  for (const type of ATTENTION_TYPES) {
    info.metadata.keptHeads[type].forEach((ids, layer) => {
      const row = el('tr', {}, [el('th', { text: `${type} ${layer}` })]);
      const keptSet = new Set(ids);
      for (let h = 0; h < original; h++) {
        const isKept = keptSet.has(h);
        row.appendChild(
          el('td', { className: isKept ? 'kept' : 'removed', title: `${headKey({ stack: type, layer, head: h })} ${isKept ? 'kept' : 'removed'}` }),
        );
      }
      row.appendChild(el('th', { className: 'count', text: `${ids.length}` }));
      table.appendChild(row);
    });
  }
  return table;
}

interface Column {
  info: ServedModelInfo;
  translator: Translator;
  mean: HTMLElement;
}

/** One model's card: name, size, heads kept (total and per layer), execution provider, mean latency. */
function modelCard(info: ServedModelInfo, index: number, translator: Translator): { section: HTMLElement; column: Column } {
  const { kept, original } = headsKept(info);
  const mean = el('span', { className: 'mean-latency', text: '' });
  const section = el('section', { className: 'model' }, [
    el('h2', { text: info.name, title: info.folder }),
    el('div', { className: 'figures' }, [
      document.createTextNode('size '),
      el('b', { className: 'size', text: formatBytes(info.sizeBytes) }),
      document.createTextNode(' · '),
      el('b', { className: 'parameters', text: formatCount(info.metadata.parameters) }),
      document.createTextNode(' parameters · heads '),
      el('b', { className: 'heads-total', text: `${kept} / ${original}` }),
      document.createTextNode(` · ${translator.executionProvider}${info.metadata.quantization ? ' · int8' : ''}`),
    ]),
    headGrid(info),
    el('div', { className: 'figures' }, [document.createTextNode('mean latency '), mean]),
  ]);
  section.dataset.model = String(index);
  return { section, column: { info, translator, mean } };
}

async function main(): Promise<void> {
  setState('loading');
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.logLevel = 'error';
  // one thread: latencies compare the models, not the machine's free cores
  ort.env.wasm.numThreads = 1;
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  const hasWebGpu = gpu !== undefined && (await gpu.requestAdapter().catch(() => null)) !== null;
  const providers = hasWebGpu ? ['webgpu', 'wasm'] : ['wasm'];
  const runtime = `onnxruntime-web ${ort.env.versions.web ?? ''} · ${hasWebGpu ? 'WebGPU (wasm where it lacks an operator)' : 'wasm, 1 thread (this browser offers no WebGPU)'}`;
  $('runtime').textContent = `${runtime} · loading models ...`;

  const infos = (await (await fetch('/models.json')).json()) as ServedModelInfo[];
  const columnsEl = $('columns');
  columnsEl.style.gridTemplateColumns = `repeat(${infos.length}, minmax(0, 1fr))`;
  const columns: Column[] = [];
  for (const [i, info] of infos.entries()) {
    const translator = await loadTranslator(ort, info, providers);
    const { section, column } = modelCard(info, i, translator);
    columnsEl.appendChild(section);
    columns.push(column);
  }
  const beam = $<HTMLInputElement>('beam');
  beam.value = String(infos[0]?.metadata.generation.beamSize ?? 1);
  $('runtime').textContent = `${runtime} · ${infos.length} model${infos.length === 1 ? '' : 's'} loaded`;
  const source = $<HTMLTextAreaElement>('source');
  const fit = () => (source.rows = Math.max(3, source.value.split('\n').length + 1));
  source.addEventListener('input', fit);
  if (source.value.trim() === '') source.value = 'the cat sat on the mat .';
  const button = $<HTMLButtonElement>('translate');
  button.disabled = false;
  button.addEventListener('click', () => {
    fit();
    void translateAll(columns, source.value, Number(beam.value), Number($<HTMLInputElement>('runs').value)).catch(showError);
  });
  setState('ready');
}

/** The results table: a row per sentence, the source then each model's translation and latency. */
function resultsTable(columns: Column[]): { table: HTMLTableElement; body: HTMLTableSectionElement; foot: HTMLTableSectionElement } {
  const head = el('tr', {}, [el('th', { text: 'source' }), ...columns.map((c) => el('th', { text: c.info.name }))]);
  head.querySelectorAll('th').forEach((th, i) => i > 0 && th.setAttribute('colspan', '2'));
  const body = el('tbody');
  const foot = el('tfoot');
  const table = el('table', { className: 'out' }, [el('thead', {}, [head]), body, foot]);
  return { table, body, foot };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/**
 * Translate every line with every model. Each sentence runs `runs` times, the models taking turns within
 * each run (so a change in the machine's load hits them alike); the latency shown is the median.
 */
async function translateAll(columns: Column[], text: string, beamSize: number, runs: number): Promise<void> {
  if (!Number.isInteger(beamSize) || beamSize < 1) throw new Error(`beam: expected an integer >= 1, got ${beamSize}`);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`runs: expected an integer >= 1, got ${runs}`);
  setState('translating');
  $('error').textContent = '';
  const button = $<HTMLButtonElement>('translate');
  button.disabled = true;
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const { table, body, foot } = resultsTable(columns);
  $('results').replaceChildren(table);
  for (const c of columns) c.mean.textContent = '';
  const totals = columns.map(() => 0);
  for (const [k, line] of lines.entries()) {
    $('status').textContent = `sentence ${k + 1} / ${lines.length}`;
    const row = el('tr', {}, [el('td', { className: 'source', text: line })]);
    row.dataset.line = String(k);
    body.appendChild(row);
    const times: number[][] = columns.map(() => []);
    const outputs: string[] = columns.map(() => '');
    for (let r = 0; r < runs; r++) {
      for (const [m, c] of columns.entries()) {
        const t0 = performance.now();
        outputs[m] = await c.translator.translate(line, beamSize);
        times[m]!.push(performance.now() - t0);
      }
    }
    columns.forEach((_, m) => {
      const ms = median(times[m]!);
      totals[m]! += ms;
      const cell = el('td', { className: 'translation', text: outputs[m]! });
      const latency = el('td', {
        className: 'latency',
        text: `${ms.toFixed(1)} ms`,
        title: runs > 1 ? `median of ${runs} runs: ${times[m]!.map((t) => t.toFixed(1)).join(', ')} ms` : '',
      });
      cell.dataset.model = latency.dataset.model = String(m);
      row.append(cell, latency);
    });
  }
  const means = totals.map((t) => (lines.length ? `${(t / lines.length).toFixed(1)} ms / sentence` : ''));
  columns.forEach((c, m) => (c.mean.textContent = means[m]!));
  const meanRow = el('tr', {}, [el('td', { className: 'source', text: 'mean' })]);
  for (const m of means) {
    const td = el('td', { className: 'latency mean', text: m });
    td.setAttribute('colspan', '2');
    meanRow.appendChild(td);
  }
  foot.appendChild(meanRow);
  $('status').textContent = `${lines.length} sentence${lines.length === 1 ? '' : 's'}, beam ${beamSize}${runs > 1 ? `, latency: median of ${runs} runs` : ''}`;
  button.disabled = false;
  setState('done');
}

window.addEventListener('error', (e) => showError(e.error ?? e.message));
window.addEventListener('unhandledrejection', (e) => showError(e.reason));
main().catch(showError);
