import type { JobPhase, JobStats, MigrationMode } from '../driver.js';
import { JobType } from './protocol.js';

/** Job statistics as libvirt reports them: the job type and its typed parameters by name. */
export interface LibvirtJobStats {
  type: number;
  params: Record<string, number | boolean | string>;
}

export interface JobContext {
  mode: MigrationMode;
  /** Bytes/s the driver last asked for (0 = unlimited); libvirt does not report it. */
  bandwidthLimit: number;
}

/** The phase a libvirt job type stands for; `null` when there is no job at all. */
export function phaseOfJobType(type: number): JobPhase | null {
  switch (type) {
    case JobType.BOUNDED:
    case JobType.UNBOUNDED: return 'running';
    case JobType.COMPLETED: return 'completed';
    case JobType.FAILED: return 'failed';
    case JobType.CANCELLED: return 'aborted';
    default: return null;
  }
}

function num(params: LibvirtJobStats['params'], field: string): number | undefined {
  const v = params[field];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * Maps virDomainGetJobStats output onto Ferry's JobStats. The dirty rate comes
 * in pages/s and is turned into bytes/s; `downtime` is the expected downtime
 * while the job runs and the measured one once it has completed.
 */
export function toJobStats(stats: LibvirtJobStats, ctx: JobContext, phase?: JobPhase): JobStats {
  const p = stats.params;
  const resolved: JobPhase = phase ?? phaseOfJobType(stats.type) ?? 'running';
  const pageSize = num(p, 'memory_page_size') ?? 4096;
  const downtime = num(p, 'downtime');
  const out: JobStats = {
    phase: resolved,
    mode: ctx.mode,
    elapsedMs: num(p, 'time_elapsed') ?? 0,
    dataTotal: num(p, 'data_total') ?? num(p, 'memory_total') ?? 0,
    dataProcessed: num(p, 'data_processed') ?? num(p, 'memory_processed') ?? 0,
    dataRemaining: num(p, 'data_remaining') ?? num(p, 'memory_remaining') ?? 0,
    memoryBandwidth: num(p, 'memory_bps') ?? 0,
    dirtyRate: (num(p, 'memory_dirty_rate') ?? 0) * pageSize,
    iteration: num(p, 'memory_iteration') ?? 0,
    autoConvergeThrottle: num(p, 'auto_converge_throttle') ?? 0,
    bandwidthLimit: ctx.bandwidthLimit,
  };
  if (downtime !== undefined) {
    if (resolved === 'completed') out.downtimeMs = downtime;
    else if (resolved === 'running') out.expectedDowntimeMs = downtime;
  }
  return out;
}

/** Statistics before libvirt has reported any. */
export function emptyJobStats(phase: JobPhase, ctx: JobContext): JobStats {
  return toJobStats({ type: JobType.NONE, params: {} }, ctx, phase);
}

/** libvirt's own words for why a finished job failed, when it kept them. */
export function jobErrorMessage(stats: LibvirtJobStats): string | undefined {
  const v = stats.params['errmsg'];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}
