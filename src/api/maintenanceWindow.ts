import { z } from 'zod';
import { ObjectMeta } from './meta.js';

/**
 * `ferry.dev/v1alpha1` MaintenanceWindow: "empty these nodes, N at a time,
 * inside this window". Cluster-scoped, with a status subresource.
 *
 * The spec schema is plain structure (no transforms) so that the CRD's OpenAPI
 * schema can be generated from it. What JSON Schema cannot say (a timestamp
 * that parses, a cron expression, an IANA zone) is checked by
 * `src/runbook/window.ts` and reported in the status.
 */

export const MW_GROUP = 'ferry.dev';
export const MW_VERSION = 'v1alpha1';
export const MW_KIND = 'MaintenanceWindow';
export const MW_PLURAL = 'maintenancewindows';
export const MW_API_VERSION = `${MW_GROUP}/${MW_VERSION}`;

/** Go-style durations, as Kubernetes users write them: "2h", "90m", "1h30m", "45s". */
export const DURATION_PATTERN = '^(?:[0-9]+(?:\\.[0-9]+)?(?:h|m|s|ms))+$';
export const Duration = z.string().regex(new RegExp(DURATION_PATTERN), 'must be a duration such as "2h", "90m" or "1h30m"');

export const LabelSelectorRequirement = z.object({
  key: z.string().min(1),
  operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
  values: z.array(z.string()).optional(),
});

export const LabelSelector = z.object({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z.array(LabelSelectorRequirement).optional(),
});
export type LabelSelector = z.infer<typeof LabelSelector>;

/** One window: RFC 3339 instants, or local times ("2025-06-01T02:00") read in `timeZone`. */
export const FixedWindow = z.object({
  start: z.string().min(1),
  end: z.string().min(1),
  /** IANA zone for local times; default UTC. Ignored for instants that carry an offset. */
  timeZone: z.string().min(1).optional(),
});

/** A window that opens at every cron occurrence (in `timeZone`) and lasts `duration`. */
export const RecurringWindow = z.object({
  schedule: z.string().min(1),
  duration: Duration,
  timeZone: z.string().min(1).optional(),
});

export const WindowSpec = z.union([FixedWindow, RecurringWindow]);
export type WindowSpec = z.infer<typeof WindowSpec>;

/**
 * When maintenance of an emptied node counts as done:
 * - `uncordoned: true`: the operator uncordons the node (`kubectl uncordon`);
 * - `annotation`: someone sets this annotation on the node; Ferry then uncordons it.
 */
export const DoneCriterion = z.union([
  z.object({ uncordoned: z.literal(true) }),
  z.object({ annotation: z.object({ key: z.string().min(1), value: z.string() }) }),
]);
export type DoneCriterion = z.infer<typeof DoneCriterion>;

export const MaintenanceWindowSpec = z
  .object({
    /** The nodes to maintain, by name; or `nodeSelector`, not both. */
    nodes: z.array(z.string().min(1)).min(1).optional(),
    nodeSelector: LabelSelector.optional(),
    /** Nodes emptied and in maintenance at the same time: the batch size. */
    maxNodesInMaintenance: z.number().int().min(1).default(1),
    window: WindowSpec,
    done: DoneCriterion.default({ uncordoned: true }),
    /** No new node is started while true; nodes already started carry on. */
    paused: z.boolean().default(false),
    /**
     * How long the work on one emptied node is expected to take, for the plan
     * and for deciding whether a node still fits in the window. Default 0:
     * the prediction then covers evacuation only.
     */
    maintenanceDuration: Duration.optional(),
  })
  .refine((s) => (s.nodes === undefined) !== (s.nodeSelector === undefined), {
    message: 'give either nodes or nodeSelector (exactly one)',
    path: ['nodes'],
  });
export type MaintenanceWindowSpec = z.infer<typeof MaintenanceWindowSpec>;

export const RunbookPhase = z.enum(['Pending', 'Waiting', 'Running', 'Paused', 'Completed', 'WindowClosed', 'Failed']);
export type RunbookPhase = z.infer<typeof RunbookPhase>;

export const NodePhase = z.enum(['Pending', 'Evacuating', 'ReadyForMaintenance', 'Done', 'Skipped']);
export type NodePhase = z.infer<typeof NodePhase>;

/** Times in status are RFC 3339 text. */
const Time = z.string();

export const NodeProgress = z.object({
  name: z.string(),
  phase: NodePhase,
  /** Why the node is where it is, in a sentence (why skipped, which VMs stay, what it waits for). */
  reason: z.string().optional(),
  /** 1-based batch the node was started in. */
  batch: z.number().int().optional(),
  predictedStart: Time.optional(),
  predictedFinish: Time.optional(),
  startedAt: Time.optional(),
  /** Emptied: labelled ready for maintenance. */
  readyAt: Time.optional(),
  finishedAt: Time.optional(),
  vmsTotal: z.number().int().optional(),
  vmsMoved: z.number().int().optional(),
  /** VMs that do not move (eviction strategy None/External, not live-migratable): reported, not waited for. */
  vmsStaying: z.number().int().optional(),
  /**
   * Evacuation was stopped (window closed, runbook deleted): no new migration
   * starts; the node is released once the migrations in flight have ended.
   */
  interrupted: z.boolean().optional(),
});
export type NodeProgress = z.infer<typeof NodeProgress>;

export const PlanSummary = z.object({
  createdAt: Time,
  /** Node order and batches the runbook follows. */
  order: z.array(z.string()),
  batches: z.array(z.array(z.string())),
  /** When the last node that fits is predicted to be done. */
  predictedEnd: Time.optional(),
  /** Nodes predicted not to finish before the window closes. */
  wontFit: z.array(z.string()),
});
export type PlanSummary = z.infer<typeof PlanSummary>;

export const RunbookCondition = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastTransitionTime: Time.optional(),
});
export type RunbookCondition = z.infer<typeof RunbookCondition>;

export const MaintenanceWindowStatus = z.object({
  phase: RunbookPhase.optional(),
  observedGeneration: z.number().int().optional(),
  /** The window occurrence the runbook works in (or waits for). */
  window: z.object({ start: Time, end: Time }).optional(),
  nodes: z.array(NodeProgress).optional(),
  plan: PlanSummary.optional(),
  /** "done/total" nodes, for `kubectl get`. */
  progress: z.string().optional(),
  /** "2/3: node-3,node-4" */
  currentBatch: z.string().optional(),
  /** Predicted end of the runbook, re-predicted as it goes. */
  eta: Time.optional(),
  startedAt: Time.optional(),
  finishedAt: Time.optional(),
  conditions: z.array(RunbookCondition).optional(),
});
export type MaintenanceWindowStatus = z.infer<typeof MaintenanceWindowStatus>;

export const MaintenanceWindow = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: ObjectMeta,
  spec: MaintenanceWindowSpec,
  status: MaintenanceWindowStatus.optional(),
});
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

/** Ferry's marks on nodes it works on. */
export const MaintenanceLabels = {
  /** `ready` once the node is empty and may be worked on. */
  maintenance: 'ferry.dev/maintenance',
} as const;

export const MaintenanceAnnotations = {
  /** The MaintenanceWindow that holds the node (cordoned and tainted by it). */
  owner: 'ferry.dev/maintenance-window',
} as const;
