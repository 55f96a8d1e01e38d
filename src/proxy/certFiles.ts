import { readFile } from 'node:fs/promises';
import { watchFile, unwatchFile } from 'node:fs';
import { join } from 'node:path';
import { TlsMaterial, type TlsFiles } from '../certs/index.js';
import type { Logger } from '../util/log.js';

/**
 * A migration identity mounted from a `kubernetes.io/tls` Secret (tls.crt,
 * tls.key, ca.crt), as virt-handler mounts its server and migration client
 * certificates. The kubelet updates a mounted Secret in place on rotation;
 * the files are polled and the material swapped live, so new connections use
 * the new certificate and running migrations keep theirs.
 */
export async function readTlsDir(dir: string): Promise<TlsFiles> {
  const read = (f: string) => readFile(join(dir, f), 'utf8').catch((err: Error) => {
    throw new Error(`migration certificate directory ${dir}: cannot read ${f}: ${err.message}`);
  });
  const [certPem, keyPem, caPem] = await Promise.all([read('tls.crt'), read('tls.key'), read('ca.crt')]);
  return { certPem, keyPem, caPem };
}

export async function watchedTlsMaterial(dir: string, log: Logger, intervalMs = 10_000): Promise<{ material: TlsMaterial; stop: () => void }> {
  const material = new TlsMaterial(await readTlsDir(dir));
  const file = join(dir, 'tls.crt');
  const reload = () => {
    void readTlsDir(dir).then(
      (files) => {
        const before = material.generation;
        material.update(files);
        if (material.generation !== before) log.info({ dir, generation: material.generation }, 'migration certificate reloaded');
      },
      (err: unknown) => log.warn({ dir, err: (err as Error).message }, 'migration certificate not reloaded; keeping the current one'),
    );
  };
  // A Secret volume swaps a symlinked directory: watch the file, reload all three.
  watchFile(file, { interval: intervalMs }, reload);
  return { material, stop: () => unwatchFile(file, reload) };
}
