import { z } from 'zod';
import { Condition, ObjectMeta } from './meta.js';

export const EvictionStrategy = z.enum(['None', 'LiveMigrate', 'LiveMigrateIfPossible', 'External']);
export type EvictionStrategy = z.infer<typeof EvictionStrategy>;

/** VirtualMachineInstanceMigrationState, as KubeVirt fills it on the VMI (and copies to the VMIM when final). */
export const MigrationState = z.looseObject({
  migrationUid: z.string().optional(),
  sourceNode: z.string().optional(),
  sourcePod: z.string().optional(),
  targetNode: z.string().optional(),
  targetPod: z.string().optional(),
  targetNodeAddress: z.string().optional(),
  /** Target handler's proxy listener ports: TCP port → KubeVirt key port (0 libvirt, 49152 memory). */
  targetDirectMigrationNodePorts: z.record(z.string(), z.number()).optional(),
  targetNodeDomainDetected: z.boolean().optional(),
  targetNodeDomainReadyTimestamp: z.string().optional(),
  startTimestamp: z.string().optional(),
  endTimestamp: z.string().optional(),
  completed: z.boolean().optional(),
  failed: z.boolean().optional(),
  failureReason: z.string().optional(),
  abortRequested: z.boolean().optional(),
  abortStatus: z.enum(['Succeeded', 'Failed', 'Aborting']).optional(),
  mode: z.enum(['PreCopy', 'PostCopy']).optional(),
  migrationPolicyName: z.string().optional(),
  migrationConfiguration: z.record(z.string(), z.unknown()).optional(),
});
export type MigrationState = z.infer<typeof MigrationState>;

export const VMIPhase = z.enum(['Pending', 'Scheduling', 'Scheduled', 'Running', 'Succeeded', 'Failed', 'Unknown']);

export const VirtualMachineInstance = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: ObjectMeta,
  spec: z.looseObject({
    evictionStrategy: EvictionStrategy.optional(),
    nodeSelector: z.record(z.string(), z.string()).optional(),
    domain: z
      .looseObject({
        memory: z.looseObject({ guest: z.union([z.string(), z.number()]).optional() }).optional(),
        resources: z
          .looseObject({ requests: z.record(z.string(), z.union([z.string(), z.number()])).optional() })
          .optional(),
      })
      .optional(),
  }),
  status: z
    .looseObject({
      phase: VMIPhase.optional(),
      nodeName: z.string().optional(),
      conditions: z.array(Condition).optional(),
      migrationState: MigrationState.nullable().optional(),
      evacuationNodeName: z.string().optional(),
      activePods: z.record(z.string(), z.string()).optional(),
      migrationMethod: z.string().optional(),
    })
    .optional(),
});
export type VirtualMachineInstance = z.infer<typeof VirtualMachineInstance>;

export const VMI_GROUP = 'kubevirt.io';
export const VMI_VERSION = 'v1';
export const VMI_PLURAL = 'virtualmachineinstances';

/** Labels and annotations KubeVirt (and therefore Ferry) uses to tie objects together. */
export const Labels = {
  createdBy: 'kubevirt.io/created-by', // on launcher pods: the VMI's uid
  app: 'kubevirt.io', // value 'virt-launcher' on launcher pods
  vmiName: 'kubevirt.io/vmi-name', // on VMIMs (MigrationSelectorLabel)
  migrationJobUID: 'kubevirt.io/migrationJobUID', // on target pods
  nodeName: 'kubevirt.io/nodeName', // on VMIs
  migrationTargetNodeName: 'kubevirt.io/migrationTargetNodeName', // on VMIs during hand-off
} as const;

export const Annotations = {
  migrationJobName: 'kubevirt.io/migrationJobName',
  domain: 'kubevirt.io/domain',
  evacuationMigration: 'kubevirt.io/evacuationMigration',
  unschedulablePodTimeout: 'kubevirt.io/migrationUnschedulablePodTimeoutSeconds',
  pendingPodTimeout: 'kubevirt.io/migrationPendingPodTimeoutSeconds',
  // Ferry's sim hypervisor reads the guest's behaviour from these (bytes/s, bytes, 0..1).
  simDirtyRate: 'ferry.dev/sim-dirty-rate',
  simWorkingSet: 'ferry.dev/sim-working-set',
  simZeroFraction: 'ferry.dev/sim-zero-fraction',
} as const;

export function isLiveMigratable(vmi: VirtualMachineInstance): { ok: boolean; reason?: string } {
  const c = vmi.status?.conditions?.find((x) => x.type === 'LiveMigratable');
  if (c && c.status === 'False') return { ok: false, reason: c.reason ?? c.message ?? 'not live-migratable' };
  return { ok: true };
}
