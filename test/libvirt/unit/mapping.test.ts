import { formatAddress, parseAddress, unixSocketUri } from '../../../src/hypervisor/libvirt/address.js';
import { bandwidthToMiB, mibToBandwidth } from '../../../src/hypervisor/libvirt/bandwidth.js';
import { domainStateOf, inPostCopy, mayHoldOnlyCopy } from '../../../src/hypervisor/libvirt/domainState.js';
import { toJobStats } from '../../../src/hypervisor/libvirt/jobStats.js';
import { hasLocalWritableDisk, migrationFlags, migrationParams } from '../../../src/hypervisor/libvirt/migrationFlags.js';
import { DomainStateCode as S, PausedReason as P, RunningReason as R, UNLIMITED_BANDWIDTH_MIB } from '../../../src/hypervisor/libvirt/protocol.js';

const MiB = 1024 * 1024;
const ctl = { bandwidth: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false };

describe('job statistics from libvirt', () => {
  // Values as `virsh domjobinfo` showed them for the dirtying lab guest at 2 MiB/s.
  const running = {
    type: 2,
    params: {
      operation: 5, time_elapsed: 6019, data_total: 67502080, data_processed: 11522867, data_remaining: 1212416,
      memory_total: 67502080, memory_processed: 11522867, memory_remaining: 1212416, memory_bps: 2133852,
      memory_dirty_rate: 483, memory_page_size: 4096, memory_iteration: 3, downtime: 1965, setup_time: 1,
    },
  };

  test('a running job reports progress, the dirty rate in bytes/s and the expected downtime', () => {
    expect(toJobStats(running, { mode: 'PreCopy', bandwidthLimit: 2 * MiB })).toEqual({
      phase: 'running', mode: 'PreCopy', elapsedMs: 6019,
      dataTotal: 67502080, dataProcessed: 11522867, dataRemaining: 1212416,
      memoryBandwidth: 2133852, dirtyRate: 483 * 4096, iteration: 3, autoConvergeThrottle: 0,
      bandwidthLimit: 2 * MiB, expectedDowntimeMs: 1965,
    });
  });

  test('a completed job reports its measured downtime, not an expectation', () => {
    const done = { type: 3, params: { ...running.params, data_remaining: 0, downtime: 62, memory_dirty_rate: 0, auto_converge_throttle: 30 } };
    const s = toJobStats(done, { mode: 'PreCopy', bandwidthLimit: 0 });
    expect(s).toMatchObject({ phase: 'completed', downtimeMs: 62, dataRemaining: 0, autoConvergeThrottle: 30 });
    expect(s.expectedDowntimeMs).toBeUndefined();
  });

  test('job types map to phases and an explicit phase wins', () => {
    expect(toJobStats({ type: 4, params: {} }, { mode: 'PreCopy', bandwidthLimit: 0 }).phase).toBe('failed');
    expect(toJobStats({ type: 5, params: {} }, { mode: 'PreCopy', bandwidthLimit: 0 }).phase).toBe('aborted');
    expect(toJobStats({ type: 3, params: {} }, { mode: 'PostCopy', bandwidthLimit: 0 }, 'failed')).toMatchObject({ phase: 'failed', mode: 'PostCopy' });
  });
});

describe('the target address', () => {
  test('carries the target daemon URI and the QEMU migration URI and parses back', () => {
    const a = { destUri: 'qemu+unix:///system?socket=/tmp/l b/B/run/libvirt-sock', migrateUri: 'tcp://127.0.0.1:49152' };
    const s = formatAddress(a);
    expect(s.startsWith('libvirt-p2p:?dest=')).toBe(true);
    expect(parseAddress(s)).toEqual(a);
  });

  test('an address from another driver or a mangled one is refused with the address in the message', () => {
    expect(() => parseAddress('sim://node-b/ns_vm')).toThrow(/not a libvirt peer-to-peer address.*sim:\/\/node-b/);
    expect(() => parseAddress('libvirt-p2p:?migrate=tcp%3A%2F%2Fh%3A1')).toThrow(/no usable dest URI/);
    expect(() => parseAddress('libvirt-p2p:?dest=qemu%3A%2F%2F%2Fsystem&migrate=h%3A1')).toThrow(/no usable migrate URI/);
  });

  test('a daemon on a unix socket is reached with a qemu+unix URI', () => {
    expect(unixSocketUri('/tmp/x/B/run/libvirt-sock')).toBe('qemu+unix:///system?socket=/tmp/x/B/run/libvirt-sock');
    expect(unixSocketUri('/tmp/a b/sock')).toBe('qemu+unix:///system?socket=/tmp/a%20b/sock');
  });
});

