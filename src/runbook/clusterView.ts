import type { Node } from '../api/core.js';
import type { LabelSelector, MaintenanceWindowSpec } from '../api/maintenanceWindow.js';
import { parseQuantity } from '../api/quantity.js';
import { Annotations, type EvictionStrategy, type VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, type MigrationPhase, type VirtualMachineInstanceMigration } from '../api/vmim.js';
import { evacuationAction } from '../controller/evacuationRules.js';
import { guestMemoryBytes } from '../controller/guest.js';
import type { PlanNode, PlanVm } from './plan.js';

/**
 * The cluster as the runbook sees it, from parsed objects: which nodes a
 * MaintenanceWindow names, what each VM would cost to move, which VMs
 * evacuation leaves where they are, and what is in flight from a node. Pure.
 */

/**
 * For guests that say nothing about themselves, what the sim hypervisor
 * assumes (src/hypervisor/sim.ts), so that predictions on the embedded cluster
 * match it. On a real cluster a VM's dirty rate comes from its last migration.
 */
export const GUEST_DEFAULTS = { dirtyRate: 16 * 2 ** 20, workingSet: 256 * 2 ** 20, zeroFraction: 0.3 } as const;

/** A sensible node size when a node reports none (the dev cluster's nodes report 128Gi). */
const UNKNOWN_NODE_MEMORY = 2 ** 40;

export function matchesSelector(labels: Record<string, string> | undefined, sel: LabelSelector): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(l[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(l[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** The nodes a spec names, in the spec's order (by name for a selector); and names it gives that do not exist. */
export function selectNodes(spec: MaintenanceWindowSpec, nodes: readonly Node[]): { selected: string[]; missing: string[] } {
  const names = new Set(nodes.map((n) => n.metadata.name));
  if (spec.nodes) {
    const unique = [...new Set(spec.nodes)];
    return { selected: unique.filter((n) => names.has(n)), missing: unique.filter((n) => !names.has(n)) };
  }
  const sel = spec.nodeSelector ?? {};
  return { selected: nodes.filter((n) => matchesSelector(n.metadata.labels, sel)).map((n) => n.metadata.name).sort(), missing: [] };
}

export function isReady(node: Node): boolean {
  return (node.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

export function planNodes(nodes: readonly Node[], nic: { annotation: string; default: number }): PlanNode[] {
  return nodes.map((n) => {
    let capacity = nic.default;
    const ann = n.metadata.annotations?.[nic.annotation];
    if (ann) {
      try { capacity = parseQuantity(ann); } catch { /* the controller warns about it; the default stands */ }
    }
    const mem = n.status?.allocatable?.['memory'] ?? n.status?.capacity?.['memory'];
    let memory = UNKNOWN_NODE_MEMORY;
    if (mem !== undefined) {
      try { memory = parseQuantity(mem); } catch { /* keep the assumption */ }
    }
    return { name: n.metadata.name, nic: capacity, memory, schedulable: isReady(n) && !n.spec?.unschedulable };
  });
}

function annotationNumber(vmi: VirtualMachineInstance, key: string): number | undefined {
  const v = vmi.metadata.annotations?.[key];
  if (v === undefined) return undefined;
  try {
    const n = parseQuantity(v);
    return n >= 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The dirty rate the newest migration of this VM reported, if any did. */
function lastMigrationDirtyRate(vmi: VirtualMachineInstance, vmims: readonly VirtualMachineInstanceMigration[]): number | undefined {
  let best: { at: string; rate: number } | undefined;
  for (const m of vmims) {
    if (m.spec.vmiName !== vmi.metadata.name || m.metadata.namespace !== vmi.metadata.namespace) continue;
    const rate = m.status?.progress?.dirtyRate;
    if (!(rate !== undefined && rate > 0)) continue;
    const at = m.metadata.creationTimestamp ?? '';
    if (!best || at > best.at) best = { at, rate };
  }
  return best?.rate;
}

export function vmKey(vmi: VirtualMachineInstance): string {
  return `${vmi.metadata.namespace ?? 'default'}/${vmi.metadata.name}`;
}

/** Whether evacuation moves this VM, and if not, why it stays. */
export function movesOnEvacuation(vmi: VirtualMachineInstance, clusterDefault: EvictionStrategy | undefined): { moves: true } | { moves: false; why: string } {
  const action = evacuationAction(vmi, clusterDefault);
  switch (action.kind) {
    case 'migrate':
      return { moves: true };
    case 'mark-external':
      return { moves: false, why: 'evictionStrategy External' };
    case 'leave':
    case 'blocked':
      return { moves: false, why: action.reason };
  }
}

/** Running VMIs placed on a node, as the planner models them. */
export function planVms(vmis: readonly VirtualMachineInstance[], vmims: readonly VirtualMachineInstanceMigration[], clusterDefault: EvictionStrategy | undefined): PlanVm[] {
  const out: PlanVm[] = [];
  for (const vmi of vmis) {
    const node = vmi.status?.nodeName;
    if (!node || vmi.status?.phase !== 'Running' || vmi.metadata.deletionTimestamp) continue;
    const memory = guestMemoryBytes(vmi);
    out.push({
      name: vmKey(vmi),
      node,
      memory,
      dirtyRate: annotationNumber(vmi, Annotations.simDirtyRate) ?? lastMigrationDirtyRate(vmi, vmims) ?? GUEST_DEFAULTS.dirtyRate,
      workingSet: Math.min(annotationNumber(vmi, Annotations.simWorkingSet) ?? GUEST_DEFAULTS.workingSet, memory),
      zeroFraction: GUEST_DEFAULTS.zeroFraction,
      moves: movesOnEvacuation(vmi, clusterDefault).moves,
    });
  }
  return out;
}

const ACTIVE: ReadonlySet<string> = new Set<MigrationPhase>(['Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running']);

export interface NodeFacts {
  /** VMs on the node that evacuation moves. */
  toMove: number;
  /** VMs on the node evacuation leaves, with why ("ns/name (evictionStrategy None)"). */
  staying: string[];
  /** Evacuation migrations off this node that have started and not ended. */
  inFlight: number;
  /** Evacuation migrations off this node not started yet (withdrawn when its evacuation stops). */
  queued: VirtualMachineInstanceMigration[];
}

export function nodeFacts(
  node: string,
  vmis: readonly VirtualMachineInstance[],
  vmims: readonly VirtualMachineInstanceMigration[],
  clusterDefault: EvictionStrategy | undefined,
): NodeFacts {
  let toMove = 0;
  const staying: string[] = [];
  for (const vmi of vmis) {
    if (vmi.status?.nodeName !== node || vmi.status.phase !== 'Running' || vmi.metadata.deletionTimestamp) continue;
    const m = movesOnEvacuation(vmi, clusterDefault);
    if (m.moves) toMove++;
    else staying.push(`${vmKey(vmi)} (${m.why})`);
  }
  let inFlight = 0;
  const queued: VirtualMachineInstanceMigration[] = [];
  for (const m of vmims) {
    if (m.metadata.annotations?.[Annotations.evacuationMigration] !== node) continue;
    const phase = m.status?.phase || 'Pending';
    if (FINAL_PHASES.has(phase as MigrationPhase)) continue;
    if (ACTIVE.has(phase)) inFlight++;
    else if (!m.metadata.deletionTimestamp) queued.push(m);
    else inFlight++; // withdrawn but not gone yet: the controller is still letting go of it
  }
  return { toMove, staying: staying.sort(), inFlight, queued };
}
