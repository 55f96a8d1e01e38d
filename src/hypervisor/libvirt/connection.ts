import { createConnection, type Socket } from 'node:net';
import { ConnectionClosedError, LibvirtError } from './errors.js';
import {
  decodeHeader, encodeMessage, HEADER_BYTES, KEEPALIVE_PROGRAM, KeepaliveProc, KEEPALIVE_PROTOCOL_VERSION, MAX_MESSAGE_BYTES,
  MessageStatus, MessageType, readRemoteError, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, type MessageHeader,
} from './protocol.js';
import { FrameBuffer } from './frameBuffer.js';
import { XdrReader } from './xdr.js';

export interface KeepaliveOptions {
  /** Quiet time after which a PING is sent (libvirt's keepalive_interval, default 5 s). */
  intervalMs: number;
  /** Unanswered intervals after which the daemon is taken for dead (keepalive_count, default 5). */
  count: number;
}

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
  private readonly inbox = new FrameBuffer();
  private closedBy: Error | null = null;
  private readonly closeListeners = new Set<(reason: Error) => void>();
  /** Keepalive: intervals in a row in which nothing came from the daemon. */
  private quietIntervals = 0;
  private heardFrom = false;
  private keepaliveTimer: NodeJS.Timeout | undefined;

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
    const serial = this.takeSerial();
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

  /** The next serial not used by a call still waiting (after 2^32 calls the numbers come round). */
  private takeSerial(): number {
    for (;;) {
      const serial = this.nextSerial;
      this.nextSerial = this.nextSerial >= 0xffffffff ? 1 : this.nextSerial + 1;
      if (!this.pending.has(serial)) return serial;
    }
  }

  /** For tests of the wrap-around: the serial the next call would try first. */
  set serialForTest(next: number) {
    this.nextSerial = next;
  }

  /**
   * libvirt's keepalive, once the daemon agreed to it (CONNECT_SUPPORTS_FEATURE):
   * the daemon PINGs us when we are quiet and we answer PONG, or it drops us;
   * we PING it after a quiet interval, and give up on it after `count` quiet
   * intervals. Anything received counts as a sign of life. Without this a hung
   * daemon is noticed only by call timeouts, and a migration's perform call,
   * which has none, never.
   */
  startKeepalive(opts: KeepaliveOptions): void {
    if (this.closedBy || this.keepaliveTimer) return;
    const tick = () => {
      if (this.closedBy) return;
      if (this.heardFrom) {
        this.quietIntervals = 0;
      } else if (++this.quietIntervals >= opts.count) {
        this.shutdown(new ConnectionClosedError(`libvirtd at ${this.socketPath} did not answer keepalive for ${(opts.intervalMs * opts.count) / 1000} s`));
        this.socket.destroy();
        return;
      }
      this.heardFrom = false;
      if (this.quietIntervals > 0) this.sendKeepalive(KeepaliveProc.PING);
      this.keepaliveTimer = setTimeout(tick, opts.intervalMs);
      this.keepaliveTimer.unref();
    };
    this.keepaliveTimer = setTimeout(tick, opts.intervalMs);
    this.keepaliveTimer.unref();
  }

  private sendKeepalive(procedure: number): void {
    if (this.closedBy) return;
    this.socket.write(encodeMessage({
      program: KEEPALIVE_PROGRAM, version: KEEPALIVE_PROTOCOL_VERSION, procedure, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK,
    }, Buffer.alloc(0)));
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
    this.heardFrom = true;
    this.inbox.push(chunk);
    for (let length = this.inbox.peekUInt32(); length !== undefined; length = this.inbox.peekUInt32()) {
      if (length < HEADER_BYTES || length > MAX_MESSAGE_BYTES) {
        this.corrupt(`sent a frame of impossible length ${length}`);
        return;
      }
      if (this.inbox.length < length) return;
      const frame = this.inbox.take(length).subarray(4);
      this.dispatch(frame);
      if (this.closedBy) return;
    }
  }

  /** The byte stream cannot be trusted any more: every call waiting on it fails now rather than hang. */
  private corrupt(what: string): void {
    this.shutdown(new ConnectionClosedError(`libvirtd at ${this.socketPath} ${what}; connection dropped`));
    this.socket.destroy();
  }

  private dispatch(frame: Buffer): void {
    const r = new XdrReader(frame);
    let header: MessageHeader;
    try {
      header = decodeHeader(r);
    } catch (err) {
      this.corrupt(`sent a frame whose header does not decode (${(err as Error).message})`);
      return;
    }
    if (header.program === KEEPALIVE_PROGRAM) {
      if (header.procedure === KeepaliveProc.PING) this.sendKeepalive(KeepaliveProc.PONG);
      return;
    }
    // Events are never asked for by this client; ignore them.
    if (header.program !== REMOTE_PROGRAM || header.type !== MessageType.REPLY) return;
    const pending = this.pending.get(header.serial);
    if (!pending) return;
    this.pending.delete(header.serial);
    const payload = new XdrReader(frame.subarray(HEADER_BYTES - 4));
    if (header.status === MessageStatus.OK) {
      pending.resolve(payload);
      return;
    }
    if (header.status !== MessageStatus.ERROR) {
      pending.reject(new Error(`${pending.procedure}: libvirtd replied with status ${header.status}, which this client does not speak`));
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
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    for (const p of this.pending.values()) p.reject(new ConnectionClosedError(`${p.procedure}: ${reason.message}`, { cause: reason }));
    this.pending.clear();
    for (const l of this.closeListeners) l(reason);
    this.closeListeners.clear();
  }
}
