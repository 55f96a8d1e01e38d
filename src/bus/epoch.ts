import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../util/log.js';

/**
 * Fencing between controller replicas. Every command carries the epoch of the
 * leader that sent it (the Lease's `leaseTransitions` while it holds it) in the
 * `Ferry-Epoch` header. A handler obeys the highest epoch it has seen and
 * refuses older ones, so a leader that was paused past its lease and wakes up
 * cannot act on a node the new leader already commands.
 *
 * The highest epoch is written to `file` (when there is one) before a command
 * that raised it runs: a restarted handler must not forget it, or a stale leader
 * could slip in between the restart and the new leader's next command.
 */
export const EPOCH_HEADER = 'Ferry-Epoch';

/** The header's value: a non-negative decimal integer; absent ⇒ 0 (a controller that does not elect). */
export function parseEpoch(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return 0;
  if (!/^\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}

export type Admission = { admitted: true } | { admitted: false; highest: number };

export class EpochFence {
  private highest = 0;
  private readonly loaded: Promise<void>;
  /** Writes of the file, in order: a later, higher epoch never lands before an earlier one. */
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly opts: { file?: string; log?: Logger } = {}) {
    this.loaded = this.load();
  }

  private async load(): Promise<void> {
    const { file, log } = this.opts;
    if (!file) return;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new Error(`cannot read the leader epoch from ${file}: ${(err as Error).message}`, { cause: err });
    }
    const epoch = parseEpoch(text.trim());
    if (epoch === undefined) {
      // Refusing every command forever would be worse than a short window of trust:
      // the next leader's command writes a good value back.
      log?.error({ file, content: text.slice(0, 40) }, 'leader epoch file is unreadable; starting from epoch 0');
      return;
    }
    this.highest = Math.max(this.highest, epoch);
  }

  /** The highest epoch obeyed so far. */
  async current(): Promise<number> {
    await this.loaded;
    return this.highest;
  }

  /**
   * Admits a command of `epoch` if no newer leader has been obeyed, recording it
   * as the highest seen. Resolves after a raised epoch is on disk.
   */
  async admit(epoch: number): Promise<Admission> {
    await this.loaded;
    if (epoch < this.highest) return { admitted: false, highest: this.highest };
    if (epoch === this.highest) {
      // Another command may be writing this very epoch: do not run ahead of it.
      await this.writing;
      return { admitted: true };
    }
    this.highest = epoch;
    const file = this.opts.file;
    if (file) {
      const write = this.writing.then(() => writeAtomically(file, `${epoch}\n`));
      this.writing = write.catch(() => undefined);
      await write;
    }
    return { admitted: true };
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}
