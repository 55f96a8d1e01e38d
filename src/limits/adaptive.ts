import { convergenceBandwidth, predictMigration } from '../hypervisor/precopy.js';
import { DEFAULT_MAX_DOWNTIME_MS } from './convergence.js';
import type { BandwidthDemand, LimitsConfig } from './types.js';

/**
 * Adaptive concurrency: what Ferry does with a parallel limit nobody pinned.
 *
 * A limit set in KubeVirt's `migrations` configuration or in Ferry's config is a
 * hard cap. One left out is not KubeVirt's default (5 per cluster, 2 outbound
 * per node) but comes from the network:
 * - the cluster count is unlimited: the NICs and the budget bound it;
 * - a node runs at most ADAPTIVE_STREAMS_PER_NODE migrations each way;
 * - a migration starts only where it can reserve its *efficient share*: the
 *   bandwidth at which pre-copy sends at most EFFICIENCY_SLACK more bytes than
 *   it would alone at full speed, and finishes within TIMEOUT_SHARE of its
 *   completion timeout. Reservations on a NIC (and the budget) never exceed its
 *   capacity, and the allocator hands every migration at least its reservation.
 * So a NIC carries as many migrations as it can without any of them sending
 * much more than it would alone, quiet guests share a NIC many ways and a busy
 * one gets a NIC to itself.
 */

/** Migrations leaving (and, separately, arriving at) one node at once when that limit is not pinned. */
export const ADAPTIVE_STREAMS_PER_NODE = 4;
/** Extra bytes (relative) a migration may send over running alone at full path speed. */
export const EFFICIENCY_SLACK = 0.02;
/** At its reserved share a migration must finish within this part of its completion timeout. */
export const TIMEOUT_SHARE = 0.5;

/** The parallel limits one source (KubeVirt's CR, Ferry's config) sets; left out = not pinned. */
export interface PinnedLimits {
  parallelMigrationsPerCluster?: number | undefined;
  parallelOutboundMigrationsPerNode?: number | undefined;
  parallelInboundMigrationsPerNode?: number | undefined;
}

type CountLimit = keyof PinnedLimits;
const COUNT_LIMITS: readonly CountLimit[] = ['parallelMigrationsPerCluster', 'parallelOutboundMigrationsPerNode', 'parallelInboundMigrationsPerNode'];

/** The count limits `raw` (a KubeVirt `migrations` block or Ferry's `limits`, as written) sets. */
export function pinnedIn(raw: unknown): PinnedLimits {
  const out: PinnedLimits = {};
  if (!raw || typeof raw !== 'object') return out;
  for (const k of COUNT_LIMITS) {
    const v = (raw as Record<string, unknown>)[k];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 1) out[k] = v;
  }
  return out;
}

export interface ResolveInput {
  /** Every source of pins; where several pin the same limit the smallest holds. */
  pins: readonly PinnedLimits[];
  bandwidthBudget: number;
  defaultNicCapacity: number;
  bandwidthPerMigration: number;
  /** KubeVirt's completionTimeoutPerGiB (s/GiB; 0 = off): adaptive admission keeps inside it. */
  completionTimeoutPerGiB: number;
}

/** The limits `decide` runs with: pinned ones as caps, the rest adaptive. */
export function resolveLimits(input: ResolveInput): LimitsConfig {
  const pinned = (k: CountLimit): number | undefined => {
    let v: number | undefined;
    for (const p of input.pins) {
      const x = p[k];
      if (x !== undefined) v = v === undefined ? x : Math.min(v, x);
    }
    return v;
  };
  const cluster = pinned('parallelMigrationsPerCluster');
  const outbound = pinned('parallelOutboundMigrationsPerNode');
  const inbound = pinned('parallelInboundMigrationsPerNode');
  const config: LimitsConfig = {
    parallelMigrationsPerCluster: cluster ?? Infinity,
    parallelOutboundMigrationsPerNode: outbound ?? ADAPTIVE_STREAMS_PER_NODE,
    parallelInboundMigrationsPerNode: inbound ?? ADAPTIVE_STREAMS_PER_NODE,
    bandwidthBudget: input.bandwidthBudget,
    defaultNicCapacity: input.defaultNicCapacity,
    bandwidthPerMigration: input.bandwidthPerMigration,
  };
  if (cluster === undefined || outbound === undefined || inbound === undefined) {
    config.adaptive = {
      completionTimeoutPerGiB: input.completionTimeoutPerGiB,
      pinned: { cluster: cluster !== undefined, outbound: outbound !== undefined, inbound: inbound !== undefined },
    };
  }
  return config;
}

const GiB = 2 ** 30;
/** Relative precision of the efficient share: the bisection stops within this of it. */
const PRECISION = 0.01;
const CACHE_LIMIT = 50_000;
const cache = new Map<string, number>();

/**
 * The least bandwidth (bytes/s) at which `m` sends at most EFFICIENCY_SLACK
 * more than at `full` (the most its path can give) and finishes within
 * TIMEOUT_SHARE of its completion timeout (`completionTimeoutPerGiB` s/GiB,
 * 0 = none); `full` when even that is not enough (it then needs its path to
 * itself). Zero pages are unknown to the controller, so none are assumed.
 */
export function efficientShare(m: BandwidthDemand, full: number, completionTimeoutPerGiB: number): number {
  if (!(full > 0) || !Number.isFinite(full) || !(m.memoryBytes > 0)) return 0;
  const workingSet = Math.min(m.workingSet ?? m.memoryBytes, m.memoryBytes);
  const downtime = m.maxDowntimeMs ?? DEFAULT_MAX_DOWNTIME_MS;
  const autoConverge = m.allowAutoConverge === true;
  const key = `${m.memoryBytes}|${m.dirtyRate}|${workingSet}|${downtime}|${autoConverge}|${full}|${completionTimeoutPerGiB}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;

  const guest = { memoryBytes: m.memoryBytes, dirtyRate: m.dirtyRate, workingSet, zeroFraction: 0 };
  const controls = { maxDowntimeMs: downtime, autoConverge, postCopy: false };
  const cost = (b: number) => {
    const p = predictMigration(guest, { ...controls, bandwidth: b });
    return { bytes: p.converges ? (p.durationMs / 1000) * b : Infinity, ms: p.durationMs };
  };
  const alone = cost(full);
  const deadline = completionTimeoutPerGiB > 0 ? TIMEOUT_SHARE * completionTimeoutPerGiB * 1000 * (m.memoryBytes / GiB) : Infinity;
  const ok = (b: number) => {
    const c = cost(b);
    return c.bytes <= alone.bytes * (1 + EFFICIENCY_SLACK) && c.ms <= deadline;
  };
  let share = full;
  if (alone.bytes < Infinity && ok(full)) {
    // Bisection on a log scale, from the least rate that could possibly do (it cannot
    // send its memory in time below memory ÷ deadline, nor converge below the model's
    // bound) up to the full path.
    const floor = Math.max(2 ** 20, Number.isFinite(deadline) ? m.memoryBytes / (deadline / 1000) : 0, convergenceBandwidth(guest, downtime));
    let lo = Math.min(full, floor);
    let hi = full;
    if (ok(lo)) hi = lo;
    else {
      while (hi / lo > 1 + PRECISION) {
        const mid = Math.sqrt(lo * hi);
        if (ok(mid)) hi = mid;
        else lo = mid;
      }
    }
    share = hi;
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, share);
  return share;
}
