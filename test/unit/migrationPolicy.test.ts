import { defaultMigrationConfiguration } from '../../src/api/migrationConfig.js';
import { effectiveConfiguration, matchPolicy, MigrationPolicy } from '../../src/api/migrationPolicy.js';

const policy = (name: string, vmi: Record<string, string> | undefined, ns: Record<string, string> | undefined, extra: object = {}) =>
  MigrationPolicy.parse({ metadata: { name }, spec: { selectors: { virtualMachineInstanceSelector: vmi, namespaceSelector: ns }, ...extra } });

describe('MigrationPolicy selection (KubeVirt precedence)', () => {
  const vmiLabels = { app: 'db', tier: 'gold' };
  const nsLabels = { team: 'a' };

  test('a policy whose labels do not all match is never chosen', () => {
    expect(matchPolicy([policy('p', { app: 'db', tier: 'silver' }, undefined)], vmiLabels, nsLabels)).toBeUndefined();
  });

  test('more matching labels win, counting VMI and namespace labels together', () => {
    const chosen = matchPolicy([policy('one', { app: 'db' }, undefined), policy('two', { app: 'db' }, { team: 'a' })], vmiLabels, nsLabels);
    expect(chosen?.metadata.name).toBe('two');
  });

  test('on a tie, more VMI-label matches win, then the smaller name', () => {
    expect(matchPolicy([policy('ns', undefined, { team: 'a' }), policy('vmi', { app: 'db' }, undefined)], vmiLabels, nsLabels)?.metadata.name).toBe('vmi');
    expect(matchPolicy([policy('b', { app: 'db' }, undefined), policy('a', { tier: 'gold' }, undefined)], vmiLabels, nsLabels)?.metadata.name).toBe('a');
  });

  test('a policy without selectors never matches', () => {
    const p = MigrationPolicy.parse({ metadata: { name: 'none' }, spec: {} });
    expect(matchPolicy([p], vmiLabels, nsLabels)).toBeUndefined();
  });

  test('overrides apply over the cluster configuration; allowWorkloadDisruption follows allowPostCopy', () => {
    const eff = effectiveConfiguration(defaultMigrationConfiguration, policy('p', { app: 'db' }, undefined, { allowPostCopy: true, bandwidthPerMigration: '64Mi', completionTimeoutPerGiB: 20 }));
    expect(eff).toMatchObject({ allowPostCopy: true, allowWorkloadDisruption: true, bandwidthPerMigration: 64 * 2 ** 20, completionTimeoutPerGiB: 20, parallelMigrationsPerCluster: 5 });
    expect(effectiveConfiguration(defaultMigrationConfiguration, undefined)).toBe(defaultMigrationConfiguration);
  });
});
