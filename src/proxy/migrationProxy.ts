import { chmod, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { pipeline } from 'node:stream';
import { assertSocketPathFits, migrationSocket } from '../launcher/layout.js';
import type { Logger } from '../util/log.js';
import { dial, listen, STREAM_SOCKET, type Listening, type Refusal, type Transport } from './transport.js';

/**
 * KubeVirt's migration proxy (virt-handler migration-proxy.go), in the handler:
 *
 *   source launcher's unix socket ─▶ source handler ══TLS══▶ target handler ─▶ target launcher's unix socket
 *
 * One listener pair per stream: libvirt's own connection (key port 0, to the
 * target launcher's libvirt socket) and QEMU's memory stream (key port 49152,
 * to the unix socket the destination QEMU listens on). Every accepted
 * connection is proxied on its own, so parallel connections work. Bytes are
 * moved by stream.pipeline: back-pressure from the slower side, no copies or
 * allocations of ours per chunk.
 */

export interface ProxyCounters {
  connections: number;
  /** Bytes carried from the source side to the target side, over closed and open connections. */
  bytesForward: number;
  bytesBack: number;
  refused: number;
}

/** Joins two sockets both ways; either side ending or failing ends both. */
function splice(a: net.Socket, b: net.Socket, done: (err: Error | undefined) => void): void {
  // A socket whose peer ended must not end its own side by itself (Node's
  // default): that finished the *other* direction's pipeline at once, and the
  // connection was torn down while the direction that ended still had bytes
  // queued. The tail of the stream was lost (the more, the larger the queues)
  // and its reader waited for it for ever. Each pipeline now ends only when
  // its reader ended and its writer flushed.
  a.allowHalfOpen = true;
  b.allowHalfOpen = true;
  // Two pipelines and the byte counters listen on each socket: more than the default warning level, not a leak.
  a.setMaxListeners(20);
  b.setMaxListeners(20);
  let finished = 0;
  let firstErr: Error | undefined;
  // The first direction to end closes the connection both ways, as KubeVirt's
  // proxy does: neither libvirt's RPC nor QEMU's stream half-closes on purpose,
  // and a half-open pair would keep the launcher's socket open forever.
  const end = (err: NodeJS.ErrnoException | null) => {
    // Only the first direction's end says how the connection ended; the other
    // one then reports our own destroy ("premature close").
    if (err && finished === 0) firstErr = err;
    if (finished++ === 0) {
      a.destroy();
      b.destroy();
    }
    if (finished === 2) done(firstErr);
  };
  pipeline(a, b, end);
  pipeline(b, a, end);
}

class Connections {
  /** Open connections: the socket that reads from the source side, and the one that reads from the target side. */
  private readonly open = new Map<net.Socket, 'forward' | 'back'>();
  readonly counters: ProxyCounters = { connections: 0, bytesForward: 0, bytesBack: 0, refused: 0 };

  track(forward: net.Socket, back: net.Socket): void {
    this.open.set(forward, 'forward');
    this.open.set(back, 'back');
    this.counters.connections++;
    // bytesRead is kept by the socket itself: counting costs nothing per chunk.
    forward.once('close', () => { this.open.delete(forward); this.counters.bytesForward += forward.bytesRead; });
    back.once('close', () => { this.open.delete(back); this.counters.bytesBack += back.bytesRead; });
  }

  /** Live totals, open connections included. */
  snapshot(): ProxyCounters {
    const c = { ...this.counters };
    for (const [s, dir] of this.open) {
      if (dir === 'forward') c.bytesForward += s.bytesRead;
      else c.bytesBack += s.bytesRead;
    }
    return c;
  }

  destroyAll(): void {
    for (const s of this.open.keys()) s.destroy();
  }
}

export interface TargetProxyOptions {
  migrationUid: string;
  transport: Transport;
  /** Address the listeners bind to (the handler's pod IP; KubeVirt binds 0.0.0.0/::). */
  host: string;
  /** Key port (0 libvirt, 49152 memory) → unix socket on this node the stream is delivered to. */
  deliverTo: Record<number, string>;
  log: Logger;
}

/** The target handler's side: TLS listeners on random ports, each piping into one of the target launcher's sockets. */
export class TargetProxy {
  private readonly conns = new Connections();
  private closed = false;

  private constructor(private readonly o: TargetProxyOptions, private readonly listeners: Array<{ keyPort: number; l: Listening }>) {}

  static async start(o: TargetProxyOptions): Promise<TargetProxy> {
    const made: Array<{ keyPort: number; l: Listening }> = [];
    let proxy: TargetProxy | undefined;
    const log = o.log.child({ migrationUid: o.migrationUid, proxy: 'target' });
    try {
      for (const [key, socketPath] of Object.entries(o.deliverTo)) {
        const keyPort = Number(key);
        assertSocketPathFits(socketPath);
        const onRefused = (r: Refusal) => {
          if (proxy) proxy.conns.counters.refused++;
          log.warn({ peer: r.peer, keyPort, reason: r.reason }, 'migration connection refused');
        };
        const l = await listen(o.transport, o.host, (incoming) => proxy?.deliver(incoming, keyPort, socketPath, log), onRefused);
        made.push({ keyPort, l });
      }
    } catch (err) {
      await Promise.all(made.map((m) => m.l.close()));
      throw err;
    }
    proxy = new TargetProxy(o, made);
    log.info({ ports: proxy.ports, tls: o.transport.kind === 'tls' }, 'target migration proxy listening');
    return proxy;
  }

  /** What the target publishes: TCP port → key port, as KubeVirt's targetDirectMigrationNodePorts. */
  get ports(): Record<string, number> {
    return Object.fromEntries(this.listeners.map(({ keyPort, l }) => [String(l.port), keyPort]));
  }

  get counters(): ProxyCounters {
    return this.conns.snapshot();
  }

  private deliver(incoming: net.Socket, keyPort: number, socketPath: string, log: Logger): void {
    if (this.closed) {
      incoming.destroy();
      return;
    }
    const out = net.connect({ path: socketPath, ...STREAM_SOCKET });
    out.once('error', (err) => {
      log.warn({ keyPort, socket: socketPath, err: err.message }, 'cannot reach the target launcher socket; dropping the connection');
      incoming.destroy();
    });
    out.once('connect', () => {
      log.debug({ keyPort, peer: `${incoming.remoteAddress}:${incoming.remotePort}` }, 'migration connection delivered to the target launcher');
      this.conns.track(incoming, out);
      splice(incoming, out, (err) => {
        if (err && !this.closed) log.warn({ keyPort, err: err.message }, 'migration connection ended with an error');
      });
    });
  }

  /** Stops listening; open connections finish on their own (or are cut with `cut`). */
  async close(opts: { cut?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (opts.cut) this.conns.destroyAll();
    await Promise.all(this.listeners.map((m) => m.l.close()));
  }
}

export interface SourceProxyOptions {
  migrationUid: string;
  transport: Transport;
  /** The source launcher's /run/kubevirt as the handler reaches it (/proc/<pid>/root/run/kubevirt). */
  kubevirtDir: string;
  targetHost: string;
  /** As the target published it: TCP port → key port. */
  targetPorts: Record<string, number>;
  log: Logger;
}

/**
 * The source handler's side: unix sockets in the source launcher, each accepted
 * connection dialled to the target. The first connection to the target
 * launcher's libvirt (key port 0) is dialled ahead of need, when the proxy
 * starts (the spare): libvirt's connection to the target daemon then finds the
 * TLS handshake done (about 10 ms on this machine, inside the migration). Only
 * there: the target delivers a connection to its launcher's socket at once,
 * and the socket the destination QEMU listens on exists only once libvirt's
 * prepare started that QEMU. A spare is verified as any connection is, carries
 * nothing until libvirt connects here, and is closed with the proxy if unused.
 * A spare that failed is not counted or logged as a refusal: the connection
 * that needs it dials again, and that refusal is reported.
 */
export class SourceProxy {
  private readonly conns = new Connections();
  private closed = false;
  private readonly spares = new Map<number, Promise<net.Socket | null>>();

  private constructor(private readonly o: SourceProxyOptions, private readonly servers: Array<{ path: string; server: net.Server }>) {}

  static async start(o: SourceProxyOptions): Promise<SourceProxy> {
    const log = o.log.child({ migrationUid: o.migrationUid, proxy: 'source' });
    await mkdir(`${o.kubevirtDir}/migrationproxy`, { recursive: true });
    const made: Array<{ path: string; server: net.Server }> = [];
    let proxy: SourceProxy | undefined;
    // Both sockets at once: each is a few file system calls on the migration's critical path.
    const results = await Promise.allSettled(Object.entries(o.targetPorts).map(async ([tcp, keyPort]) => {
      const path = migrationSocket(o.kubevirtDir, o.migrationUid, keyPort);
      assertSocketPathFits(path);
      await rm(path, { force: true });
      const server = net.createServer(STREAM_SOCKET, (local) => proxy?.forward(local, Number(tcp), keyPort, log));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => { server.off('error', reject); resolve(); });
      });
      made.push({ path, server });
      // QEMU and libvirt in the launcher may run as another user (KubeVirt: qemu, 107).
      await chmod(path, 0o666);
    }));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      for (const m of made) m.server.close();
      throw failed.reason;
    }
    proxy = new SourceProxy(o, made);
    for (const [tcp, keyPort] of Object.entries(o.targetPorts)) if (keyPort === 0) proxy.spare(Number(tcp), log);
    log.info({ sockets: made.map((m) => m.path), target: o.targetHost, ports: o.targetPorts }, 'source migration proxy listening');
    return proxy;
  }

  private spare(tcpPort: number, log: Logger): void {
    const ready = dial(this.o.transport, this.o.targetHost, tcpPort).then(
      (s) => {
        s.on('error', () => undefined);
        if (this.closed) {
          s.destroy();
          return null;
        }
        return s;
      },
      (err: Error) => {
        log.debug({ target: `${this.o.targetHost}:${tcpPort}`, err: err.message }, 'spare migration connection not made; the connection that needs it dials');
        return null;
      },
    );
    this.spares.set(tcpPort, ready);
  }

  /** The spare for this port if it is still up (once), else a new dial. */
  private async remoteFor(tcpPort: number): Promise<net.Socket> {
    const spare = this.spares.get(tcpPort);
    this.spares.delete(tcpPort);
    const s = spare ? await spare : null;
    if (s && !s.destroyed && !s.readableEnded) {
      s.removeAllListeners('error');
      return s;
    }
    s?.destroy();
    return dial(this.o.transport, this.o.targetHost, tcpPort);
  }

  get counters(): ProxyCounters {
    return this.conns.snapshot();
  }

  private forward(local: net.Socket, tcpPort: number, keyPort: number, log: Logger): void {
    if (this.closed) {
      local.destroy();
      return;
    }
    // Nothing is read from the launcher until the target is verified.
    local.pause();
    this.remoteFor(tcpPort).then(
      (remote) => {
        if (this.closed) {
          remote.destroy();
          local.destroy();
          return;
        }
        this.conns.track(local, remote);
        splice(local, remote, (err) => {
          if (err && !this.closed) log.warn({ keyPort, err: err.message }, 'migration connection ended with an error');
        });
      },
      (err: Error) => {
        this.conns.counters.refused++;
        log.warn({ keyPort, target: `${this.o.targetHost}:${tcpPort}`, reason: err.message }, 'migration connection to the target refused');
        local.destroy();
      },
    );
  }

  async close(opts: { cut?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (opts.cut) this.conns.destroyAll();
    for (const spare of this.spares.values()) void spare.then((s) => s?.destroy());
    this.spares.clear();
    await Promise.all(this.servers.map((m) => new Promise<void>((resolve) => m.server.close(() => resolve()))));
    await Promise.all(this.servers.map((m) => rm(m.path, { force: true })));
  }
}
