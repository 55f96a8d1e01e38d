import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch } from '../../../src/devcluster/patch.js';

describe('JSON merge patch', () => {
  test('merges objects, replaces lists, deletes on null', () => {
    const out = applyMergePatch({ a: { b: 1, c: 2 }, list: [1, 2], gone: true }, { a: { c: 3, d: 4 }, list: [9], gone: null });
    expect(out).toEqual({ a: { b: 1, c: 3, d: 4 }, list: [9] });
  });

  test('does not modify its input', () => {
    const target = { a: { b: 1 } };
    applyMergePatch(target, { a: { b: 2 } });
    expect(target).toEqual({ a: { b: 1 } });
  });
});

describe('JSON patch', () => {
  const doc = { metadata: { labels: { a: '1' } }, spec: { list: ['x', 'y'] } };

  test('add, remove, replace, move and copy', () => {
    const out = applyJsonPatch(doc, [
      { op: 'add', path: '/metadata/labels/b', value: '2' },
      { op: 'add', path: '/spec/list/-', value: 'z' },
      { op: 'add', path: '/spec/list/0', value: 'w' },
      { op: 'remove', path: '/spec/list/1' },
      { op: 'replace', path: '/metadata/labels/a', value: 'one' },
      { op: 'copy', from: '/metadata/labels/a', path: '/metadata/labels/c' },
      { op: 'move', from: '/metadata/labels/b', path: '/spec/moved' },
    ]);
    expect(out).toEqual({ metadata: { labels: { a: 'one', c: 'one' } }, spec: { list: ['w', 'y', 'z'], moved: '2' } });
  });

  test('escaped pointers address keys with slashes', () => {
    const out = applyJsonPatch({ metadata: { labels: {} } }, [{ op: 'add', path: '/metadata/labels/kubevirt.io~1nodeName', value: 'node-1' }]);
    expect(out).toEqual({ metadata: { labels: { 'kubevirt.io/nodeName': 'node-1' } } });
  });

  test('a failing test operation is a 422 and nothing is applied', () => {
    expect(() => applyJsonPatch(doc, [{ op: 'test', path: '/metadata/labels/a', value: '2' }, { op: 'remove', path: '/metadata' }])).toThrow(
      expect.objectContaining({ code: 422, message: expect.stringContaining('testing value /metadata/labels/a failed') }),
    );
    expect(doc.metadata.labels.a).toBe('1');
  });

  test('replacing a missing path is a 422, a malformed document a 400', () => {
    expect(() => applyJsonPatch(doc, [{ op: 'replace', path: '/nope', value: 1 }])).toThrow(expect.objectContaining({ code: 422 }));
    expect(() => applyJsonPatch(doc, { op: 'add' })).toThrow(expect.objectContaining({ code: 400 }));
  });
});

describe('strategic merge patch', () => {
  test('conditions merge by type instead of replacing the list', () => {
    const status = { conditions: [{ type: 'Ready', status: 'True' }, { type: 'PodScheduled', status: 'True' }] };
    const out = applyStrategicMergePatch({ status }, { status: { conditions: [{ type: 'Ready', status: 'False', reason: 'Stopped' }] } });
    expect(out).toEqual({ status: { conditions: [{ type: 'Ready', status: 'False', reason: 'Stopped' }, { type: 'PodScheduled', status: 'True' }] } });
  });

  test('finalizers merge as a set; $patch: delete removes a keyed element', () => {
    const obj = { metadata: { finalizers: ['a'] }, spec: { containers: [{ name: 'c1', image: 'x' }, { name: 'c2', image: 'y' }] } };
    const out = applyStrategicMergePatch(obj, { metadata: { finalizers: ['b', 'a'] }, spec: { containers: [{ name: 'c1', $patch: 'delete' }] } });
    expect(out).toEqual({ metadata: { finalizers: ['a', 'b'] }, spec: { containers: [{ name: 'c2', image: 'y' }] } });
  });

  test('other lists are replaced; null deletes a field (kubectl uncordon)', () => {
    expect(applyStrategicMergePatch({ spec: { unschedulable: true, taints: [{ key: 'a' }] } }, { spec: { unschedulable: null, taints: [{ key: 'b' }] } })).toEqual({
      spec: { taints: [{ key: 'b' }] },
    });
  });
});
