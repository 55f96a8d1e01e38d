/**
 * A scripted stand-in for libvirtd's socket: it decodes call frames and answers
 * each with whatever the test's handler for that procedure returns, so the
 * client's framing, serial matching and error decoding can be tested without
 * a daemon.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeHeader, encodeMessage, KEEPALIVE_PROGRAM, KeepaliveProc, MessageStatus, MessageType, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, writeDomain,
  type DomainRef, type MessageHeader,
} from '../../../src/hypervisor/libvirt/protocol.js';
import { XdrReader, XdrWriter } from '../../../src/hypervisor/libvirt/xdr.js';

export type Reply =
  | { ok: Buffer }
  | { error: { code: number; message: string } };

export type Handler = (args: XdrReader, header: MessageHeader) => Reply | Promise<Reply>;

export const ok = (build: (w: XdrWriter) => void = () => undefined): Reply => {
  const w = new XdrWriter();
  build(w);
  return { ok: w.bytes() };
};

export const fail = (code: number, message: string): Reply => ({ error: { code, message } });

/** remote_error with only code, domain, message and level set. */
export function errorPayload(code: number, message: string): Buffer {
  const w = new XdrWriter();
  w.int(code).int(10).optional(message, (x, v) => x.string(v)).int(2)
    .bool(false).bool(false).bool(false).bool(false)
    .int(0).int(0).bool(false);
  return w.bytes();
}

export function domainRef(name: string, id = 1): DomainRef {
  return { name, uuid: Buffer.alloc(16, 7), id };
}

export const domainReply = (d: DomainRef): Reply => ok((w) => writeDomain(w, d));

export class FakeLibvirtd {
  readonly socketPath: string;
  private readonly dir: string;
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  readonly handlers = new Map<number, Handler>();
  /** Procedure numbers in the order calls arrived. */
  readonly calls: number[] = [];
  /** Keepalive messages from clients ('PING' | 'PONG'), in order. */
  readonly keepalives: string[] = [];
  /** A hung daemon: reads everything, answers nothing (keepalive PINGs included). */
  hung = false;
  /** Serials of the calls, in the order they arrived. */
  readonly serials: number[] = [];

  private constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'ferry-fake-libvirtd-'));
    this.socketPath = join(this.dir, 'libvirt-sock');
  }

  static async start(): Promise<FakeLibvirtd> {
    const f = new FakeLibvirtd();
    f.handlers.set(1, () => ok()); // CONNECT_OPEN
    f.handlers.set(2, () => ok()); // CONNECT_CLOSE
    f.server = createServer((s) => f.serve(s));
    await new Promise<void>((resolve) => f.server.listen(f.socketPath, resolve));
    return f;
  }

  on(proc: number, h: Handler): this {
    this.handlers.set(proc, h);
    return this;
  }

  /** Sends raw bytes to every connected client (events, keepalives, garbage). */
  broadcast(frame: Buffer): void {
    for (const s of this.sockets) s.write(frame);
  }

  /** Sends a keepalive PING to every client, as libvirtd does to a quiet client. */
  ping(): void {
    this.broadcast(encodeMessage({ program: KEEPALIVE_PROGRAM, version: 1, procedure: KeepaliveProc.PING, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK }, Buffer.alloc(0)));
  }

  /** Drops every client connection, as a dying daemon would. */
  dropClients(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.dropClients();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private serve(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
    let inbox = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      inbox = Buffer.concat([inbox, chunk]);
      while (inbox.length >= 4 && inbox.length >= inbox.readUInt32BE(0)) {
        const len = inbox.readUInt32BE(0);
        const frame = inbox.subarray(4, len);
        inbox = inbox.subarray(len);
        void this.answer(s, frame);
      }
    });
  }

  private async answer(s: Socket, frame: Buffer): Promise<void> {
    const r = new XdrReader(frame);
    const header = decodeHeader(r);
    if (header.program === KEEPALIVE_PROGRAM) {
      this.keepalives.push(header.procedure === KeepaliveProc.PING ? 'PING' : 'PONG');
      if (header.procedure === KeepaliveProc.PING && !this.hung && !s.destroyed) {
        s.write(encodeMessage({ ...header, procedure: KeepaliveProc.PONG }, Buffer.alloc(0)));
      }
      return;
    }
    this.calls.push(header.procedure);
    this.serials.push(header.serial);
    if (this.hung) return;
    const handler = this.handlers.get(header.procedure);
    const reply = handler ? await handler(new XdrReader(frame.subarray(24)), header) : fail(3, `fake libvirtd: no handler for procedure ${header.procedure}`);
    const replyHeader: MessageHeader = {
      program: REMOTE_PROGRAM, version: REMOTE_PROTOCOL_VERSION, procedure: header.procedure,
      type: MessageType.REPLY, serial: header.serial, status: 'ok' in reply ? MessageStatus.OK : MessageStatus.ERROR,
    };
    const payload = 'ok' in reply ? reply.ok : errorPayload(reply.error.code, reply.error.message);
    if (!s.destroyed) s.write(encodeMessage(replyHeader, payload));
  }
}
