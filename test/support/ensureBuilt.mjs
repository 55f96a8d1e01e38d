// Tests that run the installed CLI (bin/ferry.js) or the console need dist/.
// Rebuilds it when any input is newer than the last build, so a targeted
// `npx jest test/e2e/cli.test.ts` never runs yesterday's bundle.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const inputs = ['src', 'statecharts', 'console', 'scripts/build.mjs', 'scripts/gen-nats-auth.ts', 'scripts/lib', 'package-lock.json'];

function newest(p) {
  if (!existsSync(p)) return 0;
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  return readdirSync(p).reduce((m, e) => Math.max(m, newest(path.join(p, e))), s.mtimeMs);
}

export function ensureBuilt() {
  const stamp = path.join(root, 'dist/BUILD');
  const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  if (inputs.every((i) => newest(path.join(root, i)) <= built)) return;
  execFileSync(process.execPath, [path.join(root, 'scripts/build.mjs')], { stdio: ['ignore', 'ignore', 'inherit'] });
}
