import { PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import type { DevCluster } from '../../../src/devcluster/index.js';
import { apiFailure, clientsFor, eventually, podBody, startFastCluster, VMI, VMIM } from './support.js';

let cluster: DevCluster;
let c: ReturnType<typeof clientsFor>;
let nsCounter = 0;

beforeAll(async () => {
  cluster = await startFastCluster();
  c = clientsFor(cluster);
});
afterAll(async () => {
  await cluster.close();
});

/** A fresh namespace per test keeps tests independent on one cluster. */
async function freshNamespace(): Promise<string> {
  const name = `t${++nsCounter}`;
  await c.core.createNamespace({ body: { metadata: { name } } });
  return name;
}

const vmim = (name: string, extra: Record<string, unknown> = {}) => ({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name }, spec: { vmiName: 'vm-1' }, ...extra });
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

describe('discovery', () => {
  test('serves the KubeVirt group with kinds, short names and subresources', async () => {
    const res = await fetch(`${cluster.url}/apis/kubevirt.io/v1`);
    const list = (await res.json()) as { groupVersion: string; resources: { name: string; kind: string; shortNames?: string[]; namespaced: boolean }[] };
    expect(list.groupVersion).toBe('kubevirt.io/v1');
    expect(list.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'virtualmachineinstancemigrations', kind: 'VirtualMachineInstanceMigration', shortNames: ['vmim', 'vmims'], namespaced: true }),
        expect.objectContaining({ name: 'virtualmachineinstances/status', kind: 'VirtualMachineInstance' }),
      ]),
    );
    const core = (await (await fetch(`${cluster.url}/api/v1`)).json()) as { resources: Record<string, unknown>[] };
    expect(core.resources).toContainEqual(expect.objectContaining({ name: 'pods/eviction', group: 'policy', version: 'v1', kind: 'Eviction', verbs: ['create'] }));
    const groups = (await (await fetch(`${cluster.url}/apis`)).json()) as { groups: { name: string }[] };
    expect(groups.groups.map((g) => g.name).sort()).toEqual(['admissionregistration.k8s.io', 'coordination.k8s.io', 'ferry.dev', 'kubevirt.io', 'migrations.kubevirt.io', 'policy']);
  });

  test('a type registered at run time is served and discoverable at once', async () => {
    cluster.registerResource({ group: 'example.ferry.dev', version: 'v1alpha1', kind: 'Widget', plural: 'widgets', shortNames: ['wd'], namespaced: false });
    const created = await c.custom.createClusterCustomObject({ group: 'example.ferry.dev', version: 'v1alpha1', plural: 'widgets', body: { apiVersion: 'example.ferry.dev/v1alpha1', kind: 'Widget', metadata: { name: 'night' }, spec: { size: 2 } } });
    expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    const doc = (await (await fetch(`${cluster.url}/apis/example.ferry.dev/v1alpha1`)).json()) as { resources: { name: string }[] };
    expect(doc.resources.map((r) => r.name)).toContain('widgets');
  });
});

