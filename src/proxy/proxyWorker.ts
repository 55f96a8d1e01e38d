import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { verifyPeer } from '../certs/peer.js';
import { TlsMaterial, type TlsFiles } from '../certs/tlsMaterial.js';
import { SourceProxy, TargetProxy, type ProxyCounters } from './migrationProxy.js';
import { HANDLER_SERVER_ROLE, MIGRATION_CLIENT_ROLE } from './roles.js';
import type { Transport } from './transport.js';
import { COUNTER_FIELDS, type FromWorker, type ToWorker, type WorkerHostData } from './workerProtocol.js';

/**
 * The handler's proxy thread (see workerProxy.ts for why): every migration
 * proxy side of one handler lives here — its listeners, both sockets of every
 * connection, TLS. The handler's thread starts and closes proxies, reads their
 * counters from shared memory and hands over rotated certificates.
 */

if (!parentPort) throw new Error('proxyWorker.ts runs only as a worker thread');
const port = parentPort;
const post = (m: FromWorker) => port.postMessage(m);
const data = workerData as WorkerHostData;

interface Running {
  proxy: SourceProxy | TargetProxy;
  counters: Float64Array;
  server?: TlsMaterial;
  client?: TlsMaterial;
}
const running = new Map<number, Running>();

function publish(r: Running): void {
  const c: ProxyCounters = r.proxy.counters;
  COUNTER_FIELDS.forEach((k, i) => { r.counters[i] = c[k]; });
}
function publishAll(): void {
  for (const r of running.values()) publish(r);
}

// Log lines go to the handler's logger, which owns the destination. The proxy
// logs every event that changes its counters (a refusal, a closed proxy)
// after counting it: publishing first means whoever saw the line sees the count.
const log = pino({ level: data.logLevel }, {
  write: (line: string) => {
    publishAll();
    const { level, msg, time: _t, pid: _p, hostname: _h, ...fields } = JSON.parse(line) as Record<string, unknown>;
    post({ type: 'log', level: pino.levels.labels[Number(level)] ?? 'info', fields, msg: String(msg ?? '') });
  },
});

// Connections also end quietly: a cheap periodic copy keeps the handler's view current.
setInterval(publishAll, 200).unref();

/**
 * One TlsMaterial per identity, shared by the proxies that start with it: its
 * SecureContext (key check, CA parsing) was built anew for every proxy, on
 * each migration's critical path. Every proxy's rotation hook sends the same
 * update, and update() ignores a repeat, so sharing changes nothing there; a
 * proxy started after a rotation brings the new PEMs and gets (or makes) the
 * entry for them. Entries are few: one per identity this worker has seen.
 */
const materials = new Map<string, TlsMaterial>();
function material(files: TlsFiles): TlsMaterial {
  const key = JSON.stringify([files.certPem, files.keyPem, files.caPem]);
  let m = materials.get(key);
  if (!m) {
    m = new TlsMaterial(files);
    materials.set(key, m);
  }
  return m;
}

async function start(m: Extract<ToWorker, { type: 'start' }>): Promise<void> {
  const r: Omit<Running, 'proxy'> = { counters: new Float64Array(m.counters) };
  let transport: Transport = { kind: 'tcp' };
  if (m.transport.kind === 'tls') {
    const server = (r.server = material(m.transport.server));
    const client = (r.client = material(m.transport.client));
    transport = {
      kind: 'tls', server, client, clientRole: MIGRATION_CLIENT_ROLE, serverRole: HANDLER_SERVER_ROLE,
      check: (socket, role) => verifyPeer(socket, { roles: [role] }),
    };
  }
  try {
    const proxy = m.side === 'target'
      ? await TargetProxy.start({ ...m.target, transport, log })
      : await SourceProxy.start({ ...m.source, transport, log });
    running.set(m.id, { ...r, proxy });
    post({ type: 'ready', id: m.id, ports: proxy instanceof TargetProxy ? proxy.ports : {} });
  } catch (err) {
    post({ type: 'failed', id: m.id, message: (err as Error).message });
  }
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'start') {
    void start(m);
    return;
  }
  const r = running.get(m.id);
  if (!r) {
    if (m.type === 'close') post({ type: 'closed', id: m.id });
    return;
  }
  if (m.type === 'tls') {
    // A half-written Secret throws in update(); the old identity stays.
    try {
      if (m.server) r.server?.update(m.server);
      if (m.client) r.client?.update(m.client);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'rotated migration certificate not taken; keeping the current one');
    }
  } else {
    void r.proxy.close({ cut: m.cut }).then(() => {
      publish(r);
      running.delete(m.id);
      post({ type: 'closed', id: m.id });
    });
  }
});
