import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../util/log.js';
import type { ProxyCounters, SourceProxyOptions, TargetProxyOptions } from './migrationProxy.js';
import type { Transport } from './transport.js';
import { COUNTER_FIELDS, type FromWorker, type ProxySpec, type ToWorker, type WorkerHostData, type WorkerTransport } from './workerProtocol.js';

/**
 * The handler's migration proxies, run in a worker thread of their own.
 *
 * Why: in the handler's thread every 16 KiB TLS record of guest memory waits
 * behind the handler's other work (its bus, its libvirt RPCs, and in `ferry
 * dev` the API server, the controller and every other handler), and the
 * proxy's callbacks delay theirs in turn. A worker has its own event loop and
 * can use another core; the sockets are opened in the worker, so not a byte
 * of the stream crosses between threads.
 *
 * One worker per handler, started with the handler and kept: loading a worker
 * costs seconds from the sources (under tsx), which a migration must not wait for.
 * Each proxy has the surface of SourceProxy/TargetProxy: ports, counters (read
 * from shared memory, so synchronous), close. Certificate rotation is forwarded.
 */
export interface ProxyHandle {
  readonly ports: Record<string, number>;
  readonly counters: ProxyCounters;
  close(opts?: { cut?: boolean }): Promise<void>;
}

/** The worker's entry beside this module: proxyWorker.ts from the sources, proxy-worker.js in the bundle (scripts/build.mjs). */
function newWorker(workerData: WorkerHostData): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // A worker does not inherit tsx's loader hooks: it registers them itself, then loads the entry.
    // The ES module build of tsx's API (the CommonJS one loads it by a path that does not exist).
    const tsxApi = pathToFileURL(createRequire(here).resolve('tsx/esm/api').replace(/index\.cjs$/, 'index.mjs')).href;
    const entry = new URL('./proxyWorker.ts', here).href;
    const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
    return new Worker(boot, { eval: true, workerData });
  }
  const bundled = new URL('./proxy-worker.js', here);
  return new Worker(existsSync(fileURLToPath(bundled)) ? bundled : new URL('./proxyWorker.js', here), { workerData });
}

function toWorkerTransport(t: Transport): WorkerTransport {
  return t.kind === 'tcp' ? t : { kind: 'tls', server: t.server.current, client: t.client.current };
}

interface Pending {
  started: (ports: Record<string, number>) => void;
  failed: (err: Error) => void;
  closed?: () => void;
}

export class ProxyHost {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private shut = false;

  constructor(private readonly log: Logger) {}

  /** Starts the worker now (a handler calls this at start-up) rather than at the first migration. */
  warm(): void {
    this.ensure();
  }

  private ensure(): Worker {
    if (this.shut) throw new Error('the migration proxy host is shut down');
    if (this.worker) return this.worker;
    const w = newWorker({ logLevel: this.log.level });
    w.unref();
    w.on('message', (m: FromWorker) => this.onMessage(m));
    const died = (why: string) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      // Its sockets died with it: libvirt sees the streams end and fails the jobs; the next migration gets a new worker.
      if (!this.shut) this.log.error({ why }, 'migration proxy worker stopped; its connections are cut');
      for (const [id, p] of this.pending) {
        p.failed(new Error(`migration proxy worker stopped: ${why}`));
        p.closed?.();
        this.pending.delete(id);
      }
    };
    w.on('error', (err) => died(err.message));
    w.on('exit', (code) => died(`exit code ${code}`));
    this.worker = w;
    return w;
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'log') {
      const fn = (this.log as unknown as Record<string, ((o: object, msg: string) => void) | undefined>)[m.level];
      fn?.call(this.log, m.fields, m.msg);
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'ready') p.started(m.ports);
    else if (m.type === 'failed') { this.pending.delete(m.id); p.failed(new Error(m.message)); }
    else { this.pending.delete(m.id); p.closed?.(); }
  }

  startTarget(o: TargetProxyOptions): Promise<ProxyHandle> {
    return this.start(o.transport, { side: 'target', target: { migrationUid: o.migrationUid, host: o.host, deliverTo: o.deliverTo } });
  }

  startSource(o: SourceProxyOptions): Promise<ProxyHandle> {
    return this.start(o.transport, {
      side: 'source',
      source: { migrationUid: o.migrationUid, kubevirtDir: o.kubevirtDir, targetHost: o.targetHost, targetPorts: o.targetPorts },
    });
  }

  private async start(transport: Transport, spec: ProxySpec): Promise<ProxyHandle> {
    const worker = this.ensure();
    const id = this.nextId++;
    const shared = new SharedArrayBuffer(COUNTER_FIELDS.length * 8);
    const view = new Float64Array(shared);
    const send = (m: ToWorker) => this.worker === worker && worker.postMessage(m);
    const entry: Pending = { started: () => undefined, failed: () => undefined };
    const ports = await new Promise<Record<string, number>>((resolve, reject) => {
      entry.started = resolve;
      entry.failed = reject;
      this.pending.set(id, entry);
      send({ type: 'start', id, transport: toWorkerTransport(transport), counters: shared, ...spec });
    });
    // Rotation: new handshakes in the worker use the new identity, open connections keep theirs.
    const unhook: Array<() => void> = [];
    if (transport.kind === 'tls') {
      unhook.push(transport.server.onUpdate((server) => send({ type: 'tls', id, server })));
      unhook.push(transport.client.onUpdate((client) => send({ type: 'tls', id, client })));
    }
    let closing: Promise<void> | undefined;
    return {
      ports,
      get counters(): ProxyCounters {
        return Object.fromEntries(COUNTER_FIELDS.map((k, i) => [k, view[i] ?? 0])) as unknown as ProxyCounters;
      },
      close: (opts = {}) => {
        closing ??= new Promise<void>((resolve) => {
          for (const u of unhook) u();
          if (!this.pending.has(id)) return resolve();
          entry.closed = resolve;
          send({ type: 'close', id, cut: opts.cut ?? false });
        });
        return closing;
      },
    };
  }

  /** Stops the worker, cutting whatever it still carries. */
  async shutDown(): Promise<void> {
    this.shut = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
