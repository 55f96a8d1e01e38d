import { parseObject } from '../api/meta.js';
import { Pod } from '../api/core.js';
import { Labels, VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, MIGRATION_FINALIZER, VirtualMachineInstanceMigration } from '../api/vmim.js';
import { MaintenanceAnnotations, MaintenanceLabels } from '../api/maintenanceWindow.js';
import { budgetName } from '../controller/disruptionBudgets.js';
import type { StoredObject } from '../devcluster/object.js';
import { domainOf, type InvariantChecker, type Violation } from './invariants.js';

/** A job a handler still reports after the faults stopped. */
export interface ActiveHandlerJob { node: string; role: 'source' | 'target'; migrationUid: string; state: string; domain: string }

/** Handler job states that mean "still doing something"; the rest are records of finished work. */
const ACTIVE = new Set(['starting', 'running', 'preparing', 'prepared']);

/** Phases a MaintenanceWindow ends in. */
export const RUNBOOK_FINAL = new Set(['Completed', 'WindowClosed', 'Failed']);

/**
 * Why a node is not back in service (cordoned, drain-tainted, or still marked
 * by a runbook), or undefined when it is.
 */
export function nodeHeld(node: StoredObject, drainTaintKey = 'kubevirt.io/drain'): string | undefined {
  const n = node as { spec?: { unschedulable?: boolean; taints?: Array<{ key?: string }> } } & StoredObject;
  const why: string[] = [];
  if (n.spec?.unschedulable === true) why.push('cordoned');
  if ((n.spec?.taints ?? []).some((t) => t.key === drainTaintKey)) why.push(`tainted ${drainTaintKey}`);
  const owner = n.metadata.annotations?.[MaintenanceAnnotations.owner];
  if (owner) why.push(`held by maintenance window ${owner}`);
  const label = n.metadata.labels?.[MaintenanceLabels.maintenance];
  if (label) why.push(`labelled ${MaintenanceLabels.maintenance}=${label}`);
  return why.length > 0 ? why.join(', ') : undefined;
}

/**
 * What must hold once the faults have stopped and every migration has ended:
 * each guest runs exactly where its VMI says, with one launcher pod and a
 * budget of one; nothing of a migration is left (target pods, open
 * migrationState, incoming or shut-off copies, handler jobs, running jobs).
 */
