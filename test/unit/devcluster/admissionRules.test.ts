import type { AdmissionAttributes } from '../../../src/devcluster/admission/attributes.js';
import { evaluateMatchConditions } from '../../../src/devcluster/admission/cel.js';
import { namespaceSelectorMatches, objectSelectorMatches, ruleMatches } from '../../../src/devcluster/admission/rules.js';

const attrs = (over: Partial<AdmissionAttributes> = {}): AdmissionAttributes => ({
  uid: 'u', operation: 'CREATE', resource: { group: '', version: 'v1', resource: 'pods' }, subResource: '', kind: { group: '', version: 'v1', kind: 'Pod' },
  name: 'p', namespace: 'default', object: { metadata: { name: 'p', labels: { app: 'a' } } }, oldObject: null,
  userInfo: { username: 'u', groups: [] }, dryRun: false, options: null, namespaced: true, ...over,
});
const rule = (resources: string[], over: Record<string, unknown> = {}) => ({ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources, ...over });

describe('admission rules, as kube-apiserver matches them', () => {
  test('resources and subresources', () => {
    const eviction = attrs({ subResource: 'eviction' });
    expect(ruleMatches(rule(['pods']), attrs(), true)).toBe(true);
    expect(ruleMatches(rule(['pods']), eviction, true)).toBe(false);
    expect(ruleMatches(rule(['pods/eviction']), eviction, true)).toBe(true);
    expect(ruleMatches(rule(['pods/*']), eviction, true)).toBe(true);
    expect(ruleMatches(rule(['pods/*']), attrs(), true)).toBe(false);
    expect(ruleMatches(rule(['*']), eviction, true)).toBe(false);
    expect(ruleMatches(rule(['*/*']), eviction, true)).toBe(true);
    expect(ruleMatches(rule(['*/eviction']), eviction, true)).toBe(true);
  });

  test('operations, groups, scope, and matchPolicy Exact vs Equivalent', () => {
    expect(ruleMatches(rule(['pods'], { operations: ['UPDATE'] }), attrs(), true)).toBe(false);
    expect(ruleMatches(rule(['pods'], { apiGroups: ['apps'] }), attrs(), true)).toBe(false);
    expect(ruleMatches(rule(['pods'], { scope: 'Cluster' }), attrs(), true)).toBe(false);
    expect(ruleMatches(rule(['pods'], { apiVersions: ['v1beta1'] }), attrs(), false)).toBe(false);
    expect(ruleMatches(rule(['pods'], { apiVersions: ['v1beta1'] }), attrs(), true)).toBe(true);
  });

  test('selectors: the namespace\'s labels, and the new or the old object\'s labels', () => {
    const labels = (ns: string): Record<string, string> => (ns === 'prod' ? { env: 'prod' } : {});
    expect(namespaceSelectorMatches({ matchLabels: { env: 'prod' } }, attrs({ namespace: 'prod' }), labels)).toBe(true);
    expect(namespaceSelectorMatches({ matchLabels: { env: 'prod' } }, attrs(), labels)).toBe(false);
    expect(namespaceSelectorMatches({ matchLabels: { env: 'prod' } }, attrs({ namespaced: false, namespace: '' }), labels)).toBe(true);
    expect(objectSelectorMatches({ matchLabels: { app: 'b' } }, attrs({ oldObject: { metadata: { labels: { app: 'b' } } } }))).toBe(true);
    expect(objectSelectorMatches({ matchLabels: { app: 'b' } }, attrs())).toBe(false);
  });

  test('matchConditions: a false one wins over an error; an error alone is reported', () => {
    const vars = { object: { metadata: { name: 'virt-launcher-x' } } };
    expect(evaluateMatchConditions([{ name: 'a', expression: 'object.metadata.name.startsWith("virt-launcher")' }], vars)).toEqual({ matches: true });
    expect(evaluateMatchConditions([{ name: 'err', expression: 'object.spec.x == 1' }, { name: 'no', expression: 'false' }], vars)).toEqual({ matches: false });
    expect(evaluateMatchConditions([{ name: 'err', expression: 'object.spec.x == 1' }], vars)).toMatchObject({ matches: false, error: expect.stringContaining('matchCondition "err" evaluation error') });
    expect(evaluateMatchConditions([{ name: 'num', expression: '1 + 1' }], vars).error).toContain('must evaluate to bool');
  });
});
