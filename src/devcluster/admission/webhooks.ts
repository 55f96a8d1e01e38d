import { ApiError, Errors } from '../errors.js';
import { clone, isRecord, type KubeObject } from '../object.js';
import { applyJsonPatch } from '../patch.js';
import { admissionRequest, type AdmissionAttributes } from './attributes.js';
import { CallError, postReview, resolveEndpoint, type ClientConfig } from './call.js';
import { evaluateMatchConditions, type MatchCondition } from './cel.js';
import { anyRuleMatches, namespaceSelectorMatches, objectSelectorMatches } from './rules.js';
import type { ServiceRouter } from './services.js';

/**
 * Calling the admission webhooks of Validating- and
 * MutatingWebhookConfigurations as kube-apiserver does: mutating webhooks
 * one after another (configurations by name, webhooks in order), each seeing
 * the object as the previous one left it; validating webhooks all at once.
 * Each call honours the webhook's rules, selectors, matchPolicy,
 * matchConditions, sideEffects (for dry runs), timeoutSeconds and
 * failurePolicy, and a refusal or a failure is answered in the real server's words.
 */

export interface Webhook {
  name: string;
  clientConfig: ClientConfig;
  rules?: unknown[];
  failurePolicy?: 'Fail' | 'Ignore';
  matchPolicy?: 'Exact' | 'Equivalent';
  namespaceSelector?: unknown;
  objectSelector?: unknown;
  sideEffects?: string;
  timeoutSeconds?: number;
  admissionReviewVersions?: string[];
  matchConditions?: MatchCondition[];
  reinvocationPolicy?: string;
}

export interface WebhookSource {
  configurations(kind: 'validating' | 'mutating'): KubeObject[];
  namespaceLabels(ns: string): Record<string, string> | undefined;
  router: ServiceRouter;
  log?: ((msg: string) => void) | undefined;
  /** Told of every call made: which webhook, how long the round trip took, how it ended. */
  observe?: ((call: WebhookCall) => void) | undefined;
}

export interface WebhookCall { webhook: string; ms: number; outcome: 'allowed' | 'denied' | 'failed' }

const REASONS: Record<number, string> = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable' };

function webhooksOf(config: KubeObject): Webhook[] {
  const list = config['webhooks'];
  return Array.isArray(list) ? (list.filter(isRecord) as unknown as Webhook[]) : [];
}

/** The variables of a webhook's matchConditions (no params, no namespaceObject in webhooks). */
function celVars(a: AdmissionAttributes) {
  return { object: a.object, oldObject: a.oldObject, request: admissionRequest(a), authorizer: null };
}

type Decision = { call: false } | { call: true } | { call: false; error: string };

function shouldCall(w: Webhook, a: AdmissionAttributes, src: WebhookSource): Decision {
  if (!anyRuleMatches(w.rules, a, w.matchPolicy)) return { call: false };
  if (!namespaceSelectorMatches(w.namespaceSelector, a, (ns) => src.namespaceLabels(ns))) return { call: false };
  if (!objectSelectorMatches(w.objectSelector, a)) return { call: false };
  const m = evaluateMatchConditions(w.matchConditions, celVars(a));
  if (m.error) return { call: false, error: m.error };
  return m.matches ? { call: true } : { call: false };
}

/** Whether any webhook's rules could apply to this request (before looking at objects): lets unrelated requests skip admission. */
export function anyWebhookRuleMatches(a: AdmissionAttributes, src: WebhookSource): boolean {
  for (const kind of ['mutating', 'validating'] as const) {
    for (const c of src.configurations(kind)) if (webhooksOf(c).some((w) => anyRuleMatches(w.rules, a, w.matchPolicy))) return true;
  }
  return false;
}

function failed(w: Webhook, detail: string): ApiError {
  return Errors.internal(`failed calling webhook "${w.name}": ${detail}`);
}

