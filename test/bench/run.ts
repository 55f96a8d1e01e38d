import { bounds } from './bounds.js';
import { FerryPolicy } from './ferryPolicy.js';
import { KubevirtPolicy } from './kubevirtPolicy.js';
import type { Policy, PolicyName } from './policy.js';
import { benchReport, runReport, type BenchReport } from './report.js';
import type { Scenario } from './scenario.js';
import { DrainSimulator, type SimOptions, type SimResult } from './simulator.js';

export function makePolicy(name: PolicyName, s: Scenario): Policy {
  return name === 'ferry' ? new FerryPolicy(s) : new KubevirtPolicy(s, name);
}

export function simulate(s: Scenario, name: PolicyName, options?: SimOptions): { result: SimResult; policy: Policy } {
  const policy = makePolicy(name, s);
  return { result: new DrainSimulator(s, policy, options).run(), policy };
}

/** Runs the scenario under each policy and puts the numbers side by side. */
export function bench(s: Scenario, policies: readonly PolicyName[], options?: SimOptions): BenchReport {
  const b = bounds(s);
  const runs = policies.map((name) => {
    const { result, policy } = simulate(s, name, options);
    return runReport(result, b, policy.latencies, policy.cpuTimes);
  });
  return benchReport(s, b, runs);
}
