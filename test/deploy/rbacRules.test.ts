import { authorize, forbidden, requestAttributes, ruleAllows, type PolicySource, type RequestAttributes } from '../../src/devcluster/auth/index.js';
import { serviceAccountUser } from '../../src/devcluster/auth/user.js';

const attrs = (method: string, url: string) => requestAttributes(method, new URL(url, 'http://x'));
const res = (a: RequestAttributes) => (a.resourceRequest ? a : undefined);

describe('request attributes (what RBAC is asked)', () => {
  test.each([
    ['GET', '/api/v1/namespaces/default/pods/p1', { verb: 'get', apiGroup: '', namespace: 'default', resource: 'pods', name: 'p1', subresource: '' }],
    ['GET', '/api/v1/pods?labelSelector=a%3Db', { verb: 'list', namespace: '', resource: 'pods', name: '' }],
    ['GET', '/api/v1/pods?watch=true', { verb: 'watch', resource: 'pods' }],
    ['GET', '/api/v1/watch/namespaces/default/pods', { verb: 'watch', namespace: 'default', resource: 'pods', name: '' }],
    ['GET', '/apis/kubevirt.io/v1/namespaces/ns1/virtualmachineinstancemigrations?watch=1&fieldSelector=metadata.name%3Dm1', { verb: 'watch', apiGroup: 'kubevirt.io', name: 'm1' }],
    ['PATCH', '/apis/kubevirt.io/v1/namespaces/ns1/virtualmachineinstances/vm/status', { verb: 'patch', resource: 'virtualmachineinstances', subresource: 'status', name: 'vm' }],
    ['POST', '/api/v1/namespaces/default/pods/p1/eviction', { verb: 'create', resource: 'pods', subresource: 'eviction', name: 'p1' }],
    ['DELETE', '/api/v1/namespaces/default/pods', { verb: 'deletecollection', resource: 'pods' }],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/ferry-system/leases/ferry-controller', { verb: 'update', apiGroup: 'coordination.k8s.io', resource: 'leases', name: 'ferry-controller' }],
    ['GET', '/api/v1/namespaces/kube-system', { verb: 'get', resource: 'namespaces', name: 'kube-system', namespace: 'kube-system' }],
    ['PUT', '/api/v1/namespaces/x/finalize', { verb: 'update', resource: 'namespaces', name: 'x', subresource: 'finalize', namespace: 'x' }],
    ['GET', '/api/v1/nodes/n1', { verb: 'get', resource: 'nodes', name: 'n1', namespace: '' }],
  ])('%s %s', (method, url, expected) => {
    expect(res(attrs(method, url))).toMatchObject({ resourceRequest: true, ...expected });
  });

  test.each([['/api'], ['/apis'], ['/apis/kubevirt.io'], ['/apis/kubevirt.io/v1'], ['/api/v1'], ['/version'], ['/openapi/v3/apis/kubevirt.io/v1']])(
    'GET %s is a non-resource request',
    (url) => {
      expect(attrs('GET', url)).toEqual({ resourceRequest: false, verb: 'get', path: url.split('?')[0] });
    },
  );
});

describe('RBAC rules', () => {
  const podsGet = attrs('GET', '/api/v1/namespaces/default/pods/p1');
  test('a resource rule covers its resource but not its subresources', () => {
    expect(ruleAllows({ apiGroups: [''], resources: ['pods'], verbs: ['get'] }, podsGet)).toBe(true);
    expect(ruleAllows({ apiGroups: [''], resources: ['pods'], verbs: ['patch'] }, attrs('PATCH', '/api/v1/namespaces/default/pods/p1/status'))).toBe(false);
    expect(ruleAllows({ apiGroups: [''], resources: ['pods/status'], verbs: ['patch'] }, attrs('PATCH', '/api/v1/namespaces/default/pods/p1/status'))).toBe(true);
    expect(ruleAllows({ apiGroups: [''], resources: ['*/status'], verbs: ['patch'] }, attrs('PATCH', '/api/v1/namespaces/default/pods/p1/status'))).toBe(true);
    expect(ruleAllows({ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }, attrs('POST', '/api/v1/namespaces/default/pods/p1/eviction'))).toBe(true);
  });
  test('API group, verb and resourceNames must all match', () => {
    expect(ruleAllows({ apiGroups: ['apps'], resources: ['pods'], verbs: ['get'] }, podsGet)).toBe(false);
    expect(ruleAllows({ apiGroups: [''], resources: ['pods'], verbs: ['list'] }, podsGet)).toBe(false);
    expect(ruleAllows({ apiGroups: [''], resources: ['pods'], verbs: ['get'], resourceNames: ['p2'] }, podsGet)).toBe(false);
    expect(ruleAllows({ apiGroups: [''], resources: ['pods'], verbs: ['get'], resourceNames: ['p1'] }, podsGet)).toBe(true);
    // A named rule never allows a list of everything.
    expect(ruleAllows({ apiGroups: [''], resources: ['pods'], verbs: ['list'], resourceNames: ['p1'] }, attrs('GET', '/api/v1/namespaces/default/pods'))).toBe(false);
  });
  test('non-resource URLs match exactly or by a trailing *', () => {
    expect(ruleAllows({ nonResourceURLs: ['/apis/*'], verbs: ['get'] }, attrs('GET', '/apis/kubevirt.io/v1'))).toBe(true);
    expect(ruleAllows({ nonResourceURLs: ['/apis'], verbs: ['get'] }, attrs('GET', '/apis/kubevirt.io'))).toBe(false);
    expect(ruleAllows({ nonResourceURLs: ['/version'], verbs: ['get'] }, attrs('POST', '/version'))).toBe(false);
    // Resource rules never grant non-resource paths.
    expect(ruleAllows({ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }, attrs('GET', '/apis'))).toBe(false);
  });
});

