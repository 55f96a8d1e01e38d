/**
 * KubeVirt's FindSocket (virt-handler cmd-client): a VMI's launcher on this
 * node is the pod among `vmi.status.activePods` (pod UID → node) that is on
 * this node and whose libvirt socket exists. There must be exactly one; two
 * means a migration target and its source share a node, which must not happen.
 */
export type ActivePods = Readonly<Record<string, string>>;

export interface LauncherMatch {
  podUID: string;
  /** The libvirt socket as seen from the host (through the pods dir). */
  socket: string;
}

export class LauncherNotFound extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LauncherNotFound';
  }
}

/**
 * Picks the launcher pod; `socketOf` answers the host path of the pod's
 * libvirt socket, or undefined when it has none (pod not started, or gone).
 */
export function findLauncher(opts: {
  vmi: string;
  node: string;
  activePods: ActivePods | undefined;
  socketOf: (podUID: string) => string | undefined;
}): LauncherMatch {
  const { vmi, node } = opts;
  const pods = Object.entries(opts.activePods ?? {});
  if (pods.length === 0) throw new LauncherNotFound(`VMI ${vmi} lists no active pods (status.activePods is empty), so its launcher on ${node} cannot be found`);
  const here = pods.filter(([, n]) => n === node).map(([uid]) => uid);
  if (here.length === 0) {
    throw new LauncherNotFound(`none of VMI ${vmi}'s active pods is on ${node} (they are on ${[...new Set(pods.map(([, n]) => n))].join(', ')})`);
  }
  const found: LauncherMatch[] = [];
  for (const podUID of here) {
    const socket = opts.socketOf(podUID);
    if (socket) found.push({ podUID, socket });
  }
  if (found.length === 0) {
    throw new LauncherNotFound(`VMI ${vmi}'s pod${here.length > 1 ? 's' : ''} ${here.join(', ')} on ${node} ha${here.length > 1 ? 've' : 's'} no libvirt socket (launcher not started yet, gone, or --pods-dir wrong)`);
  }
  if (found.length > 1) {
    throw new LauncherNotFound(`VMI ${vmi} has ${found.length} launchers with a libvirt socket on ${node} (pods ${found.map((f) => f.podUID).join(', ')}); expected exactly one`);
  }
  return found[0]!;
}
