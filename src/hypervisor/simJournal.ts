import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * The sim hypervisor's ground truth on disk: one JSON line per change of a
 * domain's state on one node, appended as it happens.
 *
 * It plays the part of the QEMU processes a real node keeps when its handler
 * dies: a restarted `ferry handler --sim-journal FILE` replays it and finds its
 * guests where they were. It is also what the chaos invariant checker reads to
 * know where each guest really runs, independent of what the controller thinks.
 */
export const SimJournalEntry = z.object({
  /** Wall-clock ms (every process on the machine shares the clock, so journals of different nodes merge by it). */
  at: z.number(),
  node: z.string(),
  domain: z.string(),
  /** 'gone' when the domain was removed (migrated away and forgotten, or an incoming one cancelled). */
  state: z.enum(['running', 'paused', 'shutoff', 'incoming', 'gone']),
  memoryBytes: z.number().optional(),
  migrationId: z.string().optional(),
  /**
   * Outgoing migration jobs: 'start' (with targetNode and bandwidth), 'bandwidth'
   * when it is steered, 'end' when it finished, failed or was aborted.
   */
  job: z.enum(['start', 'bandwidth', 'end']).optional(),
  targetNode: z.string().optional(),
  /** Bytes/s the job may use; 0 = unlimited (the NIC's speed). */
  bandwidth: z.number().optional(),
  outcome: z.string().optional(),
});
export type SimJournalEntry = z.infer<typeof SimJournalEntry>;

/** Parses a journal's text; a torn last line (a process killed mid-append) is skipped, as is anything else unreadable. */
export function parseJournal(text: string): SimJournalEntry[] {
  const out: SimJournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const r = SimJournalEntry.safeParse(JSON.parse(line));
      if (r.success) out.push(r.data);
    } catch {
      // torn line
    }
  }
  return out;
}

export function readJournal(file: string): SimJournalEntry[] {
  return existsSync(file) ? parseJournal(readFileSync(file, 'utf8')) : [];
}

/** The domains a journal leaves behind: the last entry of each domain, unless it is 'gone'. */
export function replayJournal(entries: readonly SimJournalEntry[]): Map<string, SimJournalEntry> {
  const domains = new Map<string, SimJournalEntry>();
  for (const e of entries) {
    if (e.job !== undefined) continue;
    if (e.state === 'gone') domains.delete(e.domain);
    else domains.set(e.domain, e);
  }
  return domains;
}

/** Outgoing jobs started and not ended in a journal: their 'start' entries. */
export function openJobs(entries: readonly SimJournalEntry[]): SimJournalEntry[] {
  const open = new Map<string, SimJournalEntry>();
  for (const e of entries) {
    if (e.job === 'start' && e.migrationId) open.set(`${e.domain}/${e.migrationId}`, e);
    if (e.job === 'end' && e.migrationId) open.delete(`${e.domain}/${e.migrationId}`);
  }
  return [...open.values()];
}

export class SimJournal {
  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
  }

  read(): SimJournalEntry[] {
    return readJournal(this.file);
  }

  /**
   * Synchronous on purpose: the entry is on disk before the state change it
   * records can be observed by anyone (a reply, a result), so the checker never
   * sees an effect before its cause.
   */
  append(entry: SimJournalEntry): void {
    appendFileSync(this.file, `${JSON.stringify(entry)}\n`);
  }
}

/**
 * Does the node whose journal is `file` hold `domain` as the incoming domain
 * of `migrationId` now? A sim source asks before it starts and before it
 * switches over, as a real source finds out by connecting: nothing listens on
 * a cancelled target. Read from the end: the last state entry of the domain decides.
 */
export function incomingIn(file: string, domain: string, migrationId: string): boolean {
  if (!existsSync(file)) return false;
  const lines = readFileSync(file, 'utf8').split('\n');
  const tag = `"domain":${JSON.stringify(domain)}`;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (!line.includes(tag)) continue;
    const [e] = parseJournal(line);
    if (!e || e.job) continue;
    return e.state === 'incoming' && e.migrationId === migrationId;
  }
  return false;
}
