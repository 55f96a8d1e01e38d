import { z } from 'zod';

/**
 * The AdmissionReview v1 exchange as a webhook sees it: the request it is
 * sent (parsed with zod at the boundary) and the three answers it gives.
 */
export const AdmissionRequest = z.looseObject({
  uid: z.string().min(1),
  kind: z.looseObject({ group: z.string(), version: z.string(), kind: z.string() }),
  resource: z.looseObject({ group: z.string(), version: z.string(), resource: z.string() }),
  subResource: z.string().optional(),
  name: z.string().optional(),
  namespace: z.string().optional(),
  operation: z.enum(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']),
  userInfo: z.looseObject({ username: z.string().optional(), groups: z.array(z.string()).optional() }).optional(),
  object: z.unknown().optional(),
  oldObject: z.unknown().optional(),
  dryRun: z.boolean().optional(),
});
export type AdmissionRequest = z.infer<typeof AdmissionRequest>;

export const AdmissionReview = z.looseObject({
  apiVersion: z.literal('admission.k8s.io/v1'),
  kind: z.literal('AdmissionReview'),
  request: AdmissionRequest,
});

export type Verdict =
  | { allowed: true; warnings?: string[] }
  | { allowed: false; code: number; reason: string; message: string };

export const allow = (): Verdict => ({ allowed: true });
/** 422 Invalid: the object itself is wrong (field + reason in the message). */
export const invalid = (message: string): Verdict => ({ allowed: false, code: 422, reason: 'Invalid', message });
/** 403 Forbidden: the object is fine but the request may not happen now. */
export const forbidden = (message: string): Verdict => ({ allowed: false, code: 403, reason: 'Forbidden', message });
/** 429: try again later (kubectl drain retries evictions answered this way). */
export const tooManyRequests = (message: string): Verdict => ({ allowed: false, code: 429, reason: 'TooManyRequests', message });

export function reviewResponse(uid: string, v: Verdict): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: v.allowed
      ? { uid, allowed: true, ...(v.warnings?.length ? { warnings: v.warnings } : {}) }
      : { uid, allowed: false, status: { code: v.code, reason: v.reason, message: v.message } },
  };
}
