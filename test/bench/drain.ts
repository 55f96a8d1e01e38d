import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { POLICIES, type PolicyName } from './policy.js';
import { renderText } from './report.js';
import { bench } from './run.js';
import { loadScenario, ScenarioError } from './scenario.js';

const program = new Command()
  .name('bench')
  .description('Drain a simulated cluster in virtual time with Ferry, KubeVirt given the same config (kubevirt-tuned) and KubeVirt as shipped (kubevirt-default), and compare.')
  .requiredOption('--scenario <file>', 'scenario file (YAML or JSON), see test/bench/README.md')
  .addOption(new Option('--policy <name>', 'run one policy only (default: all three)').choices([...POLICIES]))
  .option('--json <out>', 'also write the full report as JSON to this file')
  .option('--max-hours <h>', 'give up on VMs not moved after this much virtual time', '48')
  .action((opts: { scenario: string; policy?: PolicyName; json?: string; maxHours: string }) => {
    const scenario = loadScenario(opts.scenario);
    const maxHours = Number(opts.maxHours);
    if (!(maxHours > 0)) throw new ScenarioError(`--max-hours must be a positive number, got ${opts.maxHours}`);
    const report = bench(scenario, opts.policy ? [opts.policy] : POLICIES, { maxVirtualMs: maxHours * 3600_000 });
    console.log(renderText(report));
    if (opts.json) {
      writeFileSync(opts.json, `${JSON.stringify(report, null, 2)}\n`);
      console.log(`\nwrote ${opts.json}`);
    }
  });

try {
  program.parse();
} catch (e) {
  console.error(e instanceof ScenarioError ? e.message : e);
  process.exit(1);
}
