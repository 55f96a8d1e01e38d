import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { createActor, fromPromise, type Actor } from 'xstate';
import { Node } from '../api/core.js';
import {
  MaintenanceAnnotations,
  MaintenanceLabels,
  MaintenanceWindow,
  MW_API_VERSION,
  MW_KIND,
} from '../api/maintenanceWindow.js';
import { parseObject } from '../api/meta.js';
import { defaultMigrationConfiguration, MigrationConfiguration } from '../api/migrationConfig.js';
import { EvictionStrategy, VirtualMachineInstance } from '../api/vmi.js';
import { VirtualMachineInstanceMigration } from '../api/vmim.js';
import { defaultFerryConfig, type FerryConfig } from '../config/ferryConfig.js';
import { deleteUnchanged } from '../controller/evacuation.js';
import { EventRecorder } from '../controller/eventRecorder.js';
import { describeApiError, isConflict, isNotFound, KUBEVIRT_RESOURCE, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import { startInformer, waitForCacheSync, type KeepAliveInformer } from '../kube/informer.js';
import { Workqueue } from '../kube/workqueue.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import {
  batchStateOf,
  runbookDelays,
  runbookMachine,
  runbookPhaseOf,
  type PlanOutcome,
  type RunbookContext,
  type RunbookEvent,
  type WindowTimes,
} from '../../statecharts/runbook.js';
import { listMaintenanceWindowsRaw, MW_PATH, patchMaintenanceWindow, patchMaintenanceWindowStatus } from './api.js';
import { nodeFacts } from './clusterView.js';
import type { ClusterSnapshot } from './decisions.js';
import type { Overheads } from './plan.js';
import { makePlan, planNextBatch } from './planning.js';
import { runbookStatus } from './status.js';
import { settingsFrom, type SettingsProvider } from './settings.js';
import { occurrenceAt, resolveWindow } from './window.js';

export const RUNBOOK_FINALIZER = 'ferry.dev/runbook';

export interface RunbookControllerOptions {
  kube: KubeClient;
  log: Logger;
  clock?: Clock;
  /**
   * Limits, migration rules, overheads and time scale in force, asked at every
   * plan. Default: the KubeVirt `migrations` configuration this controller
   * watches, with `config`, `timeScale` and `overheads` below.
   */
  settings?: SettingsProvider;
  config?: FerryConfig;
  /** Model ms per wall ms of the sim hypervisor (the embedded cluster's --time-scale); 1 on real clusters. */
  timeScale?: number;
  overheads?: Overheads;
}

type Obj = KubernetesObject & Record<string, unknown>;

interface Tracked {
  actor: Actor<typeof runbookMachine>;
  generation: number | undefined;
  paused: boolean;
  windowSpec: string;
  deleting: boolean;
  /** Facts already told to the actor, so the chart only hears about changes. */
  told: Set<string>;
  lastStatus: string;
  startedAt?: string;
  finishedAt?: string;
}

const iso = (ms: number) => new Date(ms).toISOString();
const ms = (t: string | undefined) => (t ? Date.parse(t) : NaN);

/**
 * Runs MaintenanceWindow runbooks: one statechart actor per object
 * (statecharts/runbook.ts). Level-triggered: watch events only enqueue a
 * runbook; reconcile reads the caches, tells the actor the facts that changed,
 * converges the nodes to what the actor's context says (cordon + drain taint
 * while evacuating, the `ferry.dev/maintenance=ready` label once empty,
 * released when done) and writes the status through the status subresource.
 * The status is the durable truth: a restarted controller rebuilds every actor
 * from it. Evacuation itself is the VMIM controller's: it moves the VMs off a
 * node carrying the drain taint, within the limits.
 */
export class RunbookController {
  private readonly kube: KubeClient;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly config: FerryConfig;
  private readonly events: EventRecorder;
  private readonly runbooks = new Map<string, Tracked>();
  private readonly queue: Workqueue;
  private stopped = false;
  private informers: KeepAliveInformer<Obj>[] = [];
  private mws!: KeepAliveInformer<Obj>;
  private nodes!: KeepAliveInformer<Obj>;
  private vmis!: KeepAliveInformer<Obj>;
  private vmims!: KeepAliveInformer<Obj>;
  private kubevirts!: KeepAliveInformer<Obj>;

