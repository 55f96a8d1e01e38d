import { InvariantChecker, type Limits } from '../../src/chaos/invariants.js';
import type { SimJournalEntry } from '../../src/hypervisor/simJournal.js';
import type { VirtualMachineInstanceMigration } from '../../src/api/vmim.js';

const limits: Limits = { cluster: 2, outboundPerNode: 1, inboundPerNode: 1, nicCapacity: () => 1000, bandwidthBudget: 1500 };
const checker = () => new InvariantChecker({ limits, migrationBoundMs: 10_000, transitBoundMs: 2000 });
const at = (t: number, node: string, domain: string, state: SimJournalEntry['state'], extra: Partial<SimJournalEntry> = {}): SimJournalEntry => ({ at: t, node, domain, state, ...extra });
const vmim = (phase: string, phases: string[] = [], ms: Record<string, unknown> = {}): VirtualMachineInstanceMigration => ({
  metadata: { name: 'm', namespace: 'default', uid: 'u1' },
  spec: { vmiName: 'vm-1' },
  status: { phase: phase as never, phaseTransitionTimestamps: phases.map((p) => ({ phase: p, phaseTransitionTimestamp: 'x' })), migrationState: ms },
});

describe('invariant checker', () => {
  it('accepts a clean pre-copy migration: running, incoming, switchover, running on the target', () => {
    const c = checker();
    for (const e of [
      at(0, 'n1', 'd', 'running'),
      at(1, 'n2', 'd', 'incoming', { migrationId: 'm' }),
      at(2, 'n1', 'd', 'running', { job: 'start', targetNode: 'n2', bandwidth: 500, migrationId: 'm' }),
      at(3, 'n1', 'd', 'shutoff', { job: 'end', migrationId: 'm' }),
      at(3, 'n1', 'd', 'shutoff'),
      at(4, 'n2', 'd', 'running'),
      at(5, 'n1', 'd', 'gone'),
    ]) c.journal(e);
    c.tick(100);
    expect(c.violations).toEqual([]);
    expect(c.runningNode('d')).toBe('n2');
  });

  it('reports two running copies at the instant they exist', () => {
    const c = checker();
    c.journal(at(0, 'n1', 'd', 'running'));
    c.journal(at(7, 'n2', 'd', 'running'));
    expect(c.violations).toMatchObject([{ invariant: 'single-copy', at: 7, subject: 'd' }]);
  });

  it('reports a guest that runs nowhere and is not in transit, and one in transit for too long', () => {
    const c = checker();
    c.journal(at(0, 'n1', 'd', 'running'));
    c.journal(at(1, 'n1', 'd', 'gone'));
    expect(c.violations.map((v) => v.invariant)).toEqual(['guest-lost']);
    const t = checker();
    t.journal(at(0, 'n1', 'e', 'running'));
    t.journal(at(1, 'n2', 'e', 'incoming'));
    t.journal(at(2, 'n1', 'e', 'paused'));
    t.tick(1500);
    expect(t.violations).toEqual([]);
    t.tick(2100);
    expect(t.violations.map((v) => v.invariant)).toEqual(['guest-lost']);
  });

  it('extends the transit bound by the time faults held things up', () => {
    const c = checker();
    c.journal(at(0, 'n1', 'e', 'running'));
    c.journal(at(1, 'n2', 'e', 'incoming'));
    c.journal(at(2, 'n1', 'e', 'shutoff'));
    const h = c.holdUp(500);
    c.holdUpEnded(h, 3500);
    c.tick(4500);
    expect(c.violations).toEqual([]);
    c.tick(5100);
    expect(c.violations).toHaveLength(1);
  });

  it('checks parallel limits and bandwidth against the jobs that really run', () => {
    const c = checker();
    c.journal(at(0, 'n1', 'a', 'running', { job: 'start', targetNode: 'n2', bandwidth: 600, migrationId: '1' }));
    c.journal(at(1, 'n1', 'b', 'running', { job: 'start', targetNode: 'n3', bandwidth: 600, migrationId: '2' }));
    expect(c.violations.map((v) => v.invariant).sort()).toEqual(['bandwidth', 'parallel-limit']);
    const d = checker();
    d.journal(at(0, 'n1', 'a', 'running', { job: 'start', targetNode: 'n2', bandwidth: 600, migrationId: '1' }));
    d.nodeDied('n1', 1);
    d.journal(at(2, 'n3', 'b', 'running', { job: 'start', targetNode: 'n4', bandwidth: 600, migrationId: '2' }));
    expect(d.violations).toEqual([]);
  });

  it('reports phases going backwards, repeated, or recorded twice', () => {
    const c = checker();
    c.vmim(vmim('Running', ['Pending', 'Running']), 1);
    c.vmim(vmim('Scheduling', ['Pending', 'Running', 'Scheduling']), 2);
    // One report per invariant and migration: the first is the evidence.
    expect(c.violations.map((v) => v.invariant)).toEqual(['phase-order']);
    const d = checker();
    d.vmim(vmim('Running', ['Pending', 'Running', 'Running']), 1);
    expect(d.violations.map((v) => v.invariant)).toEqual(['phase-once']);
  });

  it('reports a Failed migration whose guest is not running on its source', () => {
    const c = checker();
    c.journal(at(0, 'n1', 'default_vm-1', 'running'));
    c.journal(at(1, 'n2', 'default_vm-1', 'incoming'));
    c.journal(at(2, 'n1', 'default_vm-1', 'paused'));
    c.vmim(vmim('Failed', ['Pending', 'Running', 'Failed'], { sourceNode: 'n1', failureReason: 'post-copy failed' }), 3);
    expect(c.violations).toMatchObject([{ invariant: 'failed-on-source', subject: 'default/m' }]);
    const ok = checker();
    ok.journal(at(0, 'n1', 'default_vm-1', 'running'));
    ok.vmim(vmim('Failed', ['Pending', 'Failed'], { sourceNode: 'n1' }), 3);
    expect(ok.violations).toEqual([]);
  });

  it('bounds the time from leaving Pending to a final phase, plus hold-ups', () => {
    const c = checker();
    c.vmim(vmim('Scheduling', ['Pending', 'Scheduling']), 1000);
    c.holdUp(2000, 5000);
    c.tick(13_900);
    expect(c.violations).toEqual([]);
    c.tick(14_100);
    expect(c.violations.map((v) => v.invariant)).toEqual(['bounded-time']);
  });
});

