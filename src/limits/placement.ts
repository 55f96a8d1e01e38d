import { Ledger } from './ledger.js';
import { Network } from './network.js';
import * as why from './reasons.js';
import type { BandwidthDemand, LimitsConfig, NodeState, RunningMigration } from './types.js';

export type PlacementFailure = 'no-other-node' | 'inbound' | 'memory' | 'bandwidth';
export type Placement = { node: string } | { failure: PlacementFailure };

interface Miss {
  source: string;
  memory: number;
  need: number;
  failure: PlacementFailure;
}

/** How many past misses to remember; drains usually have a handful of VM shapes. */
const MISS_MEMORY = 16;

/**
 * The nodes a migration could land on, kept up to date as one decision commits
 * starts. Preference: fewest migrations landing already, then most NIC left
 * (capacity not reserved for convergence), then by name so that equal clusters
 * get equal answers. A pick is one pass over flat arrays of the schedulable
 * nodes, cheap next to building any index per decision.
 *
 * Within a decision nodes only ever get worse (more inbound, less NIC, less
 * memory), so a placement that failed for a migration fails for any bigger one
 * from the same source: remembering misses keeps a long queue of unplaceable
 * VMs from rescanning every node.
 */
export class TargetPool {
  /** NIC resource index of each schedulable node. */
  private readonly nics: number[] = [];
  private readonly names: string[] = [];
  /** Free memory by NIC index; NaN when unknown. */
  private readonly free: number[] = [];
  private readonly excluded = new Set<number>();
  private readonly misses: Miss[] = [];

  constructor(
    private readonly ledger: Ledger,
    nodes: readonly NodeState[],
    private readonly inboundLimit: number,
    /**
     * Adaptive concurrency: most NIC left first, then fewest landing. A node
     * then carries as many migrations as its NIC has room for, and a fast
     * source is not tied to slow targets while faster ones have room.
     */
    private readonly headroomFirst = false,
  ) {
    for (const node of nodes) {
      if (!node.schedulable) continue;
      const nic = ledger.net.nic(node.name);
      if (this.free[nic] !== undefined) continue; // listed twice: the first one counts
      this.nics.push(nic);
      this.names.push(node.name);
      this.free[nic] = node.freeMemory ?? NaN;
    }
  }

  freeMemory(node: string): number | undefined {
    const f = this.free[this.ledger.net.nic(node)];
    return f === undefined || Number.isNaN(f) ? undefined : f;
  }

  isSchedulable(node: string): boolean {
    return this.free[this.ledger.net.nic(node)] !== undefined;
  }

  /** Keep `node` out of this decision (its NIC is promised to a migration that waits for it). */
  exclude(node: string): void {
    this.excluded.add(this.ledger.net.nic(node));
  }

  /** A migration of `memory` bytes now lands on `node`. */
  take(node: string, memory: number): void {
    const nic = this.ledger.net.nic(node);
    const f = this.free[nic];
    if (f !== undefined) this.free[nic] = f - memory;
  }

  /** The best node other than `source` with room for `memory` and `need` bytes/s of reservation. */
  pick(source: string, memory: number, need: number): Placement {
    for (const miss of this.misses) {
      if (memory >= miss.memory && need >= miss.need && (miss.source === source || !this.eligible(this.ledger.net.nic(miss.source)))) {
        return { failure: miss.failure };
      }
    }
    const ledger = this.ledger;
    const sourceNic = ledger.net.nic(source);
    let best = -1;
    let bestInbound = Infinity;
    let bestHeadroom = -Infinity;
    let candidates = 0;
    let shortOfBandwidthOnly = false;
    for (let k = 0; k < this.nics.length; k++) {
      const nic = this.nics[k]!;
      if (nic === sourceNic || !this.eligible(nic)) continue;
      candidates++;
      const f = this.free[nic]!;
      const memoryFits = !(f < memory); // NaN (unknown) fits
      if (!memoryFits) continue;
      if (!ledger.fits(nic, need)) {
        shortOfBandwidthOnly = true;
        continue;
      }
      const inbound = ledger.inboundAt(nic);
      const headroom = ledger.headroom(nic);
      const better = this.headroomFirst
        ? headroom > bestHeadroom || (headroom === bestHeadroom && (inbound < bestInbound || (inbound === bestInbound && this.names[k]! < this.names[best]!)))
        : inbound < bestInbound || (inbound === bestInbound && (headroom > bestHeadroom || (headroom === bestHeadroom && this.names[k]! < this.names[best]!)));
      if (better) {
        best = k;
        bestInbound = inbound;
        bestHeadroom = headroom;
      }
    }
    if (best >= 0) return { node: this.names[best]! };

    const others = this.nics.length - (this.free[sourceNic] !== undefined ? 1 : 0);
    const failure: PlacementFailure =
      others === 0 ? 'no-other-node' : candidates === 0 ? 'inbound' : shortOfBandwidthOnly ? 'bandwidth' : 'memory';
    if (this.misses.length >= MISS_MEMORY) this.misses.shift();
    this.misses.push({ source, memory, need, failure });
    return { failure };
  }

  private eligible(nic: number): boolean {
    return this.free[nic] !== undefined && !this.excluded.has(nic) && this.ledger.inboundAt(nic) < this.inboundLimit;
  }
}

export function placementReason(failure: PlacementFailure, m: BandwidthDemand, need: number, inboundLimit: number, adaptiveInbound = false): string {
  switch (failure) {
    case 'no-other-node':
      return why.noOtherNode(m.sourceNode);
    case 'inbound':
      return why.allAtInboundLimit(inboundLimit, adaptiveInbound);
    case 'memory':
      return why.noMemory(m.memoryBytes);
    case 'bandwidth':
      return why.noTargetHeadroom(m.dirtyRate, need);
  }
}

export interface PlacementInput {
  config: LimitsConfig;
  nodes: readonly NodeState[];
  running: readonly RunningMigration[];
  migration: BandwidthDemand;
}

/**
 * Where a migration should land given what already runs: a schedulable node
 * other than its own, below its inbound limit, with enough free memory (when
 * known) and enough NIC left for the migration to converge; preferring the node
 * with the fewest migrations landing, then the most NIC left, then by name.
 */
export function pickTargetNode(input: PlacementInput): { node: string } | { reason: string } {
  const { config, nodes, running, migration } = input;
  const ledger = new Ledger(new Network(config, nodes), config.bandwidthPerMigration);
  for (const r of running) {
    const path = ledger.net.path(r.sourceNode, r.targetNode);
    ledger.add(r.sourceNode, r.targetNode, path, ledger.reservation(r, path));
  }
  const pool = new TargetPool(ledger, nodes, config.parallelInboundMigrationsPerNode);
  const need = ledger.wish(migration);
  const placed = pool.pick(migration.sourceNode, migration.memoryBytes, need);
  if ('node' in placed) return placed;
  return { reason: placementReason(placed.failure, migration, need, config.parallelInboundMigrationsPerNode) };
}
