import { RpcConnection } from '../../../src/hypervisor/libvirt/connection.js';
import { ConnectionClosedError, LibvirtError } from '../../../src/hypervisor/libvirt/errors.js';
import { encodeMessage, KEEPALIVE_PROGRAM, MessageType, Proc, REMOTE_PROGRAM, writeTypedParam } from '../../../src/hypervisor/libvirt/protocol.js';
import { LibvirtRemote } from '../../../src/hypervisor/libvirt/remote.js';
import { domainRef, domainReply, fail, FakeLibvirtd, ok } from './fakeLibvirtd.js';

let fake: FakeLibvirtd;
beforeEach(async () => { fake = await FakeLibvirtd.start(); });
afterEach(async () => { await fake.stop(); });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('calls in flight at the same time are answered by serial, whatever the order of the replies', async () => {
  let releaseSlow!: () => void;
  const slowGate = new Promise<void>((r) => { releaseSlow = r; });
  fake.on(Proc.CONNECT_GET_HOSTNAME, async () => { await slowGate; return ok((w) => w.string('slow')); });
  fake.on(Proc.CONNECT_GET_URI, () => ok((w) => w.string('qemu:///system')));
  const remote = await LibvirtRemote.open(fake.socketPath);
  const order: string[] = [];
  const slow = remote.hostname().then((v) => { order.push(v); return v; });
  const fast = remote.uri().then((v) => { order.push(v); return v; });
  expect(await fast).toBe('qemu:///system');
  releaseSlow();
  expect(await slow).toBe('slow');
  expect(order).toEqual(['qemu:///system', 'slow']);
  await remote.close();
  expect(fake.calls).toEqual([Proc.CONNECT_OPEN, Proc.CONNECT_GET_HOSTNAME, Proc.CONNECT_GET_URI, Proc.CONNECT_CLOSE]);
});

test('an error reply rejects only its own call, with libvirt code and message', async () => {
  fake.on(Proc.DOMAIN_LOOKUP_BY_NAME, (args) => {
    const name = args.string();
    return name === 'ns_vm' ? domainReply(domainRef('ns_vm', 3)) : fail(42, `Domain not found: no domain with matching name '${name}'`);
  });
  const remote = await LibvirtRemote.open(fake.socketPath);
  const [missing, found] = await Promise.allSettled([remote.lookupDomainByName('nope'), remote.lookupDomainByName('ns_vm')]);
  expect(found).toEqual({ status: 'fulfilled', value: domainRef('ns_vm', 3) });
  expect(missing.status).toBe('rejected');
  const err = (missing as PromiseRejectedResult).reason as LibvirtError;
  expect(err).toBeInstanceOf(LibvirtError);
  expect(err.code).toBe(42);
  expect(err.message).toBe("DOMAIN_LOOKUP_BY_NAME: Domain not found: no domain with matching name 'nope'");
  await remote.close();
});

test('replies split into single bytes and events or keepalives in between are handled', async () => {
  fake.on(Proc.DOMAIN_GET_JOB_STATS, () => ok((w) => {
    w.int(2);
    w.array([
      { field: 'time_elapsed', type: 'ullong' as const, value: 6019n },
      { field: 'memory_dirty_rate', type: 'ullong' as const, value: 483n },
    ], writeTypedParam);
  }));
  const conn = await RpcConnection.connect(fake.socketPath);
  // An unsolicited event and a keepalive ping: neither is a reply to anything.
  fake.broadcast(encodeMessage({ program: REMOTE_PROGRAM, version: 1, procedure: 107, type: MessageType.MESSAGE, serial: 0, status: 0 }, Buffer.alloc(8)));
  fake.broadcast(encodeMessage({ program: KEEPALIVE_PROGRAM, version: 1, procedure: 1, type: MessageType.MESSAGE, serial: 0, status: 0 }, Buffer.alloc(0)));
  const remote = await LibvirtRemote.open(fake.socketPath);
  const stats = await remote.getJobStats(domainRef('d'));
  expect(stats.type).toBe(2);
  expect(stats.params.map((p) => [p.field, p.value])).toEqual([['time_elapsed', 6019n], ['memory_dirty_rate', 483n]]);
  await remote.close();
  await conn.close();
});

