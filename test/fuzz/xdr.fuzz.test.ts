import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { RpcConnection } from '../../src/hypervisor/libvirt/connection.js';
import { decodeHeader, encodeMessage, HEADER_BYTES, MessageStatus, MessageType, readDomain, readRemoteError, readTypedParam, REMOTE_PROGRAM } from '../../src/hypervisor/libvirt/protocol.js';
import { XdrError, XdrReader, XdrWriter } from '../../src/hypervisor/libvirt/xdr.js';

/**
 * The libvirt XDR decoder fed random and truncated bytes: it answers with a
 * value or an error, never crashes another way, never hangs, and never
 * allocates what a length field claims beyond the bytes it has.
 * fast-check prints the seed and the shrunk input of any failure.
 */
type Read = (r: XdrReader) => unknown;
const READS: Record<string, Read> = {
  int: (r) => r.int(), uint: (r) => r.uint(), hyper: (r) => r.hyper(), uhyper: (r) => r.uhyper(), double: (r) => r.double(),
  bool: (r) => r.bool(), opaque: (r) => r.opaque(), string: (r) => r.string(), fixed16: (r) => r.fixedOpaque(16),
  optionalString: (r) => r.optional((x) => x.string()), strings: (r) => r.array((x) => x.string()),
  header: decodeHeader, domain: readDomain, remoteError: readRemoteError, typedParams: (r) => r.array(readTypedParam, 4096),
};

/** Only the decoder's own errors, with a message; anything else (RangeError from Buffer, TypeError) is a bug. */
function decodesOrRefuses(bytes: Uint8Array, reads: string[]): void {
  const r = new XdrReader(Buffer.from(bytes));
  try {
    for (const name of reads) READS[name]!(r);
  } catch (err) {
    const ok = err instanceof XdrError || (err instanceof Error && /typed parameter .* has unknown type/.test(err.message));
    if (!ok) throw new Error(`decoder crashed with ${(err as Error).name}: ${(err as Error).message}`);
  }
}

describe('libvirt XDR decoder under random input', () => {
  it('decodes or refuses any bytes, for any sequence of reads', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), fc.array(fc.constantFrom(...Object.keys(READS)), { minLength: 1, maxLength: 12 }), decodesOrRefuses), { numRuns: 3000 });
  });

  it('refuses every truncation of a valid remote error', () => {
    const w = new XdrWriter(256);
    w.int(9).int(10);
    w.bool(true).string('operation failed: migration job: unexpectedly failed');
    w.int(2).bool(true).string('default_vm-1').fixedOpaque(Buffer.alloc(16, 7), 16).int(3);
    w.bool(false).bool(false).bool(false).int(0).int(0).bool(false);
    const err = w.bytes();
    expect(readRemoteError(new XdrReader(err)).message).toMatch(/unexpectedly failed/);
    fc.assert(fc.property(fc.integer({ min: 0, max: err.length - 1 }), (cut) => {
      expect(() => readRemoteError(new XdrReader(err.subarray(0, cut)))).toThrow(XdrError);
    }));
  });

  it('does not allocate what a length field claims: 2^32-1 byte opaques and 4-billion-item arrays cost nothing', () => {
    const before = process.memoryUsage().arrayBuffers;
    const started = Date.now();
    fc.assert(fc.property(fc.constantFrom(0xffffffff, 0x7fffffff, 0x2000001, 65537, 1 << 30), fc.uint8Array({ maxLength: 64 }), (claim, tail) => {
      const bytes = Buffer.concat([Buffer.from([claim >>> 24, (claim >>> 16) & 255, (claim >>> 8) & 255, claim & 255]), Buffer.from(tail)]);
      expect(() => new XdrReader(bytes).opaque()).toThrow(XdrError);
      expect(() => new XdrReader(bytes).array((x) => x.int())).toThrow(XdrError);
      expect(() => new XdrReader(bytes).array((x) => readTypedParam(x), 4096)).toThrow();
    }), { numRuns: 500 });
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 2 ** 20);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('libvirt RPC connection fed random frames by a fake daemon', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-xdr-fuzz-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('settles every call (reply, error or closed connection) and never throws out of the socket handler', async () => {
    let n = 0;
    await fc.assert(fc.asyncProperty(
      fc.array(fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => Buffer.from(b)),
        // A frame with a valid length word and header, and a random payload (a reply to serial 1, OK or ERROR).
        fc.tuple(fc.constantFrom(MessageStatus.OK, MessageStatus.ERROR), fc.uint8Array({ maxLength: 200 }))
          .map(([status, payload]) => encodeMessage({ program: REMOTE_PROGRAM, version: 1, procedure: 1, type: MessageType.REPLY, serial: 1, status }, Buffer.from(payload))),
        // A length word claiming more than the daemon sends: the call must still end (the daemon closes).
        fc.integer({ min: HEADER_BYTES, max: 33554432 }).map((len) => Buffer.from([len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255])),
      ), { minLength: 1, maxLength: 4 }),
      async (chunks) => {
        const sock = path.join(dir, `d${n++}.sock`);
        const server = net.createServer((s) => {
          s.once('data', () => {
            for (const c of chunks) s.write(c);
            setTimeout(() => s.end(), 20);
          });
        });
        await new Promise<void>((r) => server.listen(sock, () => r()));
        try {
          const conn = await RpcConnection.connect(sock);
          const outcome = await conn.call(1, 'connectGetHostname', Buffer.alloc(0), 2000).then(() => 'reply', (e: Error) => e.name);
          expect(['reply', 'LibvirtError', 'ConnectionClosedError', 'Error']).toContain(outcome);
          await conn.close();
        } finally {
          await new Promise<void>((r) => server.close(() => r()));
        }
      },
    ), { numRuns: 60 });
  });
});
