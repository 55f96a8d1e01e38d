import { builtinModules } from 'node:module';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { readRepoFile, ROOT } from './render.js';

/**
 * The image installs `dependencies` only (npm ci --omit=dev) and copies a
 * few directories: everything the CLI loads at run time must come from there.
 */
const pkg = JSON.parse(readRepoFile('package.json')) as { dependencies?: Record<string, string>; devDependencies: Record<string, string> };
const dockerfile = readRepoFile('Dockerfile');
const [buildStage = '', imageStage = ''] = dockerfile.split(/^FROM /m).slice(1);
const copiedTo = (stage: string) => [...stage.matchAll(/^COPY\s+(?!--from)(\S+)\s+\S+/gm)].map((m) => m[1]!);
const built = copiedTo(buildStage);
const copied = copiedTo(imageStage);
function sources(rel: string): string[] {
  const abs = path.join(ROOT, rel);
  if (statSync(abs).isFile()) return [rel];
  return readdirSync(abs).flatMap((e) => sources(path.join(rel, e))).filter((f) => /\.(tsx?|js|mjs)$/.test(f));
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
  test('bundles the sources in a build stage and runs `node bin/ferry.js` on the bundle as a non-root user', () => {
    expect(built).toEqual(expect.arrayContaining(['package.json', 'scripts', 'src', 'statecharts', 'console']));
    expect(buildStage).toMatch(/^RUN npm ci\b/m);
    expect(buildStage).toMatch(/^RUN node scripts\/build\.mjs$/m);
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'bin']));
    expect(imageStage).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(imageStage).toMatch(/^ENTRYPOINT \["node", "bin\/ferry\.js"\]$/m);
    expect(imageStage).toMatch(/^USER 10001:10001$/m);
    const ignored = readRepoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const c of [...built, ...copied]) expect([c, ignored.includes(c.split('/')[0]!)]).toEqual([c, false]);
  });

  test('the bundle is self-contained: no runtime dependencies, and every package the sources import is installed for the build', () => {
    expect(Object.keys(pkg.dependencies ?? {})).toEqual([]);
    const files = built.filter((c) => c !== 'package.json' && c !== 'package-lock.json').flatMap(sources).filter((f) => !f.endsWith('.d.ts'));
    expect(files.length).toBeGreaterThan(50);
    const missing = new Set<string>();
    for (const f of files) {
      for (const spec of runtimeImports(f)) {
        if (!builtin(spec) && !(packageOf(spec) in pkg.devDependencies)) missing.add(`${f}: ${spec}`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});
