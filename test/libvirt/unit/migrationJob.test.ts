import { systemClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/log.js';
import type { MigrationOutcome } from '../../../src/hypervisor/driver.js';
import { emptyJobStats } from '../../../src/hypervisor/libvirt/jobStats.js';
import { LibvirtMigrationJob, type MigrationJobDeps } from '../../../src/hypervisor/libvirt/migrationJob.js';
import { Proc, writeTypedParam, type TypedParam } from '../../../src/hypervisor/libvirt/protocol.js';
import { LibvirtRemote } from '../../../src/hypervisor/libvirt/remote.js';
import { domainRef, fail, FakeLibvirtd, ok, type Reply } from './fakeLibvirtd.js';

const MiB = 1024 * 1024;
const dom = domainRef('ns_vm', 4);

const u = (field: string, value: number): TypedParam => ({ field, type: 'ullong', value: BigInt(value) });
const jobReply = (type: number, params: TypedParam[]): Reply => ok((w) => { w.int(type); w.array(params, writeTypedParam); });
const runningStats = (iteration: number) => jobReply(2, [u('time_elapsed', 1000 * iteration), u('data_total', 64 * MiB), u('data_remaining', 2 * MiB), u('memory_iteration', iteration), u('memory_dirty_rate', 256), u('downtime', 2000)]);

/** A perform call the test ends when it likes. */
function gate() {
  let settle!: (r: Reply) => void;
  const reply = new Promise<Reply>((r) => { settle = r; });
  return { reply, settle };
}

let fake: FakeLibvirtd;
let remote: LibvirtRemote;
let settledCount: number;

beforeEach(async () => {
  fake = await FakeLibvirtd.start();
  remote = await LibvirtRemote.open(fake.socketPath);
  settledCount = 0;
});
afterEach(async () => {
  await remote.close();
  await fake.stop();
});

function deps(over: Partial<MigrationJobDeps> = {}): MigrationJobDeps {
  return {
    remote: async () => (remote.closed ? (remote = await LibvirtRemote.open(fake.socketPath)) : remote), dom, migrationId: 'm-1', node: 'node-a', clock: systemClock, pollIntervalMs: 20, log: silentLogger,
    bandwidthLimit: 1 * MiB, postCopyAllowed: false, mode: 'PreCopy', onSettled: () => { settledCount++; }, ...over,
  };
}

function start(perform: ReturnType<typeof gate>, over: Partial<MigrationJobDeps> = {}): LibvirtMigrationJob {
  fake.on(Proc.DOMAIN_MIGRATE_PERFORM3_PARAMS, () => perform.reply);
  return LibvirtMigrationJob.started(deps(over), remote.migratePerform3Params(dom, 'qemu+unix:///system?socket=/b', [], 11));
}

/** Job stats: live ones for flags 0, libvirt's record of the finished job for COMPLETED|KEEP_COMPLETED. */
function statsServe(live: () => Reply, record: () => Reply) {
  fake.on(Proc.DOMAIN_GET_JOB_STATS, (args) => {
    args.string(); args.fixedOpaque(16); args.int();
    return args.uint() === 3 ? record() : live();
  });
}

test('a migration whose perform call returns is completed, with the downtime libvirt recorded', async () => {
  let iteration = 0;
  statsServe(() => runningStats(++iteration), () => jobReply(3, [u('downtime', 42), u('data_total', 64 * MiB), u('data_remaining', 0), u('memory_iteration', 5)]));
  const perform = gate();
  const job = start(perform);
  await new Promise((r) => setTimeout(r, 100));
  const live = await job.stats();
  expect(live).toMatchObject({ phase: 'running', iteration: expect.any(Number), expectedDowntimeMs: 2000, dirtyRate: 256 * 4096, bandwidthLimit: 1 * MiB });
  expect(live.iteration).toBeGreaterThan(1); // polled meanwhile
  perform.settle(ok((w) => w.opaque(Buffer.alloc(0))));
  const outcome = await job.done;
  expect(outcome).toMatchObject({ status: 'completed', mode: 'PreCopy', downtimeMs: 42, stats: { phase: 'completed', iteration: 5, dataRemaining: 0 } });
  expect(await job.stats()).toBe(outcome.stats);
  expect(settledCount).toBe(1);
});

test('an abort we asked for ends as aborted with our reason; the same error unasked for keeps libvirt\'s words', async () => {
  statsServe(() => runningStats(2), () => jobReply(5, [u('data_remaining', 2 * MiB)]));
  const asked = gate();
  fake.on(Proc.DOMAIN_ABORT_JOB, () => {
    asked.settle(fail(78, "operation aborted: job 'migration out' canceled by client"));
    return ok();
  });
  const job = start(asked);
  await job.abort('VMIM deleted');
  expect(await job.done).toMatchObject({ status: 'aborted', reason: 'VMIM deleted', stats: { phase: 'aborted' } });

  const unasked = gate();
  const other = start(unasked, { migrationId: 'm-2' });
  unasked.settle(fail(78, "operation aborted: job 'migration out' canceled by client"));
  expect(await other.done).toMatchObject({ status: 'aborted', reason: "operation aborted: job 'migration out' canceled by client" });
  expect(settledCount).toBe(2);
});

test('a libvirt failure ends as failed with libvirt\'s message; controls after the end are refused', async () => {
  statsServe(() => runningStats(1), () => jobReply(4, []));
  const perform = gate();
  const job = start(perform);
  perform.settle(fail(9, 'operation failed: migration out job: unexpectedly failed'));
  expect(await job.done).toMatchObject({ status: 'failed', reason: 'operation failed: migration out job: unexpectedly failed', stats: { phase: 'failed' } });
  await expect(job.setBandwidth(MiB)).rejects.toThrow(/already ended \(failed\)/);
  await job.abort('late'); // nothing to abort any more
  expect(settledCount).toBe(1);
});

test('losing the perform call\'s connection while the job goes on in libvirtd: the job is watched again and completes', async () => {
  let finished = false;
  statsServe(() => (finished ? jobReply(0, []) : runningStats(1)), () => (finished ? jobReply(3, [u('downtime', 17)]) : jobReply(0, [])));
  const job = start(gate());
  await new Promise((r) => setTimeout(r, 50));
  fake.dropClients();
  await new Promise((r) => setTimeout(r, 300));
  expect((await job.stats()).phase).toBe('running');
  finished = true;
  expect(await job.done).toMatchObject({ status: 'completed', downtimeMs: 17 });
  expect(settledCount).toBe(1);
});

test('losing the connection and finding the domain gone is unknown, not failed: the guest may be on the target', async () => {
  statsServe(() => runningStats(1), () => jobReply(0, []));
  const job = start(gate());
  await new Promise((r) => setTimeout(r, 50));
  statsServe(() => fail(42, 'Domain not found: no domain with matching uuid'), () => fail(42, 'Domain not found'));
  fake.dropClients();
  const outcome = await job.done;
  expect(outcome.status).toBe('unknown');
  expect((outcome as Extract<MigrationOutcome, { status: 'unknown' }>).reason).toMatch(/domain is gone .* cannot tell whether the migration completed/);
  expect(settledCount).toBe(1);
});

test('losing the daemon for longer than the re-check window settles the job once, as unknown', async () => {
  statsServe(() => runningStats(1), () => jobReply(0, []));
  const job = start(gate(), { recheckWindowMs: 400 });
  await new Promise((r) => setTimeout(r, 50));
  await fake.stop();
  const outcome = await job.done;
  expect(outcome.status).toBe('unknown');
  expect((outcome as Extract<MigrationOutcome, { status: 'unknown' }>).reason).toMatch(/lost the connection to libvirtd on node-a .* could not reach it again within 0.4 s/);
  await new Promise((r) => setTimeout(r, 100));
  expect(settledCount).toBe(1);
  fake = await FakeLibvirtd.start(); // for afterEach
});

test('controls reach libvirt in its units, and post-copy is refused when it was not enabled', async () => {
  statsServe(() => runningStats(1), () => jobReply(0, []));
  const sent: Array<[string, bigint]> = [];
  const record = (name: string) => (args: { string(): string; fixedOpaque(n: number): Buffer; int(): number; uhyperBig(): bigint }) => {
    args.string(); args.fixedOpaque(16); args.int();
    sent.push([name, args.uhyperBig()]);
    return ok();
  };
  fake.on(Proc.DOMAIN_MIGRATE_SET_MAX_SPEED, record('speed'));
  fake.on(Proc.DOMAIN_MIGRATE_SET_MAX_DOWNTIME, record('downtime'));
  const perform = gate();
  const job = start(perform);
  await job.setBandwidth(50 * MiB + 123);
  await job.setBandwidth(0);
  await job.setMaxDowntime(500);
  expect(sent).toEqual([['speed', 50n], ['speed', 8796093022207n], ['downtime', 500n]]);
  expect((await job.stats()).bandwidthLimit).toBe(0);
  await expect(job.startPostCopy()).rejects.toThrow(/without post-copy enabled/);
  await expect(job.setMaxDowntime(0)).rejects.toThrow(/positive/);
  perform.settle(ok((w) => w.opaque(Buffer.alloc(0))));
  await job.done;
});

test('an attached job learns the end from libvirt\'s record once the live job is gone', async () => {
  let polls = 0;
  statsServe(
    () => (++polls < 4 ? runningStats(polls) : jobReply(0, [])),
    () => (polls < 6 ? jobReply(0, []) : jobReply(5, [{ field: 'errmsg', type: 'string', value: 'operation aborted: job canceled by client' }])),
  );
  const job = LibvirtMigrationJob.attached(deps({ migrationId: 'm-attached' }), emptyJobStats('running', { mode: 'PreCopy', bandwidthLimit: 0 }));
  const outcome = await job.done;
  expect(outcome).toMatchObject({ status: 'aborted', reason: 'operation aborted: job canceled by client', stats: { phase: 'aborted' } });
  expect(settledCount).toBe(1);
});
