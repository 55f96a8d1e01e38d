import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { FAULT_KINDS, runCampaign, type FaultKind } from './campaign.js';
import { reliabilityReport } from './report.js';

/** `npm run chaos -- --migrations N --seed S [--faults LIST] [--json OUT]` */
const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number`);
  return n;
};
const faultList = (v: string): FaultKind[] => {
  const kinds = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bad = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
  if (bad.length > 0) throw new InvalidArgumentError(`unknown fault ${bad.join(', ')} (known: ${FAULT_KINDS.join(', ')})`);
  return kinds as FaultKind[];
};

const program = new Command()
  .name('chaos')
  .description('Run Ferry as separate processes under seeded faults and check its invariants against the hypervisors\' ground truth')
  .option('--migrations <n>', 'stop after this many migrations have finished', int('--migrations'), 1000)
  .option('--seed <n>', 'seed of the fault schedule and the workload', int('--seed'), 1)
  .option('--faults <list>', `comma-separated fault kinds (default all: ${FAULT_KINDS.join(',')})`, faultList)
  .option('--baseline <n>', 'fault-free migrations first (throughput without faults)', int('--baseline'))
  .option('--nodes <n>', 'sim nodes', int('--nodes'), 4)
  .option('--vms <n>', 'VMs', int('--vms'), 12)
  .option('--concurrency <n>', 'user migrations kept in flight', int('--concurrency'), 3)
  .option('--dir <dir>', 'keep journals, logs and state here (default: a temporary directory, kept on a violation)')
  .option('--no-runbooks', 'do not drive MaintenanceWindow runbooks')
  .option('--keep-going', 'record violations and carry on instead of stopping at the first', false)
  .option('--time-scale <x>', 'sim time per real time', Number, 1)
  .option('--max-minutes <m>', 'stop creating migrations and injecting faults after this long, then quiesce and report', Number)
  .option('--fault-gap <lo-hi>', 'pause between faults, ms (default 1000-3000)')
  .option('--json <file>', 'also write the result as JSON here')
  .option('--report <file>', 'where the Markdown report goes', 'docs/reliability.md')
  .option('--no-report', 'do not write the Markdown report')
  .action(async (o: { migrations: number; seed: number; faults?: FaultKind[]; baseline?: number; nodes: number; vms: number; concurrency: number; dir?: string; json?: string; report: string | false; keepGoing: boolean; timeScale: number; maxMinutes?: number; faultGap?: string; runbooks: boolean }) => {
    // Ctrl-C ends the run early but still quiesces, checks and reports (a second one exits at once).
    const interrupted = new AbortController();
    process.once('SIGINT', () => {
      process.stdout.write('\ninterrupted: stopping the workload and the faults, then checking and reporting (Ctrl-C again to quit now)\n');
      interrupted.abort();
      process.once('SIGINT', () => process.exit(130));
    });
    const gap = o.faultGap?.split('-').map(Number);
    if (gap && (gap.length !== 2 || gap.some((x) => !Number.isFinite(x) || x < 0))) throw new InvalidArgumentError('--fault-gap must be LO-HI in ms, e.g. 3000-6000');
    const result = await runCampaign({
      migrations: o.migrations,
      seed: o.seed,
      nodes: o.nodes,
      vms: o.vms,
      concurrency: o.concurrency,
      keepGoing: o.keepGoing,
      runbooks: o.runbooks,
      signal: interrupted.signal,
      ...(o.maxMinutes !== undefined ? { maxMs: o.maxMinutes * 60_000 } : {}),
      ...(gap ? { faultGapMs: [gap[0]!, gap[1]!] as const } : {}),
      timeScale: o.timeScale,
      ...(o.faults ? { faults: o.faults } : {}),
      ...(o.baseline !== undefined ? { baseline: o.baseline } : {}),
      ...(o.dir ? { dir: o.dir } : {}),
      log: (line) => process.stdout.write(`${line}\n`),
    });
    const command = `npm run chaos -- --migrations ${o.migrations} --seed ${o.seed}${o.faults ? ` --faults ${o.faults.join(',')}` : ''}${o.concurrency !== 3 ? ` --concurrency ${o.concurrency}` : ''}${o.runbooks ? '' : ' --no-runbooks'}${o.keepGoing ? ' --keep-going' : ''}${o.timeScale !== 1 ? ` --time-scale ${o.timeScale}` : ''}${o.maxMinutes !== undefined ? ` --max-minutes ${o.maxMinutes}` : ''}${o.faultGap ? ` --fault-gap ${o.faultGap}` : ''}`;
    if (o.json) writeFileSync(o.json, JSON.stringify(result, null, 2));
    if (o.report) writeFileSync(o.report, reliabilityReport(result, command, new Date()));
    const total = Object.values(result.faults).reduce((a, b) => a + b, 0);
    process.stdout.write(`\n${result.migrations.finished} migrations, ${total} faults, ${result.violations.length} violations in ${(result.durationMs / 1000).toFixed(0)} s\n`);
    for (const v of result.violations.slice(0, 10)) process.stdout.write(`VIOLATION ${v.invariant} (${v.subject}): ${v.message}\n`);
    if (result.violations.length > 0) process.stdout.write(`replay with --seed ${result.seed}; evidence in ${result.dir}\n`);
    process.exitCode = result.violations.length > 0 ? 1 : 0;
  });

await program.parseAsync(process.argv);
