import { Node } from '../api/core.js';
import { parseObject } from '../api/meta.js';
import type { Clock } from '../util/clock.js';

export interface NodeLivenessDeps {
  clock: Clock;
  /** Handler silence after which a NotReady node counts as lost. */
  silenceMs: number;
  /** The Node object from the cache, if any. */
  node: (name: string) => unknown;
}

/**
 * Is a node lost? Two independent signs must agree, as KubeVirt's node
 * controller requires: its handler has sent no heartbeat for `silenceMs`, and
 * its Node is NotReady (or gone). Either alone is a hiccup, not a loss.
 */
export class NodeLiveness {
  private readonly lastBeat = new Map<string, number>();
  private since = 0;

  constructor(private readonly d: NodeLivenessDeps) {}

  /** Silence is counted from here for nodes not heard from yet. */
  start(): void {
    this.since = this.d.clock.now();
  }

  beat(node: string): void {
    this.lastBeat.set(node, this.d.clock.now());
  }

  /** How long a lost node's handler has been silent; undefined while the node is not lost. */
  silentFor(node: string): number | undefined {
    const silentMs = this.d.clock.now() - (this.lastBeat.get(node) ?? this.since);
    if (silentMs < this.d.silenceMs || this.ready(node)) return undefined;
    return silentMs;
  }

  private ready(name: string): boolean {
    const raw = this.d.node(name);
    if (!raw) return false;
    const r = parseObject(Node, raw);
    return r.ok && (r.value.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  }
}