  constructor(private readonly opts: RunbookControllerOptions) {
    this.kube = opts.kube;
    this.log = opts.log;
    this.clock = opts.clock ?? systemClock;
    this.config = opts.config ?? defaultFerryConfig;
    this.events = new EventRecorder(opts.kube, opts.log, 'ferry-runbook');
    // One worker: runbooks compete for nodes (the owner annotation), and each
    // reconcile must see the previous one's node writes.
    this.queue = new Workqueue((name) => this.reconcile(name), {
      clock: this.clock,
      workers: 1,
      baseDelayMs: 1000,
      onError: (name, err, retries, retryInMs) => this.log.error({ runbook: name, err: describeApiError(err), retries, retryInMs }, 'runbook reconcile failed; retrying'),
    });
  }

  async start(): Promise<void> {
    const kc = this.kube.kc;
    const mk = (path: string, list: () => Promise<unknown>, onChange: (o: Obj) => void) => {
      const inf = startInformer<Obj>({ kc, path, list: list as () => Promise<KubernetesListObject<Obj>>, onChange, log: this.log });
      this.informers.push(inf);
      return inf;
    };
    const all = () => {
      for (const name of this.runbooks.keys()) this.enqueue(name);
    };
    this.kubevirts = mk('/apis/kubevirt.io/v1/kubevirts', () => this.kube.listCustom(KUBEVIRT_RESOURCE), all);
    this.nodes = mk('/api/v1/nodes', () => this.kube.core.listNode(), all);
    this.vmis = mk('/apis/kubevirt.io/v1/virtualmachineinstances', () => this.kube.listCustom(VMI_RESOURCE), all);
    this.vmims = mk('/apis/kubevirt.io/v1/virtualmachineinstancemigrations', () => this.kube.listCustom(VMIM_RESOURCE), all);
    this.mws = mk(MW_PATH, () => listMaintenanceWindowsRaw(this.kube), (o) => this.enqueue(o.metadata?.name ?? ''));
    for (const inf of this.informers) await inf.start();
    if (!(await waitForCacheSync(this.informers, { log: this.log, stopped: () => this.stopped }))) return;
    this.cachesReady = true;
    for (const name of this.earlyNames) this.queue.add(name);
    this.earlyNames.clear();
    for (const o of this.mws.list()) this.enqueue(o.metadata?.name ?? '');
    this.log.info({ runbooks: this.mws.list().length }, 'runbook controller started; caches synced');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue.shutDown();
    for (const t of this.runbooks.values()) t.actor.stop();
    this.runbooks.clear();
    for (const inf of this.informers) await inf.stop();
  }

  ready(): boolean {
    return this.informers.length > 0 && this.informers.every((i) => i.synced());
  }

  // ---------- work queue ----------

  private enqueue(name: string): void {
    if (this.stopped) return;
    if (this.cachesReady) this.queue.add(name);
    else this.earlyNames.add(name);
  }

  /** False until every cache has synced: a runbook is never reconciled against a partial view. */
  private cachesReady = false;
  private readonly earlyNames = new Set<string>();

  // ---------- caches ----------

  private parsed<T>(inf: KeepAliveInformer<Obj>, schema: { safeParse(d: unknown): { success: boolean; data?: T } }): T[] {
    return inf.list().flatMap((raw) => {
      const r = schema.safeParse(raw);
      return r.success ? [r.data as T] : [];
    });
  }

  private migrationConfig(): MigrationConfiguration {
    const kv = this.kubevirts.list()[0] as { spec?: { configuration?: { migrations?: unknown } } } | undefined;
    const r = MigrationConfiguration.safeParse(kv?.spec?.configuration?.migrations ?? {});
    return r.success ? r.data : defaultMigrationConfiguration;
  }

