import { z } from 'zod';
import { Condition, ObjectMeta } from './meta.js';

/** The Pod fields Ferry reads (launcher pods). */
export const Pod = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: ObjectMeta,
  spec: z
    .looseObject({
      nodeName: z.string().optional(),
      nodeSelector: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
  status: z
    .looseObject({
      phase: z.enum(['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown']).optional(),
      conditions: z.array(Condition).optional(),
      podIP: z.string().optional(),
    })
    .optional(),
});
export type Pod = z.infer<typeof Pod>;

export const Taint = z.looseObject({ key: z.string(), value: z.string().optional(), effect: z.string() });

export const Node = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: ObjectMeta,
  spec: z.looseObject({ unschedulable: z.boolean().optional(), taints: z.array(Taint).optional() }).optional(),
  status: z
    .looseObject({
      conditions: z.array(Condition).optional(),
      addresses: z.array(z.looseObject({ type: z.string(), address: z.string() })).optional(),
      capacity: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
      allocatable: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
    })
    .optional(),
});
export type Node = z.infer<typeof Node>;

export function podIsReady(pod: Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** KubeVirt marks a pod it could not place with PodScheduled=False reason Unschedulable. */
export function podUnschedulable(pod: Pod): { unschedulable: boolean; message?: string } {
  const c = (pod.status?.conditions ?? []).find((x) => x.type === 'PodScheduled');
  if (c && c.status === 'False' && c.reason === 'Unschedulable') {
    return c.message === undefined ? { unschedulable: true } : { unschedulable: true, message: c.message };
  }
  return { unschedulable: false };
}
