import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { POLICIES, type PolicyName } from './policy.js';
import { renderReal, renderText } from './report.js';
import { runReal, type RealResult } from './real.js';
import { bench, simulate } from './run.js';
import { DEV_CLUSTER_OVERHEADS } from '../../src/runbook/plan.js';
import { loadScenario, ScenarioError } from './scenario.js';

const program = new Command()
  .name('bench')
  .description('Drain a simulated cluster in virtual time with Ferry, KubeVirt given the same config (kubevirt-tuned) and KubeVirt as shipped (kubevirt-default), and compare.')
  .requiredOption('--scenario <file>', 'scenario file (YAML or JSON), see test/bench/README.md')
  .addOption(new Option('--policy <name>', 'run one policy only (default: all three)').choices([...POLICIES]))
  .option('--json <out>', 'also write the full report as JSON to this file')
  .option('--max-hours <h>', 'give up on VMs not moved after this much virtual time', '48')
  .option('--real', 'also drain through the real controller, NATS and handlers (sim driver), and compare with virtual time')
  .option('--time-scale <x>', 'with --real: scenario seconds per wall second', '1')
  .option('--measure', 'with --real: run the controller in its own process and report its CPU and RSS, the API server process RSS and NATS messages')
  .action(async (opts: { scenario: string; policy?: PolicyName; json?: string; maxHours: string; real?: boolean; timeScale: string; measure?: boolean }) => {
    const scenario = loadScenario(opts.scenario);
    const maxHours = Number(opts.maxHours);
    if (!(maxHours > 0)) throw new ScenarioError(`--max-hours must be a positive number, got ${opts.maxHours}`);
    const timeScale = Number(opts.timeScale);
    if (!(timeScale > 0)) throw new ScenarioError(`--time-scale must be a positive number, got ${opts.timeScale}`);
    const policies = opts.real ? ['ferry' as const] : opts.policy ? [opts.policy] : POLICIES;
    const report = bench(scenario, policies, { maxVirtualMs: maxHours * 3600_000 });
    console.log(renderText(report));
    let real: RealResult | undefined;
    if (opts.real) {
      console.log(`\nreal control plane: ${scenario.nodes.length} nodes, ${scenario.vms.length} VMIs, time scale ${timeScale} …`);
      real = await runReal(scenario, {
        timeScale,
        measure: opts.measure === true,
        timeoutMs: maxHours * 3600_000 / timeScale,
        onProgress: (left, total) => { if (left % Math.max(1, Math.round(total / 10)) === 0) console.log(`  ${total - left}/${total} moved`); },
      });
      // The same model with the control-plane latency this run measured (and the dev cluster's finalisation).
      const latency = { startDelayMs: real.setupWallMs * timeScale, finishDelayMs: DEV_CLUSTER_OVERHEADS.migrationFinishMs * timeScale };
      const withLatency = Number.isFinite(latency.startDelayMs) ? simulate(scenario, 'ferry', { maxVirtualMs: maxHours * 3600_000, ...latency }).result : undefined;
      console.log(renderReal(real, report.runs[0]!.makespanS, withLatency && { makespanS: withLatency.makespanMs === null ? null : withLatency.makespanMs / 1000, ...latency }));
    }
    if (opts.json) {
      writeFileSync(opts.json, `${JSON.stringify(real ? { ...report, real } : report, null, 2)}\n`);
      console.log(`\nwrote ${opts.json}`);
    }
  });

program.parseAsync().catch((e: unknown) => {
  console.error(e instanceof ScenarioError ? e.message : e);
  process.exit(1);
});
