import { KubeConfig } from '@kubernetes/client-node';
import { EventRecorder } from '../../../src/controller/eventRecorder.js';
import { PolicyReporter } from '../../../src/controller/policies.js';
import { startDevCluster, type DevCluster } from '../../../src/devcluster/index.js';
import { KubeClient } from '../../../src/kube/client.js';
import { createLogger } from '../../../src/util/log.js';

describe('reporting an unusable MigrationPolicy', () => {
  let cluster: DevCluster;
  let kube: KubeClient;
  beforeAll(async () => {
    cluster = await startDevCluster();
    const kc = new KubeConfig();
    kc.loadFromString(cluster.kubeConfigYaml());
    kube = new KubeClient(kc);
  });
  afterAll(async () => {
    await cluster.close();
  });

  test('one Event and one log line per version of a bad policy; none for a good one; told again after an edit', async () => {
    const lines: Array<{ msg: string; policy?: string; problems?: unknown }> = [];
    const log = createLogger({ name: 'test', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
    const reporter = new PolicyReporter(log, new EventRecorder(kube, log));
    const policy = (rv: string, spec: object) => ({ metadata: { name: 'p', uid: 'uid-p', resourceVersion: rv }, spec: { selectors: {}, ...spec } });

    reporter.observe(policy('1', { bandwidthPerMigration: '-5Gi' }), 'add');
    reporter.observe(policy('1', { bandwidthPerMigration: '-5Gi' }), 'update'); // a resync: same version
    reporter.observe(policy('2', { bandwidthPerMigration: 'abc' }), 'update');
    reporter.observe(policy('3', { bandwidthPerMigration: '1Gi' }), 'update');
    reporter.observe(policy('4', { bandwidthPerMigration: '1Gi' }), 'update');

    const warnings = lines.filter((l) => l.msg === 'ignoring invalid MigrationPolicy');
    expect(warnings.map((l) => l.problems)).toEqual([
      [{ field: 'spec.bandwidthPerMigration', reason: 'must not be negative (got "-5Gi")' }],
      [{ field: 'spec.bandwidthPerMigration', reason: expect.stringMatching(/"abc" is not a Kubernetes quantity/) }],
    ]);
    expect(lines.filter((l) => l.msg === 'MigrationPolicy is valid again; applying it')).toHaveLength(1);

    const events = await (async () => {
      for (let i = 0; i < 100; i++) {
        const list = await kube.core.listNamespacedEvent({ namespace: 'default' });
        if (list.items.length >= 2) return list.items;
        await new Promise((r) => setTimeout(r, 20));
      }
      return (await kube.core.listNamespacedEvent({ namespace: 'default' })).items;
    })();
    expect(events.map((e) => [e.involvedObject.kind, e.involvedObject.name, e.type, e.reason])).toEqual([
      ['MigrationPolicy', 'p', 'Warning', 'InvalidPolicy'],
      ['MigrationPolicy', 'p', 'Warning', 'InvalidPolicy'],
    ]);
    // Recorded asynchronously: in either order.
    expect(events.map((e) => e.message).sort()).toEqual([
      expect.stringMatching(/^Ignored: spec\.bandwidthPerMigration: "abc" is not a Kubernetes quantity/),
      expect.stringMatching(/^Ignored: spec\.bandwidthPerMigration: must not be negative/),
    ]);
  });
});
