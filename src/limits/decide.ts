import { efficientShare } from './adaptive.js';
import { allocateFlows, byId } from './allocate.js';
import { migrationCap, requiredBandwidth } from './convergence.js';
import { Ledger } from './ledger.js';
import { Network } from './network.js';
import { TargetPool, placementReason } from './placement.js';
import { inQueueOrder } from './priority.js';
import * as why from './reasons.js';
import type { DecideInput, Decision, QueuedMigration } from './types.js';

/**
 * Which queued migrations start now, where they go, and how much bandwidth
 * every migration gets. Pure: the same input always gives the same decision.
 *
 * The queue is walked once in priority order (evacuation, user, background;
 * FIFO within a class). A migration held back by its own node (outbound or
 * inbound limit, memory) does not hold back the ones behind it, so lower
 * classes use slots higher ones cannot. A migration that would not get enough
 * bandwidth to converge waits and claims the resource it is short of: nothing
 * behind it may take bandwidth there, so it is first in line as soon as running
 * migrations finish (and, at worst, once that resource is idle it fits).
 *
 * With `config.adaptive` (some parallel limit not pinned, see ./adaptive.ts) a
 * migration reserves its efficient share rather than its bare convergence
 * need, and placement prefers the target with the most NIC left.
 *
 * `now` is part of the contract so callers hand time in; no rule depends on it yet.
 */
