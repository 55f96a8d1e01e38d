import { readdirSync } from 'node:fs';
import type {
  DomainInfo, DomainState, GuestSpec, HypervisorDriver, MigrationControls, MigrationJob, PublishedTarget,
} from '../hypervisor/driver.js';
import { formatAddress, unixSocketUri } from '../hypervisor/libvirt/address.js';
import { LibvirtDriver, type MigrationInspection } from '../hypervisor/libvirt/driver.js';
import { SourceProxy, TargetProxy, type ProxyCounters } from '../proxy/migrationProxy.js';
import { ProxyHost, type ProxyHandle } from '../proxy/workerProxy.js';
import type { Transport } from '../proxy/transport.js';
import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { DIRECT_MIGRATION_PORT, IN_POD_KUBEVIRT_DIR, migrationSocket } from './layout.js';
import { LauncherLocator, type Launcher } from './locator.js';
import { formatProxyAddress, parseProxyAddress } from './proxyAddress.js';

export interface LauncherDriverOptions {
  node: string;
  /** The kubelet's pods dir as the handler sees it (KubeVirt's handler: /pods). */
  podsDir: string;
  /** Address the target proxy listens on and publishes (the handler's pod IP). */
  migrationAddress: string;
  /** Mutual TLS between handlers (KubeVirt's default); used unless a migration asks for disableTLS. */
  tls: Transport | undefined;
  log?: Logger;
  clock?: Clock;
  pollIntervalMs?: number;
  /**
   * Run each proxy side in a worker thread of its own (default), so the
   * stream neither waits for nor delays the handler's event loop; false keeps
   * it in the handler's thread.
   */
  proxyInWorker?: boolean;
}

interface Incoming { launcher: Launcher; domain: string; proxy: ProxyHandle }

/**
 * The handler's driver on a KubeVirt-style node: one libvirt daemon per VM,
 * in the VM's launcher pod, found by pod UID; migrations peer-to-peer between
 * the two launchers' daemons, every connection carried by the handlers'
 * migration proxy (see src/proxy/migrationProxy.ts).
 *
 * Source: libvirt migrates to `qemu+unix:///system?socket=/run/kubevirt/migrationproxy/<uid>-source.sock`
 * with the memory stream on `unix:///run/kubevirt/migrationproxy/<uid>-49152-source.sock`,
 * both paths inside the source launcher, where the source proxy listens.
 * Target: the destination QEMU listens on the same path inside the target
 * launcher; the target proxy delivers there and to the target daemon's socket.
 */
async function startSourceInThread(o: Parameters<typeof SourceProxy.start>[0]): Promise<ProxyHandle> {
  const p = await SourceProxy.start(o);
  return Object.assign(p, { ports: {} as Record<string, number> });
}

export class LauncherDriver implements HypervisorDriver {
  readonly kind = 'libvirt' as const;
  private readonly locator: LauncherLocator;
  private readonly log: Logger;
  private readonly clock: Clock;
  /** One libvirt connection per launcher pod, by pod UID. */
  private readonly drivers = new Map<string, { launcher: Launcher; driver: LibvirtDriver }>();
  /** Where each domain this handler has worked with lives (pod UID). */
  private readonly domains = new Map<string, string>();
  private readonly incoming = new Map<string, Incoming>();
  private readonly outgoing = new Map<string, ProxyHandle>();
  private closed = false;

  constructor(private readonly o: LauncherDriverOptions) {
    this.locator = new LauncherLocator(o.podsDir, o.node);
    this.log = (o.log ?? silentLogger).child({ driver: 'launcher', node: o.node });
    this.clock = o.clock ?? systemClock;
    if (o.proxyInWorker !== false) {
      this.proxyHost = new ProxyHost(this.log);
      this.proxyHost.warm();
    }
  }

  private readonly proxyHost: ProxyHost | undefined;

  private driverOf(launcher: Launcher): LibvirtDriver {
    const known = this.drivers.get(launcher.podUID);
    if (known && known.launcher.pid === launcher.pid) return known.driver;
    if (known) void known.driver.close();
    const driver = new LibvirtDriver({
      socketPath: launcher.libvirtSocket,
      node: `${this.o.node}/${launcher.podUID}`,
      log: this.log,
      clock: this.clock,
      ...(this.o.pollIntervalMs ? { pollIntervalMs: this.o.pollIntervalMs } : {}),
    });
    this.drivers.set(launcher.podUID, { launcher, driver });
    return driver;
  }

  private locate(guest: GuestSpec): { launcher: Launcher; driver: LibvirtDriver } {
    if (!guest.launcher) throw new Error(`no launcher pods given for ${guest.name}: the controller must send the VMI's active pods`);
    const launcher = this.locator.locate(guest.name, guest.launcher.activePods);
    this.domains.set(guest.name, launcher.podUID);
    return { launcher, driver: this.driverOf(launcher) };
  }

