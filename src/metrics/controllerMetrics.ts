import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MigrationPhase } from '../api/vmim.js';
import type { Command } from '../bus/subjects.js';
import type { Priority } from '../limits/types.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { AdmissionReasonClass, AdmissionResult } from './admissionReason.js';
import { perScrape } from './perScrape.js';

/** One VMIM as the controller knows it at scrape time. */
export interface MigrationView {
  namespace: string;
  /** The VMIM's name. */
  name: string;
  /** The VMI's name (same namespace). */
  vmi: string;
  /** '' while the controller has not processed the VMIM yet (KubeVirt's "unset" phase). */
  phase: MigrationPhase | '';
  /** Known once the controller tracks it; queue metrics need it. */
  priority?: Priority;
  sourceNode?: string;
  /** Where it goes: the scheduled node, else the node placement pinned it to. */
  targetNode?: string;
  /** Bytes/s the limits core currently allots it. */
  bandwidth?: number;
  /** migrationState.startTimestamp / endTimestamp (RFC 3339). */
  startTimestamp?: string;
  endTimestamp?: string;
}

/** The limits in force (the same numbers the limits core is given). */
export interface LimitsView {
  parallelMigrationsPerCluster: number;
  parallelOutboundMigrationsPerNode: number;
  parallelInboundMigrationsPerNode: number;
  /** Bytes/s; 0 = no cluster budget beyond the NICs. */
  bandwidthBudget: number;
}

export interface NodeView {
  name: string;
  /** Bytes/s each way (the node's annotation, else the configured default). */
  nicCapacity: number;
}

/** Everything the state-derived gauges are computed from, taken once per scrape. */
export interface ControllerSnapshot {
  /** Every VMIM the controller's cache holds, finished ones included. */
  migrations: MigrationView[];
  limits: LimitsView;
  nodes: NodeView[];
}

/** Phases KubeVirt's `kubevirt_vmi_migrations_in_running_phase` counts. */
const RUNNING_PHASES: ReadonlySet<string> = new Set(['Scheduled', 'PreparingTarget', 'TargetReady', 'Running']);
/** Phases that hold a slot against the parallel limits (Ferry admits into Scheduling). */
const ACTIVE_PHASES: ReadonlySet<string> = new Set(['Scheduling', ...RUNNING_PHASES]);
const PRIORITIES: readonly Priority[] = ['evacuation', 'user', 'background'];
const DIRECTIONS = ['outbound', 'inbound'] as const;

const NATS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const PHASE_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600];
/** Fine at the low end: admission runs one `decide` per pass, and a slow pass delays every start and bandwidth change. */
const DECIDE_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25];

function unixSeconds(ts: string | undefined): number | undefined {
  if (!ts) return undefined;
  const ms = Date.parse(ts);
  return Number.isFinite(ms) ? ms / 1000 : undefined;
}

/**
 * The controller's Prometheus metrics, in a registry of their own. Gauges that
 * describe the current state are computed at scrape time from the snapshot
 * provider; the rest are fed by event methods as things happen.
 */
export class ControllerMetrics {
  readonly registry: Registry;
  private readonly clock: Clock;
  private snapshot: () => ControllerSnapshot | undefined = () => undefined;
  private readonly beats = new Map<string, number>();
  private readonly phaseTransitions: Histogram<'namespace' | 'vmi' | 'phase'>;
  private readonly admissions: Counter<'result' | 'reason'>;
  private readonly natsRoundTrips: Histogram<'command' | 'outcome'>;
  private readonly decideDurations: Histogram;
  private readonly reconcileErrors: Counter;
  private readonly deadLetters: Counter<'reason'>;
  private readonly leader: Gauge;