export function quiescenceViolations(s: {
  at: number;
  vmis: readonly StoredObject[];
  pods: readonly StoredObject[];
  pdbs: readonly StoredObject[];
  vmims: readonly StoredObject[];
  checker: InvariantChecker;
  handlerJobs: readonly ActiveHandlerJob[];
  /** Every node; each must be back in service (no drain or runbook may leave one held). */
  nodes?: readonly StoredObject[];
  /** Every MaintenanceWindow; each must have ended. */
  maintenanceWindows?: readonly StoredObject[];
  /**
   * What each handler that answered list-jobs says its hypervisor holds. It must
   * be the journals' truth exactly: a handler that believes in a domain that is
   * gone (or misses one that is there) has leaked or lost state.
   */
  handlerDomains?: ReadonlyMap<string, ReadonlyArray<{ name: string; state: string }>>;
}): Violation[] {
  const out: Violation[] = [];
  const fail = (subject: string, message: string) => out.push({ invariant: 'quiescence', at: s.at, subject, message });
  for (const raw of s.vmims) {
    const m = parseObject(VirtualMachineInstanceMigration, raw);
    if (!m.ok) continue;
    const key = `${m.value.metadata.namespace}/${m.value.metadata.name}`;
    const final = FINAL_PHASES.has(m.value.status?.phase as never);
    if (!final) fail(key, `migration still ${m.value.status?.phase || 'without a phase'} after the faults stopped`);
    // A final migration has nothing left to clean up, so Ferry's finalizer must be gone; a deleted one must be gone itself.
    else if ((m.value.metadata.finalizers ?? []).includes(MIGRATION_FINALIZER)) fail(key, `finalizer ${MIGRATION_FINALIZER} left on a ${m.value.status?.phase} migration`);
    if (m.value.metadata.deletionTimestamp) fail(key, `deleted at ${m.value.metadata.deletionTimestamp} but still there (finalizers: ${(m.value.metadata.finalizers ?? []).join(', ') || 'none'})`);
  }
  for (const node of s.nodes ?? []) {
    const why = nodeHeld(node);
    if (why) fail(`node/${node.metadata.name}`, `not back in service after the drains and runbooks ended: ${why}`);
  }
  for (const mw of s.maintenanceWindows ?? []) {
    const status = (mw as { status?: { phase?: string; conditions?: Array<{ message?: string }> } }).status;
    if (!RUNBOOK_FINAL.has(status?.phase ?? '')) fail(`maintenancewindow/${mw.metadata.name}`, `runbook still ${status?.phase ?? 'without a phase'} after the faults stopped`);
  }
  const pods = s.pods.flatMap((p) => {
    const r = parseObject(Pod, p);
    return r.ok && !r.value.metadata.deletionTimestamp ? [r.value] : [];
  });
  for (const raw of s.vmis) {
    const r = parseObject(VirtualMachineInstance, raw);
    if (!r.ok) continue;
    const vmi = r.value;
    const key = `${vmi.metadata.namespace}/${vmi.metadata.name}`;
    const domain = domainOf(vmi.metadata.namespace ?? 'default', vmi.metadata.name);
    const node = vmi.status?.nodeName;
    const truth = s.checker.domains.get(domain) ?? new Map<string, string>();
    const running = s.checker.runningNode(domain);
    if (running !== node) fail(key, `the VMI says it runs on ${node ?? 'no node'}, the hypervisors say ${running ?? `nowhere or on several nodes (${[...truth].map(([n, st]) => `${st} on ${n}`).join(', ') || 'nothing'})`}`);
    for (const [n, st] of truth) if (n !== running) fail(key, `leftover ${st} copy of ${domain} on ${n}`);
    const launchers = pods.filter((p) => p.metadata.labels?.[Labels.createdBy] === vmi.metadata.uid);
    if (launchers.length !== 1 || launchers[0]?.spec?.nodeName !== node) {
      fail(key, `expected one launcher pod on ${node}, found ${launchers.map((p) => `${p.metadata.name} on ${p.spec?.nodeName ?? '?'}`).join(', ') || 'none'}`);
    }
    const ms = vmi.status?.migrationState;
    if (ms?.migrationUid && !ms.completed && !ms.failed) fail(key, `migrationState of ${ms.migrationUid} is still open`);
    const pdb = s.pdbs.find((p) => p.metadata.name === budgetName(vmi) && p.metadata.namespace === vmi.metadata.namespace) as { spec?: { minAvailable?: number } } | undefined;
    if (pdb && pdb.spec?.minAvailable !== 1) fail(key, `disruption budget still asks for ${pdb.spec?.minAvailable} pods`);
  }
  for (const [node, domains] of s.handlerDomains ?? []) {
    const says = new Map(domains.map((d) => [d.name, d.state]));
    const truth = new Map([...s.checker.domains].flatMap(([d, where]) => (where.has(node) ? [[d, where.get(node)!] as const] : [])));
    for (const [d, st] of says) if (truth.get(d) !== st) fail(node, `handler reports ${d} ${st}, the journal says ${truth.get(d) ?? 'gone'}`);
    for (const [d, st] of truth) if (!says.has(d)) fail(node, `handler does not know ${d}, which the journal says is ${st} there`);
  }
  for (const j of s.handlerJobs) if (ACTIVE.has(j.state)) fail(j.node, `handler still holds ${j.role} job ${j.migrationUid} (${j.domain}) in state ${j.state}`);
  for (const j of s.checker.jobs.values()) fail(j.node, `migration job of ${j.domain} to ${j.target} still runs in the hypervisor`);
  return out;
}
