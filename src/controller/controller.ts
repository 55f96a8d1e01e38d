import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { NatsConnection, Subscription } from 'nats';
import type { z } from 'zod';
import { parseObject, objectKey } from '../api/meta.js';
import { Node, Pod, podIsReady, podUnschedulable } from '../api/core.js';
import { defaultMigrationConfiguration, MigrationConfiguration, PENDING_POD_TIMEOUT_S, UNSCHEDULABLE_POD_TIMEOUT_S } from '../api/migrationConfig.js';
import { parseQuantity } from '../api/quantity.js';
import { effectiveConfiguration, matchPolicy, MIGRATION_POLICY_RESOURCE, MigrationPolicy } from '../api/migrationPolicy.js';
import { downtimeForIteration } from '../limits/downtime.js';
import { Annotations, EvictionStrategy, isLiveMigratable, Labels, VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, MIGRATION_FINALIZER, VirtualMachineInstanceMigration, type MigrationPhase } from '../api/vmim.js';
import { subscribeProgress } from '../bus/progress.js';
import { watchHeartbeats } from '../bus/heartbeat.js';
import { ADMITTED, migrationView, rejectionReasonClass, waitingReasonClass, type ControllerMetrics, type ControllerSnapshot } from '../metrics/index.js';
import type { ProgressMessage, ResultMessage } from '../bus/protocol.js';
import { consumeResults, type ResultsConsumer } from '../bus/results.js';
import { defaultFerryConfig, type FerryConfig } from '../config/ferryConfig.js';
import { decide } from '../limits/decide.js';
import { pinnedIn, resolveLimits, type PinnedLimits } from '../limits/adaptive.js';
import type { Decision, LimitsConfig, NodeState, QueuedMigration, RunningMigration } from '../limits/types.js';
import { describeApiError, isConflict, isNotFound, KUBEVIRT_RESOURCE, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import { startInformer, type KeepAliveInformer } from '../kube/informer.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { EventRecorder } from './eventRecorder.js';
import { Evacuation } from './evacuation.js';
import { DisruptionBudgets } from './disruptionBudgets.js';
import { createMigrationActor, type MigrationActorHandle } from './migrationActor.js';
import { MigrationSession, type SessionEnv } from './session.js';
import { guestSpecFor } from './guest.js';
import { StatusWriter, type PhaseInfo } from './statusWriter.js';

export interface ControllerOptions {
  kube: KubeClient;
  nc: NatsConnection;
  log: Logger;
  config?: FerryConfig;
  clock?: Clock;
  /** How often progress is written to VMIM status (the bus carries it more often). */
  progressWriteIntervalMs?: number;
  metrics?: ControllerMetrics;
  /**
   * Beside KubeVirt: handle only VMIMs with this label (KubeVirt's controller is
   * told to leave them alone), and leave disruption budgets to KubeVirt.
   */
  ownerLabel?: { key: string; value: string };
}

interface Tracked {
  session: MigrationSession;
  actor: MigrationActorHandle;
  writer: StatusWriter;
  /** Resolves when the actor reached a final state and that phase is persisted. */
  settled: Promise<void>;
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
  private readonly queue = new Set<string>();
  private draining = false;
  private admitScheduled = false;
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
    this.env = {
      kube: this.kube,
      nc: opts.nc,
      log: this.log,
      events: this.events,
      config: this.config,
      vmi: (ns, name) => this.getVmi(ns, name),
      podsOfVmi: (ns, vmiUid) => this.podsOfVmi(ns, vmiUid),
      ...(opts.metrics ? { onRoundTrip: opts.metrics.natsRoundTrip } : {}),
    };
    opts.metrics?.setSnapshotProvider(() => this.metricsSnapshot());
  }

  /** What the metrics show at scrape time; undefined until the caches are synced. */
  metricsSnapshot(): ControllerSnapshot | undefined {
    if (!this.vmims?.synced()) return undefined;
    const cfg = this.limitsConfig();
    return {
      migrations: this.vmims.list().flatMap((raw) => {
        const r = parseObject(VirtualMachineInstanceMigration, raw);
        if (!r.ok) return [];
        const s = this.tracked.get(r.value.metadata.uid ?? '')?.session;
        return [migrationView(r.value, s && { phase: s.phase, priority: s.priority, sourceNode: s.sourceNode, targetNode: s.targetNode ?? s.pinnedTarget, bandwidth: s.allottedBandwidth })];
      }),
      limits: cfg,
      nodes: this.nodeStates().map((n) => ({ name: n.name, nicCapacity: n.nicCapacity ?? cfg.defaultNicCapacity })),
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
    this.policies = mk('/apis/migrations.kubevirt.io/v1alpha1/migrationpolicies', custom(MIGRATION_POLICY_RESOURCE), () => undefined);
    this.namespaces = mk('/api/v1/namespaces', () => this.kube.core.listNamespace() as Promise<KubernetesListObject<Obj>>, () => undefined);
    this.nodes = mk('/api/v1/nodes', () => this.kube.core.listNode() as Promise<KubernetesListObject<Obj>>, (o) => {
      this.enqueue(`node:${o.metadata?.name ?? ''}`);
      this.scheduleAdmit();
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
      const evacuating = o.metadata?.annotations?.[Annotations.evacuationMigration];
      if (evacuating) this.enqueue(`node:${evacuating}`);
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
      requeue: (node, afterMs) => this.later(() => this.enqueue(`node:${node}`), afterMs),
    });
    // Beside KubeVirt, its disruption-budget controller owns the same budgets.
    if (!this.opts.ownerLabel) this.budgets = new DisruptionBudgets(this.kube, this.log.child({ component: 'disruption-budgets' }));
    for (const inf of this.informers) await inf.start();
    for (const v of this.vmis.list()) this.enqueue(`vmi:${keyOf(v)}`);
    for (const n of this.nodes.list()) this.enqueue(`node:${n.metadata?.name ?? ''}`);
    this.reloadMigrationConfig();
    for (const o of this.vmims.list()) this.enqueue(keyOf(o));

    this.progressSub = subscribeProgress(this.opts.nc, (m) => this.onProgress(m), this.log);
    const metrics = this.opts.metrics;
    if (metrics) this.heartbeatSub = watchHeartbeats(this.opts.nc, (b) => metrics.heartbeat(b.node), this.log);
    this.results = await consumeResults(this.opts.nc, { onResult: (m) => this.onResult(m), log: this.log });
    // Admission is re-run periodically too: limits depend on time (back-off) and on objects we don't watch.
    const tick = () => {
      if (this.stopped) return;
      this.scheduleAdmit();
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
    for (const h of this.timers) this.clock.clearTimeout(h);
    this.timers.clear();
    await this.results?.stop();
    this.progressSub?.unsubscribe();
    this.heartbeatSub?.unsubscribe();
    for (const t of this.tracked.values()) t.actor.stop();
    this.tracked.clear();
    for (const inf of this.informers) await inf.stop();
  }

  /** True once every cache has synced (for /readyz). */
  ready(): boolean {
    return this.informers.length > 0 && this.informers.every((i) => i.synced());
  }

  /** The launcher-pod eviction check (see Evacuation.checkEviction); allows when not started. */
  checkEviction(pod: unknown): Promise<null | { code: number; message: string }> {
    return this.evacuation ? this.evacuation.checkEviction(pod) : Promise.resolve(null);
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
      this.scheduleAdmit();
    }
  }

  private onVmi(o: Obj): void {
    const name = o.metadata?.name;
    const ns = o.metadata?.namespace;
    const status = (o as { status?: { nodeName?: string; evacuationNodeName?: string } }).status;
    this.enqueue(`vmi:${ns ?? 'default'}/${name ?? ''}`);
    if (status?.nodeName) this.enqueue(`node:${status.nodeName}`);
    if (status?.evacuationNodeName && status.evacuationNodeName !== status.nodeName) this.enqueue(`node:${status.evacuationNodeName}`);
    for (const t of this.tracked.values()) if (t.session.vmiName === name && t.session.namespace === ns) this.enqueue(`${ns}/${t.session.name}`);
  }

  private onPod(o: Obj): void {
    const uid = o.metadata?.labels?.[Labels.migrationJobUID];
    const t = uid ? this.tracked.get(uid) : undefined;
    if (t) this.enqueue(`${t.session.namespace}/${t.session.name}`);
    else this.scheduleAdmit();
  }

  // ---------- work queue ----------

  private enqueue(key: string): void {
    if (this.stopped) return;
    this.queue.add(key);
    if (!this.draining) {
      this.draining = true;
      queueMicrotask(() => void this.drain());
    }
  }

  private async drain(): Promise<void> {
    while (this.queue.size > 0 && !this.stopped) {
      const key = this.queue.values().next().value as string;
      this.queue.delete(key);
      try {
        await this.reconcile(key);
      } catch (err) {
        this.log.error({ key, err: describeApiError(err) }, 'reconcile failed; retrying');
        this.opts.metrics?.reconcileError();
        this.later(() => this.enqueue(key), 1000);
      }
    }
    this.draining = false;
    this.scheduleAdmit();
  }

  private findTrackedByKey(key: string): Tracked | undefined {
    for (const t of this.tracked.values()) if (`${t.session.namespace}/${t.session.name}` === key) return t;
    return undefined;
  }

  /** Converges one VMIM towards what its objects say. Safe to call any number of times. */
  async reconcile(key: string): Promise<void> {
    if (key.startsWith('node:')) {
      await this.evacuation?.reconcileNode(key.slice(5));
      return;
    }
    if (key.startsWith('vmi:')) {
      const [vns, vname] = key.slice(4).split('/') as [string, string];
      const vmi = this.getVmi(vns, vname);
      if (vmi) await this.budgets?.reconcile(vmi, this.clusterEvictionStrategy);
      return;
    }
    const [ns, name] = key.split('/') as [string, string];
    const raw = this.vmims.get(name, ns);
    if (!raw) {
      // Gone without our finalizer (created before we ran, or force-removed): abort what runs.
      const t = this.findTrackedByKey(key);
      t?.actor.send({ type: 'ABORT', reason: 'VMIM was deleted' });
      return;
    }
    const parsed = parseObject(VirtualMachineInstanceMigration, raw);
    if (!parsed.ok) {
      const seen = `${raw.metadata?.uid}@${raw.metadata?.resourceVersion}`;
      if (!this.invalidSeen.has(seen)) {
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
      await this.removeFinalizer(vmim);
      if (t) {
        t.actor.stop();
        this.tracked.delete(uid);
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
    const writer = new StatusWriter(this.kube, vmim, session.log, () => this.getVmi(session.namespace, session.vmiName));
    const cfg = session.effective;
    const ann = vmim.metadata.annotations ?? {};
    const secs = (k: string, d: number) => {
      const v = Number(ann[k]);
      return Number.isFinite(v) && v > 0 ? v : d;
    };
    let resolveSettled!: () => void;
    const settled = new Promise<void>((r) => (resolveSettled = r));
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
        },
        ...(phase ? { resumePhase: phase } : {}),
        ...(session.sourceNode ? { sourceNode: session.sourceNode } : {}),
        ...(session.targetNode ? { targetNode: session.targetNode } : {}),
        ...(session.targetPod ? { targetPod: session.targetPod } : {}),
        ...(session.targetAddress ? { targetAddress: session.targetAddress } : {}),
        ...(vmi?.status?.migrationState?.migrationUid === session.uid && vmi.status.migrationState.mode ? { mode: vmi.status.migrationState.mode } : {}),
      },
      onPhase: (p: MigrationPhase, snapshotInfo: PhaseInfo) => {
        // The phase a restarted controller resumes in was counted by its predecessor.
        if (p !== phase) this.opts.metrics?.phaseTransition(session.namespace, session.vmiName, p, (this.clock.now() - session.enqueuedAt) / 1000);
        session.setPhase(p);
        // The outcome must reach the VMIM: keep trying until the write goes through.
        const persist = (): void => {
          writer.phase(p, snapshotInfo).then(
            () => {
              if (!FINAL_PHASES.has(p)) return;
              resolveSettled();
              this.enqueue(`${session.namespace}/${session.name}`);
            },
            (err: unknown) => {
              session.log.error({ err: describeApiError(err) }, `could not record phase ${p}; retrying`);
              // Only while it is still the current phase: a later one supersedes it.
              if (!this.stopped && session.phase === p) this.later(persist, 5000);
            },
          );
        };
        persist();
        this.scheduleAdmit();
      },
      log: session.log,
      ordered: (task) => writer.run(task),
    });
    const t: Tracked = { session, actor, writer, settled };
    this.tracked.set(session.uid, t);
    if (phase === 'Running' && !FINAL_PHASES.has(phase)) void this.recoverRunning(t);
    session.log.info({ phase: phase ?? '(new)' }, phase ? 'resumed migration' : 'tracking new migration');
    return t;
  }

  private policyFor(vmi: VirtualMachineInstance): MigrationPolicy | undefined {
    const policies = this.policies.list().flatMap((raw) => {
      const r = parseObject(MigrationPolicy, raw);
      return r.ok ? [r.value] : [];
    });
    if (policies.length === 0) return undefined;
    const ns = this.namespaces.get(vmi.metadata.namespace ?? 'default') as { metadata?: { labels?: Record<string, string> } } | undefined;
    return matchPolicy(policies, vmi.metadata.labels ?? {}, ns?.metadata?.labels ?? {});
  }

  /** After a restart in Running: the result may have been consumed by the old controller; ask the source. */
  private async recoverRunning(t: Tracked): Promise<void> {
    try {
      const job = await t.session.sourceJob();
      if (!job) {
        if (t.session.sourceStarted) t.actor.send({ type: 'MIGRATION_FAILED', reason: `source handler on ${t.session.sourceNode} has no record of this migration` });
        return;
      }
      t.session.sourceStarted = true;
      if (job.state === 'completed') t.actor.send({ type: 'MIGRATION_COMPLETED', mode: job.stats?.mode ?? 'PreCopy', downtimeMs: job.stats?.downtimeMs ?? 0 });
      else if (job.state === 'failed') t.actor.send({ type: 'MIGRATION_FAILED', reason: 'source reported failure' });
      else if (job.state === 'aborted') t.actor.send({ type: 'MIGRATION_ABORTED', reason: 'source reported abort' });
    } catch (err) {
      t.session.log.warn({ err: String(err) }, 'could not query the source handler after restart; waiting for its result');
    }
  }

  /** Translates what the objects say now into chart events; the chart ignores what doesn't apply. */
  private feedFacts(t: Tracked, vmim: VirtualMachineInstanceMigration): void {
    const s = t.session;
    const send = (ev: { type: string } & Record<string, unknown>) => {
      const fact = JSON.stringify(ev);
      if (fact === s.lastFact) return;
      s.lastFact = fact;
      if (ev.type === 'REJECTED') this.opts.metrics?.admission('rejected', rejectionReasonClass(String(ev['reason'])));
      t.actor.send(ev as never);
    };
    if (vmim.metadata.deletionTimestamp) {
      t.writer.abortRequested();
      t.actor.send({ type: 'ABORT', reason: 'VMIM was deleted' });
      return;
    }
    const vmi = this.getVmi(s.namespace, s.vmiName);
    if (!vmi || vmi.metadata.deletionTimestamp || (vmi.status?.phase && vmi.status.phase !== 'Running')) {
      const reason = !vmi ? `VMI ${s.vmiKey} does not exist` : `VMI ${s.vmiKey} is ${vmi.metadata.deletionTimestamp ? 'being deleted' : vmi.status?.phase}`;
      if (s.phase === 'Pending') send({ type: 'REJECTED', reason });
      else send({ type: 'VMI_GONE', reason });
      return;
    }
    if (s.phase === 'Pending') {
      const migratable = isLiveMigratable(vmi);
      if (!migratable.ok) return send({ type: 'REJECTED', reason: `Cannot migrate VMI, Reason: ${migratable.reason}` });
      const other = this.otherActiveMigration(s, vmi);
      if (other) return send({ type: 'REJECTED', reason: `another migration job (${other}) is in progress for VMI ${s.vmiKey}` });
      return;
    }
    if (['Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running'].includes(s.phase)) {
      const pods = s.targetLauncherPods();
      const pod = pods.find((p) => !p.metadata.deletionTimestamp);
      if (!pod) {
        if (s.targetPodSeen) send({ type: 'TARGET_POD_GONE', reason: 'target pod was deleted' });
        return;
      }
      s.targetPodSeen = true;
      if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') return send({ type: 'TARGET_POD_GONE', reason: `target pod ${pod.metadata.name} is ${pod.status.phase}` });
      if (podIsReady(pod) && pod.spec?.nodeName) {
        s.targetNode = pod.spec.nodeName;
        s.targetPod = pod.metadata.name;
        return send({ type: 'TARGET_POD_READY', node: pod.spec.nodeName, pod: pod.metadata.name });
      }
      const u = podUnschedulable(pod);
      if (u.unschedulable) return send({ type: 'TARGET_POD_UNSCHEDULABLE', message: u.message ?? 'no node fits' });
      if (pod.spec?.nodeName) {
        s.targetNode = pod.spec.nodeName;
        s.targetPod = pod.metadata.name;
        return send({ type: 'TARGET_POD_SCHEDULED', node: pod.spec.nodeName, pod: pod.metadata.name });
      }
    }
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

  // ---------- admission and bandwidth ----------

  private scheduleAdmit(): void {
    if (this.admitScheduled || this.stopped) return;
    this.admitScheduled = true;
    queueMicrotask(() => {
      this.admitScheduled = false;
      if (!this.stopped && this.vmims?.synced()) this.admit();
    });
  }

  private limitsConfig(): LimitsConfig {
    const m = this.migrationConfig;
    return resolveLimits({
      pins: [this.kubevirtPins, pinnedIn(this.config.limits)],
      bandwidthBudget: this.config.limits.bandwidthBudget,
      defaultNicCapacity: this.config.limits.defaultNicCapacity,
      bandwidthPerMigration: m.bandwidthPerMigration,
      completionTimeoutPerGiB: m.completionTimeoutPerGiB,
    });
  }

  private nodeStates(): NodeState[] {
    const out: NodeState[] = [];
    for (const raw of this.nodes.list()) {
      const n = parsedOnce(Node, raw);
      if (!n) continue;
      const ready = (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
      const st: NodeState = { name: n.metadata.name, schedulable: ready && !n.spec?.unschedulable };
      const nic = n.metadata.annotations?.[this.config.limits.nicCapacityAnnotation];
      if (nic) {
        try { st.nicCapacity = parseQuantity(nic); } catch { this.log.warn({ node: n.metadata.name, nic }, 'ignoring unparsable NIC capacity annotation'); }
      }
      out.push(st);
    }
    return out;
  }

  /**
   * Asks the limits core which pending migrations may start and what bandwidth
   * every running one gets, then acts on it. Admission happens here only, in
   * one synchronous pass, so two migrations can never both take the last slot.
   */
  private admit(): void {
    const running: RunningMigration[] = [];
    const queued: QueuedMigration[] = [];
    const pending: MigrationSession[] = [];
    for (const { session: s } of this.tracked.values()) {
      if (FINAL_PHASES.has(s.phase)) continue;
      const vmi = this.getVmi(s.namespace, s.vmiName);
      const guest = vmi ? guestSpecFor(vmi) : undefined;
      const dirtyRate = s.lastDirtyRate || guest?.dirtyRate || 0;
      const workingSet = guest?.workingSet;
      if (s.phase === 'Pending') {
        if (!vmi?.status?.nodeName) continue;
        s.sourceNode = vmi.status.nodeName;
        pending.push(s);
        const q: QueuedMigration = { id: s.uid, sourceNode: s.sourceNode, priority: s.priority, enqueuedAt: s.enqueuedAt, memoryBytes: s.memoryBytes, dirtyRate, maxDowntimeMs: s.appliedDowntimeMs, allowAutoConverge: s.effective.allowAutoConverge, allowPostCopy: s.effective.allowPostCopy };
        if (workingSet) q.workingSet = workingSet;
        if (s.effective.bandwidthPerMigration > 0) q.bandwidthCap = s.effective.bandwidthPerMigration;
        queued.push(q);
      } else {
        const r: RunningMigration = { id: s.uid, sourceNode: s.sourceNode ?? '', priority: s.priority, memoryBytes: s.memoryBytes, dirtyRate, maxDowntimeMs: s.appliedDowntimeMs, allowAutoConverge: s.effective.allowAutoConverge, allowPostCopy: s.effective.allowPostCopy };
        if (workingSet) r.workingSet = workingSet;
        if (s.effective.bandwidthPerMigration > 0) r.bandwidthCap = s.effective.bandwidthPerMigration;
        const target = s.targetNode ?? s.pinnedTarget;
        if (target) r.targetNode = target;
        if (s.lastRemaining !== undefined) r.dataRemaining = s.lastRemaining;
        running.push(r);
      }
    }
    if (running.length === 0 && queued.length === 0) return;
    const nodes = this.nodeStates();
    const config = this.limitsConfig();
    const decision = decide({ config, nodes, running, queued, now: this.clock.now() });
    this.admitUnplaceable(decision, pending, running, nodes, config);
    for (const st of decision.start) {
      const t = this.tracked.get(st.id);
      if (!t) continue;
      t.session.pinnedTarget = st.targetNode;
      t.session.allottedBandwidth = decision.bandwidth[st.id] ?? 0;
      t.session.waitingReason = undefined;
      t.session.phase = 'Scheduling'; // counted as running from now on, before the snapshot arrives
      t.actor.send({ type: 'ADMITTED' });
      this.opts.metrics?.admission('started', ADMITTED);
    }
    for (const s of pending) {
      const why = decision.waiting[s.uid];
      if (why && why !== s.waitingReason) {
        s.waitingReason = why;
        this.opts.metrics?.admission('queued', waitingReasonClass(why));
        s.event('Normal', 'Queued', `Waiting to start: ${why}`);
        s.log.info({ reason: why }, 'migration queued');
      }
    }
    for (const r of running) {
      const t = this.tracked.get(r.id);
      const bw = decision.bandwidth[r.id];
      if (!t || bw === undefined) continue;
      t.session.allottedBandwidth = bw;
      const applied = t.session.appliedBandwidth;
      if (t.session.sourceStarted && t.session.phase === 'Running' && (applied === undefined || Math.abs(applied - bw) > Math.max(1, applied * 0.01))) {
        t.session.setBandwidth(bw).then(
          () => t.writer.bandwidth(bw),
          (err: unknown) => t.session.log.warn({ err: String(err), bandwidth: bw }, 'could not change bandwidth'),
        );
      }
    }
  }

  /**
   * A migration with no schedulable node to go to at all would wait forever in
   * the queue. KubeVirt's answer is to create the target pod anyway and fail
   * once it has been unschedulable for the timeout; users expect that (and the
   * scheduler's reason), so those start when the parallel limits allow.
   */
  private admitUnplaceable(decision: Decision, pending: MigrationSession[], running: RunningMigration[], nodes: NodeState[], config: LimitsConfig): void {
    const started = new Set(decision.start.map((s) => s.id));
    let cluster = running.length + started.size;
    const outbound = new Map<string, number>();
    const count = (node: string) => outbound.set(node, (outbound.get(node) ?? 0) + 1);
    for (const r of running) count(r.sourceNode);
    for (const s of pending) if (started.has(s.uid) && s.sourceNode) count(s.sourceNode);
    for (const s of pending) {
      const src = s.sourceNode;
      if (!src || started.has(s.uid) || nodes.some((n) => n.schedulable && n.name !== src)) continue;
      if (cluster >= config.parallelMigrationsPerCluster || (outbound.get(src) ?? 0) >= config.parallelOutboundMigrationsPerNode) continue;
      cluster++;
      count(src);
      decision.start.push({ id: s.uid });
      delete decision.waiting[s.uid];
      s.log.info('no schedulable node besides the source; starting anyway so the scheduler can report why');
    }
  }

  // ---------- bus ----------

  private lastProgressWrite = new Map<string, number>();

  private onProgress(m: ProgressMessage): void {
    const t = this.tracked.get(m.migrationUid);
    if (!t) return;
    const s = t.session;
    const dirtyChanged = Math.abs(m.stats.dirtyRate - s.lastDirtyRate) > Math.max(1, s.lastDirtyRate * 0.1);
    s.lastDirtyRate = m.stats.dirtyRate;
    s.lastRemaining = m.stats.dataRemaining;
    t.actor.send({ type: 'PROGRESS', stats: m.stats });
    const downtime = downtimeForIteration(m.stats.iteration, { baseMs: this.config.maxDowntimeMs, ...this.config.downtimeSteps });
    if (m.stats.phase === 'running' && m.stats.mode === 'PreCopy' && downtime > s.appliedDowntimeMs) {
      s.setDowntime(downtime).catch((err: unknown) => s.log.warn({ err: String(err), downtime }, 'could not raise max downtime'));
    }
    const now = this.clock.now();
    const last = this.lastProgressWrite.get(m.migrationUid) ?? 0;
    if (now - last >= (this.opts.progressWriteIntervalMs ?? 1000)) {
      this.lastProgressWrite.set(m.migrationUid, now);
      t.writer.progress(m.stats);
    }
    // The limits re-balance when a dirty rate moves.
    if (dirtyChanged) this.scheduleAdmit();
  }

  private async onResult(m: ResultMessage): Promise<void> {
    const t = this.tracked.get(m.migrationUid);
    if (!t) {
      const known = this.vmims.list().find((o) => o.metadata?.uid === m.migrationUid);
      const phase = (known as { status?: { phase?: string } } | undefined)?.status?.phase;
      if (known && !(phase && FINAL_PHASES.has(phase as MigrationPhase))) {
        // Not tracked yet (we are starting up): let the server redeliver it.
        throw new Error(`result for ${m.vmi} arrived before its migration was tracked`);
      }
      this.log.info({ uid: m.migrationUid, outcome: m.outcome }, 'result for a finished or unknown migration; acknowledged');
      return;
    }
    t.writer.progress(m.stats);
    if (m.outcome === 'completed') t.actor.send({ type: 'MIGRATION_COMPLETED', mode: m.mode, downtimeMs: m.downtimeMs ?? 0 });
    else if (m.outcome === 'aborted') t.actor.send({ type: 'MIGRATION_ABORTED', reason: m.reason ?? 'aborted' });
    else t.actor.send({ type: 'MIGRATION_FAILED', reason: m.reason ?? 'failed' });
    // Acknowledge only once the outcome is persisted, so a crash in between redelivers it;
    // but don't hold the consumer hostage to a slow finalization: let it come back later.
    let timer: unknown;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.clock.setTimeout(() => reject(new Error(`outcome of ${m.vmi} not persisted yet`)), 10_000);
    });
    try {
      await Promise.race([t.settled, timeout]);
    } finally {
      this.clock.clearTimeout(timer);
    }
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