  private clusterEvictionStrategy(): EvictionStrategy | undefined {
    const kv = this.kubevirts.list()[0] as { spec?: { configuration?: { evictionStrategy?: unknown } } } | undefined;
    const r = EvictionStrategy.safeParse(kv?.spec?.configuration?.evictionStrategy);
    return r.success ? r.data : undefined;
  }

  private snapshot(): ClusterSnapshot {
    return {
      nodes: this.parsed(this.nodes, Node),
      vmis: this.parsed(this.vmis, VirtualMachineInstance),
      vmims: this.parsed(this.vmims, VirtualMachineInstanceMigration),
      clusterEvictionStrategy: this.clusterEvictionStrategy(),
    };
  }

  private settings() {
    const kv = this.kubevirts.list()[0] as { spec?: { configuration?: { migrations?: unknown } } } | undefined;
    return this.opts.settings?.() ?? settingsFrom(this.migrationConfig(), this.config, {
      kubevirtMigrations: kv?.spec?.configuration?.migrations ?? {},
      ...(this.opts.timeScale !== undefined ? { timeScale: this.opts.timeScale } : {}),
      ...(this.opts.overheads ? { overheads: this.opts.overheads } : {}),
    });
  }

  private node(name: string): Node | undefined {
    const raw = this.nodes.get(name);
    const r = raw ? parseObject(Node, raw) : undefined;
    return r?.ok ? r.value : undefined;
  }

  private current(name: string): MaintenanceWindow {
    const r = parseObject(MaintenanceWindow, this.mws.get(name));
    if (!r.ok) throw new Error(`MaintenanceWindow ${name} is not valid: ${r.reason}`);
    return r.value;
  }

  // ---------- reconcile ----------

  async reconcile(name: string): Promise<void> {
    const raw = this.mws.get(name);
    let t = this.runbooks.get(name);
    if (!raw) {
      t?.actor.stop();
      this.runbooks.delete(name);
      return;
    }
    const parsed = parseObject(MaintenanceWindow, raw);
    const finalizers = raw.metadata?.finalizers ?? [];
    const deleting = Boolean(raw.metadata?.deletionTimestamp);
    if (!parsed.ok) {
      // Nothing was started for an object we cannot read: say why, and let it go.
      if (deleting && finalizers.includes(RUNBOOK_FINALIZER)) await this.removeFinalizer(name, finalizers);
      else await this.writeInvalid(name, raw, parsed.reason);
      return;
    }
    const mw = parsed.value;
    if (!finalizers.includes(RUNBOOK_FINALIZER)) {
      if (deleting) {
        t?.actor.stop();
        this.runbooks.delete(name);
        return;
      }
      await patchMaintenanceWindow(this.kube, name, { metadata: { finalizers: [...finalizers, RUNBOOK_FINALIZER] } });
      return; // back through the watch
    }
    if (!t) t = this.track(mw);
    this.tell(t, mw);
    const ctx = t.actor.getSnapshot().context;
    await this.convergeNodes(name, ctx, this.isDeleting(t));
    await this.writeStatus(name, t, mw);
  }

  private isDeleting(t: Tracked): boolean {
    const top = t.actor.getSnapshot().value;
    const key = typeof top === 'string' ? top : Object.keys(top)[0];
    return key === 'Deleting' || key === 'Released' || key === 'ReleaseRetry' || key === 'Deleted';
  }

