import { FINAL_PHASES } from '../api/vmim.js';
import type { Tracked } from './tracked.js';

/**
 * The migrations this controller follows, by VMIM uid. Only membership lives
 * here: each migration's facts are in its chart's context, its I/O in its
 * session. Everything that looks migrations up goes through this one map.
 */
export class MigrationRegistry {
  private readonly byUid = new Map<string, Tracked>();

  add(t: Tracked): void {
    this.byUid.set(t.session.uid, t);
  }

  get(uid: string): Tracked | undefined {
    return this.byUid.get(uid);
  }

  /** By the VMIM's `namespace/name` (a deleted VMIM leaves only its key). */
  byKey(key: string): Tracked | undefined {
    for (const t of this.byUid.values()) if (`${t.session.namespace}/${t.session.name}` === key) return t;
    return undefined;
  }

  /** No longer followed: its status writer's timers go with it. */
  delete(uid: string): void {
    this.byUid.get(uid)?.writer.close();
    this.byUid.delete(uid);
  }

  values(): IterableIterator<Tracked> {
    return this.byUid.values();
  }

  /** Stops every actor and forgets them all (controller stop). */
  clear(): void {
    for (const t of this.byUid.values()) {
      t.actor.stop();
      t.writer.close();
    }
    this.byUid.clear();
  }

  /** Admitted, unfinished migrations. */
  activeCount(): number {
    let n = 0;
    for (const t of this.byUid.values()) if (!FINAL_PHASES.has(t.session.phase) && t.session.phase !== 'Pending') n++;
    return n;
  }
}
