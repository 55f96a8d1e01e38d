import { builtinModules } from 'node:module';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { readRepoFile, ROOT } from './render.js';

/**
 * The image installs `dependencies` only (npm ci --omit=dev) and copies a
 * few directories: everything the CLI loads at run time must come from there.
 */
const pkg = JSON.parse(readRepoFile('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
const dockerfile = readRepoFile('Dockerfile');
const copied = [...dockerfile.matchAll(/^COPY\s+(?!--from)(\S+)\s+\S+/gm)].map((m) => m[1]!);

function sources(rel: string): string[] {
  const abs = path.join(ROOT, rel);
  if (statSync(abs).isFile()) return [rel];
  return readdirSync(abs).flatMap((e) => sources(path.join(rel, e))).filter((f) => /\.(ts|js|mjs)$/.test(f));
}

/** Bare specifiers of value imports (type-only imports vanish at run time). */
function runtimeImports(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) if (!m[1]) out.push(m[2]!);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out.filter((s) => !s.startsWith('.') && !s.startsWith('/'));
}
const packageOf = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
const builtin = (spec: string) => spec.startsWith('node:') || builtinModules.includes(packageOf(spec));

describe('the container image', () => {
  test('copies the CLI entry point, the sources and the statecharts, and runs `node bin/ferry.js` as a non-root user', () => {
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'bin', 'src', 'statecharts']));
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "bin\/ferry\.js"\]$/m);
    expect(dockerfile).toMatch(/^USER 10001:10001$/m);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    const ignored = readRepoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const c of copied) expect([c, ignored.includes(c.split('/')[0]!)]).toEqual([c, false]);
  });

  test('everything the copied code imports at run time is a production dependency (or Node\'s own)', () => {
    const files = copied.filter((c) => c !== 'package.json' && c !== 'package-lock.json').flatMap(sources).filter((f) => !f.endsWith('.d.ts'));
    expect(files.length).toBeGreaterThan(50);
    const missing = new Set<string>();
    for (const f of files) {
      for (const spec of runtimeImports(f)) {
        if (!builtin(spec) && !(packageOf(spec) in pkg.dependencies)) missing.add(`${f}: ${spec}${packageOf(spec) in pkg.devDependencies ? ' (a devDependency)' : ''}`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});