  private track(mw: MaintenanceWindow): Tracked {
    const name = mw.metadata.name;
    const status = mw.status ?? {};
    const resolved = resolveWindow(mw.spec.window);
    const window: WindowTimes | undefined = status.window ? { start: ms(status.window.start), end: ms(status.window.end) } : undefined;
    const log = this.log.child({ runbook: name });
    const machine = runbookMachine.provide({
      delays: runbookDelays(() => this.clock.now()),
      actors: {
        makePlan: fromPromise(async ({ input }) => this.makePlan(name, input.context, input.after)),
        planNextBatch: fromPromise(async ({ input }) => planNextBatch(this.planningInput(name, input))),
        removeFinalizer: fromPromise(async ({ input }) => {
          await this.convergeNodes(name, input, true);
          const raw = this.mws.get(name);
          await this.removeFinalizer(name, raw?.metadata?.finalizers ?? []);
        }),
      },
      actions: {
        announceBatch: ({ context }) => this.announceBatch(context),
        announceReady: ({ context, event }) => {
          if (event.type !== 'NODE_EVACUATED') return;
          const n = context.nodes.find((x) => x.name === event.node);
          this.nodeEvent(event.node, 'Normal', 'ReadyForMaintenance', `Empty (${event.vmsMoved} VM(s) moved${event.staying.length ? `; staying: ${event.staying.join(', ')}` : ''}); labelled ${MaintenanceLabels.maintenance}=ready by maintenance window ${name}${n?.batch ? ` (batch ${n.batch})` : ''}`);
        },
        announceDone: ({ event }) => {
          if (event.type === 'NODE_DONE') this.nodeEvent(event.node, 'Normal', 'MaintenanceDone', `Maintenance done; back in service (maintenance window ${name})`);
        },
        announceStopping: ({ context }) => {
          const stopped = context.nodes.filter((n) => n.interrupted).map((n) => n.name);
          if (stopped.length === 0) return;
          this.mwEvent(name, 'Warning', 'EvacuationStopped', `Stopped evacuating ${stopped.join(', ')}: migrations in flight finish, no new one starts; released once they end`);
        },
        announceSettled: ({ context, event }) => {
          if (event.type !== 'NODE_SETTLED') return;
          const n = context.nodes.find((x) => x.name === event.node);
          this.nodeEvent(event.node, 'Normal', 'EvacuationStopped', `${n?.reason ?? 'evacuation stopped'} (maintenance window ${name})`);
        },
        announceLeftInMaintenance: ({ context }) => {
          for (const n of context.nodes.filter((x) => x.phase === 'ReadyForMaintenance')) {
            this.nodeEvent(n.name, 'Warning', 'LeftInMaintenance', `Maintenance window ${name} was deleted while this node was in maintenance: it stays cordoned; uncordon it when the work is done`);
          }
        },
        announceFinished: ({ context }) => {
          const done = context.nodes.filter((n) => n.phase === 'Done').length;
          const skipped = context.nodes.filter((n) => n.phase === 'Skipped').map((n) => n.name);
          const what = context.error ? `Failed: ${context.error}` : `${done}/${context.nodes.length} node(s) done${skipped.length ? `; skipped: ${skipped.join(', ')}` : ''}`;
          this.mwEvent(name, context.error ? 'Warning' : 'Normal', 'Finished', what);
        },
      },
    });
    const actor = createActor(machine, {
      clock: this.clock,
      input: {
        name,
        recurring: resolved.ok && resolved.window.kind === 'recurring',
        paused: mw.spec.paused,
        deleting: Boolean(mw.metadata.deletionTimestamp),
        nodes: status.nodes ?? [],
        ...(status.phase ? { resumePhase: status.phase } : {}),
        ...(window && !Number.isNaN(window.start) ? { window } : {}),
        ...(status.plan ? { plan: status.plan } : {}),
        ...(status.eta ? { eta: ms(status.eta) } : {}),
      },
    });
    const t: Tracked = {
      actor,
      generation: mw.metadata.generation,
      paused: mw.spec.paused,
      windowSpec: JSON.stringify(mw.spec.window),
      deleting: Boolean(mw.metadata.deletionTimestamp),
      told: new Set(),
      lastStatus: '',
      ...(status.startedAt ? { startedAt: status.startedAt } : {}),
      ...(status.finishedAt ? { finishedAt: status.finishedAt } : {}),
    };
    actor.subscribe({
      next: () => this.enqueue(name),
      error: (err) => log.error({ err: String(err) }, 'runbook actor failed'),
    });
    this.runbooks.set(name, t);
    actor.start();
    log.info({ phase: status.phase ?? '(new)' }, status.phase ? 'resumed runbook' : 'tracking new runbook');
    return t;
  }

