/**
 * XDR (RFC 4506) encoding, the part libvirt's remote protocol uses: big-endian
 * 32-bit ints, 64-bit hypers, doubles, length-prefixed strings and opaques padded
 * to 4 bytes, optional data as a bool then the value, variable arrays as a count
 * then the items.
 */

export class XdrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XdrError';
  }
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

export class XdrWriter {
  private buf: Buffer;
  private len = 0;

  constructor(initial = 256) {
    this.buf = Buffer.alloc(initial);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  int(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new XdrError(`int out of range: ${v}`);
    this.reserve(4);
    this.buf.writeInt32BE(v, this.len);
    this.len += 4;
    return this;
  }

  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new XdrError(`unsigned int out of range: ${v}`);
    this.reserve(4);
    this.buf.writeUInt32BE(v, this.len);
    this.len += 4;
    return this;
  }

  hyper(v: number | bigint): this {
    const b = typeof v === 'bigint' ? v : toBigInt(v);
    if (b < -(1n << 63n) || b >= 1n << 63n) throw new XdrError(`hyper out of range: ${v}`);
    this.reserve(8);
    this.buf.writeBigInt64BE(b, this.len);
    this.len += 8;
    return this;
  }

  uhyper(v: number | bigint): this {
    const b = typeof v === 'bigint' ? v : toBigInt(v);
    if (b < 0n || b >= 1n << 64n) throw new XdrError(`unsigned hyper out of range: ${v}`);
    this.reserve(8);
    this.buf.writeBigUInt64BE(b, this.len);
    this.len += 8;
    return this;
  }

  double(v: number): this {
    this.reserve(8);
    this.buf.writeDoubleBE(v, this.len);
    this.len += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  /** Fixed-length opaque: exactly `length` bytes, padded. */
  fixedOpaque(data: Uint8Array, length: number): this {
    if (data.length !== length) throw new XdrError(`fixed opaque needs ${length} bytes, got ${data.length}`);
    this.reserve(length + pad4(length));
    this.buf.set(data, this.len);
    this.len += length;
    this.buf.fill(0, this.len, this.len + pad4(length));
    this.len += pad4(length);
    return this;
  }

  /** Variable-length opaque: length, bytes, padding. */
  opaque(data: Uint8Array): this {
    this.uint(data.length);
    return this.fixedOpaque(data, data.length);
  }

  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }

  /** `T *` in XDR: a bool saying whether the value follows. */
  optional<T>(v: T | null | undefined, write: (w: this, v: T) => void): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  array<T>(items: readonly T[], write: (w: this, item: T) => void): this {
    this.uint(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  get length(): number {
    return this.len;
  }

  /** A copy of the bytes written so far. */
  bytes(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

function toBigInt(v: number): bigint {
  if (!Number.isSafeInteger(v)) throw new XdrError(`64-bit value must be a safe integer or a bigint: ${v}`);
  return BigInt(v);
}

export class XdrReader {
  private pos = 0;

  constructor(private readonly buf: Buffer, private readonly maxLength = 0x2000000) {}

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw new XdrError(`truncated XDR data reading ${what}: need ${n} bytes at offset ${this.pos}, have ${this.buf.length - this.pos}`);
    }
  }

  int(): number {
    this.need(4, 'int');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint(): number {
    this.need(4, 'unsigned int');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  hyperBig(): bigint {
    this.need(8, 'hyper');
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  uhyperBig(): bigint {
    this.need(8, 'unsigned hyper');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A hyper as a number; beyond 2^53 precision is lost (byte counts never get there). */
  hyper(): number {
    return Number(this.hyperBig());
  }

  uhyper(): number {
    return Number(this.uhyperBig());
  }

  double(): number {
    this.need(8, 'double');
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  bool(): boolean {
    const v = this.int();
    if (v !== 0 && v !== 1) throw new XdrError(`bad XDR bool ${v} at offset ${this.pos - 4}`);
    return v === 1;
  }

  fixedOpaque(length: number): Buffer {
    this.need(length + pad4(length), `opaque[${length}]`);
    const v = Buffer.from(this.buf.subarray(this.pos, this.pos + length));
    this.pos += length + pad4(length);
    return v;
  }

  opaque(): Buffer {
    const n = this.uint();
    if (n > this.maxLength) throw new XdrError(`opaque of ${n} bytes exceeds the limit of ${this.maxLength}`);
    return this.fixedOpaque(n);
  }

  string(): string {
    return this.opaque().toString('utf8');
  }

  optional<T>(read: (r: this) => T): T | null {
    return this.bool() ? read(this) : null;
  }

  array<T>(read: (r: this) => T, max = 65536): T[] {
    const n = this.uint();
    if (n > max) throw new XdrError(`array of ${n} items exceeds the limit of ${max}`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  /** Throws unless every byte was consumed: a leftover means a wrong struct layout. */
  end(what: string): void {
    if (this.pos !== this.buf.length) {
      throw new XdrError(`${this.buf.length - this.pos} unread bytes after decoding ${what}`);
    }
  }
}
