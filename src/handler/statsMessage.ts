import type { JobStats } from '../hypervisor/driver.js';
import type { JobStatsMsg } from '../bus/protocol.js';

/**
 * Driver statistics as they go on the wire. A driver may report an expected
 * downtime of Infinity while a guest does not converge; JSON cannot carry it and
 * the schema would reject it, so an unknowable estimate is simply left out.
 */
export function statsMessage(s: JobStats): JobStatsMsg {
  const msg: JobStatsMsg = {
    phase: s.phase,
    mode: s.mode,
    elapsedMs: s.elapsedMs,
    dataTotal: s.dataTotal,
    dataProcessed: s.dataProcessed,
    dataRemaining: s.dataRemaining,
    memoryBandwidth: s.memoryBandwidth,
    dirtyRate: s.dirtyRate,
    iteration: s.iteration,
    autoConvergeThrottle: s.autoConvergeThrottle,
    bandwidthLimit: s.bandwidthLimit,
  };
  if (s.expectedDowntimeMs !== undefined && Number.isFinite(s.expectedDowntimeMs)) msg.expectedDowntimeMs = s.expectedDowntimeMs;
  if (s.downtimeMs !== undefined && Number.isFinite(s.downtimeMs)) msg.downtimeMs = s.downtimeMs;
  return msg;
}