describe('migration flags and parameters (KubeVirt semantics)', () => {
  const LIVE = 1, P2P = 2, PERSIST = 8, UNSAFE = 512, AUTO_CONVERGE = 8192, POSTCOPY = 32768;

  test('always live, peer-to-peer and persistent on the target; the rest only when asked for', () => {
    expect(migrationFlags(ctl, { localDisk: false })).toBe(LIVE | P2P | PERSIST);
    expect(migrationFlags({ ...ctl, autoConverge: true, postCopy: true }, { localDisk: true }))
      .toBe(LIVE | P2P | PERSIST | AUTO_CONVERGE | POSTCOPY | UNSAFE);
  });

  test('the starting bandwidth goes in MiB/s, rounded down but never below 1; unlimited sends none', () => {
    expect(migrationParams('tcp://h:1', ctl)).toEqual([{ field: 'migrate_uri', type: 'string', value: 'tcp://h:1' }]);
    expect(migrationParams('tcp://h:1', { ...ctl, bandwidth: 3.9 * MiB })[1]).toEqual({ field: 'bandwidth', type: 'ullong', value: 3n });
    expect(bandwidthToMiB(100)).toBe(1);
    expect(bandwidthToMiB(0)).toBe(UNLIMITED_BANDWIDTH_MIB);
    expect(() => bandwidthToMiB(-1)).toThrow(/non-negative/);
    expect(mibToBandwidth(UNLIMITED_BANDWIDTH_MIB)).toBe(0);
    expect(mibToBandwidth(20)).toBe(20 * MiB);
  });

  test('only a writable, unshared disk with a source makes the migration unsafe', () => {
    const disk = (inner: string) => `<domain><devices><disk type='file' device='disk'>${inner}</disk></devices></domain>`;
    expect(hasLocalWritableDisk(disk(`<source file='/x.img'/><target dev='hda'/>`))).toBe(true);
    expect(hasLocalWritableDisk(disk(`<source file='/x.iso'/><readonly/>`))).toBe(false);
    expect(hasLocalWritableDisk(disk(`<source file='/x.img'/><shareable/>`))).toBe(false);
    expect(hasLocalWritableDisk(disk(`<target dev='hdc'/>`))).toBe(false);
    expect(hasLocalWritableDisk('<domain><devices/></domain>')).toBe(false);
  });
});

describe('domain states', () => {
  test('a domain paused for migration is incoming on the target but paused on the source', () => {
    expect(domainStateOf(S.PAUSED, P.MIGRATION, false)).toBe('incoming');
    expect(domainStateOf(S.PAUSED, P.MIGRATION, true)).toBe('paused');
    expect(domainStateOf(S.RUNNING, R.POSTCOPY, false)).toBe('running');
    expect(domainStateOf(S.PAUSED, P.POSTCOPY, true)).toBe('paused');
    expect(domainStateOf(S.SHUTOFF, 4, false)).toBe('shutoff');
  });

  test('only a domain still waiting for memory is safe to destroy', () => {
    expect(mayHoldOnlyCopy(S.PAUSED, P.MIGRATION)).toBe(false);
    expect(mayHoldOnlyCopy(S.SHUTOFF, 0)).toBe(false);
    expect(mayHoldOnlyCopy(S.RUNNING, R.MIGRATED)).toBe(true);
    expect(mayHoldOnlyCopy(S.RUNNING, R.POSTCOPY)).toBe(true);
    expect(mayHoldOnlyCopy(S.PAUSED, P.POSTCOPY_FAILED)).toBe(true);
    expect(mayHoldOnlyCopy(S.PAUSED, P.USER)).toBe(true);
  });

  test('post-copy is recognised on both sides', () => {
    expect(inPostCopy(S.PAUSED, P.POSTCOPY)).toBe(true);
    expect(inPostCopy(S.RUNNING, R.POSTCOPY)).toBe(true);
    expect(inPostCopy(S.PAUSED, P.MIGRATION)).toBe(false);
  });
});
