#!/usr/bin/env node
// The installed CLI runs the bundle `npm run build` wrote to dist/ (no
// TypeScript at run time). From a source checkout, `npm run ferry -- …` runs
// the sources directly instead.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('ferry: dist/cli/main.js is missing: run `npm run build` first (or `npm run ferry -- …` to run the sources)\n');
  process.exit(1);
}
await import(main.href);
