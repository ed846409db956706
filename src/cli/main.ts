/** The `heads` command line: one file per command under commands/, each a thin shell over src/. */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as train from './commands/train.js';
import * as translate from './commands/translate.js';
import * as bleu from './commands/bleu.js';
import * as quickstart from './commands/quickstart.js';
import * as bench from './commands/bench.js';
import * as prune from './commands/prune.js';
import * as data from './commands/data.js';
import * as experiment from './commands/experiment.js';
import * as analyze from './commands/analyze.js';
import * as exportCommand from './commands/export.js';
import * as plot from './commands/plot.js';
import * as serve from './commands/serve.js';
import * as importCommand from './commands/import.js';
import { strictCommand, usageErrorLine } from './options.js';
import { isHeadsError } from '../util/errors.js';

await yargs(hideBin(process.argv))
  // the usage lines and examples of --help print the invocation that runs from the repository root
  .scriptName('npx heads')
  .command(strictCommand(quickstart))
  .command(strictCommand(train))
  .command(strictCommand(translate))
  .command(strictCommand(prune))
  .command(strictCommand(analyze))
  .command(strictCommand(exportCommand))
  .command(strictCommand(plot))
  .command(strictCommand(serve))
  .command(strictCommand(importCommand))
  .command(strictCommand(bleu))
  .command(strictCommand(bench))
  .command(strictCommand(data))
  .command(strictCommand(experiment))
  .demandCommand(1, 'name a command (see --help)')
  .strict()
  .recommendCommands()
  .help()
  .wrap(Math.min(110, process.stdout.columns ?? 110))
  // a usage error (unknown option, missing argument, bad choice) is bad input like any other: one line, exit 2
  .fail((msg, err) => {
    // an error thrown while parsing (a numeric flag's rule, strictValues) is bad input too; a bug keeps its stack
    if (err && !(err.name === 'YError' || isHeadsError(err))) throw err;
    process.stderr.write(`error: ${usageErrorLine(msg, err)}\n`);
    process.exit(2);
  })
  .parseAsync();
