import type { LimitsConfig, NodeState } from './types.js';

/**
 * The shared resources migrations compete for, as indices into one capacity
 * array: the cluster bandwidth budget (when set) and one NIC per node. A node's
 * outbound and inbound migrations share its NIC, so a migration loads both its
 * source's and its target's NIC. Nodes the caller did not list (a migration
 * from a node that has since left) get the default capacity.
 */
export class Network {
  readonly capacities: number[] = [];
  /** Resource index of the cluster budget; undefined when the budget is unlimited. */
  readonly budget: number | undefined;
  private readonly nics = new Map<string, number>();
  private readonly names: string[] = [];

  constructor(private readonly config: LimitsConfig, nodes: readonly NodeState[]) {
    if (!(config.defaultNicCapacity > 0) || !Number.isFinite(config.defaultNicCapacity)) {
      throw new RangeError(`limits: defaultNicCapacity must be a positive number of bytes/s, got ${config.defaultNicCapacity}`);
    }
    if (config.bandwidthBudget > 0) {
      this.budget = this.capacities.length;
      this.capacities.push(config.bandwidthBudget);
      this.names.push('');
    }
    for (const node of nodes) {
      if (node.nicCapacity !== undefined && (!(node.nicCapacity > 0) || !Number.isFinite(node.nicCapacity))) {
        throw new RangeError(`limits: node ${node.name} has NIC capacity ${node.nicCapacity}; expected a positive number of bytes/s`);
      }
      this.add(node.name, node.nicCapacity ?? config.defaultNicCapacity);
    }
  }

  /** Resource index of `node`'s NIC. */
  nic(node: string): number {
    return this.nics.get(node) ?? this.add(node, this.config.defaultNicCapacity);
  }

  capacity(resource: number): number {
    return this.capacities[resource] ?? 0;
  }

  /** Resources a migration from `source` (to `target`, when known) crosses. */
  path(source: string, target: string | undefined): number[] {
    const p = [this.nic(source)];
    if (target !== undefined && target !== source) p.push(this.nic(target));
    if (this.budget !== undefined) p.push(this.budget);
    return p;
  }

  /** Smallest capacity along a path: the most a lone migration could get. */
  pathCapacity(path: readonly number[]): number {
    let c = Infinity;
    for (const r of path) c = Math.min(c, this.capacity(r));
    return c;
  }

  /** The node whose NIC `resource` is; undefined for the budget. */
  nodeOf(resource: number): string | undefined {
    return resource === this.budget ? undefined : this.names[resource];
  }

  /** For reasons shown to users. */
  describe(resource: number): string {
    return resource === this.budget ? 'the cluster bandwidth budget' : `${this.names[resource]}'s NIC`;
  }

  private add(node: string, capacity: number): number {
    const r = this.capacities.length;
    this.capacities.push(capacity);
    this.names.push(node);
    this.nics.set(node, r);
    return r;
  }
}
