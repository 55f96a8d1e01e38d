import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cp, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Annotations, Labels } from '../api/vmi.js';
import type { GuestSpec } from '../hypervisor/driver.js';
import { LibvirtDriver } from '../hypervisor/libvirt/driver.js';
import { EMPTY_DIR, IN_POD_LIBVIRT_DIR, throughRoot } from '../launcher/layout.js';
import { silentLogger, type Logger } from '../util/log.js';
import type { PodRuntime } from './kubelet.js';
import { getPath, type KubeObject } from './object.js';

const run = promisify(execFile);

export interface LauncherPodsOptions {
  /** Each node's kubelet pods dir is `<root>/<node>/pods` (what that node's handler gets as --pods-dir). */
  root: string;
  /** test/libvirt/launcher.sh (or the packaged copy). */
  launcherScript: string;
  /** The VMI's guest for a launcher pod (from the pod's kubevirt.io/domain annotation), when it can be found. */
  guestOf: (pod: KubeObject) => GuestSpec | undefined;
  /** Domain XML the launcher defines for its guest (KubeVirt's launcher renders it from the VMI). */
  domainTemplate: (guest: GuestSpec) => string;
  log?: Logger;
}

export function podsDirOf(root: string, node: string): string {
  return join(root, node, 'pods');
}

function lastLine(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return ((e.stderr ?? '').trim().split('\n').pop() || e.message) ?? String(err);
}

/**
 * The kubelet stand-in's runtime for virt-launcher pods in the libvirt dev
 * mode: each launcher pod gets its own libvirtd in its own mount namespace,
 * its sockets in the pod's emptyDirs (KubeVirt's layout, launcher.sh), and,
 * unless the pod is a migration target, the VMI's guest defined and started
 * in it, as virt-launcher does. A target's daemon starts empty and waits for
 * the incoming migration. Deleting the pod stops the daemon and its QEMU.
 */
export class LauncherPods implements PodRuntime {
  private readonly log: Logger;
  private readonly running = new Map<string, { name: string; dir: string }>();

  constructor(private readonly o: LauncherPodsOptions) {
    this.log = (o.log ?? silentLogger).child({ component: 'launcher-pods' });
  }

  handles(pod: KubeObject): boolean {
    return pod.metadata.labels?.[Labels.app] === 'virt-launcher' && typeof getPath(pod, 'spec.nodeName') === 'string';
  }

  private dirs(pod: KubeObject): { node: string; uid: string; podDir: string; volumes: string; state: string } {
    const node = String(getPath(pod, 'spec.nodeName'));
    const uid = pod.metadata.uid!;
    const podDir = join(podsDirOf(this.o.root, node), uid);
    return { node, uid, podDir, volumes: join(podDir, EMPTY_DIR), state: join(podDir, 'ferry-launcher') };
  }

  async start(pod: KubeObject): Promise<void> {
    const { node, uid, volumes, state } = this.dirs(pod);
    const name = `${pod.metadata.name}@${node}`;
    this.log.debug({ pod: pod.metadata.name, node, podUID: uid }, 'starting the launcher daemon');
    await this.shareCapabilities(this.capsCache, join(state, 'cache', 'qemu', 'capabilities'));
    try {
      await run(this.o.launcherScript, ['start', name, state, volumes], { timeout: 60_000 });
      this.log.debug({ pod: pod.metadata.name, node, podUID: uid }, 'launcher daemon answers');
    } catch (err) {
      throw new Error(`launcher daemon for pod ${pod.metadata.name} on ${node} did not start: ${lastLine(err)}`, { cause: err });
    }
    this.running.set(uid, { name, dir: state });
    const target = pod.metadata.labels?.[Labels.migrationJobUID];
    if (target) {
      this.log.info({ pod: pod.metadata.name, node, podUID: uid, migrationJobUID: target }, 'target launcher started empty; waiting for the incoming domain');
      return;
    }
    const guest = this.o.guestOf(pod);
    if (!guest) throw new Error(`launcher pod ${pod.metadata.name}: no VMI ${pod.metadata.annotations?.[Annotations.domain] ?? '?'} to boot`);
    const pid = Number(readFileSync(join(state, 'launcher.pid'), 'utf8').trim());
    const driver = new LibvirtDriver({ socketPath: throughRoot(pid, `${IN_POD_LIBVIRT_DIR}/libvirt-sock`), node: name, domainTemplate: this.o.domainTemplate, log: this.log });
    try {
      await driver.ensureRunning(guest);
    } catch (err) {
      await this.stop(pod).catch(() => undefined);
      throw new Error(`launcher pod ${pod.metadata.name} on ${node}: booting ${guest.name} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      await driver.close();
    }
    await this.shareCapabilities(join(state, 'cache', 'qemu', 'capabilities'), this.capsCache);
    this.log.info({ pod: pod.metadata.name, node, podUID: uid, domain: guest.name }, 'launcher started its guest');
  }

  private get capsCache(): string {
    return join(this.o.root, 'qemu-capabilities');
  }

  /**
   * A fresh libvirtd probes QEMU's capabilities (seconds under TCG) the first
   * time it runs a domain, which a migration target would do inside the
   * migration. Every launcher on this machine runs the same QEMU, so the
   * probe result one daemon cached is handed to the next, as a node's image
   * cache would.
   */
  private async shareCapabilities(from: string, to: string): Promise<void> {
    try {
      const files = (await readdir(from)).filter((f) => f.endsWith('.xml'));
      if (files.length === 0) return;
      await mkdir(to, { recursive: true });
      for (const f of files) await cp(join(from, f), join(to, f), { force: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ from, to, err: (err as Error).message }, 'could not share the QEMU capabilities cache');
    }
  }

  async stop(pod: KubeObject): Promise<void> {
    const uid = pod.metadata.uid!;
    const known = this.running.get(uid);
    if (!known) return;
    this.running.delete(uid);
    try {
      await run(this.o.launcherScript, ['stop', known.name, known.dir], { timeout: 60_000 });
    } catch (err) {
      throw new Error(`stopping the launcher of pod ${pod.metadata.name}: ${lastLine(err)}`, { cause: err });
    }
    // The kubelet removes a deleted pod's volumes; the daemon's own logs stay for a post-mortem.
    await rm(this.dirs(pod).volumes, { recursive: true, force: true });
    this.log.info({ pod: pod.metadata.name, podUID: uid }, 'launcher stopped');
  }

  /** Every daemon still running (environment shutdown). */
  async stopAll(): Promise<void> {
    const failures: string[] = [];
    for (const [uid, known] of [...this.running]) {
      this.running.delete(uid);
      await run(this.o.launcherScript, ['stop', known.name, known.dir], { timeout: 60_000 }).catch((err: unknown) => failures.push(`${known.name}: ${lastLine(err)}`));
    }
    if (failures.length > 0) throw new Error(`stopping launchers: ${failures.join('; ')}`);
  }

  get count(): number {
    return this.running.size;
  }
}