describe('create', () => {
  test('generateName gets five random characters; uid, creationTimestamp and resourceVersion are set', async () => {
    const ns = await freshNamespace();
    const pod = await c.core.createNamespacedPod({ namespace: ns, body: { metadata: { generateName: 'virt-launcher-vm-1-' }, spec: { containers: [{ name: 'compute', image: 'sim' }] } } });
    expect(pod.metadata?.name).toMatch(/^virt-launcher-vm-1-[a-z0-9]{5}$/);
    expect(pod.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(pod.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(Number(pod.metadata?.resourceVersion)).toBeGreaterThan(0);
    expect(pod.status?.phase).toBe('Pending');
  });

  test('a second object with the same name is 409 AlreadyExists', async () => {
    const ns = await freshNamespace();
    await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('m1') });
    const err = await apiFailure(c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('m1') }));
    expect(err).toMatchObject({ httpCode: 409, reason: 'AlreadyExists', message: 'virtualmachineinstancemigrations.kubevirt.io "m1" already exists' });
  });

  test('creating in a namespace that does not exist is 404', async () => {
    const err = await apiFailure(c.custom.createNamespacedCustomObject({ ...VMIM, namespace: 'nowhere', body: vmim('m1') }));
    expect(err).toMatchObject({ httpCode: 404, reason: 'NotFound', message: 'namespaces "nowhere" not found' });
  });

  test('no name, or the wrong kind, is 422 Invalid with a message saying what is wrong', async () => {
    const ns = await freshNamespace();
    const noName = await apiFailure(c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: { ...vmim(''), metadata: {} } }));
    expect(noName).toMatchObject({ httpCode: 422, reason: 'Invalid', message: expect.stringContaining('metadata.name: Required value') });
    const wrongKind = await apiFailure(c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: { ...vmim('x'), kind: 'VirtualMachineInstance' } }));
    expect(wrongKind).toMatchObject({ httpCode: 422, message: expect.stringContaining('must be VirtualMachineInstanceMigration') });
  });

  test('a namespace in the body that differs from the URL is rejected', async () => {
    const ns = await freshNamespace();
    const err = await apiFailure(c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: { ...vmim('x'), metadata: { name: 'x', namespace: 'default' } } }));
    expect(err).toMatchObject({ httpCode: 400, message: expect.stringContaining('does not match the namespace') });
  });

  test('bad JSON is 400 with the parser message; an oversized body is 413', async () => {
    const bad = await fetch(`${cluster.url}/api/v1/namespaces/default/pods`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"metadata": ' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/^the request body is not valid JSON: /);
    const huge = await fetch(`${cluster.url}/api/v1/namespaces/default/pods`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ pad: 'x'.repeat(3.2 * 1024 * 1024) }) });
    expect(huge.status).toBe(413);
  });

  test('a body nested 100 000 deep is refused as a bad request, not a server error', async () => {
    const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
    const res = await fetch(`${cluster.url}/api/v1/namespaces/default/pods`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: deep });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/exceeded max depth|nested deeper than 10000 levels/);
    const list = await fetch(`${cluster.url}/api/v1/namespaces/default/pods`);
    expect(list.status).toBe(200); // and the server goes on
  });

  test('a wrong bearer token is 401', async () => {
    const res = await fetch(`${cluster.url}/api/v1/nodes`, { headers: { Authorization: 'Bearer nope' } });
    expect(res.status).toBe(401);
  });
});

