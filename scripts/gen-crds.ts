/**
 * Writes Ferry's CRDs (deploy/base/crds, deploy/crds/kubevirt) from the zod
 * schemas in src/api. `--check` writes nothing and exits 1 when a committed
 * file differs from what the schemas generate (CI and test/deploy use it).
 *
 *   npm run gen:crds            # regenerate
 *   npm run gen:crds -- --check
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatedCrdFiles } from './lib/crds.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
let stale = 0;
for (const { file, content } of generatedCrdFiles()) {
  const target = path.join(root, file);
  const current = await readFile(target, 'utf8').catch(() => undefined);
  if (current === content) continue;
  if (check) {
    stale++;
    process.stderr.write(`${file} is out of date; run \`npm run gen:crds\`\n`);
    continue;
  }
  await mkdir(path.dirname(target), { recursive: true });
  await writeFile(target, content);
  process.stdout.write(`wrote ${file}\n`);
}
if (stale > 0) process.exit(1);
