import type { NatsConnection } from 'nats';
import { systemClock, type Clock } from '../util/clock.js';
import type { HypervisorDriver } from '../hypervisor/driver.js';
import { serveCommands, type CommandHandlers } from '../bus/rpc.js';
import { EpochFence } from '../bus/epoch.js';
import { join } from 'node:path';
import { startHeartbeat } from '../bus/heartbeat.js';
import type { Logger } from '../util/log.js';
import type { HandlerMetrics } from '../metrics/handlerMetrics.js';
import type { JobRecordStore } from './jobRecords.js';
import { recoverSourceJobs, type RecoverySummary } from './recovery.js';
import { SourceRole } from './sourceRole.js';
import { TargetRole } from './targetRole.js';
import type { TombstoneLimits } from './tombstones.js';

export interface HandlerOptions {
  nc: NatsConnection;
  node: string;
  driver: HypervisorDriver;
  clock?: Clock;
  progressIntervalMs?: number;
  heartbeatIntervalMs?: number;
  log: Logger;
  /** Reports this node's jobs on a scrape of these metrics while the handler runs. */
  metrics?: HandlerMetrics;
  /**
   * This node's records of outgoing migrations. With them the handler records
   * each migration until its result is published and, on start, takes over
   * what an earlier handler process left running (drivers whose migrations
   * outlive the process: libvirt).
   */
  records?: JobRecordStore;
  /** How long and how many finished jobs are kept when the controller never sends forget-job. */
  tombstoneLimits?: TombstoneLimits;
}

/** Beside the records: the highest leader epoch this node has obeyed. Not `.json`, so never read as a record. */
export const EPOCH_FILE = 'leader-epoch';

export interface RunningHandler {
  /** Settles once the start-up recovery has run (at once without records); commands wait for it. */
  readonly recovered: Promise<RecoverySummary>;
  /** Stops serving, heartbeats, progress and result retries; the connection and the driver stay open. */
  stop(): Promise<void>;
}

/** `handlers`, each answering only once `ready` has settled. */
function after(ready: Promise<void>, handlers: CommandHandlers): CommandHandlers {
  const gated: Record<string, (req: never) => Promise<unknown>> = {};
  for (const [command, serve] of Object.entries(handlers) as Array<[string, (req: never) => Promise<unknown>]>) {
    gated[command] = async (req) => {
      await ready;
      return serve(req);
    };
  }
  return gated as unknown as CommandHandlers;
}

/** The node agent: serves the controller's commands for `node` with `driver`. */
export function startHandler(opts: HandlerOptions): RunningHandler {
  const { nc, node, driver, log } = opts;
  const clock = opts.clock ?? systemClock;
  const stopping = new AbortController();
  const source = new SourceRole({
    nc,
    js: nc.jetstream(),
    node,
    driver,
    clock,
    progressIntervalMs: opts.progressIntervalMs ?? 500,
    log,
    stopped: stopping.signal,
    ...(opts.records ? { records: opts.records } : {}),
    ...(opts.tombstoneLimits ? { tombstoneLimits: opts.tombstoneLimits } : {}),
  });
  const target = new TargetRole({ node, driver, log, clock, ...(opts.tombstoneLimits ? { tombstoneLimits: opts.tombstoneLimits } : {}) });
  const fence = new EpochFence({ ...(opts.records ? { file: join(opts.records.dir, EPOCH_FILE) } : {}), log });
  const recovered: Promise<RecoverySummary> = opts.records
    ? recoverSourceJobs({ records: opts.records, driver, source, node, log })
    : Promise.resolve({ attached: [], settled: [], republished: [], tombstones: [], left: [] });
  void recovered.then(
    (r) => { if (r.attached.length + r.settled.length + r.republished.length + r.tombstones.length + r.left.length > 0) log.info({ node, ...r }, 'recovery after start done'); },
    (err: unknown) => log.error({ node, err: (err as Error).message }, 'recovery after start failed; records left for the next start'),
  );

  const serving: CommandHandlers = {
    'prepare-target': (req) => target.prepare(req),
    'start-source': (req) => source.start(req),
    'finish-target': (req) => target.finish(req),
    abort: async (req) => {
      // One uid can have both roles on a node only in tests; answer for the source first.
      const [asSource, asTarget] = await Promise.all([source.abort(req), target.cancel(req)]);
      return { ok: true, state: asSource ?? asTarget ?? 'not-found' };
    },
    'set-bandwidth': async (req) => {
      await source.steer(req, `set bandwidth to ${req.bytesPerSecond} B/s`, (job) => job.setBandwidth(req.bytesPerSecond));
      return { ok: true };
    },
    'set-downtime': async (req) => {
      await source.steer(req, `set max downtime to ${req.maxDowntimeMs} ms`, (job) => job.setMaxDowntime(req.maxDowntimeMs));
      return { ok: true };
    },
    'post-copy': async (req) => {
      await source.steer(req, 'switch to post-copy', (job) => job.startPostCopy());
      return { ok: true };
    },
    'list-jobs': async () => {
      const [sourceJobs, domains] = await Promise.all([source.summaries(), driver.listDomains()]);
      return {
        ok: true,
        node,
        jobs: [...sourceJobs, ...target.summaries()],
        domains: domains.map((d) => ({ name: d.name, state: d.state, memoryBytes: d.memoryBytes })),
      };
    },
    'forget-job': async (req) => {
      const [asSource, asTarget] = await Promise.all([source.forget(req), target.forget(req)]);
      return { ok: true, forgotten: asSource || asTarget };
    },
  };

  // Commands wait for recovery, so they see the jobs it takes over.
  const ready = recovered.then(() => undefined, () => undefined);
  const sub = serveCommands(nc, node, after(ready, serving), log, { fence });
  const heartbeat = startHeartbeat(nc, {
    node,
    driver: driver.kind,
    activeJobs: () => source.activeCount() + target.activeCount(),
    intervalMs: opts.heartbeatIntervalMs ?? 5000,
    clock,
  });
  const detachMetrics = opts.metrics?.attach(node, () => ({
    activeJobs: source.activeCount() + target.activeCount(),
    jobs: source.runningStats(),
  }));
  log.info({ node, driver: driver.kind }, 'handler serving');

  return {
    recovered,
    async stop() {
      if (stopping.signal.aborted) return;
      stopping.abort();
      heartbeat.stop();
      detachMetrics?.();
      source.stop();
      if (!nc.isClosed() && !nc.isDraining()) sub.unsubscribe();
      await ready;
      await source.idle();
      log.info({ node }, 'handler stopped');
    },
  };
}
