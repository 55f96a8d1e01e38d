import type { HypervisorDriver, PublishedTarget } from '../hypervisor/driver.js';
import type { CommandReply, CommandRequest, JobSummary, MigrationRef } from '../bus/protocol.js';
import { HandlerError } from '../bus/rpc.js';
import type { Logger } from '../util/log.js';
import { jobKey, refFields } from './jobKey.js';
import type { Clock } from '../util/clock.js';
import { tombstonesToPrune, TOMBSTONE_LIMITS, type TombstoneLimits } from './tombstones.js';

type TargetState = 'preparing' | 'prepared' | 'finished' | 'cancelled';

interface TargetJob {
  ref: MigrationRef;
  domain: string;
  state: TargetState;
  /** Shared by repeats of the same prepare, so the driver prepares once. */
  address: Promise<{ address: string; published?: PublishedTarget }>;
  /** When it was finished or cancelled (clock ms): from then on it is a tombstone. */
  endedAt?: number;
}

export interface TargetRoleDeps {
  node: string;
  driver: HypervisorDriver;
  log: Logger;
  clock: Clock;
  tombstoneLimits?: TombstoneLimits;
}

/** The target side of migrations on one node: receive, then run or drop the guest. */
export class TargetRole {
  private readonly jobs = new Map<string, TargetJob>();
  private readonly node: string;
  private readonly driver: HypervisorDriver;
  private readonly log: Logger;

  constructor(private readonly d: TargetRoleDeps) {
    this.node = d.node;
    this.driver = d.driver;
    this.log = d.log;
  }

  private end(job: TargetJob, state: 'finished' | 'cancelled'): void {
    job.state = state;
    job.endedAt = this.d.clock.now();
    this.prune();
  }

  private prune(): void {
    const ended: Array<{ key: string; finishedAt: number }> = [];
    for (const [key, j] of this.jobs) if (j.endedAt !== undefined) ended.push({ key, finishedAt: j.endedAt });
    for (const key of tombstonesToPrune(ended, this.d.clock.now(), this.d.tombstoneLimits ?? TOMBSTONE_LIMITS)) this.jobs.delete(key);
  }

  /** forget-job: drops the tombstone of a finished or cancelled arrival; false when there is none. */
  forget(ref: MigrationRef): boolean {
    const key = jobKey(ref);
    const job = this.jobs.get(key);
    if (!job || job.endedAt === undefined) return false;
    this.jobs.delete(key);
    this.log.info({ node: this.node, ...refFields(ref), domain: job.domain, state: job.state }, 'finished arrival forgotten');
    return true;
  }

  async prepare(req: CommandRequest<'prepare-target'>): Promise<CommandReply<'prepare-target'>> {
    const key = jobKey(req);
    const known = this.jobs.get(key);
    if (known && known.state !== 'cancelled') return { ok: true, ...(await known.address) };

    const job: TargetJob = { ref: req, domain: req.guest.name, state: 'preparing', address: Promise.resolve({ address: '' }) };
    this.jobs.set(key, job);
    job.address = (async () => {
      try {
        const prepared = await this.driver.prepareIncoming(req.guest, req.migrationUid);
        job.state = 'prepared';
        this.log.info({ node: this.node, ...refFields(req), domain: job.domain, address: prepared.address, sourceNode: req.sourceNode }, 'target prepared');
        return prepared.published ? { address: prepared.address, published: prepared.published } : { address: prepared.address };
      } catch (err) {
        // Forget the failed attempt so the controller's retry prepares afresh.
        this.jobs.delete(key);
        throw new HandlerError('driver-error', `preparing ${job.domain} to arrive on ${this.node} failed: ${(err as Error).message}`);
      }
    })();
    return { ok: true, ...(await job.address) };
  }

  async finish(req: CommandRequest<'finish-target'>): Promise<CommandReply<'finish-target'>> {
    let domainState;
    try {
      domainState = await this.driver.finishIncoming(req.domain, req.migrationUid);
    } catch (err) {
      throw new HandlerError('driver-error', `finishing arrival of ${req.domain} on ${this.node} failed: ${(err as Error).message}`);
    }
    const job = this.jobs.get(jobKey(req));
    if (job && domainState !== 'missing') this.end(job, 'finished');
    this.log.info({ node: this.node, ...refFields(req), domain: req.domain, domainState }, 'target finished');
    return { ok: true, domainState };
  }

  /** Drops what was prepared for this migration; undefined when this node never prepared it. */
  async cancel(req: CommandRequest<'abort'>): Promise<'cancelled' | 'already-finished' | undefined> {
    const job = this.jobs.get(jobKey(req));
    if (!job) return this.cancelUnrecorded(req);
    if (job.state === 'finished') return 'already-finished';
    if (job.state === 'cancelled') return 'cancelled';
    // A prepare still under way must land before it can be undone; a failed one left nothing behind.
    await job.address.catch(() => undefined);
    try {
      await this.driver.cancelIncoming(job.domain, req.migrationUid);
    } catch (err) {
      throw new HandlerError('driver-error', `cancelling arrival of ${job.domain} on ${this.node} failed: ${(err as Error).message}`);
    }
    this.end(job, 'cancelled');
    this.log.info({ node: this.node, ...refFields(req), domain: job.domain, reason: req.reason }, 'target cancelled');
    return 'cancelled';
  }

  /**
   * An arrival this process has no record of (prepared before a restart) whose
   * incoming domain the hypervisor still holds: dropped all the same, or it
   * stays forever (chaos seed 1000). Every driver drops only the incoming domain
   * of this migration, never a guest that runs.
   */
  private async cancelUnrecorded(req: CommandRequest<'abort'>): Promise<'cancelled' | undefined> {
    const [ns, name] = req.vmi.split('/');
    if (!ns || !name) return undefined;
    const domain = `${ns}_${name}`;
    const held = (await this.driver.listDomains()).find((d) => d.name === domain);
    if (held?.state !== 'incoming') return undefined;
    try {
      await this.driver.cancelIncoming(domain, req.migrationUid);
    } catch (err) {
      throw new HandlerError('driver-error', `cancelling arrival of ${domain} on ${this.node} failed: ${(err as Error).message}`);
    }
    // Still there: it was another migration's arrival, which is not ours to drop.
    if ((await this.driver.listDomains()).some((d) => d.name === domain && d.state === 'incoming')) return undefined;
    this.log.info({ node: this.node, ...refFields(req), domain, reason: req.reason }, 'target cancelled (prepared before a restart)');
    return 'cancelled';
  }

  activeCount(): number {
    let n = 0;
    for (const j of this.jobs.values()) if (j.state === 'preparing' || j.state === 'prepared') n++;
    return n;
  }

  summaries(only?: ReadonlySet<string>): JobSummary[] {
    this.prune();
    return [...this.jobs.values()].filter((j) => !only || only.has(j.ref.migrationUid)).map((j) => ({
      migrationUid: j.ref.migrationUid,
      attempt: j.ref.attempt,
      vmi: j.ref.vmi,
      role: 'target',
      domain: j.domain,
      state: j.state,
      ...(j.endedAt !== undefined ? { finishedAt: new Date(j.endedAt).toISOString() } : {}),
    }));
  }
}
