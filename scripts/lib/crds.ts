import { stringify } from 'yaml';
import { z } from 'zod';
import { MaintenanceWindow, MW_GROUP, MW_KIND, MW_PLURAL, MW_VERSION } from '../../src/api/maintenanceWindow.js';
import { ObjectMeta } from '../../src/api/meta.js';
import { MigrationConfiguration } from '../../src/api/migrationConfig.js';
import { MigrationPolicy } from '../../src/api/migrationPolicy.js';
import { VirtualMachineInstance } from '../../src/api/vmi.js';
import { VirtualMachineInstanceMigration } from '../../src/api/vmim.js';
import { builtinResources } from '../../src/devcluster/resources.js';
import { structuralProblems, toStructural, type Schema } from './structural.js';

/**
 * The CustomResourceDefinitions Ferry ships, generated from the zod schemas
 * the code parses with, so the API server validates exactly what Ferry reads:
 * Ferry's own MaintenanceWindow (full schema, defaults applied by the API
 * server) and, for clusters without KubeVirt, KubeVirt-compatible CRDs for
 * the KubeVirt objects Ferry uses (the fields Ferry knows typed, everything
 * else kept as is: KubeVirt's own schemas run to thousands of lines).
 */
export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CrdSource {
  /** Repository-relative path of the generated file. */
  file: string;
  /** What the schema was generated from, for the file's header. */
  from: string;
  group: string;
  version: string;
  kind: string;
  plural: string;
  shortNames?: string[];
  categories?: string[];
  scope: 'Namespaced' | 'Cluster';
  schema: z.ZodType;
  statusSubresource: boolean;
  keepDefaults: boolean;
  /**
   * Keep unknown fields in every object, not only where the zod schema is loose:
   * KubeVirt-compatible CRDs must not prune fields of KubeVirt's API Ferry does not model.
   */
  keepUnknownFields?: boolean;
  printerColumns?: PrinterColumn[];
  /** CEL rules (x-kubernetes-validations) by property path from the root, e.g. ['spec']. */
  validations?: Array<{ at: string[]; rules: Array<{ rule: string; message: string }> }>;
  labels?: Record<string, string>;
}

/** What Ferry reads of the KubeVirt custom resource: the migration settings. */
const KubeVirtCr = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: ObjectMeta,
  spec: z
    .looseObject({
      configuration: z.looseObject({ migrations: MigrationConfiguration.optional() }).optional(),
    })
    .optional(),
  status: z.looseObject({ phase: z.string().optional() }).optional(),
});

/** Printer columns and short names as the dev cluster serves them (one source for both). */
function devClusterNames(group: string, plural: string): Pick<CrdSource, 'shortNames' | 'categories' | 'printerColumns'> {
  const def = builtinResources.find((d) => d.group === group && d.plural === plural);
  if (!def) throw new Error(`the dev cluster serves no ${plural}.${group}`);
  const printerColumns = (def.printerColumns ?? []).flatMap((c) =>
    c.jsonPath ? [{ name: c.name, type: c.type, jsonPath: c.jsonPath, ...(c.description ? { description: c.description } : {}), ...(c.priority ? { priority: c.priority } : {}) }] : [],
  );
  return {
    ...(def.shortNames?.length ? { shortNames: def.shortNames } : {}),
    ...(def.categories?.length ? { categories: def.categories } : {}),
    ...(printerColumns.length ? { printerColumns } : {}),
  };
}

export const PART_OF = { 'app.kubernetes.io/part-of': 'ferry' };

export function crdSources(): CrdSource[] {
  const kubevirt = 'deploy/crds/kubevirt';
  const compat = { ...PART_OF, 'ferry.dev/kubevirt-compatible': 'true' };
  return [
    {
      file: 'deploy/base/crds/maintenancewindows.ferry.dev.yaml',
      from: 'src/api/maintenanceWindow.ts',
      group: MW_GROUP, version: MW_VERSION, kind: MW_KIND, plural: MW_PLURAL,
      scope: 'Cluster', schema: MaintenanceWindow, statusSubresource: true, keepDefaults: true, labels: PART_OF,
      ...devClusterNames(MW_GROUP, MW_PLURAL),
      // zod's .refine() has no JSON Schema form; the same rule in CEL, checked by the API server.
      validations: [{ at: ['spec'], rules: [{ rule: 'has(self.nodes) != has(self.nodeSelector)', message: 'give either nodes or nodeSelector (exactly one)' }] }],
    },
    {
      file: `${kubevirt}/virtualmachineinstances.kubevirt.io.yaml`,
      from: 'src/api/vmi.ts',
      group: 'kubevirt.io', version: 'v1', kind: 'VirtualMachineInstance', plural: 'virtualmachineinstances', scope: 'Namespaced',
      schema: VirtualMachineInstance, keepDefaults: false, keepUnknownFields: true, labels: compat,
      // KubeVirt's own VMI CRD has no status subresource; Ferry writes VMI status
      // through /status (as the dev cluster serves it), so the standalone CRD has one.
      statusSubresource: true,
      ...devClusterNames('kubevirt.io', 'virtualmachineinstances'),
    },
    {
      file: `${kubevirt}/virtualmachineinstancemigrations.kubevirt.io.yaml`,
      from: 'src/api/vmim.ts',
      group: 'kubevirt.io', version: 'v1', kind: 'VirtualMachineInstanceMigration', plural: 'virtualmachineinstancemigrations', scope: 'Namespaced',
      schema: VirtualMachineInstanceMigration, statusSubresource: true, keepDefaults: false, keepUnknownFields: true, labels: compat,
      ...devClusterNames('kubevirt.io', 'virtualmachineinstancemigrations'),
    },
    {
      file: `${kubevirt}/kubevirts.kubevirt.io.yaml`,
      from: 'src/api/migrationConfig.ts (spec.configuration.migrations)',
      group: 'kubevirt.io', version: 'v1', kind: 'KubeVirt', plural: 'kubevirts', scope: 'Namespaced',
      schema: KubeVirtCr, statusSubresource: true, keepDefaults: false, keepUnknownFields: true, labels: compat,
      ...devClusterNames('kubevirt.io', 'kubevirts'),
    },
    {
      file: `${kubevirt}/migrationpolicies.migrations.kubevirt.io.yaml`,
      from: 'src/api/migrationPolicy.ts',
      group: 'migrations.kubevirt.io', version: 'v1alpha1', kind: 'MigrationPolicy', plural: 'migrationpolicies', scope: 'Cluster',
      schema: MigrationPolicy, statusSubresource: true, keepDefaults: false, keepUnknownFields: true, labels: compat,
      ...devClusterNames('migrations.kubevirt.io', 'migrationpolicies'),
    },
  ];
}

