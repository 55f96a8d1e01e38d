import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { MigrationRef, ResultMessage } from '../bus/protocol.js';

/**
 * What a source handler writes to its node's disk about each outgoing
 * migration, so that a restarted handler knows which migration (uid, attempt,
 * VMI) a job still running in the hypervisor belongs to, and can still publish
 * an outcome it had learned but not yet delivered. libvirt knows the domain and
 * its job, not Ferry's names for them; KubeVirt's virt-handler keeps similar
 * per-node records for the same reason.
 */
export const SourceJobRecord = MigrationRef.extend({
  domain: z.string().min(1),
  targetNode: z.string(),
  startedAt: z.string(),
  /** Set once the outcome is known. */
  result: ResultMessage.optional(),
  /**
   * The result is stored in JetStream. The record stays, as the migration's
   * tombstone, until the controller sends forget-job (see tombstones.ts).
   */
  published: z.boolean().optional(),
});
export type SourceJobRecord = z.infer<typeof SourceJobRecord>;

export interface RecordListing {
  records: SourceJobRecord[];
  /** Files that could not be read or parsed, with why: left in place for a human. */
  unreadable: Array<{ file: string; reason: string }>;
}

const SUFFIX = '.json';

function fileName(ref: Pick<MigrationRef, 'migrationUid' | 'attempt'>): string {
  return `${ref.migrationUid.replace(/[^A-Za-z0-9._-]/g, '_')}-${ref.attempt}${SUFFIX}`;
}

/** One JSON file per migration attempt in `dir`; writes replace files atomically (rename). */
export class JobRecordStore {
  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<JobRecordStore> {
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw new Error(`cannot use ${dir} for the handler's migration records: ${(err as Error).message}`, { cause: err });
    }
    return new JobRecordStore(dir);
  }

  async save(record: SourceJobRecord): Promise<void> {
    const path = join(this.dir, fileName(record));
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(SourceJobRecord.parse(record)) + '\n');
    await rename(tmp, path);
  }

  async remove(ref: Pick<MigrationRef, 'migrationUid' | 'attempt'>): Promise<void> {
    await rm(join(this.dir, fileName(ref)), { force: true });
  }

  async list(): Promise<RecordListing> {
    const out: RecordListing = { records: [], unreadable: [] };
    for (const file of (await readdir(this.dir)).filter((f) => f.endsWith(SUFFIX)).sort()) {
      try {
        const parsed = SourceJobRecord.safeParse(JSON.parse(await readFile(join(this.dir, file), 'utf8')));
        if (parsed.success) out.records.push(parsed.data);
        else out.unreadable.push({ file, reason: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
      } catch (err) {
        out.unreadable.push({ file, reason: (err as Error).message });
      }
    }
    return out;
  }
}
