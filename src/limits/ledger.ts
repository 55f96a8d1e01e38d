import { migrationCap, requiredBandwidth } from './convergence.js';
import type { Network } from './network.js';
import type { BandwidthDemand } from './types.js';
import { CAPACITY_TOLERANCE } from './waterfill.js';

/**
 * What is already committed while one decision is being made: migrations per
 * cluster / source / target, and the bandwidth reserved on each resource for
 * convergence. Reservations are additive, so "does one more fit" is O(path).
 * As long as the reservations on a resource fit its capacity, the first fill
 * of `allocateBandwidth` gives every migration on it its whole need.
 */
export class Ledger {
  cluster = 0;
  // Indexed by the node's NIC resource, which every lookup already has.
  private readonly out: number[] = [];
  private readonly in: number[] = [];
  private readonly reserved: number[] = [];

  constructor(readonly net: Network, private readonly bandwidthPerMigration: number) {}

  outbound(node: string): number {
    return this.out[this.net.nic(node)] ?? 0;
  }

  inbound(node: string): number {
    return this.inboundAt(this.net.nic(node));
  }

  inboundAt(nic: number): number {
    return this.in[nic] ?? 0;
  }

  reservedOn(resource: number): number {
    return this.reserved[resource] ?? 0;
  }

  headroom(resource: number): number {
    return this.net.capacity(resource) - this.reservedOn(resource);
  }

  /**
   * Whether `amount` more fits on `resource`. A need larger than the resource
   * itself fits only an idle resource: waiting longer could not give it more.
   */
  fits(resource: number, amount: number): boolean {
    const c = this.net.capacity(resource);
    return this.reservedOn(resource) + Math.min(amount, c) <= c * (1 + CAPACITY_TOLERANCE);
  }

  /** The reservation a migration makes: its need, bounded by its caps and by what `path` could ever give. */
  reservation(m: BandwidthDemand, path: readonly number[]): number {
    return Math.min(this.wish(m), this.net.pathCapacity(path));
  }

  /** The reservation before knowing the path: need bounded by the caps. */
  wish(m: BandwidthDemand): number {
    return Math.min(requiredBandwidth(m), migrationCap(this.bandwidthPerMigration, m));
  }

  add(source: string, target: string | undefined, path: readonly number[], reservation: number): void {
    this.cluster++;
    const s = this.net.nic(source);
    this.out[s] = (this.out[s] ?? 0) + 1;
    if (target !== undefined) {
      const t = this.net.nic(target);
      this.in[t] = (this.in[t] ?? 0) + 1;
    }
    for (const r of path) this.reserved[r] = this.reservedOn(r) + reservation;
  }
}