describe('update and patch', () => {
  test('a PUT with a stale resourceVersion is 409 Conflict with the standard message; without one it is unconditional', async () => {
    const ns = await freshNamespace();
    const first = await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('m') });
    await c.custom.patchNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm', body: { metadata: { labels: { touched: 'yes' } } } }, mergePatch);
    const stale = { ...first, spec: { vmiName: 'vm-2' } };
    const err = await apiFailure(c.custom.replaceNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm', body: stale }));
    expect(err).toMatchObject({
      httpCode: 409,
      reason: 'Conflict',
      message: 'Operation cannot be fulfilled on virtualmachineinstancemigrations.kubevirt.io "m": the object has been modified; please apply your changes to the latest version and try again',
    });
    const blind = { ...first, metadata: { ...first.metadata, resourceVersion: undefined }, spec: { vmiName: 'vm-2' } };
    const updated = await c.custom.replaceNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm', body: blind });
    expect(updated.spec.vmiName).toBe('vm-2');
    expect(updated.metadata.generation).toBe(2);
  });

  test('status is a subresource: the object ignores status writes, /status ignores everything else', async () => {
    const ns = await freshNamespace();
    const created = await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('m', { status: { phase: 'Succeeded' } }) });
    expect(created.status).toBeUndefined();
    const viaMain = await c.custom.replaceNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm', body: { ...created, status: { phase: 'Running' } } });
    expect(viaMain.status).toBeUndefined();
    const viaStatus = await c.custom.replaceNamespacedCustomObjectStatus({
      ...VMIM, namespace: ns, name: 'm', body: { ...viaMain, spec: { vmiName: 'other' }, status: { phase: 'Scheduling' } },
    });
    expect(viaStatus.status).toEqual({ phase: 'Scheduling' });
    expect(viaStatus.spec.vmiName).toBe('vm-1');
    const patched = await c.custom.patchNamespacedCustomObjectStatus({ ...VMIM, namespace: ns, name: 'm', body: { spec: { vmiName: 'x' }, status: { phase: 'Scheduled' } } }, mergePatch);
    expect(patched).toMatchObject({ spec: { vmiName: 'vm-1' }, status: { phase: 'Scheduled' } });
    const mainPatch = await c.custom.patchNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm', body: { status: { phase: 'Failed' } } }, mergePatch);
    expect(mainPatch.status.phase).toBe('Scheduled');
  });

  test('merge patch and JSON patch; a failing JSON patch test is 422 and changes nothing; a missing object is 404', async () => {
    const ns = await freshNamespace();
    await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('m', { metadata: { name: 'm', labels: { a: '1', b: '2' } } }) });
    const merged = await c.custom.patchNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm', body: { metadata: { labels: { a: null, c: '3' } } } }, mergePatch);
    expect(merged.metadata.labels).toEqual({ b: '2', c: '3' });
    const jp = await c.custom.patchNamespacedCustomObject(
      { ...VMIM, namespace: ns, name: 'm', body: [{ op: 'test', path: '/spec/vmiName', value: 'vm-1' }, { op: 'replace', path: '/spec/vmiName', value: 'vm-9' }, { op: 'add', path: '/metadata/labels/kubevirt.io~1vmi-name', value: 'vm-9' }] },
      jsonPatch,
    );
    expect(jp.spec.vmiName).toBe('vm-9');
    expect(jp.metadata.labels['kubevirt.io/vmi-name']).toBe('vm-9');
    const failed = await apiFailure(c.custom.patchNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm', body: [{ op: 'test', path: '/spec/vmiName', value: 'vm-1' }, { op: 'remove', path: '/spec' }] }, jsonPatch));
    expect(failed.httpCode).toBe(422);
    expect((await c.custom.getNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm' })).spec.vmiName).toBe('vm-9');
    const missing = await apiFailure(c.custom.patchNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'ghost', body: { metadata: {} } }, mergePatch));
    expect(missing.httpCode).toBe(404);
  });

  test('a merge patch carrying a stale resourceVersion is a conflict', async () => {
    const ns = await freshNamespace();
    const m = await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('m') });
    await c.custom.patchNamespacedCustomObjectStatus({ ...VMIM, namespace: ns, name: 'm', body: { status: { phase: 'Pending' } } }, mergePatch);
    const err = await apiFailure(c.custom.patchNamespacedCustomObjectStatus({ ...VMIM, namespace: ns, name: 'm', body: { metadata: { resourceVersion: m.metadata.resourceVersion }, status: { phase: 'Failed' } } }, mergePatch));
    expect(err.httpCode).toBe(409);
  });

  test('strategic merge patch merges pod conditions by type; custom resources refuse it with 415', async () => {
    const ns = await freshNamespace();
    await c.core.createNamespacedPod({ namespace: ns, body: podBody('p') });
    await c.core.patchNamespacedPodStatus({ name: 'p', namespace: ns, body: { status: { conditions: [{ type: 'Custom', status: 'True' }] } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    const pod = await c.core.patchNamespacedPodStatus({ name: 'p', namespace: ns, body: { status: { conditions: [{ type: 'Other', status: 'False' }] } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    expect(pod.status?.conditions?.map((x) => x.type)).toEqual(expect.arrayContaining(['Custom', 'Other']));
    const err = await apiFailure(c.custom.patchNamespacedCustomObject({ ...VMIM, namespace: 'default', name: 'x', body: {} }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)));
    expect(err.httpCode).toBe(415);
  });

  test('leases: leader election style get/create/update with conflicts', async () => {
    const ns = await freshNamespace();
    const lease = await c.coordination.createNamespacedLease({ namespace: ns, body: { metadata: { name: 'ferry-controller' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } } });
    const takenByB = await c.coordination.replaceNamespacedLease({ name: 'ferry-controller', namespace: ns, body: { ...lease, spec: { ...lease.spec, holderIdentity: 'b' } } });
    expect(takenByB.spec?.holderIdentity).toBe('b');
    const err = await apiFailure(c.coordination.replaceNamespacedLease({ name: 'ferry-controller', namespace: ns, body: { ...lease, spec: { ...lease.spec, holderIdentity: 'c' } } }));
    expect(err.httpCode).toBe(409);
    expect((await c.coordination.readNamespacedLease({ name: 'ferry-controller', namespace: ns })).spec?.holderIdentity).toBe('b');
  });

  test('events can be created, patched and listed by involved object', async () => {
    const ns = await freshNamespace();
    const involvedObject = { kind: 'VirtualMachineInstanceMigration', name: 'm', namespace: ns, apiVersion: 'kubevirt.io/v1' };
    await c.core.createNamespacedEvent({ namespace: ns, body: { metadata: { name: 'm.1' }, involvedObject, reason: 'Started', message: 'Migration started', type: 'Normal', count: 1 } });
    await c.core.createNamespacedEvent({ namespace: ns, body: { metadata: { name: 'other.1' }, involvedObject: { ...involvedObject, name: 'other' }, reason: 'X', message: 'x', type: 'Normal' } });
    await c.core.patchNamespacedEvent({ name: 'm.1', namespace: ns, body: { count: 2 } }, mergePatch);
    const list = await c.core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=m' });
    expect(list.items.map((e) => [e.metadata.name, e.count])).toEqual([['m.1', 2]]);
  });
});

describe('delete', () => {
  test('finalizers keep a deleted object, with deletionTimestamp, until the last one is removed', async () => {
    const ns = await freshNamespace();
    await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('m', { metadata: { name: 'm', finalizers: ['kubevirt.io/migrationJobFinalize'] } }) });
    const deleted = await c.custom.deleteNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm' });
    expect(deleted.metadata.deletionTimestamp).toBeDefined();
    const still = await c.custom.getNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm' });
    expect(still.metadata.deletionTimestamp).toBe(deleted.metadata.deletionTimestamp);
    await c.custom.patchNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm', body: [{ op: 'remove', path: '/metadata/finalizers' }] }, jsonPatch);
    expect((await apiFailure(c.custom.getNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'm' }))).httpCode).toBe(404);
  });

  test('deleting an owner garbage-collects the objects that name it in ownerReferences', async () => {
    const ns = await freshNamespace();
    const vmi = await c.custom.createNamespacedCustomObject({ ...VMI, namespace: ns, body: { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name: 'vm-1' }, spec: { domain: {} } } });
    const owned = podBody('launcher');
    await c.core.createNamespacedPod({
      namespace: ns,
      body: { ...owned, metadata: { ...owned.metadata, ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', name: 'vm-1', uid: vmi.metadata.uid, controller: true }] } } as V1Pod,
    });
    await c.core.createNamespacedPod({ namespace: ns, body: podBody('bystander') });
    await c.custom.deleteNamespacedCustomObject({ ...VMI, namespace: ns, name: 'vm-1' });
    await eventually(async () => (await c.core.listNamespacedPod({ namespace: ns })).items.map((p) => p.metadata?.name).join() === 'bystander', 'the launcher pod to be collected');
  });
});

