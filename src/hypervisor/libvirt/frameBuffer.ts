/**
 * Bytes received from a stream socket, kept as the chunks they came in until a
 * whole frame is there. Each byte is copied once, when its frame is taken, so
 * a 32 MiB reply arriving in 64 KiB chunks costs 32 MiB of copying, not the
 * quadratic sum that re-concatenating the backlog on every chunk would.
 */
export class FrameBuffer {
  private chunks: Buffer[] = [];
  private head = 0; // bytes of chunks[0] already taken
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** The big-endian uint32 at the front, without taking it; undefined with fewer than 4 bytes. */
  peekUInt32(): number | undefined {
    if (this.size < 4) return undefined;
    const first = this.chunks[0]!;
    if (first.length - this.head >= 4) return first.readUInt32BE(this.head);
    return this.copy(4, false).readUInt32BE(0);
  }

  /** Takes the first `n` bytes (n ≤ length). */
  take(n: number): Buffer {
    if (n > this.size) throw new RangeError(`cannot take ${n} bytes from ${this.size}`);
    return this.copy(n, true);
  }

  private copy(n: number, consume: boolean): Buffer {
    const first = this.chunks[0];
    // The common case, a frame inside one chunk: a view, no copy.
    if (first && first.length - this.head >= n) {
      const view = first.subarray(this.head, this.head + n);
      if (consume) this.advance(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    let i = 0;
    let offset = this.head;
    while (written < n) {
      const c = this.chunks[i]!;
      const part = Math.min(c.length - offset, n - written);
      c.copy(out, written, offset, offset + part);
      written += part;
      offset += part;
      if (offset === c.length) { i++; offset = 0; }
    }
    if (consume) this.advance(n);
    return out;
  }

  private advance(n: number): void {
    this.size -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const left = c.length - this.head;
      if (n < left) { this.head += n; return; }
      n -= left;
      this.chunks.shift();
      this.head = 0;
    }
  }
}
