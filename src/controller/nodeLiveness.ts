import { Node } from '../api/core.js';
import { parseObject } from '../api/meta.js';
import { FINAL_PHASES } from '../api/vmim.js';
import type { Clock } from '../util/clock.js';
import type { Tracked } from './tracked.js';

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

/**
 * Node loss (M3, issue 10 item 5): tells each migration's chart about a lost
 * node it depends on, once. A lost source sends its migrations to the arbiter,
 * which may then decide from the target's answer alone. A lost target ends what
 * has not started on the source (the guest never left it) and has the source
 * cancel what has. A source lost before TargetReady took the guest with it:
 * nothing of Ferry's to resolve.
 */
export function reportLostNodes(tracked: Iterable<Tracked>, liveness: Pick<NodeLiveness, 'silentFor'>): void {
  for (const t of tracked) {
    const s = t.session;
    if (s.phase === 'Pending' || FINAL_PHASES.has(s.phase)) continue;
    const ctx = t.actor.context();
    for (const side of ['source', 'target'] as const) {
      const node = side === 'source' ? ctx.sourceNode : ctx.targetNode;
      const known = side === 'source' ? ctx.sourceLost : ctx.targetLost;
      if (!node || known || (side === 'source' && s.phase !== 'TargetReady' && s.phase !== 'Running')) continue;
      const silentMs = liveness.silentFor(node);
      if (silentMs === undefined) continue;
      const reason = `${side} node ${node} is lost: NotReady, and no heartbeat from its handler for ${Math.round(silentMs / 1000)}s`;
      s.log.warn({ node, side }, reason);
      t.actor.send({ type: side === 'source' ? 'NODE_LOST' : 'TARGET_NODE_LOST', node, reason });
    }
  }
}
