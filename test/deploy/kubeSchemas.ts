/**
 * Validation of rendered manifests against Kubernetes' own OpenAPI schemas,
 * per kind, with kubernetes-models (generated from the Kubernetes OpenAPI
 * spec) and @kubernetes-models/prometheus-operator for ServiceMonitor and
 * PrometheusRule.
 */
import type { K8sObject } from './render.js';

interface Model {
  validate(): void;
}
type ModelClass = new (data: object) => Model;

async function modelFor(apiVersion: string, kind: string): Promise<ModelClass> {
  const pkg = apiVersion.startsWith('monitoring.coreos.com/') ? `@kubernetes-models/prometheus-operator/${apiVersion}` : `kubernetes-models/${apiVersion}`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pkg)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`no schemas for ${apiVersion} (${(err as Error).message})`);
  }
  const cls = mod[kind];
  if (typeof cls !== 'function') throw new Error(`no schema for ${apiVersion} ${kind}`);
  return cls as ModelClass;
}

/** Empty when the object is valid; otherwise what the schema says is wrong. */
export async function schemaErrors(obj: K8sObject): Promise<string> {
  const Model = await modelFor(obj.apiVersion, obj.kind);
  try {
    new Model(obj).validate();
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}
