import { z } from 'zod';
import type { Command } from './subjects.js';

/**
 * Payload schemas for every subject. A message that fails its schema is
 * rejected with a logged reason and never acted on.
 */

const uid = z.string().min(1);
export const MigrationRef = z.object({
  migrationUid: uid,
  attempt: z.number().int().min(1),
  /** `namespace/name` of the VMI, for logs. */
  vmi: z.string().min(1),
});
export type MigrationRef = z.infer<typeof MigrationRef>;

export const GuestSpecSchema = z.object({
  name: z.string().min(1),
  memoryBytes: z.number().positive(),
  dirtyRate: z.number().min(0).optional(),
  workingSet: z.number().min(0).optional(),
  zeroFraction: z.number().min(0).max(1).optional(),
  /** The VMI's active pods (pod UID → node) and the TLS choice: how a handler finds the launcher and carries the stream. */
  launcher: z.object({ activePods: z.record(z.string(), z.string()), disableTLS: z.boolean().optional() }).optional(),
});

/** What a target publishes, as KubeVirt's migrationState.targetNodeAddress / targetDirectMigrationNodePorts. */
export const PublishedTargetSchema = z.object({
  targetNodeAddress: z.string().min(1),
  targetDirectMigrationNodePorts: z.record(z.string(), z.number().int().min(0)),
});

export const ControlsSchema = z.object({
  bandwidth: z.number().min(0),
  maxDowntimeMs: z.number().positive(),
  autoConverge: z.boolean(),
  postCopy: z.boolean(),
});

export const JobStatsSchema = z.object({
  phase: z.enum(['running', 'completed', 'failed', 'aborted']),
  mode: z.enum(['PreCopy', 'PostCopy']),
  elapsedMs: z.number(),
  dataTotal: z.number(),
  dataProcessed: z.number(),
  dataRemaining: z.number(),
  memoryBandwidth: z.number(),
  dirtyRate: z.number(),
  iteration: z.number(),
  autoConvergeThrottle: z.number(),
  bandwidthLimit: z.number(),
  expectedDowntimeMs: z.number().optional(),
  downtimeMs: z.number().optional(),
});
export type JobStatsMsg = z.infer<typeof JobStatsSchema>;

export const requests = {
  'prepare-target': MigrationRef.extend({ guest: GuestSpecSchema, sourceNode: z.string() }),
  'start-source': MigrationRef.extend({
    guest: GuestSpecSchema,
    targetNode: z.string(),
    targetAddress: z.string(),
    controls: ControlsSchema,
  }),
  'finish-target': MigrationRef.extend({ domain: z.string() }),
  abort: MigrationRef.extend({ reason: z.string() }),
  'set-bandwidth': MigrationRef.extend({ bytesPerSecond: z.number().min(0) }),
  'set-downtime': MigrationRef.extend({ maxDowntimeMs: z.number().positive() }),
  'post-copy': MigrationRef,
  /** With `migrationUids`, only those migrations' jobs are listed (domains always all). */
  'list-jobs': z.object({ migrationUids: z.array(uid).max(1000).optional() }),
  /** The controller has the final outcome of this migration: its tombstones may go. */
  'forget-job': MigrationRef,
} satisfies Record<Command, z.ZodType>;

export const JobSummary = z.object({
  migrationUid: z.string(),
  attempt: z.number(),
  vmi: z.string(),
  role: z.enum(['source', 'target']),
  domain: z.string(),
  /** Target: 'prepared' | 'finished' | 'cancelled'; source: the job phase. */
  state: z.string(),
  stats: JobStatsSchema.optional(),
  /** Set once the job has ended: from then on it is a tombstone until forget-job. */
  finishedAt: z.string().optional(),
});
export type JobSummary = z.infer<typeof JobSummary>;

const ok = <T extends z.ZodRawShape>(shape: T) => z.object({ ok: z.literal(true), ...shape });

export const replies = {
  'prepare-target': ok({ address: z.string(), published: PublishedTargetSchema.optional() }),
  'start-source': ok({ state: z.enum(['started', 'running', 'completed', 'failed', 'aborted', 'unknown']) }),
  'finish-target': ok({ domainState: z.string() }),
  abort: ok({ state: z.enum(['aborting', 'not-found', 'already-finished', 'cancelled']) }),
  'set-bandwidth': ok({}),
  'set-downtime': ok({}),
  'post-copy': ok({}),
  'list-jobs': ok({
    node: z.string(),
    jobs: z.array(JobSummary),
    domains: z.array(z.object({ name: z.string(), state: z.string(), memoryBytes: z.number() })),
  }),
  /** `forgotten` is false when the handler had nothing finished to forget (unknown, or still running). */
  'forget-job': ok({ forgotten: z.boolean() }),
} satisfies Record<Command, z.ZodType>;

export type CommandRequest<C extends Command> = z.infer<(typeof requests)[C]>;
export type CommandReply<C extends Command> = z.infer<(typeof replies)[C]>;

/**
 * What a handler answers when it cannot do what was asked; the controller surfaces `error`.
 * `stale-epoch`: the command came from a controller whose leadership epoch is older than
 * one this handler has already obeyed; nothing was done.
 */
export const ErrorReply = z.object({
  ok: z.literal(false),
  error: z.string(),
  code: z.enum(['bad-request', 'not-found', 'conflict', 'driver-error', 'stale-epoch', 'internal']),
});
export type ErrorReply = z.infer<typeof ErrorReply>;

export const ProgressMessage = MigrationRef.extend({
  node: z.string(),
  stats: JobStatsSchema,
  at: z.string(),
});
export type ProgressMessage = z.infer<typeof ProgressMessage>;

/**
 * Published on JetStream with message id `${migrationUid}-${attempt}-${outcome}`.
 * `unknown`: the source lost sight of the job and could not find out how it
 * ended (its domain is gone and nothing was recorded). The guest may be running
 * on the target: the controller resolves it by asking both handlers (list-jobs),
 * never by treating it as a failure.
 */
export const ResultMessage = MigrationRef.extend({
  node: z.string(),
  outcome: z.enum(['completed', 'failed', 'aborted', 'unknown']),
  reason: z.string().optional(),
  mode: z.enum(['PreCopy', 'PostCopy']),
  downtimeMs: z.number().optional(),
  stats: JobStatsSchema,
  at: z.string(),
});
export type ResultMessage = z.infer<typeof ResultMessage>;

export const Heartbeat = z.object({
  node: z.string(),
  driver: z.enum(['sim', 'libvirt']),
  activeJobs: z.number().int().min(0),
  at: z.string(),
});
export type Heartbeat = z.infer<typeof Heartbeat>;

/**
 * The id JetStream deduplicates a result by. It names the node, so a result
 * forged by another node cannot take the id of the source's real one.
 */
export function resultMessageId(r: Pick<ResultMessage, 'migrationUid' | 'attempt' | 'outcome' | 'node'>): string {
  return `${r.migrationUid}-${r.attempt}-${r.outcome}-${r.node}`;
}
