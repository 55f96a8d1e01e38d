import { formatBytes } from '../../src/api/quantity.js';
import type { Bounds } from './bounds.js';
import type { Scenario } from './scenario.js';
import type { SimResult } from './simulator.js';

export interface RunReport {
  policy: string;
  makespanS: number | null;
  ratioToLowerBound: number | null;
  ratioToPrecopyBound: number | null;
  succeeded: number;
  failed: number;
  retried: number;
  unfinished: string[];
  totalDowntimeMs: number;
  maxDowntimeMs: number;
  peakConcurrency: { cluster: number; maxOutboundPerNode: number; maxInboundPerNode: number; outbound: Record<string, number>; inbound: Record<string, number> };
  peakNic: { maxUtilization: number; node: string; perNode: Record<string, { peak: number; capacity: number }> };
  decisions: number;
  /** Wall-clock per `decide` call. */
  decideLatencyMs: Latency | null;
  /** CPU time per `decide` call (process-wide, so including garbage collection). */
  decideCpuMs: Latency | null;
  wallMs: number;
  failures: SimResult['failures'];
}

export interface Latency {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

function latency(samples: readonly number[] | undefined): Latency | null {
  if (!samples || samples.length === 0) return null;
  const sorted = [...samples].sort((x, y) => x - y);
  return { count: sorted.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1)! };
}

