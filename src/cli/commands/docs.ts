import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { renderApiReference } from '../../docs/apiReference.js';

/** `ferry docs api`: the API reference, generated from the zod schemas. */
export async function runApiDocs(o: { out?: string }): Promise<void> {
  const text = await renderApiReference();
  if (!o.out) {
    process.stdout.write(text);
    return;
  }
  await mkdir(path.dirname(o.out), { recursive: true });
  await writeFile(o.out, text);
  process.stdout.write(`wrote ${o.out}\n`);
}
