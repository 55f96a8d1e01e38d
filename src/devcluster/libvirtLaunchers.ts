import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The launcher stand-ins of the libvirt dev mode: libvirtd in its own mount
 * namespace (test/libvirt/launcher.sh; one per launcher pod in `ferry dev
 * --driver libvirt`, one per node for the older node-daemon mode), after
 * test/libvirt/setup.sh made sure libvirt and QEMU are installed. Needs root.
 * The scripts ship in the package (package.json "files"), so an installed
 * Ferry runs this without a source checkout.
 */
const scripts = fileURLToPath(new URL('../../test/libvirt/', import.meta.url));

/** setup.sh's exit code for "this machine cannot run libvirt guests". */
const CANNOT_RUN = 3;

export interface LibvirtLaunchers {
  /** libvirtd socket per node. */
  sockets: Record<string, string>;
  /** Stops every daemon and every QEMU they started. */
  stop(): Promise<void>;
}

function lastLine(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return ((e.stderr ?? '').trim().split('\n').pop() || e.message) ?? String(err);
}

/** The launcher script the libvirt dev mode runs (one daemon per node or per launcher pod). */
export function launcherScript(): string {
  return script('launcher.sh');
}

function script(name: string): string {
  const path = join(scripts, name);
  if (!existsSync(path)) throw new Error(`${path} is missing: this Ferry installation lacks the libvirt launcher scripts (package.json "files" ships test/libvirt/*.sh and guest.S)`);
  return path;
}

/** Installs libvirt and QEMU when missing and builds the dirtying guest's disk; returns its path. */
export async function prepareLibvirtMachine(opts: { dir: string; onProgress?: (line: string) => void }): Promise<string> {
  (opts.onProgress ?? (() => undefined))('checking libvirt and QEMU (installing them when missing)…');
  try {
    const { stdout } = await run(script('setup.sh'), [join(resolve(opts.dir), 'build')], { timeout: 600_000 });
    return stdout.trim().split('\n').pop() ?? '';
  } catch (err) {
    const why = lastLine(err).replace(/^\[libvirt-setup\] (cannot run the libvirt lane here: )?/, '');
    if ((err as { code?: unknown }).code === CANNOT_RUN) throw new Error(`cannot run libvirt guests on this machine: ${why}`);
    throw new Error(`preparing libvirt failed: ${why}`);
  }
}

export async function startLibvirtLaunchers(opts: { dir: string; nodes: readonly string[]; onProgress?: (line: string) => void }): Promise<LibvirtLaunchers> {
  const dir = resolve(opts.dir);
  const say = opts.onProgress ?? (() => undefined);
  await prepareLibvirtMachine(opts);
  const started: Array<{ node: string; dir: string }> = [];
  const stop = async () => {
    const failures: string[] = [];
    for (const l of started.reverse()) {
      try {
        await run(script('launcher.sh'), ['stop', l.node, l.dir], { timeout: 60_000 });
      } catch (err) {
        failures.push(`${l.node}: ${lastLine(err)}`);
      }
    }
    started.length = 0;
    if (failures.length > 0) throw new Error(`stopping libvirt launchers: ${failures.join('; ')}`);
  };
  const sockets: Record<string, string> = {};
  try {
    for (const node of opts.nodes) {
      const nodeDir = join(dir, node);
      say(`starting libvirtd for ${node} (${nodeDir})…`);
      try {
        await run(script('launcher.sh'), ['start', node, nodeDir], { timeout: 90_000 });
      } catch (err) {
        throw new Error(`libvirtd for ${node} did not start: ${lastLine(err)}`);
      }
      started.push({ node, dir: nodeDir });
      sockets[node] = join(nodeDir, 'run', 'libvirt-sock');
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return { sockets, stop };
}
