import { waterFill, type Flow as WaterFlow } from '../../limits/waterfill.js';

/**
 * The network both policies run on: each node has one NIC of fixed capacity
 * (bytes/s), shared by every migration crossing it, leaving or arriving. A
 * migration gets what its own limit allows or its fair share of the more
 * crowded of its two NICs, whichever is less, as TCP flows roughly do: max-min
 * fair sharing with the limits as caps.
 */
/** A migration on the wire: the NICs it crosses and its rate limit (cap; Infinity when unlimited). */
export type Flow = WaterFlow;

export class Network {
  readonly capacity: number[];
  private readonly index = new Map<string, number>();

  constructor(readonly names: readonly string[], nics: readonly number[]) {
    names.forEach((n, i) => this.index.set(n, i));
    this.capacity = [...nics];
  }

  nic(node: string): number {
    const i = this.index.get(node);
    if (i === undefined) throw new Error(`physics: unknown node ${node}`);
    return i;
  }

  flow(source: string, target: string, limit = Infinity): Flow {
    return { resources: [this.nic(source), this.nic(target)], floor: 0, cap: limit };
  }

  /** Rate of each flow, in order. */
  rates(flows: readonly Flow[]): Float64Array {
    return waterFill(this.capacity, flows);
  }

  /** Bytes/s crossing each NIC at these rates. */
  loads(flows: readonly Flow[], rates: ArrayLike<number>): Float64Array {
    const load = new Float64Array(this.capacity.length);
    for (let i = 0; i < flows.length; i++) for (const r of flows[i]!.resources) load[r]! += rates[i]!;
    return load;
  }
}
