import { resolveLimits } from '../../src/limits/adaptive.js';
import { LimitsPolicy } from '../../src/runbook/simulation/limitsPolicy.js';
import type { Policy } from './policy.js';
import type { Scenario } from './scenario.js';

/**
 * Ferry: the limits core decides what starts, where, and at what bandwidth,
 * re-run on every start and end; the scenario's config applies (including its
 * auto-converge / post-copy permissions and Ferry's own inbound limit and budget),
 * and the parallel limits it leaves out adapt (src/limits/adaptive.ts) as they
 * do in the controller.
 */
export class FerryPolicy extends LimitsPolicy implements Policy {
  override readonly name = 'ferry' as const;

  constructor(readonly scenario: Scenario) {
    const c = scenario.config;
    super(
      resolveLimits({
        pins: [scenario.pinned],
        bandwidthBudget: scenario.bandwidthBudget,
        // Every node names its NIC; this only covers nodes decide has not been told about.
        defaultNicCapacity: Math.min(...scenario.nodes.map((n) => n.nic)),
        bandwidthPerMigration: c.bandwidthPerMigration,
        completionTimeoutPerGiB: c.completionTimeoutPerGiB,
      }),
      {
        progressTimeoutMs: c.progressTimeout * 1000,
        completionTimeoutPerGiB: c.completionTimeoutPerGiB,
        autoConverge: c.allowAutoConverge,
        postCopy: c.allowPostCopy,
        maxDowntimeMs: c.maxDowntimeMs,
      },
    );
  }
}
