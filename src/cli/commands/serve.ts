/**
 * `heads serve <export folder>...`: the translator page on 127.0.0.1 (src/serve/): each export's ONNX
 * graphs run in the browser with onnxruntime-web, side by side, with latency, size and heads kept.
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { runHandler } from '../common.js';
import { intFlag } from '../options.js';
import { DEFAULT_PORT, SERVE_HOST, startServer } from '../../serve/server.js';
import { readServedExport } from '../../serve/served-export.js';
import { formatBytes, headsKept } from '../../serve/model-info.js';

interface Args {
  exports: string[];
  port: number;
}

export const command = 'serve <exports..>';
export const describe = `Serve a translator page on ${SERVE_HOST} that runs ONNX exports (heads export --format onnx) in the browser, side by side`;

export function builder(y: Argv): Argv<Args> {
  return y
    .positional('exports', {
      type: 'string',
      array: true,
      demandOption: true,
      describe: 'export folders written by heads export --format onnx (e.g. the full model and a pruned one)',
    })
    .option('port', { ...intFlag('port', 0, 65535), default: DEFAULT_PORT, describe: `port on ${SERVE_HOST} (0: any free port)` })
    .example('$0 serve runs/export-full runs/export-pruned', 'compare the full and the pruned model in the browser')
    .example('$0 serve runs/export-pruned --port 9000', 'one model, another port') as unknown as Argv<Args>;
}

export async function handler(args: ArgumentsCamelCase<Args>): Promise<void> {
  await runHandler(async () => {
    // every folder is checked before the server starts
    const served = args.exports.map((folder) => readServedExport(folder));
    const server = await startServer(served, { port: args.port, log: (line) => console.error(line) });
    for (const s of served) {
      const { kept, original } = headsKept(s.info);
      console.error(`model: ${s.info.folder} (${formatBytes(s.info.sizeBytes)}, ${kept}/${original} heads${s.info.metadata.quantization ? ', int8' : ''})`);
    }
    console.error(`page bundled in ${server.bundle.elapsedMs.toFixed(0)} ms (${formatBytes(server.bundle.bytes)}); press Ctrl-C to stop`);
    // the address on stdout, alone on its line, for scripts (the test reads it)
    process.stdout.write(`serving on ${server.url}\n`);
    // runs until the process is stopped (Ctrl-C ends it: nothing is written, nothing to clean up)
    await new Promise<never>(() => {});
  });
}
