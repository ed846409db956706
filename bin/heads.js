#!/usr/bin/env node
// The `heads` CLI: runs the compiled entry point (npm install / npm ci build it through `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('heads: dist/ is missing; run `npm run build` (npm install runs it for you).');
  process.exit(2);
}
await import(entry.href);