describe('invariant checker: a copy in transit that is dropped', () => {
  it('reports the guest lost when the target copy goes while the source has let go, and a fresh boot afterwards', () => {
    const c = checker();
    c.journal(at(0, 'n1', 'd', 'running'));
    c.journal(at(1, 'n2', 'd', 'incoming', { migrationId: 'm' }));
    c.journal(at(1, 'n1', 'd', 'running', { job: 'start', targetNode: 'n2', bandwidth: 100, migrationId: 'm' }));
    c.journal(at(2, 'n1', 'd', 'running', { job: 'end', outcome: 'completed', migrationId: 'm' }));
    c.journal(at(2, 'n1', 'd', 'shutoff'));
    c.journal(at(2, 'n1', 'd', 'gone'));
    expect(c.violations).toEqual([]);
    c.journal(at(3, 'n2', 'd', 'gone'));
    expect(c.violations).toMatchObject([{ invariant: 'guest-lost', at: 3 }]);
    const d = checker();
    d.journal(at(0, 'n1', 'e', 'running'));
    d.journal(at(1, 'n1', 'e', 'gone'));
    d.journal(at(9, 'n1', 'e', 'running'));
    expect(d.violations.map((v) => v.message)).toEqual(['e runs nowhere and is not being migrated (on no node)', 'e was booted afresh on n1 after it had been lost']);
  });
});
