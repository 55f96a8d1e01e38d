import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The launcher stand-ins `ferry dev --driver libvirt` runs: one libvirtd per
 * node, each in its own mount namespace (test/libvirt/launcher.sh), after
 * test/libvirt/setup.sh made sure libvirt and QEMU are installed. Needs root.
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
  if (!existsSync(path)) throw new Error(`${path} is missing: the libvirt dev mode runs from a Ferry source checkout`);
  return path;
}

export async function startLibvirtLaunchers(opts: { dir: string; nodes: readonly string[]; onProgress?: (line: string) => void }): Promise<LibvirtLaunchers> {
  const dir = resolve(opts.dir);
  const say = opts.onProgress ?? (() => undefined);
  say('checking libvirt and QEMU (installing them when missing)…');
  try {
    await run(script('setup.sh'), [join(dir, 'build')], { timeout: 600_000 });
  } catch (err) {
    const why = lastLine(err).replace(/^\[libvirt-setup\] (cannot run the libvirt lane here: )?/, '');
    if ((err as { code?: unknown }).code === CANNOT_RUN) throw new Error(`cannot run libvirt guests on this machine: ${why}`);
    throw new Error(`preparing libvirt failed: ${why}`);
  }
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
