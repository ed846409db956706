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

await yargs(hideBin(process.argv))
  .scriptName('heads')
  .command(quickstart)
  .command(train)
  .command(translate)
  .command(prune)
  .command(analyze)
  .command(exportCommand)
  .command(plot)
  .command(bleu)
  .command(bench)
  .command(data)
  .command(experiment)
  .demandCommand(1, 'name a command (see --help)')
  .strict()
  .recommendCommands()
  .help()
  .wrap(Math.min(110, process.stdout.columns ?? 110))
  // a usage error (unknown option, missing argument, bad choice) is bad input like any other: one line, exit 2
  .fail((msg, err) => {
    if (err) throw err;
    process.stderr.write(`error: ${msg}\n(see heads ${process.argv[2] && !process.argv[2].startsWith('-') ? `${process.argv[2]} ` : ''}--help)\n`);
    process.exit(2);
  })
  .parseAsync();
