import { RpcConnection } from '../../../src/hypervisor/libvirt/connection.js';
import { ConnectionClosedError, LibvirtError } from '../../../src/hypervisor/libvirt/errors.js';
import { encodeMessage, FEATURE_PROGRAM_KEEPALIVE, HEADER_BYTES, KEEPALIVE_PROGRAM, MessageStatus, MessageType, Proc, REMOTE_PROGRAM, writeTypedParam } from '../../../src/hypervisor/libvirt/protocol.js';
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
  expect(fake.calls).toEqual([Proc.CONNECT_OPEN, Proc.CONNECT_SUPPORTS_FEATURE, Proc.CONNECT_GET_HOSTNAME, Proc.CONNECT_GET_URI, Proc.CONNECT_CLOSE]);
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

describe('framing (L1)', () => {
  test('a large reply arriving in many small chunks is put together once, and correctly', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
    fake.on(Proc.DOMAIN_GET_XML_DESC, () => ok((w) => w.string(big.toString('latin1'))));
    const remote = await LibvirtRemote.open(fake.socketPath);
    const xml = await remote.getXmlDesc(domainRef('d'));
    expect(Buffer.from(xml, 'latin1').equals(big)).toBe(true);
    await remote.close();
  });

  test('a reply with a status this client does not speak fails its call instead of leaving it waiting', async () => {
    const conn = await RpcConnection.connect(fake.socketPath);
    fake.on(Proc.CONNECT_GET_HOSTNAME, () => ok());
    // Answer the call ourselves with status CONTINUE (a stream message), which no call of ours expects.
    fake.on(Proc.CONNECT_GET_URI, () => new Promise(() => undefined));
    const call = conn.call(Proc.CONNECT_GET_URI, 'CONNECT_GET_URI');
    await sleep(30);
    const serial = fake.serials.at(-1)!;
    fake.broadcast(encodeMessage({ program: REMOTE_PROGRAM, version: 1, procedure: Proc.CONNECT_GET_URI, type: MessageType.REPLY, serial, status: MessageStatus.CONTINUE }, Buffer.alloc(0)));
    await expect(call).rejects.toThrow(/CONNECT_GET_URI: libvirtd replied with status 2/);
    await conn.close();
  });

  test('a frame of impossible length fails every call waiting on the connection', async () => {
    const conn = await RpcConnection.connect(fake.socketPath);
    fake.on(Proc.CONNECT_GET_URI, () => new Promise(() => undefined));
    const call = conn.call(Proc.CONNECT_GET_URI, 'CONNECT_GET_URI');
    await sleep(30);
    const garbage = Buffer.alloc(8);
    garbage.writeUInt32BE(HEADER_BYTES - 1, 0);
    fake.broadcast(garbage);
    await expect(call).rejects.toThrow(/impossible length 27/);
    expect(conn.closed).toBe(true);
  });

  test('when serials come round, a serial still waiting for its reply is skipped', async () => {
    let releaseFirst!: () => void;
    const first = new Promise<void>((r) => { releaseFirst = r; });
    fake.on(Proc.CONNECT_GET_HOSTNAME, async () => { await first; return ok((w) => w.string('first')); });
    fake.on(Proc.CONNECT_GET_URI, () => ok((w) => w.string('later')));
    const conn = await RpcConnection.connect(fake.socketPath);
    const a = conn.call(Proc.CONNECT_GET_HOSTNAME, 'CONNECT_GET_HOSTNAME'); // serial 1, waits
    conn.serialForTest = 0xffffffff;
    const b = conn.call(Proc.CONNECT_GET_URI, 'CONNECT_GET_URI'); // 0xffffffff
    const c = conn.call(Proc.CONNECT_GET_URI, 'CONNECT_GET_URI'); // 1 is taken: 2
    expect((await b).string()).toBe('later');
    expect((await c).string()).toBe('later');
    releaseFirst();
    expect((await a).string()).toBe('first');
    expect(fake.serials).toEqual([1, 0xffffffff, 2]);
    await conn.close();
  });
});

describe('keepalive (M10)', () => {
  const fast = { intervalMs: 50, count: 3 };
  const supportsKeepalive = () => fake.on(Proc.CONNECT_SUPPORTS_FEATURE, (args) => ok((w) => w.int(args.int() === FEATURE_PROGRAM_KEEPALIVE ? 1 : 0)));

  test('negotiated when the daemon supports it; its PINGs are answered and ours keep a quiet connection alive', async () => {
    supportsKeepalive();
    fake.on(Proc.CONNECT_GET_HOSTNAME, () => ok((w) => w.string('host')));
    const remote = await LibvirtRemote.open(fake.socketPath, undefined, { keepalive: fast });
    expect(remote.keepalive).toBe(true);
    fake.ping();
    await sleep(400);
    expect(fake.keepalives).toContain('PONG');
    expect(fake.keepalives.filter((k) => k === 'PING').length).toBeGreaterThan(2);
    expect(remote.closed).toBe(false);
    expect(await remote.hostname()).toBe('host');
    await remote.close();
  });

  test('a daemon that stops answering is given up after count intervals, and a blocked perform call fails', async () => {
    supportsKeepalive();
    fake.on(Proc.DOMAIN_MIGRATE_PERFORM3_PARAMS, () => new Promise(() => undefined));
    const remote = await LibvirtRemote.open(fake.socketPath, undefined, { keepalive: fast });
    const perform = remote.migratePerform3Params(domainRef('d'), 'qemu+unix:///system?socket=/x', [], 11);
    fake.hung = true;
    await expect(perform).rejects.toThrow(/did not answer keepalive for 0.15 s/);
    expect(remote.closed).toBe(true);
  });

  test('a daemon that does not know the feature gets no keepalive', async () => {
    const remote = await LibvirtRemote.open(fake.socketPath, undefined, { keepalive: fast });
    expect(remote.keepalive).toBe(false);
    await sleep(200);
    expect(fake.keepalives).toEqual([]);
    expect(remote.closed).toBe(false);
    await remote.close();
  });
});
