import type { MigrationControls } from '../driver.js';
import { MigrateFlag, MigrateParam, type TypedParam } from './protocol.js';
import { bandwidthToMiB } from './bandwidth.js';

/**
 * The flags KubeVirt's launcher passes to virDomainMigrateToURI3: always live,
 * peer-to-peer and persistent on the destination; auto-converge and post-copy
 * when allowed; UNSAFE when a writable local disk would otherwise make libvirt
 * refuse (the disk is not copied: in the test world both daemons see the same
 * file, in KubeVirt such guests are block-migrated or not migratable).
 */
export function migrationFlags(controls: MigrationControls, opts: { localDisk: boolean }): number {
  let flags = MigrateFlag.LIVE | MigrateFlag.PEER2PEER | MigrateFlag.PERSIST_DEST;
  if (controls.autoConverge) flags |= MigrateFlag.AUTO_CONVERGE;
  if (controls.postCopy) flags |= MigrateFlag.POSTCOPY;
  if (opts.localDisk) flags |= MigrateFlag.UNSAFE;
  return flags;
}

/** Typed parameters of the perform call: where QEMU sends memory, and the starting bandwidth. */
export function migrationParams(migrateUri: string, controls: MigrationControls): TypedParam[] {
  const params: TypedParam[] = [{ field: MigrateParam.URI, type: 'string', value: migrateUri }];
  if (controls.bandwidth > 0) {
    params.push({ field: MigrateParam.BANDWIDTH, type: 'ullong', value: BigInt(bandwidthToMiB(controls.bandwidth)) });
  }
  return params;
}

/**
 * Whether the domain XML has a disk libvirt would call unsafe to migrate
 * without copying: a writable, non-shareable disk with a source.
 */
export function hasLocalWritableDisk(domainXml: string): boolean {
  const disks = domainXml.match(/<disk\b[\s\S]*?<\/disk>/g) ?? [];
  return disks.some((d) => /<source\b/.test(d) && !/<readonly\s*\/>/.test(d) && !/<shareable\s*\/>/.test(d));
}