/** One call; returns the review's response, or throws the ApiError the request must end with. Ignore-policy failures return undefined. */
async function callOne(w: Webhook, a: AdmissionAttributes, src: WebhookSource): Promise<Record<string, unknown> | undefined> {
  const ignore = w.failurePolicy === 'Ignore';
  const d = shouldCall(w, a, src);
  if ('error' in d) {
    if (ignore) return undefined;
    throw failed(w, `failed to evaluate match conditions: ${d.error}`);
  }
  if (!d.call) return undefined;
  if (a.dryRun && w.sideEffects !== 'None' && w.sideEffects !== 'NoneOnDryRun') {
    throw Errors.badRequest(`admission webhook "${w.name}" does not support dry run`);
  }
  if (!(w.admissionReviewVersions ?? []).includes('v1')) {
    if (ignore) return undefined;
    throw failed(w, `webhook does not accept v1 AdmissionReview (admissionReviewVersions: ${JSON.stringify(w.admissionReviewVersions ?? [])})`);
  }
  const timeout = w.timeoutSeconds ?? 10;
  const review = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: admissionRequest(a) };
  let answer: unknown;
  const started = performance.now();
  try {
    const ep = resolveEndpoint(w.clientConfig, timeout, src.router);
    answer = await postReview(ep, w.clientConfig.caBundle, review, timeout);
  } catch (err) {
    src.observe?.({ webhook: w.name, ms: performance.now() - started, outcome: 'failed' });
    const msg = err instanceof CallError ? err.message : `failed to call webhook: ${(err as Error).message}`;
    src.log?.(`admission webhook ${w.name} failed (failurePolicy ${w.failurePolicy ?? 'Fail'}): ${msg}`);
    if (ignore) return undefined;
    throw failed(w, msg);
  }
  const response = isRecord(answer) && isRecord(answer['response']) ? answer['response'] : undefined;
  src.observe?.({ webhook: w.name, ms: performance.now() - started, outcome: response?.['allowed'] === true ? 'allowed' : 'denied' });
  if (!response || response['uid'] !== a.uid) {
    const why = !response ? 'webhook response was absent' : `expected response.uid="${a.uid}", got "${String(response['uid'])}"`;
    if (ignore) return undefined;
    throw failed(w, `received invalid webhook response: ${why}`);
  }
  if (response['allowed'] !== true) {
    const status = isRecord(response['status']) ? response['status'] : {};
    const code = typeof status['code'] === 'number' && status['code'] >= 400 ? status['code'] : 403;
    const message = typeof status['message'] === 'string' && status['message'] ? status['message'] : '';
    const reason = typeof status['reason'] === 'string' && status['reason'] ? status['reason'] : REASONS[code] ?? 'Forbidden';
    throw new ApiError(code, reason, message ? `admission webhook "${w.name}" denied the request: ${message}` : `admission webhook "${w.name}" denied the request without explanation`);
  }
  return response;
}

/** Runs every matching mutating webhook in order; returns the object after their patches. */
export async function runMutatingWebhooks(a: AdmissionAttributes, src: WebhookSource): Promise<KubeObject | null> {
  const configs = [...src.configurations('mutating')].sort((x, y) => x.metadata.name!.localeCompare(y.metadata.name!));
  let object = a.object;
  for (const c of configs) {
    for (const w of webhooksOf(c)) {
      const response = await callOne(w, { ...a, object }, src);
      if (!response || response['patch'] === undefined) continue;
      if (response['patchType'] !== 'JSONPatch') throw failed(w, `received invalid webhook response: unsupported patchType "${String(response['patchType'])}"`);
      let ops: unknown;
      try {
        ops = JSON.parse(Buffer.from(String(response['patch']), 'base64').toString('utf8'));
        object = applyJsonPatch(clone(object), ops) as KubeObject;
      } catch (err) {
        throw Errors.internal(`admission webhook "${w.name}" returned a patch that could not be applied: ${(err as Error).message}`);
      }
    }
  }
  return object;
}

/** Calls every matching validating webhook in parallel; the first refusal (in configuration order) is the answer. */
export async function runValidatingWebhooks(a: AdmissionAttributes, src: WebhookSource): Promise<void> {
  const configs = [...src.configurations('validating')].sort((x, y) => x.metadata.name!.localeCompare(y.metadata.name!));
  const calls = configs.flatMap((c) => webhooksOf(c).map((w) => callOne(w, a, src)));
  const results = await Promise.allSettled(calls);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}
