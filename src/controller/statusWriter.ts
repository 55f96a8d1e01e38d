import type { VirtualMachineInstance } from '../api/vmi.js';
import { FINAL_PHASES, type MigrationPhase, type VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { JobStats } from '../hypervisor/driver.js';
import { describeApiError, isNotFound, VMIM_RESOURCE, type KubeClient } from '../kube/client.js';
import type { Logger } from '../util/log.js';

export interface PhaseInfo {
  failureReason?: string | undefined;
  abortRequested?: boolean | undefined;
}

/**
 * Writes one VMIM's status, strictly in order (a later phase can never be
 * overwritten by an earlier write), through the status subresource.
 * Failed writes are retried: status is the durable truth a restart resumes from.
 */
export class StatusWriter {
  private chain: Promise<void> = Promise.resolve();
  private readonly namespace: string;
  private readonly name: string;
  private timestamps: Array<{ phase: string; phaseTransitionTimestamp: string }>;
  private written: string | undefined;
  private abortMarked = false;
  private conditions: Array<Record<string, unknown>>;

  constructor(
    private readonly kube: KubeClient,
    vmim: VirtualMachineInstanceMigration,
    private readonly log: Logger,
    private readonly vmi: () => VirtualMachineInstance | undefined,
  ) {
    this.namespace = vmim.metadata.namespace ?? 'default';
    this.name = vmim.metadata.name;
    this.timestamps = [...(vmim.status?.phaseTransitionTimestamps ?? [])];
    this.written = vmim.status?.phase || undefined;
    this.conditions = [...((vmim.status?.conditions ?? []) as Array<Record<string, unknown>>)];
    this.abortMarked = this.conditions.some((c) => c['type'] === 'migrationAbortRequested');
  }

  phase(phase: MigrationPhase, info: PhaseInfo = {}): Promise<void> {
    return this.run(async () => {
      if (info.abortRequested) this.markAbort();
      if (this.written === phase) return;
      this.timestamps.push({ phase, phaseTransitionTimestamp: new Date().toISOString() });
      const status: Record<string, unknown> = { phase, phaseTransitionTimestamps: this.timestamps, conditions: this.conditions };
      if (FINAL_PHASES.has(phase)) {
        const ms = this.vmi()?.status?.migrationState;
        if (ms) status['migrationState'] = ms;
        if (phase === 'Failed' && info.failureReason) {
          this.conditions.push(condition('Failed', 'True', 'MigrationFailed', info.failureReason));
          status['conditions'] = this.conditions;
        }
      }
      await this.patch(status);
      this.written = phase;
      this.log.info({ phase, ...(info.failureReason ? { reason: info.failureReason } : {}) }, `migration phase ${phase}`);
    });
  }

  abortRequested(): void {
    if (this.abortMarked) return;
    void this.run(async () => {
      this.markAbort();
      await this.patch({ conditions: this.conditions });
    });
  }

  progress(stats: JobStats): void {
    void this.run(async () => {
      if (this.written && FINAL_PHASES.has(this.written as MigrationPhase)) return;
      const eta = stats.memoryBandwidth > 0 && stats.phase === 'running' ? Math.ceil(stats.dataRemaining / stats.memoryBandwidth) : 0;
      await this.patch({
        progress: {
          dataTotal: stats.dataTotal,
          dataProcessed: stats.dataProcessed,
          dataRemaining: stats.dataRemaining,
          memoryBandwidth: stats.memoryBandwidth,
          dirtyRate: stats.dirtyRate,
          iteration: stats.iteration,
          bandwidthLimit: stats.bandwidthLimit,
          etaSeconds: eta,
          updated: new Date().toISOString(),
        },
      });
    });
  }

  bandwidth(bytesPerSecond: number): void {
    void this.run(() => this.patch({ progress: { bandwidthLimit: bytesPerSecond } }));
  }

  private markAbort(): void {
    if (this.abortMarked) return;
    this.abortMarked = true;
    this.conditions.push(condition('migrationAbortRequested', 'True', 'AbortRequested', 'The migration was asked to stop (VMIM deleted)'));
  }

  /** Runs `task` in this migration's write order (the actor host uses it for cleanup I/O). */
  run(task: () => Promise<void>): Promise<void> {
    const run = this.chain.then(task, task);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async patch(status: Record<string, unknown>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.kube.patchCustomStatus(VMIM_RESOURCE, this.namespace, this.name, { status });
        return;
      } catch (err) {
        if (isNotFound(err)) return; // the VMIM is gone; nothing left to record on it
        if (attempt >= 10) {
          this.log.error({ err: describeApiError(err) }, 'giving up writing VMIM status');
          throw err;
        }
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  }
}

function condition(type: string, status: string, reason: string, message: string): Record<string, unknown> {
  const now = new Date().toISOString();
  return { type, status, reason, message, lastProbeTime: null, lastTransitionTime: now };
}
