import { CoordinationV1Api, KubeConfig, V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { startDevCluster, type DevCluster } from '../../../src/devcluster/index.js';
import { LeaderElector, type LeaseApi, type LeaderElectionOptions } from '../../../src/kube/leaderElection.js';

// Short timings so takeovers happen within a couple of seconds; the lease is whole seconds on the wire.
const LEASE_MS = 2000;
const RENEW_DEADLINE_MS = 1200;
const RETRY_MS = 150;

let cluster: DevCluster;
let api: CoordinationV1Api;
const electors: LeaderElector[] = [];
let leaseSeq = 0;

beforeAll(async () => {
  cluster = await startDevCluster();
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeConfigYaml());
  api = kc.makeApiClient(CoordinationV1Api);
});
afterEach(async () => {
  for (const e of electors.splice(0)) await e.stop();
});
afterAll(async () => {
  await cluster.close();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Candidate {
  elector: LeaderElector;
  id: string;
  events: string[];
}

function candidate(id: string, lease: string, overrides: Partial<LeaderElectionOptions> = {}): Candidate {
  const events: string[] = [];
  const elector = new LeaderElector({
    api,
    namespace: 'kube-system',
    name: lease,
    identity: id,
    leaseDurationMs: LEASE_MS,
    renewDeadlineMs: RENEW_DEADLINE_MS,
    retryPeriodMs: RETRY_MS,
    onStartedLeading: () => events.push('started'),
    onStoppedLeading: ({ released }) => events.push(released ? 'released' : 'stopped'),
    ...overrides,
  });
  electors.push(elector);
  return { elector, id, events };
}

const readLease = (name: string) => api.readNamespacedLease({ name, namespace: 'kube-system' });
const freshLease = () => `ferry-test-${++leaseSeq}`;

test('of two candidates started together on an absent lease, exactly one leads, and the lease names it', async () => {
  const lease = freshLease();
  const a = candidate('replica-a', lease);
  const b = candidate('replica-b', lease);
  a.elector.start();
  b.elector.start();
  const leader = await until('a leader', () => [a, b].find((c) => c.elector.isLeader()));
  // Watch for a while: never two leaders, and the same one all along.
  for (let i = 0; i < 25; i++) {
    expect([a, b].filter((c) => c.elector.isLeader()).map((c) => c.id)).toEqual([leader.id]);
    await sleep(50);
  }
  expect((await readLease(lease)).spec?.holderIdentity).toBe(leader.id);
  const other = leader === a ? b : a;
  expect(other.elector.leader()).toBe(leader.id);
  expect(other.events).toEqual([]);
});

test('when the leader dies without releasing, the standby takes over once the lease has expired, not before', async () => {
  const lease = freshLease();
  const a = candidate('replica-a', lease);
  a.elector.start();
  await until('a to lead', () => a.elector.isLeader());
  const b = candidate('replica-b', lease);
  b.elector.start();
  await sleep(300);
  expect(b.elector.isLeader()).toBe(false);

  const died = Date.now();
  await a.elector.stop(); // like a crash: the lease still names a
  expect(a.events).toEqual(['started', 'stopped']);
  expect((await readLease(lease)).spec?.holderIdentity).toBe('replica-a');
  await until('b to take over', () => b.elector.isLeader(), LEASE_MS + 3000);
  const waited = Date.now() - died;
  // b saw a's last renewal at most one renew interval before the crash, so the wait is at least the rest of the lease.
  expect(waited).toBeGreaterThan(LEASE_MS - RENEW_DEADLINE_MS / 2 - 100);
  expect(waited).toBeLessThan(LEASE_MS + RETRY_MS + 1000);
  const l = await readLease(lease);
  expect(l.spec?.holderIdentity).toBe('replica-b');
  expect(l.spec?.leaseTransitions).toBe(1);
});

test('a leader that releases on shutdown hands over at once, well within the lease duration', async () => {
  const lease = freshLease();
  const a = candidate('replica-a', lease);
  a.elector.start();
  await until('a to lead', () => a.elector.isLeader());
  const b = candidate('replica-b', lease);
  b.elector.start();
  await sleep(200);

  const released = Date.now();
  await a.elector.release();
  expect(a.events).toEqual(['started', 'released']);
  await until('b to take over', () => b.elector.isLeader());
  expect(Date.now() - released).toBeLessThan(LEASE_MS / 2);
  expect(b.events).toEqual(['started']);
});

test('a write by someone else between read and renew (a 409) is re-read, and the leader keeps the lease', async () => {
  const lease = freshLease();
  let interfere = false;
  let conflicts = 0;
  // Before the leader's next write lands, another client changes the lease (a label), as kubectl might.
  const meddling: LeaseApi = {
    readNamespacedLease: (p) => api.readNamespacedLease(p),
    createNamespacedLease: (p) => api.createNamespacedLease(p),
    async replaceNamespacedLease(p) {
      if (interfere) {
        interfere = false;
        const current = await api.readNamespacedLease({ name: p.name, namespace: p.namespace });
        await api.replaceNamespacedLease({ ...p, body: { ...current, metadata: { ...current.metadata, labels: { touched: 'yes' } } } });
        try {
          return await api.replaceNamespacedLease(p);
        } catch (err) {
          conflicts++;
          throw err;
        }
      }
      return api.replaceNamespacedLease(p);
    },
  };
  const a = candidate('replica-a', lease, { api: meddling });
  a.elector.start();
  await until('a to lead', () => a.elector.isLeader());
  const before = (await readLease(lease)).spec?.renewTime;
  interfere = true;
  await until('the meddling write', () => !interfere);
  await until('a renewal after the conflict', async () => {
    const l = await readLease(lease);
    return String(l.spec?.renewTime) !== String(before) && l.metadata?.labels?.['touched'] === 'yes' ? l : undefined;
  });
  expect(conflicts).toBe(1);
  expect(a.elector.isLeader()).toBe(true);
  expect(a.events).toEqual(['started']);
  expect((await readLease(lease)).spec?.holderIdentity).toBe('replica-a');
});

test('a leader that finds the lease taken by another holder steps down, and nobody takes it until that holder lets it expire', async () => {
  const lease = freshLease();
  const a = candidate('replica-a', lease);
  a.elector.start();
  await until('a to lead', () => a.elector.isLeader());
  const current = await readLease(lease);
  const intruder: V1Lease = { ...current, spec: { ...current.spec, holderIdentity: 'intruder', renewTime: new V1MicroTime() } };
  await api.replaceNamespacedLease({ name: lease, namespace: 'kube-system', body: intruder });
  await until('a to step down', () => !a.elector.isLeader(), RENEW_DEADLINE_MS + 1000);
  expect(a.events).toEqual(['started', 'stopped']);
  expect(a.elector.leader()).toBe('intruder');
  await sleep(LEASE_MS / 2);
  expect(a.elector.isLeader()).toBe(false);
  // The intruder never renews: after the lease duration a takes it back.
  await until('a to lead again', () => a.elector.isLeader(), LEASE_MS + 2000);
});

test('a leader cut off from the API server steps down within its renew deadline, before the lease can expire for others', async () => {
  const lease = freshLease();
  let cutOff = false;
  let lastRenewed = 0;
  const flaky: LeaseApi = {
    readNamespacedLease: (p) => (cutOff ? Promise.reject(new Error('connect ECONNREFUSED')) : api.readNamespacedLease(p)),
    createNamespacedLease: (p) => api.createNamespacedLease(p),
    async replaceNamespacedLease(p) {
      if (cutOff) throw new Error('connect ECONNREFUSED');
      const r = await api.replaceNamespacedLease(p);
      lastRenewed = Date.now();
      return r;
    },
  };
  let stoppedAt = 0;
  const a = candidate('replica-a', lease, { api: flaky, onStoppedLeading: () => (stoppedAt = Date.now()) });
  a.elector.start();
  await until('a to lead', () => a.elector.isLeader());
  await until('a renewal', () => lastRenewed > 0);
  cutOff = true;
  await until('a to step down', () => stoppedAt > 0, RENEW_DEADLINE_MS + 2000);
  expect(a.elector.isLeader()).toBe(false);
  expect(stoppedAt - lastRenewed).toBeLessThanOrEqual(RENEW_DEADLINE_MS + 100);
  expect(stoppedAt - lastRenewed).toBeLessThan(LEASE_MS);
});

test('a renewal whose answer is read only after a pause longer than the deadline does not make the lease look fresh', async () => {
  const lease = freshLease();
  let hold = false;
  let answeredAt = 0;
  // The renewal lands at once; its answer is read late, as by a process SIGSTOPped with the request in flight.
  const paused: LeaseApi = {
    readNamespacedLease: (p) => api.readNamespacedLease(p),
    createNamespacedLease: (p) => api.createNamespacedLease(p),
    async replaceNamespacedLease(p) {
      const r = await api.replaceNamespacedLease(p);
      if (hold) {
        hold = false;
        await sleep(RENEW_DEADLINE_MS + 300);
        answeredAt = Date.now();
      }
      return r;
    },
  };
  const a = candidate('replica-a', lease, { api: paused });
  a.elector.start();
  await until('a to lead', () => a.elector.holdsLease());
  hold = true;
  await until('the late answer', () => answeredAt > 0, RENEW_DEADLINE_MS + 2000);
  await sleep(0);
  // Counted from when it was sent, the renewal is already past the deadline: no writes, and a step-down at once.
  expect(a.elector.holdsLease()).toBe(false);
  expect(a.elector.isLeader()).toBe(false);
  // It stepped down (by its deadline or on reading the answer) and did not take the late answer for a new term.
  expect(a.events).toEqual(['started', 'stopped']);
});

test('timings that would let two leaders overlap are refused', () => {
  expect(() => new LeaderElector({ api, namespace: 'ns', name: 'l', identity: 'x', leaseDurationMs: 1000, renewDeadlineMs: 1000 })).toThrow(/renewDeadline < leaseDuration/);
});
