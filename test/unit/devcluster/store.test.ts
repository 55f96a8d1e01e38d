import { ResourceRegistry } from '../../../src/devcluster/registry.js';
import { registerBuiltinResources } from '../../../src/devcluster/resources.js';
import { ObjectStore, type WatchEvent } from '../../../src/devcluster/store.js';

function newStore(watchHistory = 1000): ObjectStore {
  const registry = new ResourceRegistry();
  registerBuiltinResources(registry);
  const store = new ObjectStore({ registry, watchHistory, now: () => Date.parse('2026-01-01T00:00:00Z') });
  store.create('namespaces', { metadata: { name: 'default' } });
  return store;
}

const vmi = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'kubevirt.io/v1',
  kind: 'VirtualMachineInstance',
  metadata: { name, namespace: 'default', labels },
  spec: { domain: {} },
});

function collect(store: ObjectStore, ref: string, opts = {}): { events: WatchEvent[]; stop(): void } {
  const events: WatchEvent[] = [];
  const w = store.watch(ref, opts, (e) => events.push(e));
  return { events, stop: () => w.stop() };
}

const summary = (events: WatchEvent[]) => events.map((e) => `${e.type} ${e.object.metadata.name}`);

describe('object store', () => {
  test('stamps every write with a higher resourceVersion and bumps generation only on spec changes', () => {
    const store = newStore();
    const a = store.create('vmi', vmi('a'));
    expect(a.metadata.generation).toBe(1);
    const labelled = store.patch('vmi', 'a', { metadata: { labels: { x: 'y' } } }, { namespace: 'default' });
    expect(Number(labelled.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
    expect(labelled.metadata.generation).toBe(1);
    const respec = store.patch('vmi', 'a', { spec: { domain: { cpu: { cores: 2 } } } }, { namespace: 'default' });
    expect(respec.metadata.generation).toBe(2);
  });

  test('an update that changes nothing writes nothing', () => {
    const store = newStore();
    const a = store.create('vmi', vmi('a'));
    const events = collect(store, 'vmi', { resourceVersion: a.metadata.resourceVersion });
    const same = store.update('vmi', a);
    expect(same.metadata.resourceVersion).toBe(a.metadata.resourceVersion);
    expect(events.events).toEqual([]);
  });

  test('objects handed out are copies: changing them does not change the store', () => {
    const store = newStore();
    const a = store.create('vmi', vmi('a'));
    a.metadata.labels = { hacked: 'yes' };
    store.get('vmi', 'a', 'default').metadata.name = 'other';
    expect(store.get('vmi', 'a', 'default').metadata.labels).toEqual({});
  });

  test('a watch sees changes in commit order even when a listener writes', () => {
    const store = newStore();
    store.watch('vmi', { resourceVersion: store.resourceVersion() }, (e) => {
      if (e.type === 'ADDED' && e.object.metadata.name === 'a') store.create('vmi', vmi('b'));
    });
    const seen = collect(store, 'vmi', { resourceVersion: store.resourceVersion() });
    store.create('vmi', vmi('a'));
    expect(summary(seen.events)).toEqual(['ADDED a', 'ADDED b']);
    const rvs = seen.events.map((e) => Number(e.object.metadata.resourceVersion));
    expect(rvs[1]).toBeGreaterThan(rvs[0]!);
  });

  test('a label-selected watch sees objects enter as ADDED and leave as DELETED', () => {
    const store = newStore();
    const rv = store.create('vmi', vmi('a')).metadata.resourceVersion;
    const w = collect(store, 'vmi', { resourceVersion: rv, labelSelector: 'team=blue' });
    store.patch('vmi', 'a', { metadata: { labels: { team: 'blue' } } }, { namespace: 'default' });
    store.patch('vmi', 'a', { metadata: { labels: { team: 'blue', other: '1' } } }, { namespace: 'default' });
    store.patch('vmi', 'a', { metadata: { labels: { team: 'red' } } }, { namespace: 'default' });
    expect(summary(w.events)).toEqual(['ADDED a', 'MODIFIED a', 'DELETED a']);
  });

  test('a version older than the kept history is 410 Expired; the oldest kept one still resumes', () => {
    const store = newStore(3);
    const first = store.create('vmi', vmi('a')).metadata.resourceVersion;
    for (const n of ['b', 'c', 'd', 'e']) store.create('vmi', vmi(n));
    expect(() => store.watch('vmi', { resourceVersion: first }, () => {})).toThrow(expect.objectContaining({ code: 410, reason: 'Expired', message: expect.stringContaining('too old resource version') }));
    const cRv = store.get('vmi', 'c', 'default').metadata.resourceVersion;
    const w = collect(store, 'vmi', { resourceVersion: cRv });
    expect(summary(w.events)).toEqual(['ADDED d', 'ADDED e']);
  });

  test('deleting an object with finalizers only marks it; removing the last finalizer removes it', () => {
    const store = newStore();
    store.create('vmim', { metadata: { name: 'm', finalizers: ['kubevirt.io/migrationJobFinalize'] }, spec: { vmiName: 'a' } });
    const w = collect(store, 'vmim', { resourceVersion: store.resourceVersion() });
    const marked = store.delete('vmim', 'm', { namespace: 'default' });
    expect(marked.metadata.deletionTimestamp).toBeDefined();
    expect(marked.metadata.deletionGracePeriodSeconds).toBe(0);
    expect(() => store.patch('vmim', 'm', { metadata: { finalizers: ['kubevirt.io/migrationJobFinalize', 'late'] } }, { namespace: 'default' })).toThrow(
      expect.objectContaining({ code: 422, message: expect.stringContaining('no new finalizers') }),
    );
    store.patch('vmim', 'm', { metadata: { finalizers: null } }, { namespace: 'default' });
    expect(store.tryGet('vmim', 'm', 'default')).toBeUndefined();
    expect(summary(w.events)).toEqual(['MODIFIED m', 'DELETED m']);
  });

  test('dependents go when their only owner goes; a dependent with another live owner just loses the reference', () => {
    const store = newStore();
    const a = store.create('vmi', vmi('a'));
    const b = store.create('vmi', vmi('b'));
    const ref = (o: typeof a) => ({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', name: o.metadata.name, uid: o.metadata.uid });
    store.create('vmim', { metadata: { name: 'only-a', ownerReferences: [ref(a)] }, spec: { vmiName: 'a' } });
    store.create('vmim', { metadata: { name: 'a-and-b', ownerReferences: [ref(a), ref(b)] }, spec: { vmiName: 'a' } });
    store.delete('vmi', 'a', { namespace: 'default' });
    expect(store.tryGet('vmim', 'only-a', 'default')).toBeUndefined();
    expect(store.get('vmim', 'a-and-b', 'default').metadata.ownerReferences).toEqual([ref(b)]);
  });

  test('resolves kubectl-style names: plural, singular, kind, short name, plural.group', () => {
    const store = newStore();
    for (const ref of ['virtualmachineinstances', 'virtualmachineinstance', 'VirtualMachineInstance', 'vmi', 'vmis', 'virtualmachineinstances.kubevirt.io']) {
      expect(store.registry.resolve(ref).kind).toBe('VirtualMachineInstance');
    }
    expect(() => store.registry.resolve('gadgets')).toThrow(expect.objectContaining({ code: 404 }));
  });
});