export function decide(input: DecideInput): Decision {
  const { config, nodes, running, queued } = input;
  const net = new Network(config, nodes);
  const ledger = new Ledger(net, config.bandwidthPerMigration);
  const adaptive = config.adaptive;
  /** The most any path to a schedulable node can carry: what "alone at full speed" means before placement. */
  let fastestTarget = 0;
  if (adaptive) for (const n of nodes) if (n.schedulable) fastestTarget = Math.max(fastestTarget, n.nicCapacity ?? config.defaultNicCapacity);
  /** What a migration reserves along `path` (whose capacity, before placement, is capped by the fastest target). */
  const needOf = (m: QueuedMigration | (typeof running)[number], path: readonly number[], targetKnown: boolean): number => {
    const need = requiredBandwidth(m);
    if (!adaptive) return need;
    const full = targetKnown ? net.pathCapacity(path) : Math.min(net.pathCapacity(path), fastestTarget || Infinity);
    return Math.max(need, efficientShare(m, full, adaptive.completionTimeoutPerGiB));
  };
  // Per migration, running then started, for the final allocation.
  const paths: number[][] = [];
  const caps: number[] = [];
  const needs: number[] = [];
  // A migration whose source is done keeps its slot but takes no bandwidth (and gets none).
  const flowing = running.filter((r) => !r.sourceDone);
  for (const r of running) if (r.sourceDone) ledger.add(r.sourceNode, r.targetNode, net.path(r.sourceNode, r.targetNode), 0);
  for (const r of flowing) {
    const path = net.path(r.sourceNode, r.targetNode);
    const need = needOf(r, path, r.targetNode !== undefined);
    const cap = migrationCap(config.bandwidthPerMigration, r);
    paths.push(path);
    caps.push(cap);
    needs.push(need);
    ledger.add(r.sourceNode, r.targetNode, path, Math.min(need, cap, net.pathCapacity(path)));
  }
  const pool = new TargetPool(ledger, nodes, config.parallelInboundMigrationsPerNode, adaptive !== undefined);
  const claims = new Map<number, string>();
  let nodeNames: Set<string> | undefined;
  const outboundFull = new Map<string, string>();
  const start: Decision['start'] = [];
  const waiting: Record<string, string> = {};

  const order = inQueueOrder(queued);
  let i = 0;
  for (; i < order.length; i++) {
    if (ledger.cluster >= config.parallelMigrationsPerCluster) break;
    const q = order[i] as QueuedMigration;
    const verdict = consider(q);
    if (typeof verdict === 'string') {
      waiting[q.id] = verdict;
      continue;
    }
    start.push(q.targetNode === undefined ? { id: q.id, targetNode: verdict.target } : { id: q.id });
  }
  if (i < order.length) {
    const full = why.clusterLimit(ledger.cluster, config.parallelMigrationsPerCluster);
    for (; i < order.length; i++) waiting[(order[i] as QueuedMigration).id] = full;
  }

  const shares = allocateFlows(net.capacities, paths, caps, needs);
  const bandwidth = byId(flowing, shares);
  for (const r of running) if (r.sourceDone) bandwidth[r.id] = 0;
  for (let k = 0; k < start.length; k++) bandwidth[start[k]!.id] = shares[flowing.length + k]!;
  return { start, bandwidth, waiting };

  /** Either where `q` starts, or why it waits; commits the start to the ledger. */
  function consider(q: QueuedMigration): { target: string } | string {
    const source = q.sourceNode;
    const out = ledger.outbound(source);
    if (out >= config.parallelOutboundMigrationsPerNode) {
      // A node at its limit stays there for this decision: say so once per node.
      let reason = outboundFull.get(source);
      if (reason === undefined) {
        reason = why.outboundLimit(source, out, config.parallelOutboundMigrationsPerNode, adaptive !== undefined && !adaptive.pinned.outbound);
        outboundFull.set(source, reason);
      }
      return reason;
    }
    const pinned = q.targetNode;
    if (pinned !== undefined) {
      const blocked = pinnedProblem(q, pinned);
      if (blocked) return blocked;
    }

    // Resources known before placement: the source NIC, the budget, a pinned target.
    const before = net.path(source, pinned);
    for (const r of before) {
      const holder = claims.get(r);
      if (holder !== undefined) return why.behind(holder, net.describe(r));
    }
    const need = needOf(q, before, pinned !== undefined);
    const cap = migrationCap(config.bandwidthPerMigration, q);
    const wish = Math.min(need, cap);
    for (const r of before) {
      if (!ledger.fits(r, wish)) {
        claims.set(r, q.id);
        const node = net.nodeOf(r);
        if (node !== undefined) pool.exclude(node);
        return adaptive
          ? why.efficientShareTooSmall(ledger.headroom(r), net.describe(r), wish, net.capacity(r))
          : why.shareTooSmall(ledger.headroom(r), net.describe(r), q.dirtyRate, wish, net.capacity(r));
      }
    }

    let target = pinned;
    if (target === undefined) {
      const placed = pool.pick(source, q.memoryBytes, wish);
      if (!('node' in placed)) {
        return placementReason(placed.failure, q, wish, config.parallelInboundMigrationsPerNode, adaptive !== undefined && !adaptive.pinned.inbound);
      }
      target = placed.node;
    }
    const path = pinned === undefined ? net.path(source, target) : before;
    ledger.add(source, target, path, Math.min(wish, net.pathCapacity(path)));
    paths.push(path);
    caps.push(cap);
    needs.push(need);
    pool.take(target, q.memoryBytes);
    return { target };
  }

  function pinnedProblem(q: QueuedMigration, target: string): string | undefined {
    if (target === q.sourceNode) return why.pinnedIsSource(target);
    if (!pool.isSchedulable(target)) {
      nodeNames ??= new Set(nodes.map((n) => n.name));
      return nodeNames.has(target) ? why.pinnedUnschedulable(target) : why.pinnedUnknown(target);
    }
    const inbound = ledger.inbound(target);
    if (inbound >= config.parallelInboundMigrationsPerNode) {
      return why.inboundLimit(target, inbound, config.parallelInboundMigrationsPerNode, adaptive !== undefined && !adaptive.pinned.inbound);
    }
    const free = pool.freeMemory(target);
    if (free !== undefined && free < q.memoryBytes) return why.pinnedMemory(target, free, q.memoryBytes);
    return undefined;
  }
}
