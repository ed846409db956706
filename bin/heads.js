#!/usr/bin/env node
// The `heads` CLI: runs the compiled entry point. `npm ci` / `npm install` build dist/ through the package's
// own `postprepare` script: not `prepare`, which npx (npm 11, strict-allow-scripts) counts as an install
// script of an unreviewed package when `npx heads` links this folder, and then refuses to run.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('heads: dist/ is missing; run `npm run build` (`npm ci` runs it unless scripts are ignored).');
  process.exit(2);
}
await import(entry.href);
