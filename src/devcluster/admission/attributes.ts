import type { KubeObject } from '../object.js';

/**
 * What one admission decision is about, as kube-apiserver's
 * admission.Attributes: the request (operation, resource, subresource, user)
 * and the objects before and after. Webhooks get it as an AdmissionReview v1
 * request; policies get it as the CEL variables `request`, `object`, `oldObject`.
 */
export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface GroupVersionResource { group: string; version: string; resource: string }
export interface GroupVersionKind { group: string; version: string; kind: string }

export interface AdmissionUser { username: string; groups: string[]; uid?: string }

export interface AdmissionAttributes {
  uid: string;
  operation: Operation;
  resource: GroupVersionResource;
  subResource: string;
  kind: GroupVersionKind;
  name: string;
  namespace: string;
  /** The object after the request (the Eviction for pods/eviction); null for DELETE. */
  object: KubeObject | null;
  /** The stored object before the request; null for CREATE. */
  oldObject: KubeObject | null;
  userInfo: AdmissionUser;
  dryRun: boolean;
  /** CreateOptions / UpdateOptions / DeleteOptions as the request carried them. */
  options: Record<string, unknown> | null;
  /** Whether the resource is namespaced (namespaceSelector and scope rules need it). */
  namespaced: boolean;
}

/** The AdmissionReview v1 `request` for these attributes. */
export function admissionRequest(a: AdmissionAttributes): Record<string, unknown> {
  const optionsKind = a.operation === 'CREATE' ? 'CreateOptions' : a.operation === 'UPDATE' ? 'UpdateOptions' : a.operation === 'DELETE' ? 'DeleteOptions' : undefined;
  return {
    uid: a.uid,
    kind: a.kind,
    resource: a.resource,
    ...(a.subResource ? { subResource: a.subResource } : {}),
    requestKind: a.kind,
    requestResource: a.resource,
    ...(a.subResource ? { requestSubResource: a.subResource } : {}),
    name: a.name,
    ...(a.namespace ? { namespace: a.namespace } : {}),
    operation: a.operation,
    userInfo: { username: a.userInfo.username, groups: a.userInfo.groups, ...(a.userInfo.uid ? { uid: a.userInfo.uid } : {}) },
    object: a.object,
    oldObject: a.oldObject,
    dryRun: a.dryRun,
    options: optionsKind ? { apiVersion: 'meta.k8s.io/v1', kind: optionsKind, ...(a.options ?? {}) } : null,
  };
}
