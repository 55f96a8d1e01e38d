import { TargetRole } from '../../../src/handler/targetRole.js';
import { SimDriver } from '../../../src/hypervisor/sim.js';
import { ManualClock } from '../../../src/util/clock.js';
import { silentLogger } from '../../../src/util/log.js';

/**
 * Chaos campaign seed 1000: a target handler restarted after preparing an
 * arrival; the migration then failed and its abort found no record, so the
 * incoming domain stayed on the target node for good. An abort now drops an
 * incoming domain of that migration even without a record, and nothing else.
 */
describe('target role: abort of an arrival prepared before a restart', () => {
  const vm = { name: 'default_vm-1', memoryBytes: 2 ** 28 };
  const abort = (migrationUid: string) => ({ migrationUid, attempt: 1, vmi: 'default/vm-1', reason: 'migration failed' });
  const restarted = async (prepare: (d: SimDriver) => Promise<unknown>) => {
    const clock = new ManualClock(1000);
    const driver = new SimDriver({ node: 'node-2', clock });
    await prepare(driver);
    // A new role over the same hypervisor: the records of the old process are gone.
    return { driver, role: new TargetRole({ node: 'node-2', driver, log: silentLogger, clock }) };
  };

  it('drops the incoming domain of that migration', async () => {
    const { driver, role } = await restarted((d) => d.prepareIncoming(vm, 'm-1'));
    await expect(role.cancel(abort('m-1'))).resolves.toBe('cancelled');
    expect(await driver.listDomains()).toEqual([]);
  });

  it("leaves another migration's incoming domain, and a running guest, alone", async () => {
    const other = await restarted((d) => d.prepareIncoming(vm, 'm-2'));
    await expect(other.role.cancel(abort('m-1'))).resolves.toBeUndefined();
    expect((await other.driver.listDomains()).map((d) => d.state)).toEqual(['incoming']);
    const running = await restarted((d) => d.ensureRunning(vm));
    await expect(running.role.cancel(abort('m-1'))).resolves.toBeUndefined();
    expect((await running.driver.listDomains()).map((d) => d.state)).toEqual(['running']);
  });
});
