import { join } from 'node:path';

/**
 * Where a virt-launcher pod's sockets are, in KubeVirt's layout (see
 * shared research kubevirt-launcher-proxy.md §1–2). Pure path arithmetic.
 *
 * Seen from the host (the handler mounts the kubelet's pods dir, KubeVirt uses
 * /pods): `<podsDir>/<podUID>/volumes/kubernetes.io~empty-dir/<volume>`.
 * Seen inside the launcher: `libvirt-runtime` is /var/run/libvirt, `public` is
 * /var/run/kubevirt (migration sockets under migrationproxy/) and `sockets` is
 * /var/run/kubevirt/sockets.
 */
export const EMPTY_DIR = join('volumes', 'kubernetes.io~empty-dir');

/** libvirt's socket names, in the order looked for: KubeVirt's virtqemud, then a monolithic libvirtd. */
export const LIBVIRT_SOCKET_NAMES = ['virtqemud-sock', 'libvirt-sock'] as const;

/** /var/run is /run on every distribution Ferry targets; paths inside the launcher use /run. */
export const IN_POD_LIBVIRT_DIR = '/run/libvirt';
export const IN_POD_KUBEVIRT_DIR = '/run/kubevirt';
export const IN_POD_MIGRATION_PROXY_DIR = `${IN_POD_KUBEVIRT_DIR}/migrationproxy`;

/** KubeVirt's LibvirtDirectMigrationPort: a key in socket names, nothing listens on it. */
export const DIRECT_MIGRATION_PORT = 49152;

export function podVolumeDir(podsDir: string, podUID: string, volume: 'libvirt-runtime' | 'public' | 'sockets'): string {
  return join(podsDir, podUID, EMPTY_DIR, volume);
}

/** KubeVirt's ConstructProxyKey: the migration uid, with `-<port>` for a stream other than libvirt's own. */
export function proxyKey(migrationUid: string, port: number): string {
  return port === 0 ? migrationUid : `${migrationUid}-${port}`;
}

/** KubeVirt's SourceUnixFile: `<base>/migrationproxy/<key>-source.sock`, base being /run/kubevirt as seen by `base`'s viewer. */
export function migrationSocket(kubevirtDir: string, migrationUid: string, port: number): string {
  return `${kubevirtDir}/migrationproxy/${proxyKey(migrationUid, port)}-source.sock`;
}

/** A path inside a launcher's mount namespace, reached from the host through its process's root (virt-handler's way). */
export function throughRoot(pid: number, inPodPath: string): string {
  return `/proc/${pid}/root${inPodPath}`;
}

/**
 * The longest path a unix socket address holds (sun_path is 108 bytes with
 * the terminating NUL). KubeVirt mounts the pods dir at /pods and goes through
 * /proc/<pid>/root for the same reason.
 */
export const UNIX_PATH_MAX = 107;

export function assertSocketPathFits(path: string): void {
  if (Buffer.byteLength(path) > UNIX_PATH_MAX) {
    throw new Error(`unix socket path is ${Buffer.byteLength(path)} bytes, more than the ${UNIX_PATH_MAX} a socket address holds: ${path}`);
  }
}
