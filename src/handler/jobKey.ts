import type { MigrationRef } from '../bus/protocol.js';

/** Commands are idempotent per (migration uid, attempt): this is the key they share. */
export function jobKey(ref: Pick<MigrationRef, 'migrationUid' | 'attempt'>): string {
  return `${ref.migrationUid}#${ref.attempt}`;
}

/** The fields every handler log line carries about a migration. */
export function refFields(ref: MigrationRef): { migrationUid: string; attempt: number; vmi: string } {
  return { migrationUid: ref.migrationUid, attempt: ref.attempt, vmi: ref.vmi };
}
