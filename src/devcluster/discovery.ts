import type { ResourceRegistry, ResourceType } from './registry.js';

/**
 * Discovery documents (/api, /apis, /apis/<group>[/<version>]) that let
 * kubectl map "vmi" to a URL and list `kubectl api-resources`.
 */
export const SERVER_VERSION = {
  major: '1',
  minor: '30',
  gitVersion: 'v1.30.0-ferry',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.22.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function resourceEntries(t: ResourceType): Record<string, unknown>[] {
  const main: Record<string, unknown> = { name: t.plural, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: ALL_VERBS };
  if (t.shortNames.length) main['shortNames'] = t.shortNames;
  if (t.categories.length) main['categories'] = t.categories;
  const out = [main];
  if (t.hasStatus) out.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
  for (const s of t.subresources) {
    const e: Record<string, unknown> = { name: `${t.plural}/${s.name}`, singularName: '', namespaced: t.namespaced, kind: s.kind, verbs: s.verbs };
    if (s.group !== undefined) e['group'] = s.group;
    if (s.version !== undefined) e['version'] = s.version;
    out.push(e);
  }
  return out;
}

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

export function apiResourceList(registry: ResourceRegistry, group: string, version: string): Record<string, unknown> | undefined {
  const types = registry.all().filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources: types.flatMap(resourceEntries) };
}

function apiGroup(registry: ResourceRegistry, group: string): Record<string, unknown> | undefined {
  const versions = [...new Set(registry.all().filter((t) => t.group === group).map((t) => t.version))];
  if (versions.length === 0) return undefined;
  const gv = versions.map((version) => ({ groupVersion: `${group}/${version}`, version }));
  return { name: group, versions: gv, preferredVersion: gv[0] };
}

export function apiGroupList(registry: ResourceRegistry): Record<string, unknown> {
  const groups = [...new Set(registry.all().map((t) => t.group).filter((g) => g !== ''))];
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map((g) => apiGroup(registry, g)) };
}

export function apiGroupDocument(registry: ResourceRegistry, group: string): Record<string, unknown> | undefined {
  const g = apiGroup(registry, group);
  return g && { kind: 'APIGroup', apiVersion: 'v1', ...g };
}
