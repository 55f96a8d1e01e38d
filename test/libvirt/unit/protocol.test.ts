import {
  decodeHeader, encodeMessage, paramsToRecord, Proc, readDomain, readRemoteError, readTypedParam, REMOTE_PROGRAM,
  writeDomain, writeTypedParam, type TypedParam,
} from '../../../src/hypervisor/libvirt/protocol.js';
import { XdrReader, XdrWriter } from '../../../src/hypervisor/libvirt/xdr.js';

const hex = (b: Buffer) => b.toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

test('a call frame is length, program, version, procedure, type, serial, status, then the payload', () => {
  // CONNECT_OPEN("qemu:///system", flags 0) as serial 1.
  const args = new XdrWriter().optional('qemu:///system', (w, v) => w.string(v)).uint(0).bytes();
  const frame = encodeMessage({ program: REMOTE_PROGRAM, version: 1, procedure: Proc.CONNECT_OPEN, type: 0, serial: 1, status: 0 }, args);
  expect(hex(frame)).toBe([
    '00000038', // 56 bytes in all, the length word included
    '20008086', '00000001', '00000001', '00000000', '00000001', '00000000',
    '00000001', '0000000e', hex(Buffer.from('qemu:///system')), '0000', '00000000',
  ].join(''));
  const header = decodeHeader(new XdrReader(frame.subarray(4)));
  expect(header).toEqual({ program: 0x20008086, version: 1, procedure: 1, type: 0, serial: 1, status: 0 });
});

test('a domain is named by name, 16-byte UUID and live id', () => {
  const uuid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const w = new XdrWriter();
  writeDomain(w, { name: 'ns_vm', uuid, id: -1 });
  expect(hex(w.bytes())).toBe(`00000005${hex(Buffer.from('ns_vm'))}000000${hex(uuid)}ffffffff`);
  expect(readDomain(new XdrReader(w.bytes()))).toEqual({ name: 'ns_vm', uuid, id: -1 });
});

test('typed parameters carry their type tag before the value', () => {
  const cases: Array<[TypedParam, string]> = [
    [{ field: 'bandwidth', type: 'ullong', value: 5n }, `00000009${hex(Buffer.from('bandwidth'))}000000 00000004 0000000000000005`],
    [{ field: 'migrate_uri', type: 'string', value: 'tcp://h:1' }, `0000000b${hex(Buffer.from('migrate_uri'))}00 00000007 00000009${hex(Buffer.from('tcp://h:1'))}000000`],
    [{ field: 'n', type: 'int', value: -3 }, `00000001 6e000000 00000001 fffffffd`],
    [{ field: 'u', type: 'uint', value: 3 }, `00000001 75000000 00000002 00000003`],
    [{ field: 'l', type: 'llong', value: -2n }, `00000001 6c000000 00000003 fffffffffffffffe`],
    [{ field: 'd', type: 'double', value: 0.5 }, `00000001 64000000 00000005 3fe0000000000000`],
    [{ field: 'b', type: 'boolean', value: true }, `00000001 62000000 00000006 00000001`],
  ];
  for (const [param, expected] of cases) {
    const w = new XdrWriter();
    writeTypedParam(w, param);
    expect(hex(w.bytes())).toBe(expected.replace(/\s+/g, ''));
    expect(readTypedParam(new XdrReader(w.bytes()))).toEqual(param);
  }
});

test('typed parameters become a plain record; an unknown type tag is an error naming the field', () => {
  const w = new XdrWriter();
  writeTypedParam(w, { field: 'memory_dirty_rate', type: 'ullong', value: 483n });
  writeTypedParam(w, { field: 'errmsg', type: 'string', value: 'boom' });
  const r = new XdrReader(w.bytes());
  expect(paramsToRecord([readTypedParam(r), readTypedParam(r)])).toEqual({ memory_dirty_rate: 483, errmsg: 'boom' });
  expect(() => readTypedParam(new XdrReader(bytes(`00000001 78000000 00000009`)))).toThrow(/"x" has unknown type 9/);
});

test('an error reply decodes into libvirt code, domain, message and the optional details', () => {
  const w = new XdrWriter();
  w.int(42).int(10).optional("Domain not found: no domain with matching name 'x'", (x, v) => x.string(v)).int(2)
    .bool(false) // dom
    .optional('x', (x, v) => x.string(v)).bool(false).bool(false)
    .int(-1).int(0)
    .bool(false); // net
  const r = new XdrReader(w.bytes());
  expect(readRemoteError(r)).toEqual({
    code: 42, domain: 10, message: "Domain not found: no domain with matching name 'x'", level: 2,
    dom: null, str1: 'x', str2: null, str3: null, int1: -1, int2: 0,
  });
  expect(r.remaining).toBe(0);
});
