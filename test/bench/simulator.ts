import { performance } from 'node:perf_hooks';
import { MigrationEngine, type EngineStats } from '../../src/runbook/simulation/engine.js';
import type { Policy, PolicyName } from './policy.js';
import type { Scenario } from './scenario.js';

export { RETRY_BASE_MS } from '../../src/runbook/simulation/engine.js';
export type { Failure } from '../../src/runbook/simulation/engine.js';
export const DEFAULT_MAX_VIRTUAL_MS = 48 * 3600 * 1000;

export interface SimOptions {
  /** Stop (and report the VMs left) when virtual time passes this. */
  maxVirtualMs?: number;
  /** Control-plane latency per migration (virtual ms): admission → first byte, last byte → slot free. Default 0. */
  startDelayMs?: number;
  finishDelayMs?: number;
}

/** The engine's own statistics, plus what a drain benchmark reports around them. */
export interface SimResult extends EngineStats {
  scenario: string;
  policy: PolicyName;
  /** Virtual ms until the last VM left the drained nodes; null when some never did. */
  makespanMs: number | null;
  unfinished: string[];
  /** Where every VM ended. */
  placement: Record<string, string>;
  wallMs: number;
}

/**
 * A drain in virtual time on the migration engine (src/runbook/simulation):
 * every drained node is cordoned at time 0 and the policy moves their VMs
 * until none is left or time runs out. The engine checks the physics and the
 * policy's own limits at every step and throws when either is broken.
 */
export class DrainSimulator {
  constructor(private readonly scenario: Scenario, private readonly policy: Policy, private readonly options: SimOptions = {}) {}

  run(): SimResult {
    const wall0 = performance.now();
    const engine = new MigrationEngine(this.scenario.nodes, this.scenario.vms, this.policy, {
      startDelayMs: this.options.startDelayMs ?? 0,
      finishDelayMs: this.options.finishDelayMs ?? 0,
    });
    engine.drain(this.scenario.drain);
    const finished = engine.run({ maxMs: this.options.maxVirtualMs ?? DEFAULT_MAX_VIRTUAL_MS });
    const s = engine.stats;
    return {
      scenario: this.scenario.name,
      policy: this.policy.name,
      makespanMs: finished ? engine.lastFinish : null,
      unfinished: engine.unfinished(),
      ...s,
      placement: engine.placement(),
      wallMs: performance.now() - wall0,
    };
  }
}
