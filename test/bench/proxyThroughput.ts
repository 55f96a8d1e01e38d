/**
 * The migration proxy's own throughput: 1 GiB (default) pushed from a unix
 * socket client through the source proxy, TCP or mutual TLS, the target proxy,
 * into a unix socket sink, all on this machine — against the same stream
 * over one plain unix socket pair. Prints MiB/s of each.
 *
 * The proxies run as the handler runs them: each side in its own worker
 * thread (`--in-thread`: both in this one, beside the pusher and the sink).
 *
 *   npx tsx test/bench/proxyThroughput.ts [--gib N] [--tls|--tcp] [--in-thread]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { SourceProxy, TargetProxy } from '../../src/proxy/migrationProxy.js';
import type { Transport } from '../../src/proxy/transport.js';
import { ProxyHost } from '../../src/proxy/workerProxy.js';
import { silentLogger } from '../../src/util/log.js';
import { migrationTransport } from './proxyTransport.js';

const MiB = 1024 * 1024;

function sink(path: string): Promise<{ server: net.Server & { closeAll: () => void }; received: () => number; done: (n: number) => Promise<number> }> {
  let received = 0;
  const waiters: Array<{ n: number; resolve: (t: number) => void }> = [];
  const open = new Set<net.Socket>();
  const server = net.createServer((s) => {
    open.add(s);
    s.once('close', () => open.delete(s));
    s.on('data', (c: Buffer) => {
      received += c.length;
      for (const w of waiters.splice(0)) {
        if (received >= w.n) w.resolve(performance.now());
        else waiters.push(w);
      }
    });
  });
  return new Promise((resolve) => server.listen(path, () => resolve({
    server: Object.assign(server, { closeAll: () => { for (const o of open) o.destroy(); } }),
    received: () => received,
    done: (n) => new Promise((r) => { if (received >= n) r(performance.now()); else waiters.push({ n, resolve: r }); }),
  })));
}

async function push(path: string, total: number): Promise<void> {
  const chunk = Buffer.alloc(256 * 1024, 7);
  const c = net.connect({ path });
  await new Promise<void>((r) => c.once('connect', () => r()));
  let sent = 0;
  await new Promise<void>((resolve) => {
    const more = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!c.write(chunk)) return void c.once('drain', more);
      }
      resolve();
    };
    more();
  });
  c.end();
}

async function measure(label: string, total: number, via: (sinkPath: string) => Promise<{ entry: string; stop: () => Promise<void> }>, dir: string): Promise<number> {
  const sinkPath = join(dir, `${label}-sink.sock`);
  const s = await sink(sinkPath);
  const { entry, stop } = await via(sinkPath);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await push(entry, total);
  const t1 = await s.done(total);
  // CPU of every thread of this process (pusher, sink, both proxies): less at the mercy of the load than wall time.
  const cpu = process.cpuUsage(cpu0);
  const rate = total / MiB / ((t1 - t0) / 1000);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  console.log(`${label.padEnd(34)} ${(total / MiB).toFixed(0)} MiB in ${((t1 - t0) / 1000).toFixed(2)} s = ${rate.toFixed(0)} MiB/s, CPU ${cpuS.toFixed(2)} s (load ${loadavg()[0]!.toFixed(2)})`);
  s.server.closeAll();
  await stop();
  s.server.close();
  return rate;
}

export async function proxyThroughput(opts: { bytes: number; transports: Array<'tcp' | 'tls'>; inThread?: boolean }): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-proxy-bench-'));
  const out: Record<string, number> = {};
  try {
    out['direct'] = await measure('direct unix socket', opts.bytes, async (p) => ({ entry: p, stop: async () => undefined }), dir);
    for (const kind of opts.transports) {
      const transport: Transport = await migrationTransport(kind);
      const where = opts.inThread ? 'one thread' : 'workers';
      out[kind] = await measure(`proxied (${kind}, ${where})`, opts.bytes, async (sinkPath) => {
        const uid = `bench-${kind}`;
        // Two handlers' proxy workers, warmed up as a handler's is at start-up.
        const hosts = opts.inThread ? undefined : { source: new ProxyHost(silentLogger), target: new ProxyHost(silentLogger) };
        const startTarget = hosts ? hosts.target.startTarget.bind(hosts.target) : TargetProxy.start;
        const startSource = hosts ? hosts.source.startSource.bind(hosts.source) : SourceProxy.start;
        const target = await startTarget({ migrationUid: uid, transport, host: '127.0.0.1', deliverTo: { 49152: sinkPath }, log: silentLogger });
        const source = await startSource({ migrationUid: uid, transport, kubevirtDir: dir, targetHost: '127.0.0.1', targetPorts: target.ports, log: silentLogger });
        return {
          entry: join(dir, 'migrationproxy', `${uid}-49152-source.sock`),
          stop: async () => {
            await source.close({ cut: true });
            await target.close({ cut: true });
            await hosts?.source.shutDown();
            await hosts?.target.shutDown();
          },
        };
      }, dir);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const gib = Number(args[args.indexOf('--gib') + 1] ?? 1) || 1;
  const transports: Array<'tcp' | 'tls'> = args.includes('--tcp') ? ['tcp'] : args.includes('--tls') ? ['tls'] : ['tcp', 'tls'];
  await proxyThroughput({ bytes: gib * 1024 * MiB, transports, inThread: args.includes('--in-thread') });
}
