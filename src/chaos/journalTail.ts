import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { parseJournal, type SimJournalEntry } from '../hypervisor/simJournal.js';

/** Reads what was appended to a set of journals since the last call; a partial last line waits for the next. */
export class JournalTail {
  private readonly offsets = new Map<string, number>();
  private readonly partial = new Map<string, string>();

  constructor(private readonly files: readonly string[]) {}

  read(): SimJournalEntry[] {
    const out: SimJournalEntry[] = [];
    for (const file of this.files) {
      if (!existsSync(file)) continue;
      const fd = openSync(file, 'r');
      try {
        const size = fstatSync(fd).size;
        const from = this.offsets.get(file) ?? 0;
        if (size <= from) continue;
        const buf = Buffer.alloc(size - from);
        readSync(fd, buf, 0, buf.length, from);
        this.offsets.set(file, size);
        const text = (this.partial.get(file) ?? '') + buf.toString('utf8');
        const cut = text.lastIndexOf('\n');
        this.partial.set(file, text.slice(cut + 1));
        out.push(...parseJournal(text.slice(0, cut + 1)));
      } finally {
        closeSync(fd);
      }
    }
    return out;
  }
}