export interface BenchReport {
  scenario: string;
  description: string;
  nodes: number;
  vms: number;
  drained: number;
  vmsToMove: number;
  bytesToMove: number;
  lowerBoundS: number;
  lowerBoundBinding: string;
  precopyBoundS: number | null;
  precopyBoundBinding: string | null;
  runs: RunReport[];
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export function runReport(r: SimResult, b: Bounds, latencies?: readonly number[], cpuTimes?: readonly number[]): RunReport {
  const makespanS = r.makespanMs === null ? null : r.makespanMs / 1000;
  let maxUtilization = 0;
  let node = '';
  for (const [n, p] of Object.entries(r.peakNic)) {
    if (p.peak / p.capacity > maxUtilization) {
      maxUtilization = p.peak / p.capacity;
      node = n;
    }
  }
  return {
    policy: r.policy,
    makespanS,
    ratioToLowerBound: makespanS === null ? null : makespanS / (b.lower.ms / 1000),
    ratioToPrecopyBound: makespanS === null || b.precopy === null ? null : makespanS / (b.precopy.ms / 1000),
    succeeded: r.succeeded,
    failed: r.failed,
    retried: r.retried,
    unfinished: r.unfinished,
    totalDowntimeMs: r.totalDowntimeMs,
    maxDowntimeMs: r.maxDowntimeMs,
    peakConcurrency: {
      cluster: r.peakClusterConcurrency,
      maxOutboundPerNode: Math.max(0, ...Object.values(r.peakOutbound)),
      maxInboundPerNode: Math.max(0, ...Object.values(r.peakInbound)),
      outbound: r.peakOutbound,
      inbound: r.peakInbound,
    },
    peakNic: { maxUtilization, node, perNode: Object.fromEntries(Object.entries(r.peakNic).filter(([, p]) => p.peak > 0)) },
    decisions: r.decisions,
    decideLatencyMs: latency(latencies),
    decideCpuMs: latency(cpuTimes),
    wallMs: r.wallMs,
    failures: r.failures.slice(0, 20),
  };
}

export function benchReport(s: Scenario, b: Bounds, runs: RunReport[]): BenchReport {
  const drained = new Set(s.drain);
  const moving = s.vms.filter((v) => drained.has(v.node));
  return {
    scenario: s.name,
    description: s.description,
    nodes: s.nodes.length,
    vms: s.vms.length,
    drained: drained.size,
    vmsToMove: moving.length,
    bytesToMove: moving.reduce((sum, v) => sum + v.memory * (1 - v.zeroFraction), 0),
    lowerBoundS: b.lower.ms / 1000,
    lowerBoundBinding: b.lower.binding,
    precopyBoundS: b.precopy ? b.precopy.ms / 1000 : null,
    precopyBoundBinding: b.precopy ? b.precopy.binding : null,
    runs,
  };
}

const fmt = (x: number | null, digits = 1) => (x === null ? '—' : x.toFixed(digits));

/** A plain table, one column per policy. */
export function renderText(r: BenchReport): string {
  const lines: string[] = [];
  lines.push(`scenario ${r.scenario}: ${r.nodes} nodes, ${r.vms} VMs, draining ${r.drained} nodes (${r.vmsToMove} VMs, ${formatBytes(r.bytesToMove)})`);
  if (r.description) lines.push(`  ${r.description}`);
  lines.push(`lower bound ${fmt(r.lowerBoundS)} s (set by ${r.lowerBoundBinding})`);
  if (r.precopyBoundS !== null) lines.push(`pre-copy bound ${fmt(r.precopyBoundS)} s (each VM alone at full NIC speed; set by ${r.precopyBoundBinding})`);
  const rows: Array<[string, (x: RunReport) => string]> = [
    ['makespan (s)', (x) => fmt(x.makespanS)],
    ['÷ lower bound', (x) => fmt(x.ratioToLowerBound, 3)],
    ['÷ pre-copy bound', (x) => fmt(x.ratioToPrecopyBound, 3)],
    ['succeeded', (x) => String(x.succeeded)],
    ['failed', (x) => String(x.failed)],
    ['retried', (x) => String(x.retried)],
    ['unfinished', (x) => String(x.unfinished.length)],
    ['downtime total (ms)', (x) => fmt(x.totalDowntimeMs, 0)],
    ['downtime max (ms)', (x) => fmt(x.maxDowntimeMs, 0)],
    ['peak concurrent (cluster)', (x) => String(x.peakConcurrency.cluster)],
    ['peak out / in per node', (x) => `${x.peakConcurrency.maxOutboundPerNode} / ${x.peakConcurrency.maxInboundPerNode}`],
    ['peak NIC use (of capacity)', (x) => `${(x.peakNic.maxUtilization * 100).toFixed(1)}% ${x.peakNic.node}`],
    ['decisions', (x) => String(x.decisions)],
    ['decide p50 / p99 (ms, wall)', (x) => (x.decideLatencyMs ? `${x.decideLatencyMs.p50.toFixed(3)} / ${x.decideLatencyMs.p99.toFixed(3)}` : '—')],
    ['decide p50 / p99 (ms, CPU)', (x) => (x.decideCpuMs ? `${x.decideCpuMs.p50.toFixed(3)} / ${x.decideCpuMs.p99.toFixed(3)}` : '—')],
    ['wall time (s)', (x) => (x.wallMs / 1000).toFixed(2)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const cols = r.runs.map((run) => Math.max(run.policy.length, ...rows.map(([, f]) => f(run).length)));
  lines.push('');
  lines.push(`${''.padEnd(width)}  ${r.runs.map((run, i) => run.policy.padStart(cols[i]!)).join('  ')}`);
  for (const [k, f] of rows) lines.push(`${k.padEnd(width)}  ${r.runs.map((run, i) => f(run).padStart(cols[i]!)).join('  ')}`);
  const speedups = compare(r);
  if (speedups.length > 0) lines.push('');
  for (const c of speedups) lines.push(`${c.of} is ${c.factor === null ? '— (one of them never finished)' : `${c.factor.toFixed(2)}×`} as fast as ${c.than}${c.than === 'kubevirt-tuned' ? '  (headline: same config, KubeVirt\'s algorithm)' : ''}`);
  for (const run of r.runs) {
    if (run.failures.length > 0) lines.push(`${run.policy}: first failure: ${run.failures[0]!.vm} at ${fmt(run.failures[0]!.atMs / 1000)} s: ${run.failures[0]!.reason}`);
    if (run.unfinished.length > 0) lines.push(`${run.policy}: never left the drained nodes: ${run.unfinished.slice(0, 10).join(', ')}${run.unfinished.length > 10 ? ', …' : ''}`);
  }
  return lines.join('\n');
}

export interface Speedup {
  of: string;
  than: string;
  /** Their makespan ÷ ours; null when either never finished. */
  factor: number | null;
}

/** The first run (ferry when it ran) against each of the others, in the order they ran. */
export function compare(r: BenchReport): Speedup[] {
  const [a, ...others] = r.runs;
  if (!a) return [];
  return others.map((b) => ({
    of: a.policy,
    than: b.policy,
    factor: a.makespanS !== null && b.makespanS !== null && a.makespanS > 0 ? b.makespanS / a.makespanS : null,
  }));
}

/** The real control plane's drain beside the virtual-time one. */
export function renderReal(
  r: { makespanS: number | null; wallMs: number; timeScale: number; unfinished: string[]; phases: Record<string, number>; phaseWallMs: Record<string, number>; apiRequests: Record<string, number>; apiWrites: Record<string, number>; setupWrites?: number; measured?: { controllerCpuSeconds: number; controllerPeakRssMb: number; apiServerProcessPeakRssMb: number; natsMessages: number; decide?: { count: number; meanMs: number; p99AtMostMs: number } } },
  virtualS: number | null,
  withLatency?: { makespanS: number | null; startDelayMs: number; finishDelayMs: number },
): string {
  const lines = [
    `makespan, virtual time         ${fmt(virtualS)} s`,
    `makespan, real control plane   ${fmt(r.makespanS)} s  (${(r.wallMs / 1000).toFixed(1)} s wall × ${r.timeScale})`,
  ];
  if (r.makespanS !== null && virtualS !== null && virtualS > 0) lines.push(`real ÷ virtual                 ${(r.makespanS / virtualS).toFixed(3)}`);
  if (withLatency) {
    lines.push(`virtual + control-plane latency ${fmt(withLatency.makespanS)} s  (scenario s: ${(withLatency.startDelayMs / 1000).toFixed(2)} admission → first byte, ${(withLatency.startDelayMs / 1000 / r.timeScale).toFixed(2)} s wall as measured; ${(withLatency.finishDelayMs / 1000).toFixed(2)} to free the slot)`);
    if (r.makespanS !== null && withLatency.makespanS) lines.push(`real ÷ that                    ${(r.makespanS / withLatency.makespanS).toFixed(3)}`);
  }
  lines.push(`VMIMs by phase                 ${Object.entries(r.phases).map(([p, n]) => `${p} ${n}`).join(', ')}`);
  lines.push(`median wall ms per phase       ${Object.entries(r.phaseWallMs).map(([p, ms]) => `${p} ${ms.toFixed(0)}`).join(', ')}`);
  const writes = ['POST', 'PUT', 'PATCH', 'DELETE'].reduce((sum, v) => sum + (r.apiRequests[v] ?? 0), 0);
  lines.push(`API requests                   ${Object.entries(r.apiRequests).map(([v, n]) => `${v} ${n}`).join(', ')} (${writes} writes)`);
  const migrations = Object.values(r.phases).reduce((a, b) => a + b, 0);
  if (migrations > 0) lines.push(`API writes per migration       ${(writes / migrations).toFixed(1)}: ${Object.entries(r.apiWrites).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${(n / migrations).toFixed(1)}`).join(', ')}`);
  if (r.setupWrites !== undefined) lines.push(`API writes before the drain     ${r.setupWrites} (the controller's first pass over a fresh cluster; not counted above)`);
  const m = r.measured;
  if (m && migrations > 0) {
    lines.push(`controller CPU                 ${m.controllerCpuSeconds.toFixed(1)} s (${((m.controllerCpuSeconds * 1000) / migrations).toFixed(1)} ms per migration)`);
    lines.push(`controller peak RSS            ${m.controllerPeakRssMb.toFixed(0)} MB`);
    lines.push(`API server process peak RSS    ${m.apiServerProcessPeakRssMb.toFixed(0)} MB (with every handler and sim driver in it)`);
    lines.push(`NATS messages                  ${m.natsMessages} (${(m.natsMessages / migrations).toFixed(1)} per migration)`);
    if (m.decide) lines.push(`controller decide (wall)       ${m.decide.count} passes, mean ${m.decide.meanMs.toFixed(2)} ms, p99 ≤ ${m.decide.p99AtMostMs} ms (histogram bucket)`);
    const total = Object.values(r.apiRequests).reduce((a, b) => a + b, 0);
    lines.push(`API requests per migration     ${(total / migrations).toFixed(1)}`);
  }
  if (r.unfinished.length > 0) lines.push(`never left the drained nodes: ${r.unfinished.slice(0, 10).join(', ')}${r.unfinished.length > 10 ? ', …' : ''}`);
  return lines.join('\n');
}