  /** Tells the actor what changed: deletion, spec, window, and each node's state. */
  private tell(t: Tracked, mw: MaintenanceWindow): void {
    const send = (ev: RunbookEvent) => t.actor.send(ev);
    if (mw.metadata.deletionTimestamp && !t.deleting) {
      t.deleting = true;
      send({ type: 'DELETE' });
    }
    if (mw.metadata.generation !== t.generation || mw.spec.paused !== t.paused) {
      t.generation = mw.metadata.generation;
      t.paused = mw.spec.paused;
      send({ type: 'SPEC_CHANGED', paused: mw.spec.paused });
    }
    const windowSpec = JSON.stringify(mw.spec.window);
    if (windowSpec !== t.windowSpec) {
      t.windowSpec = windowSpec;
      const r = resolveWindow(mw.spec.window);
      const o = r.ok ? occurrenceAt(r.window, this.clock.now()) : undefined;
      if (o) send({ type: 'WINDOW_CHANGED', window: o });
    }
    const ctx = t.actor.getSnapshot().context;
    const cluster = this.snapshot();
    const now = iso(this.clock.now());
    for (const n of ctx.nodes) {
      const once = (fact: string, ev: RunbookEvent) => {
        const key = `${n.name}|${n.phase}|${n.interrupted ? 'i' : ''}|${fact}`;
        if (t.told.has(key)) return;
        t.told.add(key);
        send(ev);
      };
      if (n.phase === 'Evacuating') {
        const f = nodeFacts(n.name, cluster.vmis, cluster.vmims, cluster.clusterEvictionStrategy);
        if (!n.interrupted && f.toMove === 0 && f.inFlight === 0 && f.queued.length === 0) {
          once('evacuated', { type: 'NODE_EVACUATED', node: n.name, at: now, vmsMoved: n.vmsTotal ?? 0, staying: f.staying });
        }
        if (n.interrupted && f.inFlight === 0 && f.queued.length === 0) {
          once('settled', { type: 'NODE_SETTLED', node: n.name, at: now, vmsLeft: f.toMove });
        }
      } else if (n.phase === 'ReadyForMaintenance') {
        const node = this.node(n.name);
        const done = mw.spec.done;
        // Uncordoned counts only once we hold the node (and so have cordoned it ourselves).
        const held = node?.metadata.annotations?.[MaintenanceAnnotations.owner] === mw.metadata.name;
        const isDone = !node || ('uncordoned' in done ? held && node.spec?.unschedulable !== true : node.metadata.annotations?.[done.annotation.key] === done.annotation.value);
        if (isDone) once('done', { type: 'NODE_DONE', node: n.name, at: now });
      }
    }
  }

  // ---------- planning (the chart's invoked actors; the decisions are in planning.ts) ----------

  private planningInput(name: string, context: Readonly<RunbookContext>) {
    return { runbook: name, spec: this.current(name).spec, context, cluster: this.snapshot(), settings: this.settings(), now: this.clock.now() };
  }

  private makePlan(name: string, context: Readonly<RunbookContext>, after: WindowTimes | undefined): PlanOutcome {
    const { outcome, plan } = makePlan({ ...this.planningInput(name, context), after });
    if (plan && outcome.window) {
      this.log.info({ runbook: name, order: plan.order, batches: plan.batches, wontFit: plan.wontFit, predictedEnd: outcome.plan?.predictedEnd, window: { start: iso(outcome.window.start), end: iso(outcome.window.end) } }, 'runbook planned');
    }
    return outcome;
  }

  // ---------- nodes ----------