  /** The launcher that holds `name`: remembered, else every launcher pod on this node is asked (after a restart). */
  private async launcherOfDomain(name: string): Promise<{ launcher: Launcher; driver: LibvirtDriver } | undefined> {
    const uid = this.domains.get(name);
    if (uid) {
      try {
        const launcher = this.locator.byPodUID(uid);
        return { launcher, driver: this.driverOf(launcher) };
      } catch {
        this.domains.delete(name);
      }
    }
    // A guest that left keeps a shut-off definition in its old launcher: prefer the live copy.
    let shutOff: { launcher: Launcher; driver: LibvirtDriver } | undefined;
    for (const podUID of this.podUIDs()) {
      let launcher: Launcher;
      try {
        launcher = this.locator.byPodUID(podUID);
      } catch {
        continue;
      }
      const driver = this.driverOf(launcher);
      const dom = (await driver.listDomains().catch(() => [] as DomainInfo[])).find((d) => d.name === name);
      if (dom && dom.state !== 'shutoff') {
        this.domains.set(name, podUID);
        return { launcher, driver };
      }
      if (dom) shutOff ??= { launcher, driver };
    }
    return shutOff;
  }

  private podUIDs(): string[] {
    try {
      return readdirSync(this.o.podsDir).filter((uid) => this.locator.socketOf(uid) !== undefined);
    } catch {
      return [];
    }
  }

  private transportFor(guest: GuestSpec): Transport {
    if (guest.launcher?.disableTLS) return { kind: 'tcp' };
    if (!this.o.tls) throw new Error(`migration of ${guest.name} needs TLS but the handler on ${this.o.node} has no migration certificates (or set migrations.disableTLS)`);
    return this.o.tls;
  }

