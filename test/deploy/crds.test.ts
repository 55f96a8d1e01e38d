import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { z } from 'zod';
import { MaintenanceWindow } from '../../src/api/maintenanceWindow.js';
import { VirtualMachineInstanceMigration } from '../../src/api/vmim.js';
import { crdSchema, crdSources, generatedCrdFiles, type CrdSource } from '../../scripts/lib/crds.js';
import { structuralProblems, toStructural } from '../../scripts/lib/structural.js';
import { ROOT } from './render.js';

/** A CRD schema as the API server applies it, approximately: JSON Schema with OpenAPI's nullable; x-kubernetes-* annotations ignored. */
function crdValidator(src: CrdSource) {
  const ajv = new Ajv({ strict: false, allErrors: true });
  const validate = ajv.compile(crdSchema(src));
  return (obj: unknown) => (validate(obj) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`));
}
const source = (kind: string) => crdSources().find((s) => s.kind === kind)!;

describe('generated CRDs', () => {
  test.each(generatedCrdFiles().map((f) => [f.file, f.content]))('%s is what `npm run gen:crds` generates from the zod schemas', (file, content) => {
    expect(readFileSync(path.join(ROOT, file), 'utf8')).toBe(content);
  });

  test.each(crdSources().map((s) => [s.kind, s]))('%s has a structural schema', (_kind, src) => {
    expect(structuralProblems(crdSchema(src))).toEqual([]);
  });

  const window = { start: '2026-06-01T02:00:00Z', end: '2026-06-01T04:00:00Z' };
  const mw = (spec: object) => ({ apiVersion: 'ferry.dev/v1alpha1', kind: 'MaintenanceWindow', metadata: { name: 'rack-7' }, spec });

  test('MaintenanceWindows Ferry accepts, the API server accepts; ones it rejects for their shape, the server rejects', () => {
    const check = crdValidator(source('MaintenanceWindow'));
    const accepted = [
      mw({ nodes: ['node-1', 'node-2'], window }),
      mw({ nodeSelector: { matchLabels: { rack: '7' } }, window: { schedule: '0 2 * * 6', duration: '2h', timeZone: 'Europe/Paris' }, done: { annotation: { key: 'ops/done', value: 'yes' } }, maxNodesInMaintenance: 2, maintenanceDuration: '1h30m' }),
    ];
    for (const o of accepted) {
      expect(MaintenanceWindow.safeParse(o).success).toBe(true);
      expect(check(o)).toEqual([]);
    }
    const rejected = [
      mw({ nodes: ['node-1'] }), // no window
      mw({ nodes: ['node-1'], window: { schedule: '0 2 * * *', duration: 'two hours' } }),
      mw({ nodes: [], window }),
      mw({ nodes: ['node-1'], window, maxNodesInMaintenance: 0 }),
      mw({ nodes: ['node-1'], window: { timeZone: 'UTC' } }),
    ];
    for (const o of rejected) {
      expect(MaintenanceWindow.safeParse(o).success).toBe(false);
      expect(check(o)).not.toEqual([]);
    }
    // "exactly one of nodes and nodeSelector" is a CEL rule the API server evaluates.
    const spec = (crdSchema(source('MaintenanceWindow'))['properties'] as Record<string, Record<string, unknown>>)['spec']!;
    expect(spec['x-kubernetes-validations']).toEqual([{ rule: 'has(self.nodes) != has(self.nodeSelector)', message: 'give either nodes or nodeSelector (exactly one)' }]);
  });

  test('the API server fills in the defaults Ferry would assume', () => {
    const spec = (crdSchema(source('MaintenanceWindow'))['properties'] as Record<string, { properties: Record<string, { default?: unknown }> }>)['spec']!.properties;
    const parsed = MaintenanceWindow.parse(mw({ nodes: ['n'], window })).spec;
    expect(spec['maxNodesInMaintenance']!.default).toBe(parsed.maxNodesInMaintenance);
    expect(spec['paused']!.default).toBe(parsed.paused);
    expect(spec['done']!.default).toEqual(parsed.done);
  });

  test('a VMIM as KubeVirt and Ferry write it passes the KubeVirt-compatible CRD, unknown KubeVirt fields included', () => {
    const vmim = {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstanceMigration',
      metadata: { name: 'm', namespace: 'default' },
      spec: { vmiName: 'vm-1', addedNodeSelector: { rack: '7' }, priority: 10 },
      status: {
        phase: 'Running',
        phaseTransitionTimestamps: [{ phase: 'Pending', phaseTransitionTimestamp: '2026-01-01T00:00:00Z' }],
        conditions: [{ type: 'migrationAbortRequested', status: 'True', lastProbeTime: null, lastTransitionTime: '2026-01-01T00:00:00Z' }],
        migrationState: { migrationUid: 'u', sourceNode: 'node-1', mode: 'PreCopy', targetDirectMigrationNodePorts: { '4444': 0 } },
        progress: { dataRemaining: 10, etaSeconds: 3 },
      },
    };
    expect(VirtualMachineInstanceMigration.safeParse(vmim).success).toBe(true);
    expect(crdValidator(source('VirtualMachineInstanceMigration'))(vmim)).toEqual([]);
    expect(crdValidator(source('VirtualMachineInstanceMigration'))({ ...vmim, spec: {} })).not.toEqual([]);
  });

  test('only Ferry\'s own CRD carries defaults: the compatible ones never change what KubeVirt tools store', () => {
    const withDefaults = crdSources().filter((s) => JSON.stringify(crdSchema(s)).includes('"default"')).map((s) => s.kind);
    expect(withDefaults).toEqual(['MaintenanceWindow']);
  });
});

describe('zod JSON Schema to Kubernetes structural schema', () => {
  const convert = (schema: z.ZodType, keepDefaults = true) =>
    toStructural(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', reused: 'inline', unrepresentable: 'any' }) as Record<string, unknown>, { keepDefaults });

  test('a string-or-number (a quantity) becomes int-or-string', () => {
    expect(convert(z.union([z.string(), z.number()]))).toEqual({ 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] });
  });
  test('a loose object keeps unknown fields; a map becomes additionalProperties; anything becomes preserve-unknown', () => {
    expect(convert(z.looseObject({ a: z.string() }))).toEqual({ type: 'object', properties: { a: { type: 'string' } }, required: ['a'], 'x-kubernetes-preserve-unknown-fields': true });
    expect(convert(z.record(z.string(), z.number().int()))).toEqual({ type: 'object', additionalProperties: { type: 'integer' } });
    expect(convert(z.record(z.string(), z.unknown()))).toEqual({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
  });
  test('unions of objects merge their fields and keep the alternatives as required sets', () => {
    const s = convert(z.union([z.object({ a: z.string() }), z.object({ b: z.number(), c: z.boolean().optional() })]));
    expect(s).toEqual({ type: 'object', properties: { a: { type: 'string' }, b: { type: 'number' }, c: { type: 'boolean' } }, anyOf: [{ required: ['a'] }, { required: ['b'] }] });
    expect(structuralProblems(s)).toEqual([]);
  });
  test('enums and literals of one type merge; nullable survives the folding', () => {
    expect(convert(z.union([z.enum(['A', 'B']), z.literal('')]))).toEqual({ type: 'string', enum: ['A', 'B', ''] });
    expect(convert(z.string().nullable())).toEqual({ type: 'string', nullable: true });
  });
  test('defaults are kept or dropped on request', () => {
    expect(convert(z.object({ n: z.number().int().default(3) }))).toEqual({ type: 'object', properties: { n: { type: 'integer', default: 3 } } });
    expect(convert(z.object({ n: z.number().int().default(3) }), false)).toEqual({ type: 'object', properties: { n: { type: 'integer' } } });
  });
  test('what is not structural is reported', () => {
    expect(structuralProblems({ type: 'object', properties: { a: {} }, additionalProperties: { type: 'string' } })).toEqual([
      '#: properties and additionalProperties are mutually exclusive',
      '#/properties/a: a type is required (or x-kubernetes-preserve-unknown-fields / x-kubernetes-int-or-string)',
    ]);
    expect(structuralProblems({ type: 'object', anyOf: [{ type: 'object', required: ['a'] }] })).toEqual(['#/anyOf/0: type is not allowed inside anyOf/allOf/oneOf/not']);
  });
});
