import { createHash } from 'node:crypto';
import type { ResourceRegistry, ResourceType } from './registry.js';

/**
 * Just enough OpenAPI for kubectl. kubectl (1.24+) asks /openapi/v3 whether
 * the server does field validation for a kind (a `fieldValidation` query
 * parameter on the kind's PATCH operation); when it does, kubectl leaves
 * validation to the server instead of needing full schemas. Older kubectl
 * (1.20) downloads /openapi/v2 as protobuf and skips validation of kinds it
 * finds no schema for. No schemas are published, so nothing is rejected
 * client-side; `kubectl explain` has nothing to show.
 */
function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

function gvk(t: ResourceType) {
  return { 'x-kubernetes-group-version-kind': { group: t.group, version: t.version, kind: t.kind } };
}

const ok = { responses: { '200': { description: 'OK' } } };
const fieldValidation = { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } };

function paths(t: ResourceType): Record<string, unknown> {
  const prefix = `/${gvPath(t.group, t.version)}${t.namespaced ? '/namespaces/{namespace}' : ''}/${t.plural}`;
  const op = (id: string, extra: Record<string, unknown> = {}) => ({ operationId: `${id}${t.kind}`, ...gvk(t), ...ok, ...extra });
  const out: Record<string, unknown> = {
    [prefix]: { get: op('list'), post: op('create', { parameters: [fieldValidation] }), delete: op('deletecollection') },
    [`${prefix}/{name}`]: {
      get: op('read'),
      put: op('replace', { parameters: [fieldValidation] }),
      patch: op('patch', { parameters: [fieldValidation] }),
      delete: op('delete'),
    },
  };
  if (t.hasStatus) {
    out[`${prefix}/{name}/status`] = { get: op('read', {}), put: op('replace', { parameters: [fieldValidation] }), patch: op('patch', { parameters: [fieldValidation] }) };
  }
  return out;
}

export function openApiV3Document(registry: ResourceRegistry, group: string, version: string): Record<string, unknown> | undefined {
  const types = registry.all().filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes (Ferry dev cluster)', version: 'v1.30.0' },
    paths: Object.assign({}, ...types.map(paths)),
    components: { schemas: {} },
  };
}

export function openApiV3Root(registry: ResourceRegistry): Record<string, unknown> {
  const entries: Record<string, { serverRelativeURL: string }> = {};
  for (const { group, version } of registry.groupVersions()) {
    const doc = JSON.stringify(openApiV3Document(registry, group, version));
    const hash = createHash('sha512').update(doc).digest('hex').slice(0, 64).toUpperCase();
    entries[gvPath(group, version)] = { serverRelativeURL: `/openapi/v3/${gvPath(group, version)}?hash=${hash}` };
  }
  return { paths: entries };
}

/** "api/v1" or "apis/kubevirt.io/v1" from an /openapi/v3/... request path. */
export function parseOpenApiV3Path(rest: string): { group: string; version: string } | undefined {
  const parts = rest.split('/').filter((s) => s !== '');
  if (parts[0] === 'api' && parts.length === 2) return { group: '', version: parts[1]! };
  if (parts[0] === 'apis' && parts.length === 3) return { group: parts[1]!, version: parts[2]! };
  return undefined;
}

export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';

function protoString(field: number, value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}

/** An openapi_v2.Document with only `swagger` and `info` set, protobuf-encoded (what old kubectl asks for). */
export function openApiV2Protobuf(): Buffer {
  const info = Buffer.concat([protoString(1, 'Kubernetes (Ferry dev cluster)'), protoString(2, 'v1.30.0')]);
  return Buffer.concat([protoString(1, '2.0'), Buffer.from([(2 << 3) | 2, info.length]), info]);
}

export function openApiV2Json(): Record<string, unknown> {
  return { swagger: '2.0', info: { title: 'Kubernetes (Ferry dev cluster)', version: 'v1.30.0' }, paths: {}, definitions: {} };
}