const TYPE_META_DESCRIPTIONS = {
  apiVersion: 'APIVersion defines the versioned schema of this representation of an object.',
  kind: 'Kind is a string value representing the REST resource this object represents.',
};

/** The CRD's openAPIV3Schema for one source. Throws if the result is not structural. */
export function crdSchema(src: CrdSource): Schema {
  const json = z.toJSONSchema(src.schema, {
    target: 'openapi-3.0',
    io: 'input',
    reused: 'inline',
    unrepresentable: 'any',
    // Timestamps accept Date objects in code; on the wire they are RFC 3339 strings.
    override: (ctx) => {
      const def = (ctx.zodSchema as unknown as { _zod: { def: { type: string } } })._zod.def;
      if (def.type === 'date') Object.assign(ctx.jsonSchema, { type: 'string', format: 'date-time' });
    },
  }) as Schema;
  const root = toStructural(json, { keepDefaults: src.keepDefaults });
  if (src.keepUnknownFields) for (const k of ['spec', 'status']) keepUnknown((root['properties'] as Record<string, Schema>)[k]);
  const props = { ...(root['properties'] as Record<string, Schema>) };
  // The API server owns metadata's schema; a CRD may only say it is an object.
  props['apiVersion'] = { type: 'string', description: TYPE_META_DESCRIPTIONS.apiVersion };
  props['kind'] = { type: 'string', description: TYPE_META_DESCRIPTIONS.kind };
  props['metadata'] = { type: 'object' };
  const ordered: Record<string, Schema> = {};
  for (const k of ['apiVersion', 'kind', 'metadata', 'spec', 'status']) if (props[k]) ordered[k] = props[k]!;
  const schema: Schema = { type: 'object', properties: ordered };
  const required = ((root['required'] as string[] | undefined) ?? []).filter((r) => r !== 'metadata' && r !== 'apiVersion' && r !== 'kind');
  if (required.length) schema['required'] = required;
  for (const v of src.validations ?? []) {
    let node = schema;
    for (const key of v.at) node = (node['properties'] as Record<string, Schema>)[key]!;
    node['x-kubernetes-validations'] = v.rules;
  }
  const problems = structuralProblems(schema);
  if (problems.length) throw new Error(`${src.kind} schema is not structural:\n  ${problems.join('\n  ')}`);
  return schema;
}

function keepUnknown(node: Schema | undefined): void {
  if (!node) return;
  if (node['type'] === 'object' && node['properties']) node['x-kubernetes-preserve-unknown-fields'] = true;
  for (const child of Object.values((node['properties'] as Record<string, Schema>) ?? {})) keepUnknown(child);
  if (typeof node['items'] === 'object') keepUnknown(node['items'] as Schema);
  if (typeof node['additionalProperties'] === 'object') keepUnknown(node['additionalProperties'] as Schema);
}

export function crdManifest(src: CrdSource): Record<string, unknown> {
  const version: Record<string, unknown> = { name: src.version, served: true, storage: true };
  if (src.statusSubresource) version['subresources'] = { status: {} };
  if (src.printerColumns?.length) version['additionalPrinterColumns'] = src.printerColumns;
  version['schema'] = { openAPIV3Schema: crdSchema(src) };
  const names: Record<string, unknown> = { kind: src.kind, listKind: `${src.kind}List`, plural: src.plural, singular: src.kind.toLowerCase() };
  if (src.shortNames?.length) names['shortNames'] = src.shortNames;
  if (src.categories?.length) names['categories'] = src.categories;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${src.plural}.${src.group}`, ...(src.labels ? { labels: src.labels } : {}) },
    spec: { group: src.group, names, scope: src.scope, versions: [version] },
  };
}

export function renderCrd(src: CrdSource): string {
  const header = `# Generated by \`npm run gen:crds\` (scripts/gen-crds.ts) from ${src.from}. Do not edit by hand.\n`;
  return header + stringify(crdManifest(src), { lineWidth: 0 });
}

/** Every generated file: repository-relative path and content. */
export function generatedCrdFiles(): Array<{ file: string; content: string }> {
  return crdSources().map((src) => ({ file: src.file, content: renderCrd(src) }));
}
