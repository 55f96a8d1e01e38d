import type { Command } from 'commander';
import { kubeconfigOption, positive } from '../options.js';

// The runbook commands' options, apart from their code (./runbook.js), which
// loads only when one of them runs.

/** Adds `ferry runbook plan|apply|status` to the program. */
export function registerRunbookCommand(program: Command): void {
  const runbook = program.command('runbook').description('Maintenance-window runbooks: empty nodes N at a time inside a window (MaintenanceWindow)');
  runbook
    .command('plan')
    .description('Show the order, per-node predicted start and finish, the predicted end and the nodes that won\'t fit, without changing anything')
    .argument('<file>', 'MaintenanceWindow manifest (YAML)')
    .addOption(kubeconfigOption())
    .option('-o, --output <format>', 'table or json', 'table')
    .option('--time-scale <x>', 'the sim hypervisor\'s speed-up on an embedded cluster (`ferry dev --time-scale`)', positive('--time-scale'), 1)
    .option('--config <file>', 'Ferry configuration file (YAML), as the controller runs with')
    .action(async (file: string, o) => (await import('./runbook.js')).runRunbookPlan(file, o));
  runbook
    .command('apply')
    .description('Create or update the MaintenanceWindow and follow it until it settles')
    .argument('<file>', 'MaintenanceWindow manifest (YAML)')
    .addOption(kubeconfigOption())
    .option('--no-wait', 'create or update it and return')
    .option('--timeout <seconds>', 'stop following after this long', positive('--timeout'))
    .action(async (file: string, o) => (await import('./runbook.js')).runRunbookApply(file, o));
  runbook
    .command('status')
    .description('List maintenance windows, or show one with per-node progress; exits non-zero if it failed')
    .argument('[name]', 'the MaintenanceWindow')
    .addOption(kubeconfigOption())
    .option('-w, --watch', 'follow it with live per-node progress until it settles', false)
    .option('-o, --output <format>', 'table or json', 'table')
    .option('--timeout <seconds>', 'with --watch: stop following after this long', positive('--timeout'))
    .action(async (name: string | undefined, o) => (await import('./runbook.js')).runRunbookStatus(name, o));
}
