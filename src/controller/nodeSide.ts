import type { NatsConnection } from 'nats';
import { CommandError, isDefinite, requestCommand, type RequestOptions } from '../bus/rpc.js';
import type { Command } from '../bus/subjects.js';
import type { CommandReply, CommandRequest } from '../bus/protocol.js';
import type { Inspection } from '../../statecharts/migration.js';
import { judge, type SideView } from './arbiter.js';

/**
 * The controller's side of the handler protocol: every command a migration
 * sends, carrying the leader's epoch, and every failure classified as
 * *definite* (nothing was started: safe to treat as "did not happen") or
 * *ambiguous* (it may have happened: the chart must find out).
 */
export interface NodeSideOptions {
  nc: NatsConnection;
  timeoutMs: number;
  /** The leader's epoch (the Lease's leaseTransitions); handlers refuse older ones. */
  epoch: () => number;
  onRoundTrip?: (command: Command, ms: number, ok: boolean) => void;
  /** A handler obeys a newer leader's epoch: this controller is deposed, whatever its lease says. */
  onStaleEpoch?: (node: string, message: string) => void;
}

/** True when `err` guarantees the command had no effect (the bus's rule, contracts.md §2); anything unknown is ambiguous. */
export function isDefiniteCommandError(err: unknown): boolean {
  return isDefinite(err) || (err as { definite?: unknown } | undefined)?.definite === true;
}

/** An error from before a command was sent: definite by construction. */
export class NotSentError extends Error {
  override readonly name = 'NotSentError';
  readonly definite = true;
}

/** Marks a command error for the chart (which reads `definite`, not the bus's types). */
function marked(err: unknown): unknown {
  if (err instanceof Error && isDefiniteCommandError(err)) Object.assign(err, { definite: true });
  return err;
}

export class NodeSide {
  constructor(private readonly o: NodeSideOptions) {}

  async command<C extends Command>(node: string, command: C, payload: CommandRequest<C>): Promise<CommandReply<C>> {
    const opts: RequestOptions = { timeoutMs: this.o.timeoutMs, epoch: this.o.epoch() };
    if (this.o.onRoundTrip) opts.onRoundTrip = this.o.onRoundTrip;
    try {
      return await requestCommand(this.o.nc, node, command, payload, opts);
    } catch (err) {
      if (err instanceof CommandError && err.code === 'stale-epoch') this.o.onStaleEpoch?.(node, err.message);
      throw marked(err);
    }
  }

  /** One side's `list-jobs`, narrowed to this migration and domain; a silence is an answer too. */
  async view(node: string | undefined, migrationUid: string, domain: string, role: 'source' | 'target'): Promise<SideView> {
    if (!node) return { answered: false, error: `no ${role} node known` };
    try {
      const reply = await this.command(node, 'list-jobs', {});
      const job = reply.jobs.find((j) => j.migrationUid === migrationUid && j.role === role);
      const dom = reply.domains.find((d) => d.name === domain);
      return { answered: true, job: job && { state: job.state }, domain: dom && { state: dom.state } };
    } catch (err) {
      return { answered: false, error: (err as Error).message };
    }
  }

  /** Asks both sides at once and judges where the guest runs. */
  async inspect(o: { migrationUid: string; domain: string; sourceNode: string | undefined; targetNode: string | undefined; sourceLost: boolean }): Promise<Inspection & { source: SideView; target: SideView }> {
    const [source, target] = await Promise.all([
      this.view(o.sourceNode, o.migrationUid, o.domain, 'source'),
      this.view(o.targetNode, o.migrationUid, o.domain, 'target'),
    ]);
    return { ...judge({ source, target, sourceLost: o.sourceLost }), source, target };
  }
}
