import { mkdtempSync, rmSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SimDriver } from '../../../src/hypervisor/sim.js';
import { incomingIn, openJobs, parseJournal, replayJournal, SimJournal } from '../../../src/hypervisor/simJournal.js';
import { ManualClock } from '../../../src/util/clock.js';

describe('sim driver journal (ground truth that outlives the handler)', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-journal-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // Chaos seed 1000: a sim source "completed" into a target whose arrival had been cancelled, and the guest was lost.
  // A real source cannot: nothing listens there. Sim nodes in separate processes read each other's journals.
  describe('a source whose target does not listen', () => {
    const vm = { name: 'default_vm-1', memoryBytes: 2 ** 28, dirtyRate: 0, workingSet: 2 ** 20, zeroFraction: 0 };
    const nodes = (clock: ManualClock) => {
      const file = (n: string) => path.join(dir, `${n}.jsonl`);
      const listening = (n: string, d: string, m: string) => incomingIn(file(n), d, m);
      // The guest runs on node-1 (a journaled node knows its guests from its journal).
      new SimJournal(file('node-1')).append({ at: 0, node: 'node-1', domain: vm.name, state: 'running', memoryBytes: vm.memoryBytes });
      const source = new SimDriver({ node: 'node-1', clock, journal: new SimJournal(file('node-1')), targetListening: listening });
      const target = new SimDriver({ node: 'node-2', clock, journal: new SimJournal(file('node-2')), targetListening: listening });
      return { source, target };
    };
    const controls = { bandwidth: 1e9, maxDowntimeMs: 300, autoConverge: false, postCopy: false };

    it('refuses to start when the target holds no incoming domain of this migration', async () => {
      const clock = new ManualClock(1000);
      const { source, target } = nodes(clock);
      const { address } = await target.prepareIncoming(vm, 'm-1');
      await target.cancelIncoming(vm.name, 'm-1');
      await expect(source.migrate(vm.name, { node: 'node-2', address }, controls, 'm-1')).rejects.toThrow(/nothing listens/);
      expect(await source.listDomains()).toEqual([{ name: vm.name, state: 'running', memoryBytes: vm.memoryBytes }]);
    });

    it('fails before the switch-over when the target is cancelled mid-stream; the guest keeps running on the source', async () => {
      const clock = new ManualClock(1000);
      const { source, target } = nodes(clock);
      const { address } = await target.prepareIncoming(vm, 'm-1');
      const job = await source.migrate(vm.name, { node: 'node-2', address }, controls, 'm-1');
      await target.cancelIncoming(vm.name, 'm-1');
      for (let i = 0; i < 100; i++) clock.advance(100);
      const outcome = await job.done;
      expect(outcome).toMatchObject({ status: 'failed', reason: expect.stringMatching(/target was lost/) });
      expect(await source.listDomains()).toEqual([{ name: vm.name, state: 'running', memoryBytes: vm.memoryBytes }]);
    });

    it('completes as before when the target listens', async () => {
      const clock = new ManualClock(1000);
      const { source, target } = nodes(clock);
      const { address } = await target.prepareIncoming(vm, 'm-1');
      const job = await source.migrate(vm.name, { node: 'node-2', address }, controls, 'm-1');
      for (let i = 0; i < 100; i++) clock.advance(100);
      expect((await job.done).status).toBe('completed');
    });
  });

  it('a driver on the same journal finds the guests where the last one left them', async () => {
    const file = path.join(dir, 'node-1.jsonl');
    const clock = new ManualClock(1000);
    new SimJournal(file).append({ at: 0, node: 'node-1', domain: 'default_vm-1', state: 'running', memoryBytes: 2 ** 30 });
    const a = new SimDriver({ node: 'node-1', clock, journal: new SimJournal(file) });
    await a.ensureRunning({ name: 'default_vm-1', memoryBytes: 2 ** 30 });
    await a.prepareIncoming({ name: 'default_vm-2', memoryBytes: 2 ** 29 }, 'm-2');
    const b = new SimDriver({ node: 'node-1', clock, journal: new SimJournal(file) });
    expect(await b.listDomains()).toEqual([
      { name: 'default_vm-1', state: 'running', memoryBytes: 2 ** 30 },
      { name: 'default_vm-2', state: 'incoming', memoryBytes: 2 ** 29 },
    ]);
    // The incoming domain remembers its migration: finishing it works after the restart.
    expect(await b.finishIncoming('default_vm-2', 'm-2')).toBe('running');
  });

  it('records job start and end, and a restart ends the jobs its predecessor left open as lost', async () => {
    const file = path.join(dir, 'node-1.jsonl');
    const clock = new ManualClock(0);
    new SimJournal(file).append({ at: 0, node: 'node-1', domain: 'default_vm-1', state: 'running', memoryBytes: 2 ** 30 });
    const a = new SimDriver({ node: 'node-1', clock, journal: new SimJournal(file) });
    await a.ensureRunning({ name: 'default_vm-1', memoryBytes: 2 ** 30 });
    const job = await a.migrate('default_vm-1', { node: 'node-2', address: 'sim://node-2/m-1' }, { bandwidth: 1e8, maxDowntimeMs: 300, autoConverge: false, postCopy: false }, 'm-1');
    await job.setBandwidth(5e7);
    const j = new SimJournal(file);
    expect(j.read().filter((e) => e.job).map((e) => [e.job, e.bandwidth, e.targetNode])).toEqual([['start', 1e8, 'node-2'], ['bandwidth', 5e7, undefined]]);
    expect(openJobs(j.read())).toHaveLength(1);
    // The process dies here (no close): a new driver on the journal closes the job.
    const b = new SimDriver({ node: 'node-1', clock, journal: new SimJournal(file) });
    expect(openJobs(j.read())).toEqual([]);
    expect(j.read().at(-1)).toMatchObject({ job: 'end', outcome: 'lost', migrationId: 'm-1' });
    expect(await b.listDomains()).toEqual([{ name: 'default_vm-1', state: 'running', memoryBytes: 2 ** 30 }]);
    await a.close();
  });

  it('skips a torn last line', () => {
    const file = path.join(dir, 'x.jsonl');
    const j = new SimJournal(file);
    j.append({ at: 1, node: 'n', domain: 'd', state: 'running' });
    appendFileSync(file, '{"at":2,"node":"n","dom');
    expect(parseJournal('{"at":1}\nnot json\n')).toEqual([]);
    expect([...replayJournal(j.read()).keys()]).toEqual(['d']);
  });
});

describe('sim driver with a journal: every guest is known', () => {
  it('refuses to boot a guest that is not on the node instead of starting an empty second one', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-journal-'));
    try {
      const d = new SimDriver({ node: 'node-1', journal: new SimJournal(path.join(dir, 'n.jsonl')) });
      await expect(d.ensureRunning({ name: 'default_vm-9', memoryBytes: 2 ** 30 })).rejects.toThrow('sim node node-1: no domain default_vm-9 on this node');
      expect(await d.listDomains()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
