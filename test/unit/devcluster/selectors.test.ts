import { matchesFields, matchesLabelSelectorObject, matchesRequirements, parseFieldSelector, parseLabelSelector } from '../../../src/devcluster/selectors.js';

const labels = { app: 'db', tier: 'backend', env: 'prod' };
const sel = (s: string, l: Record<string, string> | undefined = labels) => matchesRequirements(parseLabelSelector(s), l);

describe('label selectors in query strings', () => {
  test('equality, inequality and double equals', () => {
    expect(sel('app=db')).toBe(true);
    expect(sel('app==db,tier=backend')).toBe(true);
    expect(sel('app=web')).toBe(false);
    expect(sel('app!=web')).toBe(true);
    expect(sel('missing!=x')).toBe(true);
  });

  test('set-based requirements and existence', () => {
    expect(sel('env in (prod, staging)')).toBe(true);
    expect(sel('env notin (prod)')).toBe(false);
    expect(sel('missing notin (prod)')).toBe(true);
    expect(sel('tier')).toBe(true);
    expect(sel('!tier')).toBe(false);
    expect(sel('!gpu,env in (prod),app')).toBe(true);
  });

  test('the empty selector selects everything, even objects without labels', () => {
    expect(sel('', undefined)).toBe(true);
  });

  test('garbage is a 400 naming the bad requirement', () => {
    expect(() => parseLabelSelector('app=db,=x')).toThrow(expect.objectContaining({ code: 400, message: expect.stringContaining('"=x"') }));
  });
});

describe('label selector objects (PDBs, affinity terms)', () => {
  test('matchLabels and matchExpressions combine', () => {
    expect(matchesLabelSelectorObject({ matchLabels: { app: 'db' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }] }, labels)).toBe(true);
    expect(matchesLabelSelectorObject({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels)).toBe(false);
  });

  test('an empty selector selects all, a missing one selects nothing', () => {
    expect(matchesLabelSelectorObject({}, labels)).toBe(true);
    expect(matchesLabelSelectorObject(undefined, labels)).toBe(false);
  });
});

describe('field selectors', () => {
  const fields: Record<string, string> = { 'spec.nodeName': 'node-1', 'status.phase': 'Running' };
  const supported = (f: string) => f in fields || f === 'metadata.name';

  test('=, == and != compare the field as a string', () => {
    const reqs = parseFieldSelector('spec.nodeName=node-1,status.phase!=Pending', supported);
    expect(matchesFields(reqs, (f) => fields[f] ?? '')).toBe(true);
    expect(matchesFields(parseFieldSelector('spec.nodeName==node-2', supported), (f) => fields[f] ?? '')).toBe(false);
  });

  test('an unsupported field is rejected like the real server does', () => {
    expect(() => parseFieldSelector('spec.foo=bar', supported)).toThrow(expect.objectContaining({ code: 400, message: 'field label not supported: spec.foo' }));
  });
});
