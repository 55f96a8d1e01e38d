import type { Node } from '../api/core.js';
import type { MaintenanceWindow } from '../api/maintenanceWindow.js';
import { Annotations, type MigrationState, type VirtualMachineInstance } from '../api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../api/vmim.js';
import { guestMemoryBytes } from '../controller/guest.js';
import type { ConsoleDrain, ConsoleMigration, ConsoleNode, ConsoleRunbook, ConsoleSnapshot } from './model.js';

/**
 * The console's view of the cluster, computed from the watched objects. Pure:
 * the server calls it whenever a watch reports a change.
 */

export interface ClusterObjects {
  nodes: readonly Node[];
  vmis: readonly VirtualMachineInstance[];
  vmims: readonly VirtualMachineInstanceMigration[];
  runbooks: readonly MaintenanceWindow[];
  /** The controller's latest admission reason per VMIM uid (its `Queued` events). */
  queueReasons: ReadonlyMap<string, string>;
}

/** What the console remembers of each drain between snapshots: the API keeps no record of when a node became empty. */
export interface DrainMemory {
  vmsSeen: Set<string>;
  /** When the console first saw the taint (a taint without timeAdded, as `ferry drain` writes it). */
  firstSeen: string;
  finishedAt?: string;
}

const FINAL = new Set(['Succeeded', 'Failed']);

const hasTaint = (n: Node, key: string) => (n.spec?.taints ?? []).some((t) => t.key === key);

/**
 * KubeVirt keeps an in-flight migration's state on the VMI (source, target,
 * mode, abort) and copies it to the VMIM only at the end: `live` is the VMI's,
 * when it belongs to this migration.
 */
export function migrationOf(m: VirtualMachineInstanceMigration, queueReasons: ReadonlyMap<string, string>, live?: MigrationState): ConsoleMigration {
  const st = m.status;
  const own = st?.migrationState ?? undefined;
  const ms = own?.sourceNode ? own : live ?? own;
  const p = st?.progress;
  const phase = st?.phase || 'Pending';
  const stamps = (st?.phaseTransitionTimestamps ?? []).map((t) => ({ phase: t.phase, at: t.phaseTransitionTimestamp }));
  const finished = FINAL.has(phase) ? stamps.find((s) => s.phase === phase)?.at ?? ms?.endTimestamp : undefined;
  const reason = queueReasons.get(m.metadata.uid ?? '');
  const out: ConsoleMigration = {
    namespace: m.metadata.namespace ?? 'default',
    name: m.metadata.name,
    uid: m.metadata.uid ?? '',
    vmi: m.spec.vmiName,
    phase,
    abortRequested: Boolean(ms?.abortRequested) || (st?.conditions ?? []).some((c) => c.type === 'migrationAbortRequested' && c.status === 'True'),
    phases: stamps,
  };
  const set = <K extends keyof ConsoleMigration>(k: K, v: ConsoleMigration[K] | undefined) => {
    if (v !== undefined && v !== '') out[k] = v;
  };
  set('sourceNode', ms?.sourceNode);
  set('targetNode', ms?.targetNode);
  set('created', m.metadata.creationTimestamp);
  set('finished', finished);
  set('mode', ms?.mode);
  // Only a failed migration has a reason to show (a VMI's migrationState can still carry an earlier attempt's).
  if (phase === 'Failed') set('failureReason', ms?.failureReason);
  set('evacuationOf', m.metadata.annotations?.[Annotations.evacuationMigration]);
  if (p && !FINAL.has(phase)) {
    set('dataTotal', p.dataTotal);
    set('dataProcessed', p.dataProcessed);
    set('dataRemaining', p.dataRemaining);
    set('bytesPerSecond', p.memoryBandwidth);
    set('etaSeconds', p.etaSeconds);
    set('iteration', p.iteration);
  } else if (p && phase === 'Succeeded') {
    set('dataTotal', p.dataTotal);
    set('dataProcessed', p.dataTotal);
    out.dataRemaining = 0;
  }
  if (phase === 'Pending' && reason) out.queueReason = reason;
  return out;
}

