import net from 'node:net';
import tls, { type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { TlsFiles } from '../certs/index.js';

/**
 * How the handlers carry a migration connection between nodes: mutual TLS
 * (KubeVirt's default) or plain TCP (`migrations.disableTLS: true`).
 *
 * With TLS, both ends check the chain against the CA bundle and then the
 * peer's role, not its host name (as KubeVirt's setupTLS, which verifies the
 * chain and the peer's CN and skips the host check): the target handler
 * accepts only the migration client role, the source only the handler
 * (server) role. A refused peer is closed before a byte is forwarded, and the
 * refusal is reported with its reason.
 */

/** The proxy's TLS identity; the certs module's TlsMaterial is one (replaced live on rotation). */
export interface TlsIdentity {
  serverOptions(): SecureContextOptions;
  secureContext(): SecureContext;
  /** Makes a server follow later certificate updates (new handshakes only; open connections keep theirs). */
  attach(server: tls.Server): () => void;
  /** The PEMs in force now, and a hook for their replacement: what a proxy in a worker thread is handed. */
  readonly current: TlsFiles;
  onUpdate(fn: (files: TlsFiles) => void): () => void;
}

export type PeerVerdict = { ok: true } | { ok: false; reason: string };
/** Decides whether a peer that passed (or failed) the handshake may talk to us; see the certs module's verifyPeer. */
export type PeerCheck = (socket: TLSSocket, role: string) => PeerVerdict;

export type Transport =
  | { kind: 'tcp' }
  | {
    kind: 'tls';
    /** The target handler's server identity. */
    server: TlsIdentity;
    /** The source handler's migration client identity. */
    client: TlsIdentity;
    check: PeerCheck;
    /** Role a client must hold (KubeVirt: client:migration). */
    clientRole: string;
    /** Role the server must hold (KubeVirt: node:virt-handler). */
    serverRole: string;
  };

/**
 * Options for every socket that carries a proxied stream: 1 MiB of queue per
 * socket instead of 16 KiB, so a 64 KiB read from one side does not stop the
 * other at once. (It used to hang the proxy: the cut tail fixed in the
 * splice. On this 2-core machine it measured no faster than 16 KiB, in a
 * worker or in one thread; it is kept as the headroom a faster link needs.)
 * The target's TLS sockets keep Node's 16 KiB: a tls.Server does not pass it
 * on; on the memory stream they only read, and a flowing pipe keeps no read
 * queue. Half-open handling is set by the splice (migrationProxy.ts), not
 * here: until a connection is verified and spliced, a peer's end closes it.
 */
export const STREAM_SOCKET = { highWaterMark: 1024 * 1024 } as const;

export interface Refusal { peer: string; reason: string }

export interface Listening {
  server: net.Server;
  port: number;
  close(): Promise<void>;
}

/**
 * A listener on `host` (port chosen by the kernel, as virt-handler's target
 * listeners) that hands every accepted, verified connection to `onConnection`.
 */
export async function listen(transport: Transport, host: string, onConnection: (socket: net.Socket) => void, onRefused: (r: Refusal) => void): Promise<Listening> {
  let server: net.Server;
  let detach = (): void => undefined;
  if (transport.kind === 'tcp') {
    server = net.createServer({ noDelay: true, ...STREAM_SOCKET }, onConnection);
  } else {
    // rejectUnauthorized false: the chain is still checked (socket.authorized),
    // but a refused peer reaches us, so the reason is logged, not lost in a handshake error.
    const s = tls.createServer({ ...transport.server.serverOptions(), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2', ...STREAM_SOCKET });
    s.on('secureConnection', (socket: TLSSocket) => {
      const verdict = transport.check(socket, transport.clientRole);
      if (!verdict.ok) {
        onRefused({ peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: verdict.reason });
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      onConnection(socket);
    });
    s.on('tlsClientError', (err, socket) => {
      onRefused({ peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: `TLS handshake failed: ${err.message}` });
    });
    detach = transport.server.attach(s);
    server = s;
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => {
      detach();
      server.close(() => resolve());
    }),
  };
}

/** Connects to a target listener; resolves once the peer is verified (TLS) or connected (TCP). */
export function dial(transport: Transport, host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (transport.kind === 'tcp') {
      const s = net.connect({ host, port, noDelay: true, ...STREAM_SOCKET });
      s.once('connect', () => { s.off('error', reject); resolve(s); });
      s.once('error', reject);
      return;
    }
    const s = tls.connect({
      host,
      port,
      secureContext: transport.client.secureContext(),
      // Chain checked by rejectUnauthorized; identity by role, not host name (handlers are reached by pod IP).
      rejectUnauthorized: true,
      checkServerIdentity: () => undefined,
      minVersion: 'TLSv1.2',
      ...STREAM_SOCKET,
    });
    s.once('secureConnect', () => {
      const verdict = transport.check(s, transport.serverRole);
      if (!verdict.ok) {
        s.destroy();
        reject(new Error(`target handler ${host}:${port} refused: ${verdict.reason}`));
        return;
      }
      s.off('error', reject);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', (err) => reject(new Error(`TLS connection to target handler ${host}:${port} failed: ${err.message}`, { cause: err })));
  });
}
