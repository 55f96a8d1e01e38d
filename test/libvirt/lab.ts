/**
 * The libvirt lane's test world: two launcher stand-ins (libvirtd in private
 * mount namespaces) on this machine, the guests they run, and the checks that
 * nothing is left behind. Scripts beside this file do the privileged work.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { GuestSpec } from '../../src/hypervisor/driver.js';
import { LibvirtRemote } from '../../src/hypervisor/libvirt/remote.js';
import { guestXml } from '../../src/devcluster/libvirtNodes.js';
import { isLibvirtError } from '../../src/hypervisor/libvirt/errors.js';
import { ErrorCode } from '../../src/hypervisor/libvirt/protocol.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
export const MiB = 1024 * 1024;

/** setup.sh's exit code for "this machine cannot run the lane". */
const CANNOT_RUN = 3;

export class LaneCannotRun extends Error {
  constructor(reason: string) {
    super(`the libvirt lane could not run on this machine: ${reason} (set FERRY_LIBVIRT=0 to exclude it explicitly)`);
    this.name = 'LaneCannotRun';
  }
}

/** Installs what is missing and builds the dirtying guest's disk; returns the image path. */
export async function prepareMachine(buildDir: string): Promise<string> {
  try {
    const { stdout } = await run(join(here, 'setup.sh'), [buildDir], { timeout: 300_000 });
    return stdout.trim().split('\n').pop()!;
  } catch (err) {
    const e = err as { code?: number; stderr?: string; message: string };
    const lastLine = (e.stderr ?? '').trim().split('\n').pop() ?? e.message;
    if (e.code === CANNOT_RUN) throw new LaneCannotRun(lastLine.replace(/^\[libvirt-setup\] (cannot run the libvirt lane here: )?/, ''));
    throw new Error(`test/libvirt/setup.sh failed: ${lastLine}`);
  }
}

export interface Launcher {
  name: string;
  dir: string;
  socketPath: string;
  /** libvirtd's pid. */
  pid: number;
}

export async function startLauncher(name: string, dir: string): Promise<Launcher> {
  try {
    await run(join(here, 'launcher.sh'), ['start', name, dir], { timeout: 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`launcher ${name} did not start: ${(e.stderr ?? e.message).trim()}`);
  }
  const pid = Number(readFileSync(join(dir, 'launcher.pid'), 'utf8').trim());
  return { name, dir, socketPath: join(dir, 'run', 'libvirt-sock'), pid };
}

export async function stopLauncher(l: Launcher): Promise<void> {
  await run(join(here, 'launcher.sh'), ['stop', l.name, l.dir], { timeout: 60_000 });
}

/** pgrep's matches; its exit status 1 means "none", anything else is an error. */
async function pgrep(args: string[]): Promise<number[]> {
  try {
    const { stdout } = await run('pgrep', args);
    return stdout.trim().split('\n').filter(Boolean).map(Number);
  } catch (err) {
    if ((err as { code?: unknown }).code === 1) return [];
    throw new Error(`pgrep ${args.join(' ')} failed: ${(err as Error).message}`);
  }
}

/** libvirtd and every QEMU it started: the processes in the launcher's mount namespace. */
export function launcherProcesses(l: Launcher): Promise<number[]> {
  return pgrep(['--ns', String(l.pid), '--nslist', 'mnt', '.']);
}

/** Which of `pids` still run, as pgrep sees libvirtd and QEMU processes. */
export async function stillRunning(pids: readonly number[]): Promise<number[]> {
  const listed = await pgrep(['-f', 'libvirtd|qemu-system']);
  return pids.filter((p) => listed.includes(p));
}

/** Guests named `lane_dirty-*` run the dirtying boot sector; all others idle. */
export function guestTemplate(dirtyImage: string): (g: GuestSpec) => string {
  return (g) => guestXml(g, g.name.startsWith('lane_dirty') ? dirtyImage : undefined);
}

/** Test cleanup: destroys and undefines `name` on the daemon, whatever its state. */
export async function removeDomain(socketPath: string, name: string): Promise<void> {
  const r = await LibvirtRemote.open(socketPath);
  try {
    const dom = await r.lookupDomainByName(name);
    await r.destroy(dom).catch(() => undefined);
    await r.undefine(dom, 3).catch(() => undefined);
  } catch (err) {
    if (!isLibvirtError(err, ErrorCode.NO_DOMAIN)) throw err;
  } finally {
    await r.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