export function buildSnapshot(
  objs: ClusterObjects,
  opts: { now: number; server: string; taintKey: string; drains: Map<string, DrainMemory> },
): ConsoleSnapshot {
  const liveStates = new Map<string, MigrationState>();
  for (const v of objs.vmis) {
    const ms = v.status?.migrationState;
    if (ms?.migrationUid) liveStates.set(ms.migrationUid, ms);
  }
  const migrations = objs.vmims.map((m) => migrationOf(m, objs.queueReasons, liveStates.get(m.metadata.uid ?? '')));
  migrations.sort((a, b) => (a.created ?? '').localeCompare(b.created ?? '') || a.name.localeCompare(b.name));
  const inFlight = migrations.filter((m) => !FINAL.has(m.phase));
  const migratingVm = new Set(inFlight.map((m) => `${m.namespace}/${m.vmi}`));
  const byVm = new Map(inFlight.map((m) => [`${m.namespace}/${m.vmi}`, m]));

  const vmsByNode = new Map<string, ConsoleNode['vms']>();
  for (const v of objs.vmis) {
    const node = v.status?.nodeName;
    if (!node || v.status?.phase !== 'Running') continue;
    const ns = v.metadata.namespace ?? 'default';
    const list = vmsByNode.get(node) ?? [];
    list.push({ namespace: ns, name: v.metadata.name, phase: v.status.phase, memoryBytes: guestMemoryBytes(v), migrating: migratingVm.has(`${ns}/${v.metadata.name}`) });
    vmsByNode.set(node, list);
  }
  const nodes: ConsoleNode[] = objs.nodes
    .map((n) => ({
      name: n.metadata.name,
      ready: (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
      schedulable: !n.spec?.unschedulable,
      draining: hasTaint(n, opts.taintKey),
      vms: (vmsByNode.get(n.metadata.name) ?? []).sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true })),
    }))
    .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));

  const drains: ConsoleDrain[] = [];
  for (const n of objs.nodes) {
    const name = n.metadata.name;
    if (!hasTaint(n, opts.taintKey)) {
      opts.drains.delete(name);
      continue;
    }
    const vms = vmsByNode.get(name) ?? [];
    const mem = opts.drains.get(name) ?? { vmsSeen: new Set<string>(), firstSeen: new Date(opts.now).toISOString() };
    opts.drains.set(name, mem);
    for (const v of vms) mem.vmsSeen.add(`${v.namespace}/${v.name}`);
    let bytesLeft = 0;
    let rate = 0;
    for (const v of vms) {
      const m = byVm.get(`${v.namespace}/${v.name}`);
      bytesLeft += m?.dataRemaining ?? v.memoryBytes;
      if (m?.sourceNode === name && m.phase === 'Running') rate += m.bytesPerSecond ?? 0;
    }
    if (vms.length === 0) mem.finishedAt ??= new Date(opts.now).toISOString();
    else delete mem.finishedAt;
    const startedAt = (n.spec?.taints ?? []).find((t) => t.key === opts.taintKey)?.['timeAdded'];
    const d: ConsoleDrain = { node: name, startedAt: typeof startedAt === 'string' ? startedAt : mem.firstSeen, vmsLeft: vms.length, vmsTotal: mem.vmsSeen.size, bytesLeft, bytesPerSecond: rate };
    if (mem.finishedAt) d.finishedAt = mem.finishedAt;
    else if (rate > 0) d.predictedEnd = new Date(opts.now + (bytesLeft / rate) * 1000).toISOString();
    drains.push(d);
  }
  drains.sort((a, b) => a.node.localeCompare(b.node, undefined, { numeric: true }));

  const runbooks: ConsoleRunbook[] = objs.runbooks.map((mw) => {
    const s = mw.status;
    const r: ConsoleRunbook = {
      name: mw.metadata.name,
      phase: s?.phase ?? 'Pending',
      paused: mw.spec.paused,
      nodes: (s?.nodes ?? []).map((n) => ({
        name: n.name,
        phase: n.phase,
        ...(n.batch !== undefined ? { batch: n.batch } : {}),
        ...(n.vmsMoved !== undefined ? { vmsMoved: n.vmsMoved } : {}),
        ...(n.vmsTotal !== undefined ? { vmsTotal: n.vmsTotal } : {}),
        ...(n.predictedFinish ? { predictedFinish: n.predictedFinish } : {}),
        ...(n.finishedAt ? { finishedAt: n.finishedAt } : {}),
        ...(n.reason ? { reason: n.reason } : {}),
      })),
    };
    if (s?.progress) r.progress = s.progress;
    if (s?.window) {
      r.windowStart = s.window.start;
      r.windowEnd = s.window.end;
    }
    if (s?.plan?.predictedEnd) r.predictedEnd = s.plan.predictedEnd;
    if (s?.eta) r.eta = s.eta;
    if (s?.finishedAt) r.finishedAt = s.finishedAt;
    return r;
  });
  runbooks.sort((a, b) => a.name.localeCompare(b.name));

  return { at: new Date(opts.now).toISOString(), server: opts.server, nodes, migrations, drains, runbooks };
}
