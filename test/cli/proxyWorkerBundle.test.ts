import { readFileSync } from 'node:fs';
import path from 'node:path';

const dist = path.resolve(import.meta.dirname, '../../dist/cli');

/** Every file of the bundle that `entry` loads at start (its static imports, transitively), with its text. */
function staticClosure(entry: string): Map<string, string> {
  const files = new Map<string, string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    const text = readFileSync(file, 'utf8');
    files.set(file, text);
    for (const m of text.matchAll(/(?:from|import)\s*"(\.\/[^"]+)"/g)) visit(path.join(path.dirname(file), m[1]!));
  };
  visit(path.join(dist, entry));
  return files;
}

/**
 * The migration proxy's worker thread stays small. Guest memory read from a
 * socket arrives in a new buffer per read, and V8 answers that churn with a
 * full garbage collection every few dozen MiB, whose cost grows with the
 * worker's heap. When the worker loaded the X.509 library (through the
 * certificate helpers) the proxy spent a third more CPU per GiB, and carried a
 * third less, than with the small helpers alone (test/bench/README.md).
 */
describe('the proxy worker bundle', () => {
  it('loads neither the X.509 issuing library nor anything of its size', () => {
    const files = staticClosure('proxy-worker.js');
    const withX509 = [...files].filter(([, text]) => /AuthorityKeyIdentifierExtension|pvtsutils/.test(text)).map(([f]) => path.basename(f));
    expect(withX509).toEqual([]);
    const kib = [...files.values()].reduce((n, t) => n + t.length, 0) / 1024;
    // 79 KiB today (458 KiB with the X.509 library).
    expect(kib).toBeLessThan(200);
  });
});
