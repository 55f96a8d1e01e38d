import { convergenceBandwidth } from '../hypervisor/precopy.js';
import type { BandwidthDemand } from './types.js';

/**
 * Below this a migration is treated as needing it anyway, so that every running
 * migration keeps a non-zero share even when others' needs fill a NIC.
 */
export const MIN_NEED = 2 ** 20;

/** libvirt's default, and Ferry's: what a migration that names no max downtime gets. */
export const DEFAULT_MAX_DOWNTIME_MS = 300;

/**
 * Head-room over the bare convergence bandwidth. Right at it the rounds stop
 * shrinking (ratio dirty rate ÷ bandwidth → 1) and the guest re-sends its
 * working set round after round; with 25 % more each round is at most 80 % of
 * the last, so pre-copy ends within a few rounds.
 */
export const CONVERGENCE_MARGIN = 2;

/**
 * Auto-converge may throttle the guest's vCPUs (up to 99 %); we accept starting
 * such a migration when throttling by at most this much would let it converge.
 */
export const MAX_ACCEPTED_THROTTLE = 0.75;

/**
 * Bandwidth (bytes/s) with which this migration's pre-copy converges on its own,
 * by the pre-copy model, with margin. The one place that knows the model.
 */
export function convergenceNeed(m: BandwidthDemand): number {
  const guest = {
    memoryBytes: m.memoryBytes,
    dirtyRate: m.dirtyRate,
    // Unknown working set: assume the guest may re-dirty all its memory.
    workingSet: m.workingSet ?? m.memoryBytes,
    // Unknown zero pages: assume none, which only overstates the need.
    zeroFraction: 0,
  };
  if (!(guest.memoryBytes > 0)) return 0;
  try {
    return convergenceBandwidth(guest, m.maxDowntimeMs ?? DEFAULT_MAX_DOWNTIME_MS) * CONVERGENCE_MARGIN;
  } catch (e) {
    throw new RangeError(`limits: migration ${m.id}: ${(e as Error).message}`);
  }
}

/**
 * What the limits core reserves for a migration: its convergence need, or less
 * when it may throttle its guest (auto-converge) or finish in post-copy.
 */
export function requiredBandwidth(m: BandwidthDemand): number {
  if (m.allowPostCopy) return MIN_NEED;
  const need = convergenceNeed(m);
  return Math.max(MIN_NEED, m.allowAutoConverge ? need * (1 - MAX_ACCEPTED_THROTTLE) : need);
}

/** The per-migration ceiling: the cluster's `bandwidthPerMigration` and the policy cap, 0 meaning none. */
export function migrationCap(bandwidthPerMigration: number, m: BandwidthDemand): number {
  let cap = Infinity;
  if (bandwidthPerMigration > 0) cap = bandwidthPerMigration;
  if (m.bandwidthCap !== undefined && m.bandwidthCap > 0) cap = Math.min(cap, m.bandwidthCap);
  return cap;
}
