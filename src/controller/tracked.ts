import type { MigrationActorHandle } from './migrationActor.js';
import type { MigrationSession } from './session.js';
import type { StatusWriter } from './statusWriter.js';

/** One migration the controller follows: its I/O, its chart, its status writer. */
export interface Tracked {
  session: MigrationSession;
  actor: MigrationActorHandle;
  writer: StatusWriter;
  /** Resolves when the actor reached a final state and that phase is persisted. */
  settled: Promise<void>;
  /** Dedupes level-triggered facts so the chart only hears about changes (controller bookkeeping, not a migration fact). */
  lastFact: string;
  targetPodSeen: boolean;
  /** The final phase is stored in the VMIM status (until then it holds its admission slot). */
  finalWritten: boolean;
  /** forget-job was sent (once per migration). */
  forgotten?: boolean;
}
