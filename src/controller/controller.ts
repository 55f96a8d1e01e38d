import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { NatsConnection, Subscription } from 'nats';
import type { z } from 'zod';
import { parseObject, objectKey } from '../api/meta.js';
import { Pod } from '../api/core.js';
import { defaultMigrationConfiguration, MigrationConfiguration, PENDING_POD_TIMEOUT_S, UNSCHEDULABLE_POD_TIMEOUT_S } from '../api/migrationConfig.js';
import { effectiveConfiguration, MIGRATION_POLICY_RESOURCE, type MigrationPolicy } from '../api/migrationPolicy.js';
import { Annotations, EvictionStrategy, Labels, VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, MIGRATION_FINALIZER, VirtualMachineInstanceMigration, type MigrationPhase } from '../api/vmim.js';
import { subscribeProgress } from '../bus/progress.js';
import { watchHeartbeats } from '../bus/heartbeat.js';
import { migrationView, rejectionReasonClass, type ControllerMetrics, type ControllerSnapshot } from '../metrics/index.js';
import { consumeResults, type ResultsConsumer } from '../bus/results.js';
import { defaultFerryConfig, type FerryConfig } from '../config/ferryConfig.js';
import { pinnedIn, type PinnedLimits } from '../limits/adaptive.js';
import { describeApiError, isConflict, isNotFound, KUBEVIRT_RESOURCE, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import { Workqueue } from '../kube/workqueue.js';
import { startInformer, type KeepAliveInformer } from '../kube/informer.js';
import { MigrationTrace } from '../tracing/migration.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { EventRecorder } from './eventRecorder.js';
import { PolicyReporter, selectPolicy } from './policies.js';
import { unusableVmiReason } from './vmiFacts.js';
import { Evacuation } from './evacuation.js';
import { DisruptionBudgets } from './disruptionBudgets.js';
import { createMigrationActor } from './migrationActor.js';
import { MigrationSession, type SessionEnv } from './session.js';
import { StatusWriter, type PhaseInfo } from './statusWriter.js';
import { FailureCleanup } from './cleanup.js';
import { NodeSide } from './nodeSide.js';
import { Admission } from './admission.js';
import { BusBridge } from './busBridge.js';
import type { Tracked } from './tracked.js';
import { NodeLiveness } from './nodeLiveness.js';
import { factOf } from './facts.js';


/**
 * Progress reaches VMIM status at most this often (`ferry status` shows it
 * within a few seconds); the bus carries it every second. Progress between
 * writes rides on the next phase write.
 */
const PROGRESS_WRITE_INTERVAL_MS = 3000;
/**
 * How long a purely reporting phase step (Pending, Scheduled, PreparingTarget)
 * waits for the next one to share its status write. Steps a restarted
 * controller resumes from (Scheduling, TargetReady, Running, final) are never
 * held: they go out at once, with whatever is waiting.
 */
const PHASE_COALESCE_MS = 1000;

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
  private readonly tracked = new Map<string, Tracked>(); // by VMIM uid
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
  private readonly invalidSeen = new Set<string>();
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
      if (this.stopped || !leadership.isLeader()) throw new Error('this controller is no longer the leader; not writing');
    };
    this.nodeSide = new NodeSide({
      nc: opts.nc,
      timeoutMs: this.config.commandTimeoutMs,
      epoch: () => leadership.epoch(),
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
      tracked: () => this.tracked.values(),
      find: (uid) => this.tracked.get(uid),
      vmi: (ns, name) => this.getVmi(ns, name),
      nodes: () => this.nodes?.list() ?? [],
      pods: () => this.pods?.list() ?? [],
      synced: () => this.vmims?.synced() ?? false,
      stopped: () => this.stopped,
    });
    this.bus = new BusBridge({
      config: this.config,
      clock: this.clock,
      log: this.log,
      find: (uid) => this.tracked.get(uid),
      vmims: () => this.vmims?.list() ?? [],
      rebalance: () => this.admission.schedule(),
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
        const s = this.tracked.get(r.value.metadata.uid ?? '')?.session;
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
    this.results = await consumeResults(this.opts.nc, { onResult: (m) => this.bus.onResult(m), log: this.log, ...(metrics ? { onDeadLetter: metrics.resultDeadLetter } : {}) });
    // Admission is re-run periodically too: limits depend on time (back-off) and on objects we don't watch.
    const tick = () => {
      if (this.stopped) return;
      this.admission.schedule();
      this.detectLostNodes();
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
    for (const t of this.tracked.values()) {
      t.actor.stop();
      t.writer.close();
    }
    this.tracked.clear();
    for (const inf of this.informers) await inf.stop();
  }

  /** True once every cache has synced (for /readyz). */
  ready(): boolean {
    return this.informers.length > 0 && this.informers.every((i) => i.synced());
  }

  /** Active (admitted, unfinished) migrations, for tests and metrics. */
  activeCount(): number {
    let n = 0;
    for (const t of this.tracked.values()) if (!FINAL_PHASES.has(t.session.phase) && t.session.phase !== 'Pending') n++;
    return n;
  }

  // ---------- caches ----------

  private getVmi(ns: string, name: string): VirtualMachineInstance | undefined {
    const raw = this.vmis?.get(name, ns);
    return raw ? parsedOnce(VirtualMachineInstance, raw) : undefined;
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
    for (const t of this.tracked.values()) if (t.session.vmiName === name && t.session.namespace === ns) this.enqueue(`${ns}/${t.session.name}`);
  }

  private onPod(o: Obj): void {
    const uid = o.metadata?.labels?.[Labels.migrationJobUID];
    const t = uid ? this.tracked.get(uid) : undefined;
    if (t) this.enqueue(`${t.session.namespace}/${t.session.name}`);
    else this.admission.schedule();
  }

  // ---------- work queue ----------

  private enqueue(key: string): void {
    if (this.stopped) return;
    this.queue.add(key);
  }

  /** Resolves once no reconcile waits or runs (tests). */
  whenIdle(): Promise<void> {
    return this.queue.whenIdle();
  }

  private findTrackedByKey(key: string): Tracked | undefined {
    for (const t of this.tracked.values()) if (`${t.session.namespace}/${t.session.name}` === key) return t;
    return undefined;
  }

  /** Converges one VMIM towards what its objects say. Safe to call any number of times. */
  async reconcile(key: string): Promise<void> {
    if (key.startsWith('vmi:')) {
      const [vns, vname] = key.slice(4).split('/') as [string, string];
      const vmi = this.getVmi(vns, vname);
      if (vmi) await this.budgets?.reconcile(vmi, this.clusterEvictionStrategy);
      if (vmi) await this.closeOrphanState(vmi);
      return;
    }
    const [ns, name] = key.split('/') as [string, string];
    const raw = this.vmims.get(name, ns);
    if (!raw) {
      // Gone without our finalizer (created before we ran, or force-removed): abort what runs.
      const t = this.findTrackedByKey(key);
      if (!t) return;
      if (FINAL_PHASES.has(t.session.phase)) {
        // Over, and nothing left to write it on: let it go (the final phase requeues this key).
        t.actor.stop();
        this.tracked.delete(t.session.uid);
        t.writer.close();
        return;
      }
      t.actor.send({ type: 'ABORT', reason: 'VMIM was deleted' });
      return;
    }
    const parsed = parseObject(VirtualMachineInstanceMigration, raw);
    if (!parsed.ok) {
      const seen = `${raw.metadata?.uid}@${raw.metadata?.resourceVersion}`;
      if (!this.invalidSeen.has(seen)) {
        // Only dedupes warnings: a bound keeps it from growing with every edit of every bad object.
        if (this.invalidSeen.size >= 10_000) this.invalidSeen.clear();
        this.invalidSeen.add(seen);
        this.log.warn({ vmim: key, reason: parsed.reason }, 'ignoring invalid VirtualMachineInstanceMigration');
        this.events.record({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', namespace: ns, name, uid: raw.metadata?.uid }, 'Warning', 'InvalidMigration', `Ignored: ${parsed.reason}`);
      }
      return;
    }
    const vmim = parsed.value;
    const uid = vmim.metadata.uid ?? '';
    const phase = vmim.status?.phase || undefined;
    let t = this.tracked.get(uid);

    if (phase && FINAL_PHASES.has(phase) && (!t || t.session.phase === phase)) {
      await t?.settled;
      // Level-triggered: whatever a Failed migration left open is closed here, retried
      // by the queue until it lands; only then may the VMIM go.
      if (phase === 'Failed') await this.cleanup.run(vmim);
      // Final, written, its result handled: the handlers may drop their tombstones.
      if (t && !t.forgotten) {
        t.forgotten = true;
        await t.session.forgetJob(t.actor.context());
      }
      await this.removeFinalizer(vmim);
      if (t) {
        t.actor.stop();
        this.tracked.delete(uid);
        t.writer.close();
      }
      return;
    }

    if (!t) {
      if (!(vmim.metadata.finalizers ?? []).includes(MIGRATION_FINALIZER) || vmim.metadata.labels?.[Labels.vmiName] !== vmim.spec.vmiName) {
        if (vmim.metadata.deletionTimestamp && !phase) {
          // Deleted before we ever touched it: nothing to undo.
          return;
        }
        await this.adopt(vmim);
        return; // the update comes back through the watch
      }
      t = this.track(vmim, phase);
    }
    this.feedFacts(t, vmim);
  }

  /** First sight of a VMIM: add our finalizer (so a delete becomes an abort we see) and the vmi-name label. */
  private async adopt(vmim: VirtualMachineInstanceMigration): Promise<void> {
    const finalizers = [...new Set([...(vmim.metadata.finalizers ?? []), MIGRATION_FINALIZER])];
    try {
      await this.kube.patchCustomJson(VMIM_RESOURCE, vmim.metadata.namespace ?? 'default', vmim.metadata.name, [
        { op: 'test', path: '/metadata/resourceVersion', value: vmim.metadata.resourceVersion },
        { op: 'add', path: '/metadata/finalizers', value: finalizers },
        { op: 'add', path: '/metadata/labels', value: { ...(vmim.metadata.labels ?? {}), [Labels.vmiName]: vmim.spec.vmiName } },
      ]);
    } catch (err) {
      if (isConflict(err) || isNotFound(err) || (err as { code?: number }).code === 422) return; // re-read via the watch
      throw err;
    }
  }

  private async removeFinalizer(vmim: VirtualMachineInstanceMigration): Promise<void> {
    const finalizers = vmim.metadata.finalizers ?? [];
    if (!finalizers.includes(MIGRATION_FINALIZER)) return;
    try {
      await this.kube.patchCustomJson(VMIM_RESOURCE, vmim.metadata.namespace ?? 'default', vmim.metadata.name, [
        { op: 'test', path: '/metadata/resourceVersion', value: vmim.metadata.resourceVersion },
        { op: 'replace', path: '/metadata/finalizers', value: finalizers.filter((f) => f !== MIGRATION_FINALIZER) },
      ]);
    } catch (err) {
      if (isConflict(err) || isNotFound(err) || (err as { code?: number }).code === 422) {
        if (!isNotFound(err)) this.enqueue(objectKey({ namespace: vmim.metadata.namespace, name: vmim.metadata.name }));
        return;
      }
      throw err;
    }
  }

  private track(vmim: VirtualMachineInstanceMigration, phase: MigrationPhase | undefined): Tracked {
    const vmi = this.getVmi(vmim.metadata.namespace ?? 'default', vmim.spec.vmiName);
    const policy = vmi ? this.policyFor(vmi) : undefined;
    const session = new MigrationSession(this.env, vmim, vmi, { name: policy?.metadata.name, effective: effectiveConfiguration(this.migrationConfig, policy) });
    const writer = new StatusWriter(this.kube, vmim, session.logBase, () => this.getVmi(session.namespace, session.vmiName), {
      clock: this.clock,
      fence: this.env.fence,
      progressIntervalMs: this.opts.progressWriteIntervalMs ?? PROGRESS_WRITE_INTERVAL_MS,
      coalesceMs: PHASE_COALESCE_MS,
    });
    const migrationTrace = new MigrationTrace({ uid: session.uid, namespace: session.namespace, name: session.name, vmi: session.vmiName, createdMs: session.enqueuedAt }, this.clock.now());
    session.trace = migrationTrace;
    const cfg = session.effective;
    const ann = vmim.metadata.annotations ?? {};
    const secs = (k: string, d: number) => {
      const v = Number(ann[k]);
      return Number.isFinite(v) && v > 0 ? v : d;
    };
    let resolveSettled!: () => void;
    const settled = new Promise<void>((r) => (resolveSettled = r));
    const restored = session.restored;
    const actor = createMigrationActor({
      session,
      clock: this.clock,
      input: {
        migrationUid: session.uid,
        vmiKey: session.vmiKey,
        attempt: session.attempt,
        memoryBytes: session.memoryBytes,
        allowPostCopy: cfg.allowPostCopy,
        timeouts: {
          unschedulableMs: secs(Annotations.unschedulablePodTimeout, UNSCHEDULABLE_POD_TIMEOUT_S) * 1000,
          pendingPodMs: secs(Annotations.pendingPodTimeout, PENDING_POD_TIMEOUT_S) * 1000,
          targetReadyMs: this.config.timeouts.targetReadySeconds * 1000,
          progressMs: cfg.progressTimeout * 1000,
          completionPerGiBMs: cfg.completionTimeoutPerGiB * 1000,
          abortRetryMs: this.config.timeouts.abortRetrySeconds * 1000,
          retryMs: this.config.timeouts.retrySeconds * 1000,
          resolveMs: this.config.timeouts.resolveSeconds * 1000,
        },
        ...(phase ? { resumePhase: phase } : {}),
        ...(phase && FINAL_PHASES.has(phase) ? {} : {}),
        ...(restored.sourceNode ?? session.sourceNode ? { sourceNode: (restored.sourceNode ?? session.sourceNode)! } : {}),
        ...(restored.targetNode ? { targetNode: restored.targetNode } : {}),
        ...(restored.targetPod ? { targetPod: restored.targetPod } : {}),
        ...(restored.targetAddress ? { targetAddress: restored.targetAddress } : {}),
        ...(vmi?.status?.migrationState?.migrationUid === session.uid && vmi.status.migrationState.mode ? { mode: vmi.status.migrationState.mode } : {}),
      },
      onPhase: (p: MigrationPhase, snapshotInfo: PhaseInfo) => {
        // The phase a restarted controller resumes in was counted by its predecessor.
        if (p !== phase) this.opts.metrics?.phaseTransition(session.namespace, session.vmiName, p, (this.clock.now() - session.enqueuedAt) / 1000);
        session.setPhase(p);
        if (p === 'Succeeded' || p === 'Failed') migrationTrace.end(p, this.clock.now(), snapshotInfo.failureReason);
        else migrationTrace.phase(p, this.clock.now());
        // The outcome must reach the VMIM: keep trying until the write goes through.
        // A failure is cleaned up first (best effort; the reconciler retries it from
        // Failed), so the VMIM's final copy of the VMI's migration state is the closed one.
        const cleaned = p === 'Failed'
          ? this.cleanup.run(vmim, { reason: snapshotInfo.failureReason, aborted: snapshotInfo.abortRequested }).catch((err: unknown) =>
              session.log.warn({ err: describeApiError(err) }, 'cleanup after failure incomplete; the reconciler retries it'),
            )
          : Promise.resolve();
        const persist = (): void => {
          writer.phase(p, snapshotInfo).then(
            () => {
              if (!FINAL_PHASES.has(p)) return;
              t.finalWritten = true;
              // Its source node may have VMIs waiting for this one to end (evacuation).
              this.evacuation?.enqueue(session.sourceNode);
              resolveSettled();
              this.admission.schedule();
              this.enqueue(`${session.namespace}/${session.name}`);
            },
            (err: unknown) => {
              session.log.error({ err: describeApiError(err) }, `could not record phase ${p}; retrying`);
              // Only while it is still the current phase: a later one supersedes it.
              if (!this.stopped && session.phase === p) this.later(persist, 5000);
            },
          );
        };
        void cleaned.then(persist);
        this.admission.schedule();
      },
      onUnresolved: (why) => {
        const msg = `Ferry cannot tell where the guest runs after ${this.config.timeouts.resolveSeconds}s of asking (${why}); it keeps asking and removes nothing until it knows`;
        session.event('Warning', 'MigrationUnresolved', msg);
        session.log.error({ why }, 'migration outcome unresolved; still asking');
        writer.condition('MigrationUnresolved', 'True', 'OutcomeUnknown', msg);
      },
      log: session.log,
    });
    const t: Tracked = { session, actor, writer, settled, lastFact: '', targetPodSeen: false, finalWritten: false };
    this.tracked.set(session.uid, t);
    session.log.info({ phase: phase ?? '(new)' }, phase ? 'resumed migration' : 'tracking new migration');
    return t;
  }

  /**
   * Node loss (M3): a node whose handler is silent for nodeLostSeconds and whose
   * Node is NotReady runs nothing any more. Its outgoing migrations go to the
   * arbiter, which may then decide from the target's answer alone.
   */
  private detectLostNodes(): void {
    if (!this.nodes?.synced()) return;
    for (const t of this.tracked.values()) {
      const s = t.session;
      if (s.phase !== 'TargetReady' && s.phase !== 'Running') continue;
      const ctx = t.actor.context();
      const node = ctx.sourceNode;
      if (!node || ctx.sourceLost) continue;
      const silentMs = this.liveness.silentFor(node);
      if (silentMs === undefined) continue;
      const reason = `source node ${node} is lost: NotReady, and no heartbeat from its handler for ${Math.round(silentMs / 1000)}s`;
      s.log.warn({ node }, reason);
      t.actor.send({ type: 'NODE_LOST', node, reason });
    }
  }

  private policyFor(vmi: VirtualMachineInstance): MigrationPolicy | undefined {
    const ns = this.namespaces.get(vmi.metadata.namespace ?? 'default') as { metadata?: { labels?: Record<string, string> } } | undefined;
    return selectPolicy(this.policies.list(), vmi.metadata.labels ?? {}, ns?.metadata?.labels ?? {});
  }

  /** Translates what the objects say now into chart events; the chart ignores what doesn't apply. */
  private feedFacts(t: Tracked, vmim: VirtualMachineInstanceMigration): void {
    const s = t.session;
    const vmi = this.getVmi(s.namespace, s.vmiName);
    const deleted = vmim.metadata.deletionTimestamp !== undefined;
    const { event, targetPodSeen } = factOf({
      phase: s.phase,
      vmiKey: s.vmiKey,
      deleted,
      vmi,
      targetPods: s.targetLauncherPods(),
      targetPodSeen: t.targetPodSeen,
      pinnedHostname: s.addedNodeSelector?.['kubernetes.io/hostname'],
      missingVmiReason: vmi ? undefined : unusableVmiReason(this.vmis.get(s.vmiName, s.namespace), s.vmiKey),
      otherActive: s.phase === 'Pending' && vmi ? this.otherActiveMigration(s, vmi) : undefined,
    });
    t.targetPodSeen = targetPodSeen;
    if (deleted) t.writer.abortRequested();
    if (!event) return;
    // Only changes reach the chart: a level seen again is not news.
    const fact = JSON.stringify(event);
    if (fact === t.lastFact) return;
    t.lastFact = fact;
    if (event.type === 'REJECTED') this.opts.metrics?.admission('rejected', rejectionReasonClass(event.reason));
    t.actor.send(event);
  }

  /**
   * Level-triggered from the VMI's side: a migrationState left open by a
   * migration that is over (its VMIM final, or gone with no actor left) blocks
   * every later migration of the VMI. This catches what the VMIM-keyed cleanup
   * cannot see, such as a hand-off written by a replica that lost the lease
   * after the new leader had already cleaned up. Cleanup asks the arbiter
   * before it removes any pod, so an unknown outcome is never guessed.
   */
  private async closeOrphanState(vmi: VirtualMachineInstance): Promise<void> {
    const ms = vmi.status?.migrationState;
    if (!ms?.migrationUid || ms.completed) return;
    const t = this.tracked.get(ms.migrationUid);
    if (t && !FINAL_PHASES.has(t.session.phase)) return;
    const ns = vmi.metadata.namespace ?? 'default';
    const raw = this.vmims.list(ns).find((o) => o.metadata?.uid === ms.migrationUid);
    if (raw) {
      const r = parseObject(VirtualMachineInstanceMigration, raw);
      if (r.ok && FINAL_PHASES.has((r.value.status?.phase || 'Pending') as MigrationPhase)) await this.cleanup.run(r.value);
      return;
    }
    if (t) return; // its final phase is still being written; the VMIM-keyed cleanup runs then
    // The VMIM is gone and nothing tracks it: only the VMI's own record is left to go by.
    await this.cleanup.run({
      metadata: { uid: ms.migrationUid, namespace: ns, name: `(deleted migration ${ms.migrationUid})` },
      spec: { vmiName: vmi.metadata.name },
      status: { conditions: [{ type: 'Failed', status: 'True', message: 'its VirtualMachineInstanceMigration was deleted before its outcome was recorded' }] },
    } as VirtualMachineInstanceMigration);
  }

  /** KubeVirt allows one active migration per VMI; the older VMIM wins. */
  private otherActiveMigration(s: MigrationSession, vmi: VirtualMachineInstance): string | undefined {
    const ms = vmi.status?.migrationState;
    if (ms?.migrationUid && ms.migrationUid !== s.uid && !ms.completed && !ms.failed) return ms.migrationUid;
    for (const o of this.tracked.values()) {
      const os = o.session;
      if (os === s || os.vmiName !== s.vmiName || os.namespace !== s.namespace || FINAL_PHASES.has(os.phase)) continue;
      if (os.phase !== 'Pending' || os.enqueuedAt < s.enqueuedAt || (os.enqueuedAt === s.enqueuedAt && os.name < s.name)) return `${os.namespace}/${os.name}`;
    }
    return undefined;
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
