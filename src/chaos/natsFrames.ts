/**
 * Splits a NATS client-protocol byte stream into frames, whole: a control line
 * (`INFO {...}`, `PING`, `SUB foo 1`, …) or a message (`PUB`/`HPUB` from a
 * client, `MSG`/`HMSG` from a server) with its payload. Pure and incremental:
 * push bytes as they arrive, take the frames that are complete.
 */
export interface NatsFrame {
  op: string;
  /** The subject of a message frame. */
  subject?: string;
  /** The exact bytes, control line and payload included. */
  raw: Buffer;
}

const MESSAGE_OPS = new Set(['PUB', 'HPUB', 'MSG', 'HMSG']);
/** A control line longer than this is not NATS (nats-server's own max_control_line default is 4 KiB). */
const MAX_CONTROL_LINE = 64 * 1024;

export function isMessage(f: NatsFrame): boolean {
  return MESSAGE_OPS.has(f.op);
}

export class NatsFrameParser {
  private buf: Buffer = Buffer.alloc(0);

  /** Appends bytes; returns the frames they complete. Throws on a stream that is not NATS. */
  push(chunk: Buffer): NatsFrame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: NatsFrame[] = [];
    let offset = 0;
    for (;;) {
      const eol = this.buf.indexOf('\r\n', offset);
      if (eol < 0) {
        if (this.buf.length - offset > MAX_CONTROL_LINE) throw new Error('NATS control line too long');
        break;
      }
      const line = this.buf.subarray(offset, eol).toString('latin1');
      const parts = line.split(/[ \t]+/).filter((p) => p !== '');
      const op = (parts[0] ?? '').toUpperCase();
      let end = eol + 2;
      let subject: string | undefined;
      if (MESSAGE_OPS.has(op)) {
        const size = Number(parts[parts.length - 1]);
        if (!Number.isInteger(size) || size < 0 || parts.length < 3) throw new Error(`malformed NATS ${op} line: ${line.slice(0, 200)}`);
        if (this.buf.length < end + size + 2) break; // payload not all here yet
        end += size + 2;
        subject = parts[1];
      }
      frames.push({ op, ...(subject !== undefined ? { subject } : {}), raw: Buffer.from(this.buf.subarray(offset, end)) });
      offset = end;
    }
    this.buf = this.buf.subarray(offset);
    return frames;
  }
}