describe('authorize', () => {
  const sa = serviceAccountUser('ferry-system', 'ferry-controller');
  const policy = (over: Partial<PolicySource> = {}): PolicySource => ({
    clusterRoleBindings: () => [],
    roleBindings: () => [],
    clusterRoleRules: () => undefined,
    roleRules: () => undefined,
    ...over,
  });
  const leaseGet = attrs('GET', '/apis/coordination.k8s.io/v1/namespaces/ferry-system/leases/ferry-controller');

  test('a RoleBinding grants in its own namespace only, a ClusterRoleBinding everywhere', () => {
    const p = policy({
      roleBindings: (ns) => (ns === 'ferry-system' ? [{ namespace: 'ferry-system', name: 'b', roleRef: { kind: 'Role', name: 'r' }, subjects: [{ kind: 'ServiceAccount', name: 'ferry-controller' }] }] : []),
      roleRules: (ns, name) => (ns === 'ferry-system' && name === 'r' ? [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get'] }] : undefined),
    });
    expect(authorize(p, sa, leaseGet).allowed).toBe(true);
    expect(authorize(p, sa, attrs('GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases/ferry-controller')).allowed).toBe(false);
    expect(authorize(p, serviceAccountUser('other', 'ferry-controller'), leaseGet).allowed).toBe(false);
  });

  test('groups of a ServiceAccount are subjects too', () => {
    const p = policy({
      clusterRoleBindings: () => [{ namespace: '', name: 'b', roleRef: { kind: 'ClusterRole', name: 'c' }, subjects: [{ kind: 'Group', name: 'system:serviceaccounts:ferry-system' }] }],
      clusterRoleRules: () => [{ apiGroups: ['*'], resources: ['leases'], verbs: ['get'] }],
    });
    expect(authorize(p, sa, leaseGet).allowed).toBe(true);
  });

  test('a binding to a missing role grants nothing and says so, as the API server does', () => {
    const p = policy({
      clusterRoleBindings: () => [{ namespace: '', name: 'b', roleRef: { kind: 'ClusterRole', name: 'gone' }, subjects: [{ kind: 'User', name: sa.name }] }],
    });
    expect(authorize(p, sa, leaseGet)).toEqual({ allowed: false, reason: 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found' });
  });

  test('the 403 reads like the real one', () => {
    const ns = forbidden(sa, attrs('DELETE', '/api/v1/namespaces/default/pods/p1'), '');
    expect(ns.code).toBe(403);
    expect(ns.toStatus()).toMatchObject({
      reason: 'Forbidden',
      message: 'pods "p1" is forbidden: User "system:serviceaccount:ferry-system:ferry-controller" cannot delete resource "pods" in API group "" in the namespace "default"',
      details: { name: 'p1', group: '', kind: 'pods' },
    });
    expect(forbidden(sa, attrs('GET', '/apis/kubevirt.io/v1/virtualmachineinstances'), '').message).toBe(
      'virtualmachineinstances.kubevirt.io is forbidden: User "system:serviceaccount:ferry-system:ferry-controller" cannot list resource "virtualmachineinstances" in API group "kubevirt.io" at the cluster scope',
    );
    expect(forbidden(sa, attrs('POST', '/api/v1/namespaces/default/pods/p1/eviction'), '').message).toContain('cannot create resource "pods/eviction" in API group "" in the namespace "default"');
    expect(forbidden(sa, attrs('GET', '/apis'), '').message).toBe('forbidden: User "system:serviceaccount:ferry-system:ferry-controller" cannot get path "/apis"');
  });
});