  async listDomains(): Promise<DomainInfo[]> {
    const out: DomainInfo[] = [];
    for (const podUID of this.podUIDs()) {
      try {
        out.push(...(await this.driverOf(this.locator.byPodUID(podUID)).listDomains()));
      } catch (err) {
        this.log.debug({ podUID, err: (err as Error).message }, 'launcher not answering while listing domains');
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async ensureRunning(guest: GuestSpec): Promise<void> {
    this.noteGuest(guest);
    await this.locate(guest).driver.ensureRunning(guest);
  }

  async prepareIncoming(guest: GuestSpec, migrationId: string): Promise<{ address: string; published: PublishedTarget }> {
    const known = this.incoming.get(migrationId);
    const published = (p: ProxyHandle): PublishedTarget => ({ targetNodeAddress: this.o.migrationAddress, targetDirectMigrationNodePorts: p.ports });
    if (known) {
      const p = published(known.proxy);
      return { address: formatProxyAddress(p), published: p };
    }
    const { launcher, driver } = this.locate(guest);
    // The proxy's listeners start while libvirt is asked (both take a few ms, one
    // after the other they were on every migration's critical path). Its ports are
    // published only below, once the launcher accepted, so nothing can connect earlier.
    const starting = (this.proxyHost ? this.proxyHost.startTarget.bind(this.proxyHost) : TargetProxy.start)({
      migrationUid: migrationId,
      transport: this.transportFor(guest),
      host: this.o.migrationAddress,
      deliverTo: {
        0: launcher.libvirtSocket,
        [DIRECT_MIGRATION_PORT]: migrationSocket(launcher.kubevirtDir, migrationId, DIRECT_MIGRATION_PORT),
      },
      log: this.log,
    });
    // Its failure is awaited below; until then it must not count as unhandled.
    starting.catch(() => undefined);
    try {
      // Refuses when the guest already runs in this launcher.
      await driver.prepareIncoming(guest, migrationId);
    } catch (err) {
      await starting.then((p) => p.close({ cut: true }), () => undefined);
      throw err;
    }
    const proxy = await starting;
    this.incoming.set(migrationId, { launcher, domain: guest.name, proxy });
    const p = published(proxy);
    this.log.info({ domain: guest.name, migrationId, podUID: launcher.podUID, ...p }, 'target launcher ready; proxy listening');
    return { address: formatProxyAddress(p), published: p };
  }

  async finishIncoming(name: string, migrationId: string): Promise<DomainState | 'missing'> {
    const inc = this.incoming.get(migrationId);
    if (inc) {
      this.incoming.delete(migrationId);
      await inc.proxy.close();
      this.domains.set(name, inc.launcher.podUID);
      return this.driverOf(inc.launcher).finishIncoming(name, migrationId);
    }
    const found = await this.launcherOfDomain(name);
    return found ? found.driver.finishIncoming(name, migrationId) : 'missing';
  }

  async cancelIncoming(name: string, migrationId: string): Promise<void> {
    const inc = this.incoming.get(migrationId);
    if (!inc) return;
    this.incoming.delete(migrationId);
    await inc.proxy.close({ cut: true });
    try {
      await this.driverOf(inc.launcher).cancelIncoming(name, migrationId);
    } catch (err) {
      // The target pod (and its daemon) may be gone already: nothing left to drop.
      if (this.locator.socketOf(inc.launcher.podUID)) throw err;
    }
  }

  async migrate(name: string, target: { node: string; address: string }, controls: MigrationControls, migrationId: string): Promise<MigrationJob> {
    const found = await this.launcherOfDomain(name);
    if (!found) throw new Error(`no launcher on ${this.o.node} holds ${name}`);
    const published = parseProxyAddress(target.address);
    // The source proxy's sockets are made while libvirt checks the domain; libvirt is
    // asked to migrate only once they listen (one after the other, both were on every
    // migration's critical path).
    let proxy = this.outgoing.get(migrationId);
    let starting: Promise<ProxyHandle> | undefined;
    if (!proxy) {
      starting = (this.proxyHost ? this.proxyHost.startSource.bind(this.proxyHost) : startSourceInThread)({
        migrationUid: migrationId,
        transport: this.transportOfMigration(migrationId, name),
        kubevirtDir: found.launcher.kubevirtDir,
        targetHost: published.targetNodeAddress,
        targetPorts: published.targetDirectMigrationNodePorts,
        log: this.log,
      }).then((p) => {
        this.outgoing.set(migrationId, p);
        return p;
      });
      starting.catch(() => undefined);
    }
    // Both paths as the source launcher's libvirt and QEMU see them.
    const address = formatAddress({
      destUri: unixSocketUri(migrationSocket(IN_POD_KUBEVIRT_DIR, migrationId, 0)),
      migrateUri: `unix://${migrationSocket(IN_POD_KUBEVIRT_DIR, migrationId, DIRECT_MIGRATION_PORT)}`,
    });
    let job: MigrationJob;
    try {
      job = await found.driver.migrate(name, { node: target.node, address }, controls, migrationId, starting ? { ready: starting } : {});
    } catch (err) {
      // A proxy still starting is closed once it is up.
      await starting?.catch(() => undefined);
      await this.stopOutgoing(migrationId);
      throw err;
    }
    // Up already (libvirt waited for it), unless the driver handed back a job it had: then the
    // proxy is recorded before the job's end can look for it.
    await starting?.catch(() => undefined);
    void job.done.then(() => this.stopOutgoing(migrationId));
    return job;
  }

  /** The transport the guest's last ensureRunning asked for (migrate() gets no GuestSpec). */
  private readonly plain = new Set<string>();
  private transportOfMigration(_migrationId: string, name: string): Transport {
    return this.plain.has(name) ? { kind: 'tcp' } : this.transportFor({ name, memoryBytes: 1 });
  }

  /** Remembers a guest's transport choice for its next migrate(). */
  noteGuest(guest: GuestSpec): void {
    if (guest.launcher?.disableTLS) this.plain.add(guest.name);
    else this.plain.delete(guest.name);
  }

  private async stopOutgoing(migrationId: string): Promise<void> {
    const proxy = this.outgoing.get(migrationId);
    if (!proxy) return;
    this.outgoing.delete(migrationId);
    const c = proxy.counters;
    await proxy.close({ cut: true });
    this.log.info({ migrationId, ...c }, 'source migration proxy closed');
  }

  /** The proxy's counters of a running migration (source or target side), for progress and tests. */
  proxyCounters(migrationId: string): ProxyCounters | undefined {
    return this.outgoing.get(migrationId)?.counters ?? this.incoming.get(migrationId)?.proxy.counters;
  }

  async forget(name: string): Promise<void> {
    const found = await this.launcherOfDomain(name);
    if (found) await found.driver.forget(name);
  }

  async inspectMigration(name: string): Promise<MigrationInspection> {
    const found = await this.launcherOfDomain(name);
    if (!found) return { domain: name, state: 'missing', migrating: false };
    return found.driver.inspectMigration(name);
  }

  async attachMigration(name: string, migrationId: string): Promise<MigrationJob | null> {
    const found = await this.launcherOfDomain(name);
    // A migration this process did not start has no proxy here any more: it
    // cannot complete, and ends failed on its own (the source keeps the guest).
    return found ? found.driver.attachMigration(name, migrationId) : null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.outgoing.keys()]) await this.stopOutgoing(id);
    for (const inc of this.incoming.values()) await inc.proxy.close({ cut: true });
    this.incoming.clear();
    for (const { driver } of this.drivers.values()) await driver.close();
    this.drivers.clear();
    await this.proxyHost?.shutDown();
  }
}
