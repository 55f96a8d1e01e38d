import type { DomainState } from '../driver.js';
import { DomainStateCode, PausedReason, RunningReason } from './protocol.js';

/**
 * What a domain's libvirt state means for Ferry.
 * - A target's domain waiting for the memory stream is paused for "migration";
 *   the source is paused for "migration" too during the final stop-and-copy,
 *   told apart by the outgoing job the source has (`migratingOut`).
 * - In post-copy the target runs (reason "postcopy") while the source stays
 *   paused: the running copy is the target's.
 */
export function domainStateOf(state: number, reason: number, migratingOut: boolean): DomainState {
  switch (state) {
    case DomainStateCode.RUNNING:
    case DomainStateCode.BLOCKED:
      return 'running';
    case DomainStateCode.PAUSED:
      return reason === PausedReason.MIGRATION && !migratingOut ? 'incoming' : 'paused';
    case DomainStateCode.PMSUSPENDED:
      return 'paused';
    default:
      return 'shutoff';
  }
}

/** The guest's memory and CPU state live only in this domain: destroying it loses the guest. */
export function mayHoldOnlyCopy(state: number, reason: number): boolean {
  if (state === DomainStateCode.RUNNING || state === DomainStateCode.BLOCKED) return true;
  if (state === DomainStateCode.PAUSED) {
    // A paused domain waiting for incoming memory holds nothing yet; any other
    // pause (user, post-copy, failed post-copy, I/O error) holds the guest.
    return reason !== PausedReason.MIGRATION;
  }
  return state === DomainStateCode.PMSUSPENDED;
}

/** The domain is in (or stuck after) post-copy: only the two halves together make the guest. */
export function inPostCopy(state: number, reason: number): boolean {
  return (state === DomainStateCode.PAUSED && (reason === PausedReason.POSTCOPY || reason === PausedReason.POSTCOPY_FAILED))
    || (state === DomainStateCode.RUNNING && (reason === RunningReason.POSTCOPY || reason === RunningReason.POSTCOPY_FAILED));
}
