import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { findLauncher, LauncherNotFound, type ActivePods } from './findLauncher.js';
import { IN_POD_KUBEVIRT_DIR, IN_POD_LIBVIRT_DIR, LIBVIRT_SOCKET_NAMES, podVolumeDir, throughRoot } from './layout.js';

/** A VMI's launcher on this node, and how the handler reaches into it. */
export interface Launcher {
  podUID: string;
  /** A process of the launcher (its libvirt daemon); its root is the pod's filesystem. */
  pid: number;
  /** libvirt's socket, through the launcher's root (short enough for a socket address). */
  libvirtSocket: string;
  /** The launcher's /run/kubevirt through its root: the handler creates the source migration sockets here. */
  kubevirtDir: string;
}

function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}

/**
 * The pid of the process whose root shows `hostSocket` at `inPod`: KubeVirt
 * learns the launcher's pid from the peer credentials of its cmd socket;
 * Node has no SO_PEERCRED, so the same identity is established by the socket
 * file itself: the process that sees the pod's socket inode at its libvirt
 * path is in the pod. The daemon's pid file is tried first (then checked the
 * same way, as it holds a pid of the pod's own pid namespace on a real node).
 */
export function launcherPid(hostSocket: string, inPod: string, procDir = '/proc'): number | undefined {
  const hint = (() => {
    for (const f of ['virtqemud.pid', 'libvirtd.pid']) {
      try {
        return Number(readFileSync(join(hostSocket, '..', f), 'utf8').trim());
      } catch { /* next */ }
    }
    return undefined;
  })();
  if (hint && sameFile(hostSocket, `${procDir}/${hint}/root${inPod}`)) return hint;
  for (const entry of readdirSync(procDir)) {
    if (!/^\d+$/.test(entry)) continue;
    if (sameFile(hostSocket, `${procDir}/${entry}/root${inPod}`)) return Number(entry);
  }
  return undefined;
}

/** Finds launchers by pod UID under the kubelet's pods dir (`--pods-dir`; /pods in the DaemonSet). */
export class LauncherLocator {
  constructor(readonly podsDir: string, readonly node: string) {}

  /** The host path of the pod's libvirt socket, when the launcher has one. */
  socketOf(podUID: string): string | undefined {
    const dir = podVolumeDir(this.podsDir, podUID, 'libvirt-runtime');
    for (const name of LIBVIRT_SOCKET_NAMES) {
      const path = join(dir, name);
      try {
        if (statSync(path).isSocket()) return path;
      } catch { /* not this one */ }
    }
    return undefined;
  }

  /** The VMI's launcher on this node; a LauncherNotFound error says why not. */
  locate(vmi: string, activePods: ActivePods | undefined): Launcher {
    const match = findLauncher({ vmi, node: this.node, activePods, socketOf: (uid) => this.socketOf(uid) });
    return this.byPodUID(match.podUID, vmi);
  }

  /** The launcher of a known pod (a recorded migration after a restart). */
  byPodUID(podUID: string, vmi = 'of this migration'): Launcher {
    const socket = this.socketOf(podUID);
    if (!socket) throw new LauncherNotFound(`launcher pod ${podUID} (VMI ${vmi}) on ${this.node} has no libvirt socket under ${this.podsDir}`);
    const inPod = `${IN_POD_LIBVIRT_DIR}/${basename(socket)}`;
    const pid = launcherPid(socket, inPod);
    if (pid === undefined) {
      throw new LauncherNotFound(`no process on ${this.node} serves launcher pod ${podUID}'s libvirt socket ${socket} (is the handler in the host's pid namespace, hostPID?)`);
    }
    const kubevirtDir = throughRoot(pid, IN_POD_KUBEVIRT_DIR);
    if (!existsSync(kubevirtDir)) throw new LauncherNotFound(`launcher pod ${podUID} has no ${IN_POD_KUBEVIRT_DIR} (pid ${pid})`);
    return { podUID, pid, libvirtSocket: throughRoot(pid, inPod), kubevirtDir };
  }
}