  /**
   * Makes each node what its runbook phase says. Only nodes this runbook holds
   * (owner annotation) are released; a deleted runbook leaves nodes in
   * maintenance cordoned for the operator.
   */
  private async convergeNodes(runbook: string, ctx: Readonly<RunbookContext>, deleting: boolean): Promise<void> {
    const taintKey = this.migrationConfig().nodeDrainTaintKey;
    for (const n of ctx.nodes) {
      const node = this.node(n.name);
      if (!node) continue;
      const ann = node.metadata.annotations ?? {};
      const labels = node.metadata.labels ?? {};
      const owned = ann[MaintenanceAnnotations.owner] === runbook;
      const taints = node.spec?.taints ?? [];
      const tainted = taints.some((x) => x.key === taintKey);
      const patch: { metadata: { annotations?: Record<string, string | null>; labels?: Record<string, string | null> }; spec?: Record<string, unknown> } = { metadata: {} };
      const own = () => {
        if (!owned) patch.metadata.annotations = { [MaintenanceAnnotations.owner]: runbook };
      };
      const setTaint = (on: boolean) => {
        if (on === tainted) return;
        patch.spec = { ...(patch.spec ?? {}), taints: on ? [...taints, { key: taintKey, effect: 'NoSchedule' }] : taints.filter((x) => x.key !== taintKey) };
      };
      const cordon = (on: boolean) => {
        if ((node.spec?.unschedulable === true) !== on) patch.spec = { ...(patch.spec ?? {}), unschedulable: on };
      };
      if (n.phase === 'Evacuating') {
        own();
        cordon(true);
        setTaint(!n.interrupted);
        if (n.interrupted) await this.stopEvacuation(runbook, n.name);
      } else if (n.phase === 'ReadyForMaintenance') {
        if (deleting) {
          if (owned) patch.metadata.annotations = { [MaintenanceAnnotations.owner]: null };
        } else {
          if (!owned) {
            // Emptied before we ever touched it (it had nothing to move): take it now, so it
            // is out of service for its maintenance. Once held, the cordon is the operator's.
            own();
            cordon(true);
            setTaint(true);
          }
          if (labels[MaintenanceLabels.maintenance] !== 'ready') patch.metadata.labels = { [MaintenanceLabels.maintenance]: 'ready' };
        }
      } else if (owned) {
        // Done, Skipped, or back to Pending for the next window: back in service.
        patch.metadata.annotations = { [MaintenanceAnnotations.owner]: null };
        if (labels[MaintenanceLabels.maintenance] !== undefined) patch.metadata.labels = { [MaintenanceLabels.maintenance]: null };
        setTaint(false);
        cordon(false);
      }
      if (patch.spec === undefined && patch.metadata.annotations === undefined && patch.metadata.labels === undefined) continue;
      try {
        await this.kube.patchNode(n.name, patch);
        this.log.info({ runbook, node: n.name, phase: n.phase, patch }, 'node updated');
      } catch (err) {
        if (!isNotFound(err)) throw new Error(`could not update node ${n.name} for maintenance window ${runbook}: ${describeApiError(err)}`, { cause: err });
      }
    }
  }

