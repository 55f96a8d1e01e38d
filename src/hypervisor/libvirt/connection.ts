import { createConnection, type Socket } from 'node:net';
import { ConnectionClosedError, LibvirtError } from './errors.js';
import {
  decodeHeader, encodeMessage, HEADER_BYTES, MAX_MESSAGE_BYTES, MessageStatus, MessageType,
  readRemoteError, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, type MessageHeader,
} from './protocol.js';
import { XdrReader } from './xdr.js';

interface Pending {
  procedure: string;
  resolve: (payload: XdrReader) => void;
  reject: (err: Error) => void;
}

/**
 * One socket to libvirtd carrying many calls at once: every call gets its own
 * serial and replies are matched by serial, so a call that blocks on the
 * daemon (a peer-to-peer migration runs for as long as the migration does)
 * does not hold up job statistics or an abort sent meanwhile. libvirtd serves
 * up to `max_client_requests` (default 5) calls of one client in parallel.
 */
export class RpcConnection {
  private readonly pending = new Map<number, Pending>();
  private nextSerial = 1;
  private inbox: Buffer = Buffer.alloc(0);
  private closedBy: Error | null = null;
  private readonly closeListeners = new Set<(reason: Error) => void>();

  private constructor(private readonly socket: Socket, readonly socketPath: string) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.shutdown(new ConnectionClosedError(`libvirtd socket ${socketPath} failed: ${err.message}`, { cause: err })));
    socket.on('close', () => this.shutdown(new ConnectionClosedError(`libvirtd socket ${socketPath} closed`)));
  }

  static connect(socketPath: string, timeoutMs = 5000): Promise<RpcConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path: socketPath });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectionClosedError(`connecting to libvirtd at ${socketPath} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RpcConnection(socket, socketPath));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new ConnectionClosedError(`cannot connect to libvirtd at ${socketPath}: ${err.message}`, { cause: err }));
      });
    });
  }

  get closed(): boolean {
    return this.closedBy !== null;
  }

  /**
   * Sends a call (others may be in flight); resolves with a reader over the
   * reply payload. With `timeoutMs`, gives up waiting after that long (a late
   * reply is then dropped); without, waits as long as the daemon takes.
   */
  call(procedure: number, procedureName: string, args: Buffer = Buffer.alloc(0), timeoutMs?: number): Promise<XdrReader> {
    if (this.closedBy) return Promise.reject(new ConnectionClosedError(`${procedureName}: ${this.closedBy.message}`));
    const serial = this.nextSerial;
    this.nextSerial = this.nextSerial >= 0xffffffff ? 1 : this.nextSerial + 1;
    const frame = encodeMessage({
      program: REMOTE_PROGRAM, version: REMOTE_PROTOCOL_VERSION, procedure,
      type: MessageType.CALL, serial, status: MessageStatus.OK,
    }, args);
    return new Promise<XdrReader>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = <T>(fn: (v: T) => void) => (v: T) => {
        if (timer) clearTimeout(timer);
        fn(v);
      };
      this.pending.set(serial, { procedure: procedureName, resolve: done(resolve), reject: done(reject) });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          if (this.pending.delete(serial)) {
            reject(new Error(`${procedureName}: libvirtd at ${this.socketPath} did not answer within ${timeoutMs} ms`));
          }
        }, timeoutMs);
      }
      this.socket.write(frame);
    });
  }

  onClose(listener: (reason: Error) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Closes the socket; calls still in flight fail with ConnectionClosedError. */
  close(): Promise<void> {
    if (this.closedBy) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.shutdown(new ConnectionClosedError(`connection to libvirtd at ${this.socketPath} was closed by the client`));
      this.socket.destroy();
    });
  }

  private receive(chunk: Buffer): void {
    this.inbox = this.inbox.length === 0 ? chunk : Buffer.concat([this.inbox, chunk]);
    while (this.inbox.length >= 4) {
      const length = this.inbox.readUInt32BE(0);
      if (length < HEADER_BYTES || length > MAX_MESSAGE_BYTES) {
        this.shutdown(new ConnectionClosedError(`libvirtd at ${this.socketPath} sent a frame of impossible length ${length}`));
        this.socket.destroy();
        return;
      }
      if (this.inbox.length < length) return;
      const frame = this.inbox.subarray(4, length);
      this.inbox = this.inbox.subarray(length);
      this.dispatch(frame);
    }
  }

  private dispatch(frame: Buffer): void {
    const r = new XdrReader(frame);
    let header: MessageHeader;
    try {
      header = decodeHeader(r);
    } catch {
      return;
    }
    // Events and keepalives are never asked for by this client; ignore them.
    if (header.program !== REMOTE_PROGRAM || header.type !== MessageType.REPLY) return;
    const pending = this.pending.get(header.serial);
    if (!pending) return;
    this.pending.delete(header.serial);
    const payload = new XdrReader(frame.subarray(HEADER_BYTES - 4));
    if (header.status === MessageStatus.OK) {
      pending.resolve(payload);
      return;
    }
    try {
      pending.reject(new LibvirtError(pending.procedure, readRemoteError(payload)));
    } catch (err) {
      pending.reject(new Error(`${pending.procedure}: libvirtd replied with an error that could not be decoded: ${(err as Error).message}`));
    }
  }

  private shutdown(reason: Error): void {
    if (this.closedBy) return;
    this.closedBy = reason;
    for (const p of this.pending.values()) p.reject(new ConnectionClosedError(`${p.procedure}: ${reason.message}`, { cause: reason }));
    this.pending.clear();
    for (const l of this.closeListeners) l(reason);
    this.closeListeners.clear();
  }
}
