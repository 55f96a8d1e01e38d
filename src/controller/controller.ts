import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { NatsConnection, Subscription } from 'nats';
import type { z } from 'zod';
import { parseObject } from '../api/meta.js';
import { Pod } from '../api/core.js';
import { defaultMigrationConfiguration, MigrationConfiguration } from '../api/migrationConfig.js';
import { MIGRATION_POLICY_RESOURCE, type MigrationPolicy } from '../api/migrationPolicy.js';
import { EvictionStrategy, Labels, VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, VirtualMachineInstanceMigration, type MigrationPhase } from '../api/vmim.js';
import { subscribeProgress } from '../bus/progress.js';
import { watchHeartbeats } from '../bus/heartbeat.js';
import { migrationView, type ControllerMetrics, type ControllerSnapshot } from '../metrics/index.js';
import { consumeResults, type ResultsConsumer } from '../bus/results.js';
import { defaultFerryConfig, type FerryConfig } from '../config/ferryConfig.js';
import { pinnedIn, type PinnedLimits } from '../limits/adaptive.js';
import { describeApiError, KUBEVIRT_RESOURCE, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import { Workqueue } from '../kube/workqueue.js';
import { startInformer, waitForCacheSync, type KeepAliveInformer } from '../kube/informer.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { EventRecorder } from './eventRecorder.js';
import { PolicyReporter, selectPolicy } from './policies.js';
import { Evacuation } from './evacuation.js';
import { DisruptionBudgets } from './disruptionBudgets.js';
import type { SessionEnv } from './session.js';
import { FailureCleanup } from './cleanup.js';
import { NodeSide } from './nodeSide.js';
import { Admission } from './admission.js';
import { BusBridge } from './busBridge.js';
import type { Tracked } from './tracked.js';
import { NodeLiveness, reportLostNodes } from './nodeLiveness.js';
import { MigrationRegistry } from './registry.js';
import { MigrationReconciler } from './reconciler.js';
import { trackMigration } from './tracking.js';

export interface ControllerOptions {
  kube: KubeClient;
  nc: NatsConnection;
  log: Logger;
  config?: FerryConfig;
  clock?: Clock;
  /** How often progress is written to VMIM status (the bus carries it more often). Default 3000. */
  progressWriteIntervalMs?: number;
  metrics?: ControllerMetrics;
  /**
   * Beside KubeVirt: handle only VMIMs with this label (KubeVirt's controller is
   * told to leave them alone), and leave disruption budgets to KubeVirt.
   */
  ownerLabel?: { key: string; value: string };
  /**
   * Who may act: the leader elector's view. Commands carry `epoch()` (the Lease's
   * leaseTransitions) and writes are preceded by an `isLeader()` check. Without it
   * (--no-leader-elect, tests) this replica always leads at epoch 0.
   */
  leadership?: { isLeader(): boolean; epoch(): number };
  /** Reconcile workers (default 4). */
  workers?: number;
}

type Obj = KubernetesObject & Record<string, unknown>;

/** How long a new leader waits to have taken over its predecessor's admitted migrations before admitting more. */
const ADOPTION_WAIT_MS = 30_000;

/**
 * The VMIM controller. Level-triggered: watch events only enqueue a VMIM key;
 * reconcile(key) reads the caches and converges, one statechart actor per
 * migration. The API objects are the durable truth: on start every unfinished
 * VMIM gets an actor resumed in its recorded phase.
 */
export class MigrationController {
  private readonly kube: KubeClient;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly config: FerryConfig;
  private readonly events: EventRecorder;
  private readonly registry = new MigrationRegistry();
  private readonly reconciler: MigrationReconciler;
  private readonly queue: Workqueue;
  private readonly nodeSide: NodeSide;
  private readonly cleanup: FailureCleanup;
  private readonly admission: Admission;
  private readonly bus: BusBridge;
  private readonly liveness: NodeLiveness;
  private stopped = false;
  private migrationConfig: MigrationConfiguration = defaultMigrationConfiguration;
  /** The parallel limits the KubeVirt CR sets itself (the parsed config fills in defaults). */
  private kubevirtPins: PinnedLimits = {};
  private informers: KeepAliveInformer<Obj>[] = [];
  private vmims!: KeepAliveInformer<Obj>;
  private vmis!: KeepAliveInformer<Obj>;
  private pods!: KeepAliveInformer<Obj>;
  private nodes!: KeepAliveInformer<Obj>;
  private kubevirts!: KeepAliveInformer<Obj>;
  private policies!: KeepAliveInformer<Obj>;
  private namespaces!: KeepAliveInformer<Obj>;
  private results: ResultsConsumer | undefined;
  private progressSub: Subscription | undefined;
  private heartbeatSub: Subscription | undefined;
  private tickTimer: unknown;
  private readonly env: SessionEnv;
  private evacuation: Evacuation | undefined;
  private budgets: DisruptionBudgets | undefined;
  private clusterEvictionStrategy: EvictionStrategy | undefined;

  constructor(private readonly opts: ControllerOptions) {
    this.kube = opts.kube;
    this.log = opts.log;
    this.clock = opts.clock ?? systemClock;
    this.config = opts.config ?? defaultFerryConfig;
    this.events = new EventRecorder(opts.kube, opts.log);
    const leadership = opts.leadership ?? { isLeader: () => true, epoch: () => 0 };
    const fence = async (): Promise<void> => {
      if (this.stopped || this.deposed || !leadership.isLeader()) throw new Error('this controller is no longer the leader; not writing');
    };
    this.nodeSide = new NodeSide({
      nc: opts.nc,
      timeoutMs: this.config.commandTimeoutMs,
      epoch: () => leadership.epoch(),
      // Proof of a newer leader, which the lease may not show yet (a paused replica's view of it is old):
      // from here on nothing is written; the elector's next round makes the replica step down.
      onStaleEpoch: (node, message) => {
        if (this.deposed) return;
        this.deposed = true;
        this.log.error({ node, reason: message }, 'a handler obeys a newer leader: this controller writes nothing more');
      },
      ...(opts.metrics ? { onRoundTrip: opts.metrics.natsRoundTrip } : {}),
    });
    this.env = {
      kube: this.kube,
      nodes: this.nodeSide,
      log: this.log,
      events: this.events,
      config: this.config,
      clock: this.clock,
      vmi: (ns, name) => this.getVmi(ns, name),
      podsOfVmi: (ns, vmiUid) => this.podsOfVmi(ns, vmiUid),
      podsOfMigration: (ns, uid) => this.podsOfMigration(ns, uid),
      fence,
      // Beside KubeVirt its virt-handler acts on the VMI's hand-off markers: keep them on the VMIM until the end.
      markersOn: opts.ownerLabel ? 'vmim' : 'vmi',
      headroom: (s, source, target) => this.admission.headroom(s, source, target),
    };
    this.cleanup = new FailureCleanup({
      kube: this.kube,
      nodes: this.nodeSide,
      events: this.events,
      clock: this.clock,
      log: this.log,
      vmi: (ns, name) => this.getVmi(ns, name),
      podsOfVmi: (ns, vmiUid) => this.podsOfVmi(ns, vmiUid),
      fence,
      nodeLost: (node) => this.liveness.silentFor(node) !== undefined,
    });
    this.liveness = new NodeLiveness({
      clock: this.clock,
      silenceMs: this.config.timeouts.nodeLostSeconds * 1000,
      node: (name) => this.nodes?.get(name),
    });
    this.admission = new Admission({
      config: this.config,
      clock: this.clock,
      log: this.log,
      metrics: opts.metrics,
      migrations: () => this.migrationConfig,
      kubevirtPins: () => this.kubevirtPins,
      tracked: () => this.registry.values(),
      find: (uid) => this.registry.get(uid),
      vmi: (ns, name) => this.getVmi(ns, name),
      nodes: () => this.nodes?.list() ?? [],
      pods: () => this.pods?.list() ?? [],
      synced: () => (this.vmims?.synced() ?? false) && this.adoptedAll(),
      stopped: () => this.stopped,
    });
    this.bus = new BusBridge({
      config: this.config,
      clock: this.clock,
      log: this.log,
      find: (uid) => this.registry.get(uid),
      vmims: () => this.vmims?.list() ?? [],
      rebalance: () => this.admission.schedule(),
      onWrongNode: opts.metrics ? () => opts.metrics?.resultDeadLetter('wrong-node') : undefined,
    });
    this.queue = new Workqueue((key) => this.reconcile(key), {
      workers: opts.workers ?? 4,
      clock: this.clock,
      baseDelayMs: 500,
      maxDelayMs: 30_000,
      onError: (key, err, retries, retryInMs) => {
        this.log.error({ key, err: describeApiError(err), retries, retryInMs }, 'reconcile failed; retrying');
        this.opts.metrics?.reconcileError();
      },
      onIdle: () => this.admission.schedule(),
    });
    this.reconciler = new MigrationReconciler({
      kube: this.kube,
      log: this.log,
      events: this.events,
      metrics: opts.metrics,
      registry: this.registry,
      cleanup: this.cleanup,
      vmims: { get: (name, ns) => this.vmims.get(name, ns), list: (ns) => this.vmims.list(ns) },
      vmi: (ns, name) => this.getVmi(ns, name),
      rawVmi: (name, ns) => this.vmis.get(name, ns),
      nodeCordoned: (name) => {
        const n = this.nodes?.get(name) as { spec?: { unschedulable?: boolean } } | undefined;
        return n === undefined || n.spec?.unschedulable === true;
      },
      budgets: () => this.budgets,
      clusterEvictionStrategy: () => this.clusterEvictionStrategy,
      track: (vmim, phase) => this.track(vmim, phase),
      enqueue: (key) => this.enqueue(key),
    });
    opts.metrics?.setSnapshotProvider(() => this.metricsSnapshot());
  }

  /** What the metrics show at scrape time; undefined until the caches are synced. */
  metricsSnapshot(): ControllerSnapshot | undefined {
    if (!this.vmims?.synced()) return undefined;
    const cfg = this.admission.limitsConfig();
    return {
      migrations: this.vmims.list().flatMap((raw) => {
        const r = parseObject(VirtualMachineInstanceMigration, raw);
        if (!r.ok) return [];
        const s = this.registry.get(r.value.metadata.uid ?? '')?.session;
        return [migrationView(r.value, s && { phase: s.phase, priority: s.priority, sourceNode: s.sourceNode, targetNode: s.targetNode ?? s.pinnedTarget, bandwidth: s.allottedBandwidth })];
      }),
      limits: cfg,
      nodes: this.admission.nodeStates().map((n) => ({ name: n.name, nicCapacity: n.nicCapacity ?? cfg.defaultNicCapacity })),
    };
  }

  /** Starts caches, the results consumer and progress subscription; resolves once caches are synced. */
  async start(): Promise<void> {
    const kc = this.kube.kc;
    const custom = (r: typeof VMI_RESOURCE) => () => this.kube.listCustom(r) as Promise<KubernetesListObject<Obj>>;
    const mk = (path: string, list: () => Promise<KubernetesListObject<Obj>>, onChange: (o: Obj, t: 'add' | 'update' | 'delete') => void, labelSelector?: string) => {
      const inf = startInformer<Obj>({ kc, path, list, onChange, log: this.log, ...(labelSelector ? { labelSelector } : {}) });
      this.informers.push(inf);
      return inf;
    };
    this.kubevirts = mk('/apis/kubevirt.io/v1/kubevirts', custom(KUBEVIRT_RESOURCE), () => this.reloadMigrationConfig());
    const policyReporter = new PolicyReporter(this.log.child({ component: 'policies' }), this.events);
    this.policies = mk('/apis/migrations.kubevirt.io/v1alpha1/migrationpolicies', custom(MIGRATION_POLICY_RESOURCE), (o, t) => policyReporter.observe(o, t));
    this.namespaces = mk('/api/v1/namespaces', () => this.kube.core.listNamespace() as Promise<KubernetesListObject<Obj>>, () => undefined);
    this.nodes = mk('/api/v1/nodes', () => this.kube.core.listNode() as Promise<KubernetesListObject<Obj>>, (o) => {
      this.evacuation?.onNodeChange(o);
      this.admission.schedule();
      // A target pod Ferry pinned here and not yet scheduled cannot land once the node is cordoned.
      if ((o as { spec?: { unschedulable?: boolean } }).spec?.unschedulable) {
        for (const t of this.registry.values()) {
          if (t.session.phase === 'Scheduling' && t.session.pinnedTarget === o.metadata?.name) this.enqueue(`${t.session.namespace}/${t.session.name}`);
        }
      }
    });
    this.vmis = mk('/apis/kubevirt.io/v1/virtualmachineinstances', custom(VMI_RESOURCE), (o) => this.onVmi(o));
    this.pods = mk(
      '/api/v1/pods',
      () => this.kube.core.listPodForAllNamespaces({ labelSelector: `${Labels.app}=virt-launcher` }) as Promise<KubernetesListObject<Obj>>,
      (o) => this.onPod(o),
      `${Labels.app}=virt-launcher`,
    );
    const owner = this.opts.ownerLabel ? `${this.opts.ownerLabel.key}=${this.opts.ownerLabel.value}` : undefined;
    const vmimList = owner
      ? () => this.kube.listCustom(VMIM_RESOURCE, undefined, owner) as Promise<KubernetesListObject<Obj>>
      : custom(VMIM_RESOURCE);
    this.vmims = mk('/apis/kubevirt.io/v1/virtualmachineinstancemigrations', vmimList, (o) => {
      this.enqueue(keyOf(o));
      this.evacuation?.onVmimChange(o);
    }, owner);
    this.evacuation = new Evacuation({
      kube: this.kube,
      log: this.log.child({ component: 'evacuation' }),
      clock: this.clock,
      events: this.events,
      nodes: this.nodes,
      vmis: this.vmis,
      vmims: this.vmims,
      migrations: () => this.migrationConfig,
      clusterEvictionStrategy: () => this.clusterEvictionStrategy,
      backoffBaseMs: this.config.evacuation.backoffBaseSeconds * 1000,
      ...(this.opts.ownerLabel ? { vmimLabels: { [this.opts.ownerLabel.key]: this.opts.ownerLabel.value } } : {}),
      ...(this.opts.metrics ? { onReconcileError: () => this.opts.metrics?.reconcileError() } : {}),
    });
    // Beside KubeVirt, its disruption-budget controller owns the same budgets.
    if (!this.opts.ownerLabel) this.budgets = new DisruptionBudgets(this.kube, this.log.child({ component: 'disruption-budgets' }));
    for (const inf of this.informers) await inf.start();
    if (!(await waitForCacheSync(this.informers, { log: this.log, stopped: () => this.stopped }))) return;
    // Keys that came in while the caches filled are reconciled only now, against full caches.
    this.cachesReady = true;
    this.syncedAt = this.clock.now();
    for (const key of this.earlyKeys) this.queue.add(key);
    this.earlyKeys.clear();
    for (const v of this.vmis.list()) this.enqueue(`vmi:${keyOf(v)}`);
    this.reloadMigrationConfig();
    this.evacuation.start();
    for (const o of this.vmims.list()) this.enqueue(keyOf(o));

    this.progressSub = subscribeProgress(this.opts.nc, (m) => this.bus.onProgress(m), this.log);
    const metrics = this.opts.metrics;
    this.liveness.start();
    this.heartbeatSub = watchHeartbeats(this.opts.nc, (b) => {
      this.liveness.beat(b.node);
      metrics?.heartbeat(b.node);
    }, this.log);
    this.results = await consumeResults(this.opts.nc, { onResult: (m, origin) => this.bus.onResult(m, origin), log: this.log, ...(metrics ? { onDeadLetter: metrics.resultDeadLetter } : {}) });
    // Admission is re-run periodically too: limits depend on time (back-off) and on objects we don't watch.
    const tick = () => {
      if (this.stopped) return;
      this.admission.schedule();
      if (this.nodes?.synced()) reportLostNodes(this.registry.values(), this.liveness);
      this.tickTimer = this.clock.setTimeout(tick, 1000);
    };
    tick();
    this.log.info({ migrations: this.vmims.list().length }, 'controller started; caches synced');
  }

  /** A timer that stop() cancels (requeues and retries must not outlive the controller). */
  private readonly timers = new Set<unknown>();
  private later(fn: () => void, ms: number): void {
    const h: unknown = this.clock.setTimeout(() => {
      this.timers.delete(h);
      fn();
    }, ms);
    this.timers.add(h);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.clock.clearTimeout(this.tickTimer);
    await this.evacuation?.stop();
    for (const h of this.timers) this.clock.clearTimeout(h);
    this.timers.clear();
    await this.queue.shutDown();
    await this.results?.stop();
    this.progressSub?.unsubscribe();
    this.heartbeatSub?.unsubscribe();
    this.registry.clear();
    for (const inf of this.informers) await inf.stop();
  }

  /** True once every cache has synced (for /readyz). */
  ready(): boolean {
    return this.informers.length > 0 && this.informers.every((i) => i.synced());
  }

  /** Active (admitted, unfinished) migrations, for tests and metrics. */
  activeCount(): number {
    return this.registry.activeCount();
  }

  // ---------- caches ----------

  private getVmi(ns: string, name: string): VirtualMachineInstance | undefined {
    const raw = this.vmis?.get(name, ns);
    return raw ? parsedOnce(VirtualMachineInstance, raw) : undefined;
  }

  /** The launcher pods of the VM a migration's target pod belongs to (found without the VMI). */
  private podsOfMigration(ns: string, migrationUid: string): Pod[] {
    const target = this.pods.list(ns).find((raw) => raw.metadata?.labels?.[Labels.migrationJobUID] === migrationUid);
    const vmiUid = target?.metadata?.labels?.[Labels.createdBy];
    return vmiUid ? this.podsOfVmi(ns, vmiUid) : [];
  }

  private podsOfVmi(ns: string, vmiUid: string): Pod[] {
    const out: Pod[] = [];
    for (const raw of this.pods.list(ns)) {
      // Look at the label before parsing: the namespace holds every VM's launcher pod.
      if (raw.metadata?.labels?.[Labels.createdBy] !== vmiUid) continue;
      const r = parseObject(Pod, raw);
      if (r.ok && r.value.metadata.labels?.[Labels.createdBy] === vmiUid) out.push(r.value);
    }
    return out;
  }

  private reloadMigrationConfig(): void {
    const kv = this.kubevirts?.list()[0] as { spec?: { configuration?: { migrations?: unknown; evictionStrategy?: unknown } } } | undefined;
    const strategy = EvictionStrategy.safeParse(kv?.spec?.configuration?.evictionStrategy);
    this.clusterEvictionStrategy = strategy.success ? strategy.data : undefined;
    const raw = kv?.spec?.configuration?.migrations ?? {};
    const r = MigrationConfiguration.safeParse(raw);
    if (!r.success) {
      this.log.error({ issues: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) }, 'invalid KubeVirt migrations configuration; keeping the last good one');
      return;
    }
    const pins = pinnedIn(raw);
    if (JSON.stringify(r.data) !== JSON.stringify(this.migrationConfig) || JSON.stringify(pins) !== JSON.stringify(this.kubevirtPins)) {
      this.migrationConfig = r.data;
      this.kubevirtPins = pins;
      this.log.info({ migrations: r.data }, 'migration configuration loaded');
      this.admission.schedule();
    }
  }

  private onVmi(o: Obj): void {
    const name = o.metadata?.name;
    const ns = o.metadata?.namespace;
    this.enqueue(`vmi:${ns ?? 'default'}/${name ?? ''}`);
    this.evacuation?.onVmiChange(o);
    for (const t of this.registry.values()) if (t.session.vmiName === name && t.session.namespace === ns) this.enqueue(`${ns}/${t.session.name}`);
  }

  private onPod(o: Obj): void {
    const uid = o.metadata?.labels?.[Labels.migrationJobUID];
    const t = uid ? this.registry.get(uid) : undefined;
    if (t) this.enqueue(`${t.session.namespace}/${t.session.name}`);
    else this.admission.schedule();
  }

  // ---------- work queue ----------

  private enqueue(key: string): void {
    if (this.stopped) return;
    if (!this.cachesReady) {
      this.earlyKeys.add(key);
      return;
    }
    this.queue.add(key);
  }

  /**
   * Every migration the API shows as admitted (past Pending, not final) is tracked here. Until then a new
   * leader admits nothing: the slots those migrations hold are not counted yet (chaos seed 1000: a leader
   * that took over admitted a third migration from a node while two admitted by its predecessor were still
   * being resumed).
   */
  private adoptedAll(): boolean {
    if (this.adoptionDone) return true;
    const missing: string[] = [];
    for (const m of this.vmims.list()) {
      const phase = (m as { status?: { phase?: string } }).status?.phase;
      if (!phase || phase === 'Pending' || FINAL_PHASES.has(phase as MigrationPhase)) continue;
      if (!this.registry.get(m.metadata?.uid ?? '')) missing.push(keyOf(m));
    }
    if (missing.length === 0) {
      this.adoptionDone = true;
      return true;
    }
    // An object the reconciler cannot take (invalid, say) must not stop admission for good.
    if (this.clock.now() - this.syncedAt > ADOPTION_WAIT_MS) {
      this.log.warn({ migrations: missing.slice(0, 10), count: missing.length }, 'admitting although these admitted migrations are not tracked yet');
      this.adoptionDone = true;
      return true;
    }
    return false;
  }
  private adoptionDone = false;
  private syncedAt = 0;

  /** A handler refused a command for a stale epoch: another controller leads. */
  private deposed = false;

  /** False until every cache has synced: nothing is reconciled against a partial view. */
  private cachesReady = false;
  private readonly earlyKeys = new Set<string>();

  /** Resolves once no reconcile waits or runs (tests). */
  whenIdle(): Promise<void> {
    return this.queue.whenIdle();
  }

  /** Converges one key (see MigrationReconciler). Safe to call any number of times. */
  reconcile(key: string): Promise<void> {
    return this.reconciler.reconcile(key);
  }

  /** Starts following an adopted VMIM (see tracking.ts). */
  private track(vmim: VirtualMachineInstanceMigration, phase: MigrationPhase | undefined): Tracked {
    return trackMigration(
      {
        kube: this.kube,
        clock: this.clock,
        config: this.config,
        env: this.env,
        metrics: this.opts.metrics,
        cleanup: this.cleanup,
        migrationConfig: () => this.migrationConfig,
        vmi: (ns, name) => this.getVmi(ns, name),
        policyFor: (vmi) => this.policyFor(vmi),
        register: (t) => this.registry.add(t),
        schedule: () => this.admission.schedule(),
        sourceFreed: (node) => this.evacuation?.enqueue(node),
        enqueue: (key) => this.enqueue(key),
        later: (fn, ms) => this.later(fn, ms),
        stopped: () => this.stopped,
        progressWriteIntervalMs: this.opts.progressWriteIntervalMs,
      },
      vmim,
      phase,
    );
  }

  private policyFor(vmi: VirtualMachineInstance): MigrationPolicy | undefined {
    const ns = this.namespaces.get(vmi.metadata.namespace ?? 'default') as { metadata?: { labels?: Record<string, string> } } | undefined;
    return selectPolicy(this.policies.list(), vmi.metadata.labels ?? {}, ns?.metadata?.labels ?? {});
  }
}

/**
 * Admission runs on every batch of events and reads every tracked VMI and every
 * node: parse each cached object once. The informer replaces an object when its
 * version changes, so the raw object is the cache key; callers only read the result.
 */
const parseCache = new WeakMap<object, { schema: unknown; value: unknown }>();
function parsedOnce<T extends z.ZodType>(schema: T, raw: object): z.infer<T> | undefined {
  const hit = parseCache.get(raw);
  if (hit && hit.schema === schema) return hit.value as z.infer<T> | undefined;
  const r = parseObject(schema, raw);
  const value = r.ok ? r.value : undefined;
  parseCache.set(raw, { schema, value });
  return value;
}

function keyOf(o: KubernetesObject): string {
  return `${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`;
}
