import { readFileSync } from 'node:fs';
import path from 'node:path';

const script = readFileSync(path.resolve(import.meta.dirname, '../../../scripts/test.sh'), 'utf8');

test('scripts/test.sh keeps its jest result files in /tmp, never beside the repository', () => {
  expect(script).not.toMatch(/\.\.\/ferry-jest/);
  const outputs = [...script.matchAll(/--outputFile="\$(\w+)"/g)].map((m) => m[1]!);
  expect(outputs.length).toBeGreaterThanOrEqual(2);
  for (const v of outputs) expect(script).toMatch(new RegExp(`${v}=\\$\\(mktemp /tmp/ferry-jest-X+\\.json\\)`));
  // And removes them once counted.
  for (const v of outputs) expect(script).toMatch(new RegExp(`rm -f "\\$${v}"`));
});
