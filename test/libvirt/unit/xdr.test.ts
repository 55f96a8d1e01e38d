import fc from 'fast-check';
import { XdrError, XdrReader, XdrWriter } from '../../../src/hypervisor/libvirt/xdr.js';

const hex = (b: Buffer) => b.toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

describe('XDR encoding follows RFC 4506 byte for byte', () => {
  test.each([
    ['int -2', (w: XdrWriter) => w.int(-2), 'fffffffe'],
    ['unsigned int 1', (w: XdrWriter) => w.uint(1), '00000001'],
    ['unsigned int max', (w: XdrWriter) => w.uint(0xffffffff), 'ffffffff'],
    ['hyper -1', (w: XdrWriter) => w.hyper(-1), 'ffffffffffffffff'],
    ['unsigned hyper 2^40', (w: XdrWriter) => w.uhyper(2 ** 40), '0000010000000000'],
    ['unsigned hyper from bigint', (w: XdrWriter) => w.uhyper(0x0102030405060708n), '0102030405060708'],
    ['double 1.5', (w: XdrWriter) => w.double(1.5), '3ff8000000000000'],
    ['bool true', (w: XdrWriter) => w.bool(true), '00000001'],
    ['string padded to 4 bytes', (w: XdrWriter) => w.string('abc'), '00000003 61626300'],
    ['string needing no padding', (w: XdrWriter) => w.string('abcd'), '00000004 61626364'],
    ['utf-8 string counts bytes', (w: XdrWriter) => w.string('é'), '00000002 c3a90000'],
    ['empty opaque', (w: XdrWriter) => w.opaque(Buffer.alloc(0)), '00000000'],
    ['fixed opaque of 16 bytes has no length', (w: XdrWriter) => w.fixedOpaque(Buffer.alloc(16, 0xab), 16), 'ab'.repeat(16)],
    ['absent optional', (w: XdrWriter) => w.optional<string>(null, (x, v) => x.string(v)), '00000000'],
    ['present optional', (w: XdrWriter) => w.optional('x', (x, v) => x.string(v)), '00000001 00000001 78000000'],
    ['array of ints', (w: XdrWriter) => w.array([1, 2], (x, v) => x.int(v)), '00000002 00000001 00000002'],
  ])('%s', (_name, write, expected) => {
    const w = new XdrWriter(4);
    write(w);
    expect(hex(w.bytes())).toBe(expected.replace(/\s+/g, ''));
  });

  test('values outside a field range are refused rather than wrapped', () => {
    expect(() => new XdrWriter().int(2 ** 31)).toThrow(XdrError);
    expect(() => new XdrWriter().uint(-1)).toThrow(XdrError);
    expect(() => new XdrWriter().uhyper(-1)).toThrow(XdrError);
    expect(() => new XdrWriter().uhyper(2 ** 60)).toThrow(/safe integer/);
    expect(() => new XdrWriter().fixedOpaque(Buffer.alloc(3), 16)).toThrow(/16 bytes/);
  });
});

describe('XDR decoding', () => {
  test('reads what the layouts above describe', () => {
    const r = new XdrReader(bytes('fffffffe 00000003 61626300 0000010000000000 00000001 00000001 78000000 00000000 3ff8000000000000'));
    expect(r.int()).toBe(-2);
    expect(r.string()).toBe('abc');
    expect(r.uhyper()).toBe(2 ** 40);
    expect(r.optional((x) => x.string())).toBe('x');
    expect(r.optional((x) => x.string())).toBeNull();
    expect(r.double()).toBe(1.5);
    expect(() => r.end('test data')).not.toThrow();
  });

  test('truncated data, bad bools, oversized lengths and leftovers are errors, not garbage', () => {
    expect(() => new XdrReader(bytes('000000')).int()).toThrow(/truncated.*int/);
    expect(() => new XdrReader(bytes('00000005 6162')).string()).toThrow(/truncated/);
    expect(() => new XdrReader(bytes('00000002')).bool()).toThrow(/bad XDR bool 2/);
    expect(() => new XdrReader(bytes('7fffffff'), 1024).opaque()).toThrow(/exceeds the limit/);
    expect(() => new XdrReader(bytes('00100000')).array((x) => x.int(), 10)).toThrow(/array of 1048576 items/);
    const r = new XdrReader(bytes('00000001 00000002'));
    r.int();
    expect(() => r.end('a one-int struct')).toThrow(/4 unread bytes after decoding a one-int struct/);
  });

  test('whatever is written reads back the same', () => {
    fc.assert(fc.property(
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
      fc.string(),
      fc.option(fc.string(), { nil: null }),
      fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 })),
      fc.double({ noNaN: true }),
      (i, uh, h, s, opt, arr, d) => {
        const w = new XdrWriter(1);
        w.int(i).uhyper(uh).hyper(h).string(s).optional(opt, (x, v) => x.string(v)).array(arr, (x, v) => x.uint(v)).double(d);
        const buf = w.bytes();
        expect(buf.length % 4).toBe(0);
        const r = new XdrReader(buf);
        expect(r.int()).toBe(i);
        expect(r.uhyperBig()).toBe(uh);
        expect(r.hyperBig()).toBe(h);
        expect(r.string()).toBe(s);
        expect(r.optional((x) => x.string())).toBe(opt);
        expect(r.array((x) => x.uint())).toEqual(arr);
        expect(Object.is(r.double(), d)).toBe(true);
        r.end('round trip');
      },
    ));
  });
});
