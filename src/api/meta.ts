import { z } from 'zod';

/**
 * A timestamp as RFC 3339 text. client-node's typed APIs (CoreV1Api lists)
 * hand back Date objects while watches deliver strings; both become strings here.
 */
export const Timestamp = z.union([z.string(), z.date()]).transform((v) => (typeof v === 'string' ? v : v.toISOString()));

/** The ObjectMeta fields Ferry reads; unknown fields pass through untouched. */
export const ObjectMeta = z.looseObject({
  name: z.string().min(1),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().optional(),
  creationTimestamp: Timestamp.optional(),
  deletionTimestamp: Timestamp.nullable().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
  ownerReferences: z
    .array(z.looseObject({ apiVersion: z.string(), kind: z.string(), name: z.string(), uid: z.string(), controller: z.boolean().optional() }))
    .optional(),
});
export type ObjectMeta = z.infer<typeof ObjectMeta>;

export const Condition = z.looseObject({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastTransitionTime: Timestamp.nullable().optional(),
  lastProbeTime: Timestamp.nullable().optional(),
});
export type Condition = z.infer<typeof Condition>;

/** Parses `data` with `schema`, or explains in one line why the object is unusable. */
export function parseObject<T extends z.ZodType>(
  schema: T,
  data: unknown,
): { ok: true; value: z.infer<T> } | { ok: false; reason: string } {
  const r = schema.safeParse(data);
  if (r.success) return { ok: true, value: r.data };
  const issues = r.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
  return { ok: false, reason: issues };
}

export function objectKey(meta: { namespace?: string | undefined; name: string }): string {
  return meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
}
