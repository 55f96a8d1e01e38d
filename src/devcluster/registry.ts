import { ApiError, Errors } from './errors.js';
import type { KubeObject } from './object.js';

/**
 * The resource types the dev cluster serves, as data: discovery, routing,
 * printing and store behaviour are all driven from these definitions, so a
 * CRD-like resource is one `register()` call.
 */
export interface PrinterColumn {
  name: string;
  /** As in a CRD's additionalPrinterColumns; 'date' cells print as an age ("5m"). */
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  /** A CRD-style JSONPath (".status.phase", ".status.conditions[?(@.type=='Ready')].status"). */
  jsonPath?: string;
  /** Built-in resources compute some cells (a node's "Ready,SchedulingDisabled"). */
  value?: (obj: KubeObject, now: number) => unknown;
  /** Columns with priority > 0 show only with `-o wide`. */
  priority?: number;
  description?: string;
}

export interface SubresourceDefinition {
  name: string;
  kind: string;
  group?: string;
  version?: string;
  verbs: string[];
}

export interface ResourceDefinition {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular?: string;
  shortNames?: string[];
  namespaced: boolean;
  /** Has a `status` subresource: writes to the object ignore status, writes to /status change only status. */
  hasStatus?: boolean;
  /** Columns after "Name"; default: Age. */
  printerColumns?: PrinterColumn[];
  categories?: string[];
  /** Field selectors beyond metadata.name and metadata.namespace, as the real server supports per type. */
  selectableFields?: Record<string, (obj: KubeObject) => string>;
  /** PUT on a missing object creates it (leases, events do this on the real server). */
  allowCreateOnUpdate?: boolean;
  /** The real server accepts strategic merge patch for built-in types only, not custom resources. */
  strategicMergePatch?: boolean;
  /** Keep a status given on create (nodes); otherwise a status subresource's status is reset on create. */
  keepStatusOnCreate?: boolean;
  /** Defaults the API server applies on create (pod phase, namespace phase). Mutates `obj`. */
  prepareForCreate?: (obj: KubeObject) => void;
  /** Extra subresources for discovery and routing (pods/eviction, pods/binding). */
  subresources?: SubresourceDefinition[];
  /** How object names are checked: DNS subdomain (default) or, as for RBAC objects ("system:discovery"), any path segment. */
  nameValidation?: 'subdomain' | 'pathSegment';
}

export interface ResourceType extends Required<Omit<ResourceDefinition, 'prepareForCreate'>> {
  prepareForCreate?: (obj: KubeObject) => void;
  /** "group/plural" — unique key of the type in the store. */
  key: string;
  /** "v1" or "group/version" */
  apiVersion: string;
  listKind: string;
}

/** Something that names a resource type: plural, "plural.group", kind, short name, or the type itself. */
export type ResourceRef = string | ResourceType;

export class ResourceRegistry {
  private readonly byKey = new Map<string, ResourceType>();

  register(def: ResourceDefinition): ResourceType {
    const apiVersion = def.group ? `${def.group}/${def.version}` : def.version;
    const type: ResourceType = {
      group: def.group,
      version: def.version,
      kind: def.kind,
      plural: def.plural,
      singular: def.singular ?? def.kind.toLowerCase(),
      shortNames: def.shortNames ?? [],
      namespaced: def.namespaced,
      hasStatus: def.hasStatus ?? false,
      printerColumns: def.printerColumns ?? [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
      categories: def.categories ?? [],
      selectableFields: def.selectableFields ?? {},
      allowCreateOnUpdate: def.allowCreateOnUpdate ?? false,
      strategicMergePatch: def.strategicMergePatch ?? false,
      keepStatusOnCreate: def.keepStatusOnCreate ?? !(def.hasStatus ?? false),
      subresources: def.subresources ?? [],
      nameValidation: def.nameValidation ?? 'subdomain',
      key: `${def.group}/${def.plural}`,
      apiVersion,
      listKind: `${def.kind}List`,
    };
    if (def.prepareForCreate) type.prepareForCreate = def.prepareForCreate;
    if (this.byKey.has(type.key)) throw new Error(`resource ${type.key} is already registered`);
    this.byKey.set(type.key, type);
    return type;
  }

  all(): ResourceType[] {
    return [...this.byKey.values()];
  }

  /** The type served at /api/v1 or /apis/<group>/<version> under `plural`, if any. */
  find(group: string, version: string, plural: string): ResourceType | undefined {
    const t = this.byKey.get(`${group}/${plural}`);
    return t && t.version === version ? t : undefined;
  }

  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    return this.all().find((t) => t.apiVersion === apiVersion && t.kind === kind);
  }

  groupVersions(): { group: string; version: string }[] {
    const seen = new Map<string, { group: string; version: string }>();
    for (const t of this.byKey.values()) seen.set(`${t.group}/${t.version}`, { group: t.group, version: t.version });
    return [...seen.values()];
  }

  /**
   * Resolves what a user would type after `kubectl get`: "pods", "pod", "po", "Pod",
   * "virtualmachineinstances.kubevirt.io", "vmi". Throws a 404 ApiError if unknown.
   */
  resolve(ref: ResourceRef): ResourceType {
    if (typeof ref !== 'string') return ref;
    const [head, ...rest] = ref.split('.');
    const group = rest.join('.');
    const name = (head ?? '').toLowerCase();
    const candidates = this.all().filter((t) => (rest.length === 0 ? true : t.group === group));
    const hit =
      candidates.find((t) => t.plural === name) ??
      candidates.find((t) => t.singular === name || t.kind.toLowerCase() === name) ??
      candidates.find((t) => t.shortNames.includes(name));
    if (!hit) throw unknownResource(ref);
    return hit;
  }
}

function unknownResource(ref: string): ApiError {
  const e = Errors.noSuchResource();
  return new ApiError(e.code, e.reason, `${e.message} (no resource type "${ref}" is registered)`);
}
