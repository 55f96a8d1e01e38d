import { LimitsPolicy } from '../../src/runbook/simulation/limitsPolicy.js';
import type { Policy } from './policy.js';
import type { Scenario } from './scenario.js';

/**
 * Ferry: the limits core decides what starts, where, and at what bandwidth,
 * re-run on every start and end; the scenario's config applies (including its
 * auto-converge / post-copy permissions and Ferry's own inbound limit and budget).
 */
export class FerryPolicy extends LimitsPolicy implements Policy {
  override readonly name = 'ferry' as const;

  constructor(readonly scenario: Scenario) {
    const c = scenario.config;
    super(
      {
        parallelMigrationsPerCluster: c.parallelMigrationsPerCluster,
        parallelOutboundMigrationsPerNode: c.parallelOutboundMigrationsPerNode,
        parallelInboundMigrationsPerNode: c.parallelInboundMigrationsPerNode,
        bandwidthBudget: scenario.bandwidthBudget,
        // Every node names its NIC; this only covers nodes decide has not been told about.
        defaultNicCapacity: Math.min(...scenario.nodes.map((n) => n.nic)),
        bandwidthPerMigration: c.bandwidthPerMigration,
      },
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
