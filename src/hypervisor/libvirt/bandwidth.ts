import { UNLIMITED_BANDWIDTH_MIB } from './protocol.js';

const MiB = 1024 * 1024;

/**
 * Bytes/s (Ferry's unit, 0 = unlimited) to libvirt's MiB/s. Rounds down so a
 * migration never gets more than it was allotted, but gives at least 1 MiB/s,
 * libvirt's smallest step; unlimited is libvirt's largest accepted value,
 * because 0 on the wire would ask QEMU for no bandwidth at all.
 */
export function bandwidthToMiB(bytesPerSecond: number): number {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) {
    throw new Error(`bandwidth must be a non-negative number of bytes/s, got ${bytesPerSecond}`);
  }
  if (bytesPerSecond === 0) return UNLIMITED_BANDWIDTH_MIB;
  return Math.max(1, Math.floor(bytesPerSecond / MiB));
}

/** libvirt's MiB/s back to bytes/s (0 = unlimited). */
export function mibToBandwidth(mibPerSecond: number): number {
  return mibPerSecond >= UNLIMITED_BANDWIDTH_MIB ? 0 : mibPerSecond * MiB;
}