  constructor(opts: { registry?: Registry; clock?: Clock } = {}) {
    this.registry = opts.registry ?? new Registry();
    this.clock = opts.clock ?? systemClock;
    const registers = [this.registry];
    const snap = () => this.snapshot();

    /**
     * A gauge computed from the snapshot at scrape time. Series are rebuilt each
     * time, so a VMIM or node that is gone disappears; without a snapshot (no
     * provider, or a standby replica) there are none.
     */
    const derived = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (set: (labels: Record<L, string>, v: number) => void, s: ControllerSnapshot) => void) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          const s = snap();
          if (s) fill((labels, v) => (labelNames.length ? this.set(labels as never, v) : this.set(v)), s);
        },
      });
    const none = [] as const;

    // ---- KubeVirt's names, same meaning ----
    const phaseGauge = (name: string, help: string, counts: (m: MigrationView) => boolean) =>
      derived(name, help, none, (set, s) => set({}, s.migrations.filter(counts).length));
    phaseGauge('kubevirt_vmi_migrations_in_pending_phase', 'Number of current pending migrations.', (m) => m.phase === 'Pending');
    phaseGauge('kubevirt_vmi_migrations_in_scheduling_phase', 'Number of current scheduling migrations.', (m) => m.phase === 'Scheduling');
    phaseGauge('kubevirt_vmi_migrations_in_unset_phase', 'Number of current migrations not yet processed by the controller.', (m) => m.phase === '');
    phaseGauge(
      'kubevirt_vmi_migrations_in_running_phase',
      'Number of current running migrations (Scheduled, PreparingTarget, TargetReady and Running).',
      (m) => RUNNING_PHASES.has(m.phase),
    );

    const perVmim = (name: string, help: string, phase: MigrationPhase) =>
      derived(name, help, ['vmi', 'vmim', 'namespace'], (set, s) => {
        for (const m of s.migrations) if (m.phase === phase) set({ vmi: m.vmi, vmim: m.name, namespace: m.namespace }, 1);
      });
    perVmim('kubevirt_vmi_migration_succeeded', 'Indicates if the VMI migration succeeded (1 per existing Succeeded VMIM).', 'Succeeded');
    perVmim('kubevirt_vmi_migration_failed', 'Indicates if the VMI migration failed (1 per existing Failed VMIM).', 'Failed');

    derived('kubevirt_vmi_migration_start_time_seconds', 'The time at which the migration started (Unix seconds).', ['node', 'namespace', 'name', 'migration_name'], (set, s) => {
      for (const m of s.migrations) {
        const t = unixSeconds(m.startTimestamp);
        if (t !== undefined) set({ node: m.sourceNode ?? '', namespace: m.namespace, name: m.vmi, migration_name: m.name }, t);
      }
    });
    derived(
      'kubevirt_vmi_migration_end_time_seconds',
      'The time at which the migration ended (Unix seconds); status is succeeded or failed.',
      ['node', 'namespace', 'name', 'migration_name', 'status'],
      (set, s) => {
        for (const m of s.migrations) {
          const t = unixSeconds(m.endTimestamp);
          if (t === undefined || (m.phase !== 'Succeeded' && m.phase !== 'Failed')) continue;
          const succeeded = m.phase === 'Succeeded';
          // The node the VM runs on afterwards, as KubeVirt reports the VMI's node.
          const node = (succeeded ? m.targetNode : m.sourceNode) ?? '';
          set({ node, namespace: m.namespace, name: m.vmi, migration_name: m.name, status: succeeded ? 'succeeded' : 'failed' }, t);
        }
      },
    );
    this.phaseTransitions = new Histogram({
      name: 'kubevirt_vmi_migration_phase_transition_time_from_creation_seconds',
      help: 'Seconds from the creation of a migration to each phase it reaches.',
      labelNames: ['namespace', 'vmi', 'phase'],
      buckets: PHASE_BUCKETS,
      registers,
    });

    // ---- Ferry's own ----
    derived('ferry_migration_queue_length', 'Migrations waiting for admission (phase Pending), by priority.', ['priority'], (set, s) => {
      for (const p of PRIORITIES) set({ priority: p }, s.migrations.filter((m) => m.phase === 'Pending' && (m.priority ?? 'user') === p).length);
    });

    const active = (s: ControllerSnapshot) => s.migrations.filter((m) => ACTIVE_PHASES.has(m.phase));
    const nodeOf = (m: MigrationView, d: (typeof DIRECTIONS)[number]) => (d === 'outbound' ? m.sourceNode : m.targetNode);
    /** Every known node, and any other that an active migration touches. */
    const nodeNames = (s: ControllerSnapshot) => {
      const names = new Set(s.nodes.map((n) => n.name));
      for (const m of active(s)) {
        for (const d of DIRECTIONS) {
          const n = nodeOf(m, d);
          if (n) names.add(n);
        }
      }
      return names;
    };
    /** Per node and direction, a sum over the active migrations on that side of it. */
    const perNode = (name: string, help: string, value: (m: MigrationView) => number) =>
      derived(name, help, ['node', 'direction'], (set, s) => {
        const act = active(s);
        for (const node of nodeNames(s)) {
          for (const direction of DIRECTIONS) set({ node, direction }, act.filter((m) => nodeOf(m, direction) === node).reduce((a, m) => a + value(m), 0));
        }
      });

    derived('ferry_cluster_migrations_active', 'Migrations holding a slot against parallelMigrationsPerCluster (Scheduling through Running).', none, (set, s) =>
      set({}, active(s).length),
    );
    derived('ferry_cluster_migrations_limit', 'parallelMigrationsPerCluster in force.', none, (set, s) => set({}, s.limits.parallelMigrationsPerCluster));
    perNode('ferry_node_migrations_active', 'Active migrations leaving (outbound) or arriving at (inbound) a node.', () => 1);
    derived(
      'ferry_node_migrations_limit',
      'Per-node parallel limit in force: parallelOutboundMigrationsPerNode (outbound) and parallelInboundMigrationsPerNode (inbound).',
      ['direction'],
      (set, s) => {
        set({ direction: 'outbound' }, s.limits.parallelOutboundMigrationsPerNode);
        set({ direction: 'inbound' }, s.limits.parallelInboundMigrationsPerNode);
      },
    );
    perNode(
      'ferry_node_bandwidth_allocated_bytes_per_second',
      'Bandwidth the limits core allots to active migrations leaving (outbound) or arriving at (inbound) a node.',
      (m) => m.bandwidth ?? 0,
    );
    derived(
      'ferry_node_nic_capacity_bytes_per_second',
      'Migration bandwidth a node can carry each way (its NIC capacity annotation, else the configured default).',
      ['node'],
      (set, s) => {
        for (const n of s.nodes) set({ node: n.name }, n.nicCapacity);
      },
    );
    derived('ferry_cluster_bandwidth_allocated_bytes_per_second', 'Bandwidth allotted to all active migrations together.', none, (set, s) =>
      set({}, active(s).reduce((a, m) => a + (m.bandwidth ?? 0), 0)),
    );
    derived(
      'ferry_cluster_bandwidth_budget_bytes_per_second',
      'Cluster-wide migration bandwidth budget in force (0 = none beyond the NICs).',
      none,
      (set, s) => set({}, s.limits.bandwidthBudget),
    );

    this.admissions = new Counter({
      name: 'ferry_admission_decisions_total',
      help: 'Admission decisions: started, queued (with why, per new waiting reason) or rejected, by reason class.',
      labelNames: ['result', 'reason'],
      registers,
    });
    this.natsRoundTrips = new Histogram({
      name: 'ferry_nats_command_duration_seconds',
      help: 'Round-trip time of controller-to-handler NATS commands, by command and outcome (ok or error).',
      labelNames: ['command', 'outcome'],
      buckets: NATS_BUCKETS,
      registers,
    });
    this.decideDurations = new Histogram({
      name: 'ferry_admission_decide_duration_seconds',
      help: 'Wall time of one admission pass of the limits core (decide: what starts, where, at what bandwidth).',
      buckets: DECIDE_BUCKETS,
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'ferry_reconcile_errors_total',
      help: 'Reconciles of a VMIM that failed and were retried.',
      registers,
    });
    this.deadLetters = new Counter({
      name: 'ferry_result_dead_letters_total',
      help: 'Migration results given up: invalid (not a result), max-deliveries (handling failed on every delivery) or wrong-node (not from the migration\'s source node).',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['invalid', 'max-deliveries', 'wrong-node']) this.deadLetters.labels(reason).inc(0);
    this.leader = new Gauge({
      name: 'ferry_controller_leader',
      help: '1 while this controller replica holds the leader lease, else 0.',
      registers,
    });
    this.leader.set(0);
    const beats = this.beats;
    const clock = this.clock;
    new Gauge({
      name: 'ferry_handler_heartbeat_age_seconds',
      help: 'Seconds since the controller last heard a heartbeat from the handler of a node.',
      labelNames: ['node'],
      registers,
      collect() {
        const s = snap();
        const known = s ? new Set(s.nodes.map((n) => n.name)) : undefined;
        this.reset();
        const now = clock.now();
        for (const [node, at] of beats) {
          // A node that left the cluster is no longer expected to beat.
          if (known && !known.has(node)) continue;
          this.set({ node }, Math.max(0, (now - at) / 1000));
        }
      },
    });
  }

  /**
   * Where state-derived gauges come from; called once per scrape. Returning
   * undefined (a standby replica has no caches) leaves their series out.
   */
  setSnapshotProvider(provider: () => ControllerSnapshot | undefined): void {
    this.snapshot = perScrape(provider);
  }

  /** A migration reached `phase`, `secondsSinceCreation` after its VMIM was created. */
  phaseTransition(namespace: string, vmi: string, phase: MigrationPhase, secondsSinceCreation: number): void {
    this.phaseTransitions.observe({ namespace, vmi, phase }, Math.max(0, secondsSinceCreation));
  }

  admission(result: AdmissionResult, reason: AdmissionReasonClass): void {
    this.admissions.inc({ result, reason });
  }

  /** One admission pass's `decide` took `ms` (wall). */
  decided(ms: number): void {
    this.decideDurations.observe(ms / 1000);
  }

  /** Same shape as `RequestOptions.onRoundTrip` (src/bus/rpc.ts), so it can be passed as is. */
  readonly natsRoundTrip = (command: Command, ms: number, ok: boolean): void => {
    this.natsRoundTrips.observe({ command, outcome: ok ? 'ok' : 'error' }, ms / 1000);
  };

  reconcileError(): void {
    this.reconcileErrors.inc();
  }

  /** A migration result was given up (see consumeResults). An arrow: passed around as a callback. */
  readonly resultDeadLetter = (reason: 'invalid' | 'max-deliveries' | 'wrong-node'): void => {
    this.deadLetters.labels(reason).inc();
  };

  setLeader(leading: boolean): void {
    this.leader.set(leading ? 1 : 0);
  }

  /** A heartbeat from `node`'s handler; `at` defaults to now (the controller's clock, immune to node clock skew). */
  heartbeat(node: string, at: number = this.clock.now()): void {
    this.beats.set(node, Math.max(at, this.beats.get(node) ?? -Infinity));
  }
}
