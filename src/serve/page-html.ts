/**
 * The translator page's HTML: a form for sentences (one per line), one column per served export, and
 * the import map that resolves `onnxruntime-web` to the files the server serves under /ort/. All
 * behaviour is in page/main.ts (bundled as /page.js); this is markup and style only.
 */

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:18px;margin:0 0 4px}
#runtime{color:#666;margin-bottom:10px}
textarea{width:100%;box-sizing:border-box;font:14px/1.4 ui-monospace,monospace}
button{font-size:14px;padding:4px 14px;margin:6px 8px 12px 0}
#columns{display:grid;gap:16px}
.model{border:1px solid #ccc;border-radius:6px;padding:10px;min-width:0}
.model h2{font-size:15px;margin:0 0 4px;overflow-wrap:anywhere}
.figures{color:#444;margin-bottom:6px}
.figures b{color:#000}
.grid{border-collapse:collapse;margin:4px 0 8px}
.grid th{font-weight:normal;color:#666;text-align:right;padding:0 6px 0 0;font-size:12px}
.grid td{width:12px;height:12px;padding:0;border:1px solid #fff}
.grid td.kept{background:#2b6cb0}
.grid td.removed{background:#e2e8f0}
#results{margin-top:16px}
table.out{border-collapse:collapse;width:100%;table-layout:auto}
table.out th{text-align:left;border-bottom:2px solid #ccc;padding:3px 6px;overflow-wrap:anywhere}
table.out td{border-top:1px solid #eee;padding:3px 6px;vertical-align:top}
table.out td.source{color:#555}
table.out td.latency{text-align:right;color:#666;white-space:nowrap;width:1%}
table.out tfoot td{border-top:2px solid #ccc}
table.out tfoot td.latency{text-align:left}
#error{color:#b00020;white-space:pre-wrap}
`;

/** The page. `ortModule` is the onnxruntime-web ES module under /ort/ that the import map names. */
export function pageHtml(ortModule = 'ort.webgpu.min.mjs'): string {
  const importMap = JSON.stringify({ imports: { 'onnxruntime-web': `/ort/${ortModule}`, 'onnxruntime-web/webgpu': `/ort/${ortModule}` } });
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    '<title>heads: full and pruned model side by side</title>',
    '<link rel="icon" href="data:,">',
    `<style>${STYLE}</style>`,
    `<script type="importmap">${importMap}</script>`,
    '</head><body>',
    '<h1>heads translator: full and pruned models side by side</h1>',
    '<div id="runtime">loading onnxruntime-web ...</div>',
    '<textarea id="source" rows="3" spellcheck="false" placeholder="one sentence per line"></textarea>',
    '<div><button id="translate" disabled>Translate</button><label>beam <input id="beam" type="number" min="1" max="64" style="width:4em"></label> <label>runs per sentence <input id="runs" type="number" min="1" max="50" value="1" style="width:4em"></label> <span id="status"></span></div>',
    '<div id="error"></div>',
    '<div id="columns"></div>',
    '<div id="results"></div>',
    '<script type="module" src="/page.js"></script>',
    '</body></html>',
    '',
  ].join('\n');
}
