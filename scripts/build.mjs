#!/usr/bin/env node
// Builds what the installed CLI runs: the TypeScript sources and every npm
// dependency bundled by esbuild into dist/cli/ (one chunk per lazily loaded
// command, so `ferry status` loads only what status needs), plus the web
// console's browser bundle and static files into dist/console/.
//
// Why a bundle and not tsc's one file per module: @kubernetes/client-node alone
// is ~900 modules, ~400 ms to load file by file; bundled it loads in a fraction.
// The result needs no node_modules at run time, so the packed tarball installs
// with no dependencies.
//
//   node scripts/build.mjs          (npm run build)
import { build } from 'esbuild';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const t0 = Date.now();

rmSync(dist, { recursive: true, force: true });

// dist/cli/ sits two levels under the package root, like src/devcluster/, so
// paths made from import.meta.url (the libvirt lane's scripts in test/libvirt/)
// resolve the same from the sources and from the bundle.
const cli = await build({
  absWorkingDir: root,
  // proxy-worker: the migration proxy's worker thread (src/proxy/workerProxy.ts loads it from beside its chunk).
  entryPoints: { main: 'src/cli/main.ts', 'kubectl-complete': 'src/cli/kubectlComplete.ts', 'gen-nats-auth': 'scripts/gen-nats-auth.ts', 'proxy-worker': 'src/proxy/proxyWorker.ts' },
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  // xstate guard helpers are described by their function names (statecharts/outline.ts).
  keepNames: true,
  sourcemap: 'linked',
  chunkNames: '[name]-[hash]',
  // ws's optional native speed-ups are loaded in a try/catch and absent here.
  external: ['bufferutil', 'utf-8-validate'],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __ferryRequire } from 'node:module'; const require = __ferryRequire(import.meta.url);" },
  logLevel: 'warning',
  metafile: true,
});

const consoleOut = path.join(dist, 'console');
mkdirSync(consoleOut, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: { app: 'console/app.tsx' },
  outdir: 'dist/console',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  logLevel: 'warning',
});
cpSync(path.join(root, 'console/static'), consoleOut, { recursive: true });

const outputs = Object.entries(cli.metafile.outputs).filter(([f]) => f.endsWith('.js'));
const bytes = outputs.reduce((n, [, o]) => n + o.bytes, 0);
writeFileSync(path.join(dist, 'BUILD'), `${new Date().toISOString()}\n`);
process.stderr.write(`[build] dist/cli: ${outputs.length} files, ${(bytes / 1024 / 1024).toFixed(1)} MiB; dist/console; ${Date.now() - t0} ms\n`);
