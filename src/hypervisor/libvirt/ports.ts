import { createServer } from 'node:net';

function tryListen(host: string, port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(null));
    srv.listen({ host, port, exclusive: true }, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : null;
      srv.close(() => resolve(got));
    });
  });
}

/**
 * A TCP port on `host` nobody listens on now, for the target QEMU's incoming
 * migration. With `base`, the first free one from base upwards that is not in
 * `reserved` (ports already handed out for migrations not yet begun);
 * otherwise one the kernel picks. There is a window between this check and
 * QEMU's listen: fine for tests and for a node whose ports Ferry owns.
 */
export async function findFreePort(host: string, reserved: ReadonlySet<number>, base?: number, span = 1000): Promise<number> {
  if (base === undefined) {
    for (let i = 0; i < 20; i++) {
      const port = await tryListen(host, 0);
      if (port !== null && !reserved.has(port)) return port;
    }
    throw new Error(`no free TCP port on ${host}`);
  }
  for (let port = base; port < base + span && port <= 65535; port++) {
    if (reserved.has(port)) continue;
    if ((await tryListen(host, port)) !== null) return port;
  }
  throw new Error(`no free TCP port on ${host} in ${base}..${Math.min(65535, base + span - 1)}`);
}
