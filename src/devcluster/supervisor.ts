import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { systemClock, type Clock, type TimerHandle } from '../util/clock.js';

/**
 * Keeps one child process running the way a kubelet keeps a container: when it
 * exits without being asked to, it is started again after a back-off that
 * doubles on each quick death (10 s cap) and resets once a run lasted long
 * enough. Signals can be sent to it (the chaos campaign's kill -9, SIGSTOP,
 * SIGCONT); a kill is just another death, so it is restarted.
 */
export interface SupervisedSpec {
  name: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  logFile: string;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A run at least this long resets the back-off. Default 10 s. */
  stableAfterMs?: number;
}

export type SupervisorEvent =
  | { type: 'started'; name: string; pid: number; at: number; restarts: number }
  | { type: 'exited'; name: string; pid: number; at: number; code: number | null; signal: string | null; expected: boolean; restartInMs?: number };

export class SupervisedProcess {
  private proc: ChildProcess | undefined;
  private startedAt = 0;
  private backoffMs: number;
  private timer: TimerHandle | undefined;
  private stopping = false;
  private paused = false;
  private restartsCount = 0;
  private readonly log: WriteStream;
  private exitWaiters: Array<() => void> = [];

  constructor(
    readonly spec: SupervisedSpec,
    private readonly onEvent: (e: SupervisorEvent) => void = () => undefined,
    private readonly clock: Clock = systemClock,
  ) {
    this.backoffMs = spec.minBackoffMs ?? 500;
    mkdirSync(path.dirname(spec.logFile), { recursive: true });
    this.log = createWriteStream(spec.logFile, { flags: 'a' });
  }

  get name(): string { return this.spec.name; }
  get pid(): number | undefined { return this.proc?.pid; }
  get running(): boolean { return this.proc !== undefined; }
  get restarts(): number { return this.restartsCount; }
  /** True between SIGSTOP and SIGCONT. */
  get stopped(): boolean { return this.paused; }

  start(): void {
    if (this.proc || this.stopping) return;
    const proc = spawn(this.spec.command, [...this.spec.args], { stdio: ['ignore', 'pipe', 'pipe'], env: this.spec.env ?? process.env });
    this.proc = proc;
    this.paused = false;
    this.startedAt = this.clock.now();
    proc.stdout?.pipe(this.log, { end: false });
    proc.stderr?.pipe(this.log, { end: false });
    proc.once('error', (err) => this.log.write(`supervisor: could not start ${this.spec.name}: ${err.message}\n`));
    proc.once('exit', (code, signal) => this.exited(proc, code, signal));
    if (proc.pid !== undefined) this.onEvent({ type: 'started', name: this.name, pid: proc.pid, at: this.clock.now(), restarts: this.restartsCount });
  }

  /** Sends a signal to the running process (no-op when it is down). */
  signal(sig: NodeJS.Signals): boolean {
    if (!this.proc || this.proc.pid === undefined) return false;
    try {
      process.kill(this.proc.pid, sig);
    } catch {
      return false;
    }
    if (sig === 'SIGSTOP') this.paused = true;
    if (sig === 'SIGCONT') this.paused = false;
    return true;
  }

  /** kill -9; the supervisor restarts it after its back-off. Resolves once it is dead. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const dead = this.waitExit();
    this.signal('SIGKILL');
    await dead;
  }

  /** Stops for good: SIGTERM (SIGCONT first if stopped), SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const proc = this.proc;
    if (proc) {
      const dead = this.waitExit();
      if (this.paused) this.signal('SIGCONT');
      this.signal('SIGTERM');
      const force = setTimeout(() => this.signal('SIGKILL'), graceMs);
      await dead;
      clearTimeout(force);
    }
    await new Promise<void>((resolve) => this.log.end(() => resolve()));
  }

  private waitExit(): Promise<void> {
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  private exited(proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    this.paused = false;
    const now = this.clock.now();
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    const base = { type: 'exited' as const, name: this.name, pid: proc.pid ?? -1, at: now, code, signal };
    if (this.stopping) {
      this.onEvent({ ...base, expected: true });
    } else {
      const min = this.spec.minBackoffMs ?? 500;
      if (now - this.startedAt >= (this.spec.stableAfterMs ?? 10_000)) this.backoffMs = min;
      const wait = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, this.spec.maxBackoffMs ?? 10_000);
      this.log.write(`supervisor: ${this.name} exited (code ${code}, signal ${signal}); restarting in ${wait} ms\n`);
      this.onEvent({ ...base, expected: false, restartInMs: wait });
      this.timer = this.clock.setTimeout(() => {
        this.timer = undefined;
        this.restartsCount++;
        this.start();
      }, wait);
    }
    for (const w of waiters) w();
  }
}
