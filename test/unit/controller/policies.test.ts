import { checkPolicy, selectPolicy } from '../../../src/controller/policies.js';

const raw = (name: string, spec: object) => ({ metadata: { name, uid: `uid-${name}`, resourceVersion: '1' }, spec: { selectors: { virtualMachineInstanceSelector: {} }, ...spec } });

describe('which MigrationPolicies the controller applies', () => {
  test.each([
    [{ bandwidthPerMigration: '-5Gi' }, 'spec.bandwidthPerMigration', /must not be negative/],
    [{ bandwidthPerMigration: 'abc' }, 'spec.bandwidthPerMigration', /not a Kubernetes quantity/],
    [{ completionTimeoutPerGiB: -1 }, 'spec.completionTimeoutPerGiB', /Too small/],
    [{ allowAutoConverge: 'yes' }, 'spec.allowAutoConverge', /expected boolean/],
  ])('%j is refused with the field and the reason', (spec, field, reason) => {
    const c = checkPolicy(raw('bad', spec));
    expect(c.ok).toBe(false);
    if (c.ok) return;
    expect(c.name).toBe('bad');
    expect(c.problems).toEqual([{ field, reason: expect.stringMatching(reason) }]);
  });

  test('quantities KubeVirt accepts are usable', () => {
    for (const bw of ['64Mi', '1Gi', 0, '1', '999999999Ti']) expect(checkPolicy(raw('ok', { bandwidthPerMigration: bw })).ok).toBe(true);
  });

  test('a bad policy that would win the match is passed over for the next one', () => {
    const chosen = selectPolicy([raw('a-bad', { bandwidthPerMigration: '-5Gi' }), raw('b-good', { allowPostCopy: true })], {}, {});
    expect(chosen?.metadata.name).toBe('b-good');
    expect(selectPolicy([raw('a-bad', { completionTimeoutPerGiB: -1 })], {}, {})).toBeUndefined();
  });
});