describe('list and watch', () => {
  test('label and field selectors filter lists; unsupported fields are 400', async () => {
    const ns = await freshNamespace();
    await c.core.createNamespacedPod({ namespace: ns, body: podBody('a', { labels: { app: 'vm', tier: 'gold' } }) });
    await c.core.createNamespacedPod({ namespace: ns, body: podBody('b', { labels: { app: 'vm', tier: 'silver' } }) });
    await c.core.createNamespacedPod({ namespace: ns, body: podBody('c', { labels: { app: 'db' } }) });
    const names = async (q: { labelSelector?: string; fieldSelector?: string }) => (await c.core.listNamespacedPod({ namespace: ns, ...q })).items.map((p) => p.metadata?.name);
    expect(await names({ labelSelector: 'app=vm' })).toEqual(['a', 'b']);
    expect(await names({ labelSelector: 'app in (vm,db),tier notin (silver)' })).toEqual(['a', 'c']);
    expect(await names({ labelSelector: '!tier' })).toEqual(['c']);
    expect(await names({ fieldSelector: 'metadata.name!=b,status.phase=Pending' })).toEqual(['a', 'c']);
    expect(await names({ fieldSelector: 'spec.nodeName=' })).toEqual(['a', 'b', 'c']);
    const err = await apiFailure(c.core.listNamespacedPod({ namespace: ns, fieldSelector: 'spec.hostname=x' }));
    expect(err).toMatchObject({ httpCode: 400, message: 'field label not supported: spec.hostname' });
  });

  test('a list carries the resourceVersion; cluster-wide lists span namespaces', async () => {
    const [a, b] = [await freshNamespace(), await freshNamespace()];
    const body = (name: string) => ({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name, labels: { suite: 'cw' } }, spec: {} });
    await c.custom.createNamespacedCustomObject({ ...VMI, namespace: a, body: body('x') });
    const last = await c.custom.createNamespacedCustomObject({ ...VMI, namespace: b, body: body('y') });
    const all = await c.custom.listClusterCustomObject({ ...VMI, labelSelector: 'suite=cw' });
    expect(all.items.map((i: { metadata: { namespace: string; name: string } }) => `${i.metadata.namespace}/${i.metadata.name}`)).toEqual([`${a}/x`, `${b}/y`]);
    expect(Number(all.metadata.resourceVersion)).toBeGreaterThanOrEqual(Number(last.metadata.resourceVersion));
  });

  test('a watch from a resourceVersion sees exactly the later changes, in order', async () => {
    const ns = await freshNamespace();
    await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('a') });
    await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('b') });
    const list = await c.custom.listNamespacedCustomObject({ ...VMIM, namespace: ns });
    // Written after the list but before the watch starts: must still be seen.
    await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('c') });
    const seen: string[] = [];
    const ctl = await c.watch.watch(`/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstancemigrations`, { resourceVersion: list.metadata.resourceVersion }, (type, obj) => seen.push(`${type} ${obj.metadata.name}`), () => {});
    try {
      await c.custom.patchNamespacedCustomObjectStatus({ ...VMIM, namespace: ns, name: 'a', body: { status: { phase: 'Running' } } }, mergePatch);
      await c.custom.deleteNamespacedCustomObject({ ...VMIM, namespace: ns, name: 'b' });
      await eventually(() => seen.length >= 3, 'three watch events');
      await new Promise((r) => setTimeout(r, 50));
      expect(seen).toEqual(['ADDED c', 'MODIFIED a', 'DELETED b']);
    } finally {
      ctl.abort();
    }
  });

  test('a watch without a resourceVersion starts with ADDED for what exists; field selectors apply', async () => {
    const ns = await freshNamespace();
    await c.core.createNamespacedPod({ namespace: ns, body: podBody('a') });
    await c.core.createNamespacedPod({ namespace: ns, body: podBody('b') });
    const seen: string[] = [];
    const ctl = await c.watch.watch(`/api/v1/namespaces/${ns}/pods`, { fieldSelector: 'metadata.name=b' }, (type, obj) => seen.push(`${type} ${obj.metadata.name}`), () => {});
    try {
      await eventually(() => seen.length >= 1, 'the initial event');
      await c.core.deleteNamespacedPod({ name: 'a', namespace: ns });
      await c.core.deleteNamespacedPod({ name: 'b', namespace: ns });
      await eventually(() => seen.length >= 2, 'the delete event');
      expect(seen).toEqual(['ADDED b', 'DELETED b']);
    } finally {
      ctl.abort();
    }
  });

  test('a watch from a version older than the kept history gets a 410 ERROR event', async () => {
    const small = await startFastCluster({ watchHistory: 5 });
    try {
      const sc = clientsFor(small);
      const first = await sc.custom.createNamespacedCustomObject({ ...VMIM, namespace: 'default', body: vmim('m0') });
      for (let i = 1; i <= 6; i++) await sc.custom.createNamespacedCustomObject({ ...VMIM, namespace: 'default', body: vmim(`m${i}`) });
      const events: { type: string; obj: { code?: number; reason?: string; message?: string } }[] = [];
      const done = new Promise<void>((resolve) => {
        void sc.watch.watch('/apis/kubevirt.io/v1/virtualmachineinstancemigrations', { resourceVersion: first.metadata.resourceVersion }, (type, obj) => events.push({ type, obj }), () => resolve());
      });
      await done;
      expect(events).toEqual([{ type: 'ERROR', obj: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired', message: expect.stringMatching(/^too old resource version: \d+ \(\d+\)$/) }) }]);
    } finally {
      await small.close();
    }
  });

  test('kubectl-style Table output for lists and for watches', async () => {
    const ns = await freshNamespace();
    await c.custom.createNamespacedCustomObject({ ...VMIM, namespace: ns, body: vmim('m') });
    await c.custom.patchNamespacedCustomObjectStatus({ ...VMIM, namespace: ns, name: 'm', body: { status: { phase: 'Scheduling' } } }, mergePatch);
    const accept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';
    const res = await fetch(`${cluster.url}/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstancemigrations`, { headers: { Accept: accept } });
    const table = (await res.json()) as { kind: string; columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    expect(table.kind).toBe('Table');
    expect(table.columnDefinitions.map((d) => d.name)).toEqual(['Name', 'Phase', 'VMI', 'Age']);
    expect(table.rows.map((r) => r.cells.slice(0, 3))).toEqual([['m', 'Scheduling', 'vm-1']]);
    const plain = (await (await fetch(`${cluster.url}/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstancemigrations/m`)).json()) as { kind: string };
    expect(plain.kind).toBe('VirtualMachineInstanceMigration');

    const ac = new AbortController();
    const stream = await fetch(`${cluster.url}/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstancemigrations?watch=1`, { headers: { Accept: accept }, signal: ac.signal });
    const reader = stream.body!.getReader();
    const { value } = await reader.read();
    const first = JSON.parse(new TextDecoder().decode(value).split('\n')[0]!) as { type: string; object: { kind: string; rows: { cells: unknown[] }[] } };
    ac.abort();
    expect(first).toMatchObject({ type: 'ADDED', object: { kind: 'Table', rows: [{ cells: ['m', 'Scheduling', 'vm-1', expect.any(String)] }] } });
  });

  test('close() ends open watches and leaves nothing running', async () => {
    const other = await startFastCluster();
    const oc = clientsFor(other);
    const ended = new Promise<unknown>((resolve) => {
      void oc.watch.watch('/api/v1/pods', {}, () => {}, resolve);
    });
    await eventually(() => other.store.watchCount() > 2, 'the watch to be registered');
    await other.close();
    await ended;
    expect(other.store.watchCount()).toBe(0);
  });
});

describe('watch options and logging', () => {
  test('allowWatchBookmarks brings BOOKMARK events; timeoutSeconds ends the stream', async () => {
    const lines: string[] = [];
    const other = await startFastCluster({ bookmarkIntervalMs: 50, log: (m) => lines.push(m) });
    try {
      const started = Date.now();
      const res = await fetch(`${other.url}/api/v1/namespaces/default/pods?watch=true&allowWatchBookmarks=true&timeoutSeconds=1`);
      const text = await res.text(); // resolves only when the server ends the stream
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      const events = text.trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: { kind: string; metadata: { resourceVersion: string } } });
      expect(events.length).toBeGreaterThanOrEqual(3);
      expect(events.every((e) => e.type === 'BOOKMARK' && e.object.kind === 'Pod' && e.object.metadata.resourceVersion === other.store.resourceVersion())).toBe(true);
      expect(lines).toContainEqual(expect.stringMatching(/^GET \/api\/v1\/namespaces\/default\/pods\?watch=true\S* 200 \d+ms$/));
    } finally {
      await other.close();
    }
  });
});