  /**
   * No new migration off `node`: the drain taint is gone (done by the caller);
   * VMs marked for evacuation are unmarked (a cordoned node with marked VMs is
   * still evacuated) and migrations not started yet are withdrawn. Migrations
   * in flight are left to finish or fail on their own.
   */
  private async stopEvacuation(runbook: string, node: string): Promise<void> {
    const cluster = this.snapshot();
    for (const vmi of cluster.vmis) {
      if (vmi.status?.nodeName !== node || vmi.status.evacuationNodeName !== node) continue;
      try {
        await this.kube.patchCustomStatus(VMI_RESOURCE, vmi.metadata.namespace ?? 'default', vmi.metadata.name, { status: { evacuationNodeName: null } });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    const f = nodeFacts(node, cluster.vmis, cluster.vmims, cluster.clusterEvictionStrategy);
    for (const m of f.queued) {
      const vmim = `${m.metadata.namespace}/${m.metadata.name}`;
      try {
        await deleteUnchanged(this.kube, m);
        this.log.info({ node, vmim }, 'withdrew queued evacuation migration: evacuation stopped');
      } catch (err) {
        if (isNotFound(err)) continue;
        if (!isConflict(err)) throw err;
        // Our cache is behind: it may have started. Leave it, and look again once the cache has caught up.
        this.log.info({ node, vmim }, 'queued evacuation migration changed before it could be withdrawn; looking again');
        this.queue.addAfter(runbook, 500);
      }
    }
  }

  // ---------- status ----------

  private async writeStatus(name: string, t: Tracked, mw: MaintenanceWindow): Promise<void> {
    const snap = t.actor.getSnapshot();
    const status = runbookStatus({
      phase: runbookPhaseOf(snap) ?? mw.status?.phase ?? 'Pending',
      batchState: batchStateOf(snap),
      context: snap.context,
      cluster: this.snapshot(),
      generation: mw.metadata.generation,
      startedAt: t.startedAt,
      finishedAt: t.finishedAt,
      now: this.clock.now(),
    });
    if (status.startedAt) t.startedAt = status.startedAt;
    if (status.finishedAt) t.finishedAt = status.finishedAt;
    else delete t.finishedAt;
    const json = JSON.stringify(status);
    if (json === t.lastStatus) return;
    // A merge patch keeps what it does not mention: clear what no longer applies.
    const body: Record<string, unknown> = { ...status };
    for (const k of ['eta', 'finishedAt', 'window', 'plan'] as const) if (status[k] === undefined) body[k] = null;
    const condition = status.conditions![0]!;
    const previous = (mw.status?.conditions ?? []).find((c) => c.type === condition.type && c.status === condition.status);
    condition.lastTransitionTime = previous?.lastTransitionTime ?? iso(this.clock.now());
    try {
      await patchMaintenanceWindowStatus(this.kube, name, body);
      t.lastStatus = json;
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }

  private async writeInvalid(name: string, raw: Obj, reason: string): Promise<void> {
    const status = raw['status'] as { phase?: string; conditions?: Array<{ message?: string }> } | undefined;
    if (status?.phase === 'Failed' && status.conditions?.[0]?.message === reason) return;
    this.log.warn({ runbook: name, reason }, 'ignoring invalid MaintenanceWindow');
    await patchMaintenanceWindowStatus(this.kube, name, {
      phase: 'Failed',
      conditions: [{ type: 'Failed', status: 'True', reason: 'InvalidSpec', message: reason, lastTransitionTime: iso(this.clock.now()) }],
    }).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }

  private async removeFinalizer(name: string, finalizers: readonly string[]): Promise<void> {
    if (!finalizers.includes(RUNBOOK_FINALIZER)) return;
    try {
      await patchMaintenanceWindow(this.kube, name, { metadata: { finalizers: finalizers.filter((f) => f !== RUNBOOK_FINALIZER) } });
      this.log.info({ runbook: name }, 'runbook deleted; nodes released');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  // ---------- events ----------

  private mwEvent(name: string, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const uid = this.mws.get(name)?.metadata?.uid;
    // Events of cluster-scoped objects live in "default", as the API server's own do.
    this.events.record({ apiVersion: MW_API_VERSION, kind: MW_KIND, namespace: 'default', name, uid }, type, reason, message);
  }

  private nodeEvent(name: string, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const uid = this.nodes.get(name)?.metadata?.uid;
    this.events.record({ apiVersion: 'v1', kind: 'Node', namespace: 'default', name, uid }, type, reason, message);
  }

  private announceBatch(ctx: Readonly<RunbookContext>): void {
    const batch = Math.max(0, ...ctx.nodes.map((n) => n.batch ?? 0));
    const started = ctx.nodes.filter((n) => n.batch === batch && n.phase === 'Evacuating');
    if (started.length === 0) return;
    const until = started.map((n) => n.predictedFinish).filter((x): x is string => x !== undefined).sort().at(-1);
    this.mwEvent(ctx.name, 'Normal', 'BatchStarted', `Batch ${batch}: cordoned and tainted ${started.map((n) => n.name).join(', ')}${until ? `; predicted done by ${until}` : ''}`);
    for (const n of started) this.nodeEvent(n.name, 'Normal', 'EvacuationStarted', `Cordoned and tainted for maintenance window ${ctx.name} (batch ${batch}): evacuating ${n.vmsTotal ?? 0} VM(s)`);
  }
}
