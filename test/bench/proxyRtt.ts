/**
 * Round trips of small messages through the migration proxy (source unix
 * socket → source proxy → mutual TLS → target proxy → unix echo socket), as
 * libvirt's RPC makes them during a migration's begin and prepare, against the
 * same echo socket reached directly.
 *
 *   npx tsx test/bench/proxyRtt.ts [--worker] [--bytes N] [--count N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SourceProxy, TargetProxy } from '../../src/proxy/migrationProxy.js';
import { devMigrationPki, tlsTransport } from '../../src/proxy/migrationTls.js';
import { ProxyHost } from '../../src/proxy/workerProxy.js';
import { migrationSocket } from '../../src/launcher/layout.js';
import { systemClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : dflt; };
const bytes = opt('--bytes', 200);
const count = opt('--count', 50);
const inWorker = args.includes('--worker');

async function rtts(path: string): Promise<number[]> {
  const s = net.connect({ path });
  await new Promise<void>((r) => s.once('connect', () => r()));
  const out: number[] = [];
  const msg = Buffer.alloc(bytes, 7);
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    s.write(msg);
    let got = 0;
    await new Promise<void>((r) => {
      const on = (d: Buffer) => { got += d.length; if (got >= bytes) { s.off('data', on); r(); } };
      s.on('data', on);
    });
    out.push(performance.now() - t);
  }
  s.destroy();
  return out;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-rtt-'));
  const echoPath = join(dir, 'echo.sock');
  const echo = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('error', () => undefined); });
  await new Promise<void>((r) => echo.listen(echoPath, () => r()));
  const pki = await devMigrationPki(systemClock);
  const transport = tlsTransport(pki.server, pki.client);
  const hosts = inWorker ? { t: new ProxyHost(silentLogger), s: new ProxyHost(silentLogger) } : undefined;
  const uid = '0f1e2d3c-aaaa-bbbb-cccc-000000000009';
  const target = await (hosts ? hosts.t.startTarget.bind(hosts.t) : TargetProxy.start)({ migrationUid: uid, transport, host: '127.0.0.1', deliverTo: { 0: echoPath }, log: silentLogger });
  const kubevirtDir = join(dir, 'kubevirt');
  const source = await (hosts ? hosts.s.startSource.bind(hosts.s) : SourceProxy.start)({ migrationUid: uid, transport, kubevirtDir, targetHost: '127.0.0.1', targetPorts: target.ports, log: silentLogger });
  const direct = await rtts(echoPath);
  const proxied = await rtts(migrationSocket(kubevirtDir, uid, 0));
  process.stdout.write(`${bytes} B round trips (${count}, ${inWorker ? 'proxies in workers' : 'proxies in this thread'}): direct p50 ${pct(direct, 0.5).toFixed(2)} ms p90 ${pct(direct, 0.9).toFixed(2)}; proxied p50 ${pct(proxied, 0.5).toFixed(2)} ms p90 ${pct(proxied, 0.9).toFixed(2)} max ${Math.max(...proxied).toFixed(2)}; first ${proxied[0]!.toFixed(2)} ms\n`);
  await source.close();
  await target.close();
  await hosts?.t.shutDown();
  await hosts?.s.shutDown();
  echo.close();
  rmSync(dir, { recursive: true, force: true });
}

void main();