test('when the daemon goes away, calls in flight and later calls fail with ConnectionClosedError', async () => {
  fake.on(Proc.DOMAIN_MIGRATE_PERFORM3_PARAMS, () => new Promise(() => undefined)); // blocks, like a migration
  const remote = await LibvirtRemote.open(fake.socketPath);
  const closed: Error[] = [];
  remote.onClose((e) => closed.push(e));
  const perform = remote.migratePerform3Params(domainRef('d'), 'qemu+unix:///system?socket=/x', [], 11);
  await sleep(50);
  fake.dropClients();
  await expect(perform).rejects.toThrow(ConnectionClosedError);
  await expect(perform).rejects.toThrow(/DOMAIN_MIGRATE_PERFORM3_PARAMS: libvirtd socket .* closed/);
  expect(remote.closed).toBe(true);
  expect(closed).toHaveLength(1);
  await expect(remote.hostname()).rejects.toThrow(ConnectionClosedError);
});

test('connecting to a socket nobody listens on fails with the path in the message', async () => {
  await expect(RpcConnection.connect('/nonexistent/libvirt-sock')).rejects.toThrow(/cannot connect to libvirtd at \/nonexistent\/libvirt-sock/);
});

test('the perform call carries the domain, destination URI, typed params, an empty cookie and the flags', async () => {
  let seen: unknown;
  fake.on(Proc.DOMAIN_MIGRATE_PERFORM3_PARAMS, (args) => {
    const dom = { name: args.string(), uuid: args.fixedOpaque(16), id: args.int() };
    const dest = args.optional((x) => x.string());
    const params = args.array((x) => [x.string(), x.int(), x.string()]);
    const cookie = args.opaque();
    const flags = args.uint();
    args.end('perform3 params args');
    seen = { dom: dom.name, dest, params, cookie: cookie.length, flags };
    return ok((w) => w.opaque(Buffer.alloc(0)));
  });
  const remote = await LibvirtRemote.open(fake.socketPath);
  await remote.migratePerform3Params(domainRef('ns_vm'), 'qemu+unix:///system?socket=/b', [{ field: 'migrate_uri', type: 'string', value: 'tcp://127.0.0.1:49152' }], 11);
  expect(seen).toEqual({ dom: 'ns_vm', dest: 'qemu+unix:///system?socket=/b', params: [['migrate_uri', 7, 'tcp://127.0.0.1:49152']], cookie: 0, flags: 11 });
  await remote.close();
});

test('an ordinary call gives up after the call timeout, the migration call waits as long as the migration', async () => {
  fake.on(Proc.CONNECT_GET_HOSTNAME, () => new Promise(() => undefined));
  fake.on(Proc.DOMAIN_MIGRATE_PERFORM3_PARAMS, () => new Promise(() => undefined));
  fake.on(Proc.CONNECT_GET_URI, () => ok((w) => w.string('qemu:///system')));
  const remote = await LibvirtRemote.open(fake.socketPath, 'qemu:///system', { callTimeoutMs: 50 });
  let performSettled = false;
  remote.migratePerform3Params(domainRef('d'), 'qemu+unix:///system?socket=/x', [], 11).then(() => { performSettled = true; }, () => { performSettled = true; });
  await expect(remote.hostname()).rejects.toThrow(/CONNECT_GET_HOSTNAME: libvirtd at .* did not answer within 50 ms/);
  await sleep(100);
  expect(performSettled).toBe(false);
  expect(await remote.uri()).toBe('qemu:///system'); // the connection is still usable
  await remote.close();
  expect(performSettled).toBe(true);
});
