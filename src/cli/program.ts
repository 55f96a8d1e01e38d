import { Argument, Command, Option } from 'commander';
import { registerRunbookCommand } from './commands/runbookCommand.js';
import { int, kubeconfigOption, positive } from './options.js';

// Each command's code is imported when that command runs, not before: `ferry
// status` must not pay for loading the dev cluster, the controller or libvirt.

const metricsPortOption = (dflt?: number) =>
  new Option('--metrics-port <port>', 'serve /metrics, /healthz and /readyz on this port (0 = any free port)')
    .argParser(int('--metrics-port'))
    .default(dflt);

/**
 * The whole `ferry` command line, built without running anything, so tests
 * (and the docs checks) can inspect every command and option.
 */
export function buildProgram(o: { name?: string } = {}): Command {
  const program = new Command()
    .name(o.name ?? 'ferry')
    .description('Live migration of KubeVirt-style virtual machines on Kubernetes')
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('dev')
    .description('Run an embedded cluster (nodes, running VMIs), the controller, one handler per node and a nats-server, until Ctrl-C')
    .option('--nodes <n>', 'number of nodes', int('--nodes'), 3)
    .option('--vms <n>', 'number of running VMIs', int('--vms'), 6)
    .option('--kubeconfig <path>', 'where to write the kubeconfig', '.ferry/kubeconfig')
    .option('--port <port>', 'API server port (0 = any free port)', int('--port'), 0)
    .option('--time-scale <x>', 'run the simulated hypervisor this many times faster than real time', positive('--time-scale'), 1)
    .addOption(new Option('--driver <driver>', 'sim: simulated hypervisors; libvirt: a libvirtd per node running real QEMU guests (root; 2-3 nodes, 64 MiB guests)').choices(['sim', 'libvirt']).default('sim'))
    .option('--libvirt-dir <dir>', 'libvirt driver: where the per-node daemons keep sockets, state and logs', '.ferry/libvirt')
    .option('--log-file <path>', 'where the JSON logs go', '.ferry/dev.log')
    .option('--no-demo', 'skip the demonstration migration')
    .option('--processes', 'real process boundaries: two leader-electing controller processes, one handler process per node, a 3-server NATS cluster; each restarted when it dies (sim driver)', false)
    .option('--state-dir <dir>', 'with --processes: where journals, process logs and NATS stores go', '.ferry/processes')
    .addOption(new Option('--scenario <file>', 'build the cluster from a bench scenario (test/bench/README.md): its nodes, NICs, memory, VMs and config; --nodes/--vms are ignored').conflicts(['driver']))
    .option('--console-port <port>', 'serve the web console on this port (0 = any free port)', int('--console-port'), 0)
    .option('--trace-file <path>', 'also write a trace per migration to this file (OTLP/JSON, one export per line)')
    .option('--otlp-endpoint <url>', 'also send the traces to this OTLP/HTTP collector (default $OTEL_EXPORTER_OTLP_ENDPOINT)')
    .addOption(metricsPortOption())
    .option('--metrics-address <ip>', 'address the metrics/health port listens on (0.0.0.0 exposes it to the network)', '127.0.0.1')
    .action(async (o) => (await import('./commands/dev.js')).runDev(o));

  program
    .command('controller')
    .description('Run the VMIM controller against a cluster')
    .addOption(kubeconfigOption())
    .option('--nats <url>', 'NATS server URL (several servers of one cluster: comma-separated)', process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222')
    .option('--config <file>', 'Ferry configuration file (YAML)')
    .addOption(metricsPortOption(8080))
    .option('--no-leader-elect', 'run without leader election (only ever run one replica then)')
    .option('--lease-namespace <ns>', 'namespace of the leader election Lease', process.env['POD_NAMESPACE'] ?? 'default')
    .option('--lease-name <name>', 'name of the leader election Lease', 'ferry-controller')
    .option('--leader-elect-lease-duration <seconds>', 'how long a lease holds after its last renewal', positive('--leader-elect-lease-duration'), 15)
    .option('--leader-elect-renew-deadline <seconds>', 'a leader that could not renew for this long steps down (shorter than the lease)', positive('--leader-elect-renew-deadline'), 10)
    .option('--leader-elect-retry-period <seconds>', 'pause between attempts to acquire or renew', positive('--leader-elect-retry-period'), 2)
    .option('--nats-nkey <file>', 'NATS nkey seed file of the controller user (see deploy/README.md)')
    .option('--nats-ca <file>', 'CA certificate that signed the NATS servers\' certificates (TLS; see deploy/README.md)')
    .option('--results-replicas <n>', 'create the results stream with this many replicas (3 on a three-server NATS cluster)', int('--results-replicas'))
    .option('--owner-label <key=value>', 'only handle VMIMs carrying this label (beside KubeVirt\'s own migration controller)')
    .option('--otlp-endpoint <url>', 'send a trace per migration to this OTLP/HTTP collector (default $OTEL_EXPORTER_OTLP_ENDPOINT; none: no tracing)')
    .addOption(new Option('--migration-certs <mode>', 'the handlers\' migration proxy certificates: self-managed (issued and rotated into Secrets in --lease-namespace) or external (cert-manager or your own; Ferry writes none)').choices(['self-managed', 'external']).default('self-managed'))
    .action(async (o) => (await import('./commands/controller.js')).runController(o));

  program
    .command('webhook')
    .description('Run the admission webhook server (launcher pod eviction, VMIM and resource validation) over HTTPS')
    .addOption(kubeconfigOption())
    .option('--port <port>', 'HTTPS port the API server calls (0 = any free port)', int('--port'), 8443)
    .option('--namespace <ns>', 'namespace of the certificate Secrets (self-managed certificates)', process.env['POD_NAMESPACE'] ?? 'ferry-system')
    .option('--cert-dir <dir>', 'serve tls.crt/tls.key from this directory (cert-manager) instead of self-managed certificates in Secrets')
    .addOption(metricsPortOption(8082))
    .action(async (o) => (await import('./commands/webhook.js')).runWebhook(o));

  program
    .command('handler')
    .description('Run the node handler (source and target roles) for one node')
    .requiredOption('--node <name>', 'the node this handler serves')
    .option('--nats <url>', 'NATS server URL (several servers of one cluster: comma-separated)', process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222')
    .addOption(new Option('--driver <driver>', 'hypervisor driver').choices(['sim', 'libvirt']).default('sim'))
    .option('--time-scale <x>', 'sim driver: simulated time per real time', positive('--time-scale'), 1)
    .addOption(new Option('--libvirt-socket <path>', 'libvirt driver: libvirtd\'s unix socket (default /run/libvirt/libvirt-sock)').conflicts('libvirtUri'))
    .option('--libvirt-uri <uri>', 'libvirt driver: libvirtd\'s URI instead, qemu+unix:///system?socket=PATH')
    .option('--state-dir <dir>', 'libvirt driver: where running migrations are recorded so a restarted handler takes them over (default /var/lib/ferry/handler-NODE)')
    .option('--libvirt-max-outbound <n>', 'libvirt driver: outgoing migrations run at once on this node; more are refused (default: libvirtd\'s max_client_requests 5 minus 2)', int('--libvirt-max-outbound'))
    .option('--nats-nkey <file>', 'NATS nkey seed file of this node\'s handler user (see deploy/README.md)')
    .option('--pods-dir <dir>', 'libvirt driver, KubeVirt layout: the kubelet\'s pods dir (host /var/lib/kubelet/pods, mounted at /pods); each VM\'s launcher is found there by pod UID')
    .option('--migration-address <ip>', 'with --pods-dir: address the migration proxy listens on and publishes (default $POD_IP)')
    .option('--migration-server-certs <dir>', 'with --pods-dir: tls.crt/tls.key/ca.crt of this handler\'s proxy server identity (reloaded on change)')
    .option('--migration-client-certs <dir>', 'with --pods-dir: tls.crt/tls.key/ca.crt of the migration client identity (reloaded on change)')
    .option('--nats-ca <file>', 'CA certificate that signed the NATS servers\' certificates (TLS; see deploy/README.md)')
    .option('--sim-journal <file>', 'sim driver: keep this node\'s guests in this file, so a restarted handler finds them (ferry dev --processes)')
    .option('--otlp-endpoint <url>', 'send a trace per migration to this OTLP/HTTP collector (default $OTEL_EXPORTER_OTLP_ENDPOINT; none: no tracing)')
    .addOption(metricsPortOption(8081))
    .action(async (o) => (await import('./commands/handler.js')).runHandler(o));

  program
    .command('migrate')
    .description('Create a VirtualMachineInstanceMigration for NAMESPACE/VMI and follow it to the end')
    .argument('<vmi>', 'NAMESPACE/NAME of the VMI (namespace defaults to "default")')
    .addOption(kubeconfigOption())
    .option('--node <name>', 'restrict the target to this node (addedNodeSelector)')
    .option('--no-wait', 'create the migration and return')
    .option('--timeout <seconds>', 'stop following after this long', positive('--timeout'))
    .action(async (vmi, o) => (await import('./commands/migrate.js')).runMigrate(vmi, o));

  program
    .command('status')
    .description('List migrations with phase, nodes and progress')
    .addOption(kubeconfigOption())
    .option('-n, --namespace <ns>', 'only this namespace (default: all)')
    .option('-o, --output <format>', 'table or json', 'table')
    .option('-w, --watch', 'keep the table updated until Ctrl-C', false)
    .action(async (o) => (await import('./commands/status.js')).runStatus(o));

  program
    .command('cancel')
    .description('Abort a migration that has not finished (deletes the VMIM; the VM stays on its source node). A finished one is left alone: exit 1')
    .argument('<vmim>', 'NAMESPACE/NAME of the migration')
    .addOption(kubeconfigOption())
    .action(async (vmim, o) => (await import('./commands/cancel.js')).runCancel(vmim, o));

  program
    .command('drain')
    .description('Cordon NODE, taint it for evacuation and follow every VM off it (progress per VM, summary at the end)')
    .argument('<node>', 'the node to empty')
    .addOption(kubeconfigOption())
    .option('--dry-run', 'only show what would happen to each VMI', false)
    .option('-o, --output <format>', 'table or json', 'table')
    .option('--timeout <seconds>', 'give up following after this long', positive('--timeout'))
    .option('--max-attempts <n>', 'report a VM as failed after this many failed migrations', int('--max-attempts'), 3)
    .action(async (node, o) => (await import('./commands/drain.js')).runDrain(node, o));

  program
    .command('uncordon')
    .description('Return NODE to service: remove the drain taint and uncordon it (queued evacuations are withdrawn)')
    .argument('<node>', 'the node')
    .addOption(kubeconfigOption())
    .action(async (node, o) => (await import('./commands/drain.js')).runUncordon(node, o));

  program
    .command('console')
    .description('Serve the web console (live nodes, migrations, queue, drains, runbooks) for a cluster, acting with your kubeconfig')
    .addOption(kubeconfigOption())
    .option('--port <port>', 'port to listen on (0 = any free port)', int('--port'), 8090)
    .option('--address <ip>', 'address to listen on; keep it on loopback and reach it through ssh -L or kubectl port-forward', '127.0.0.1')
    .action(async (o) => (await import('./commands/console.js')).runConsole(o));

  registerRunbookCommand(program);

  const statecharts = program.command('statecharts').description('The statecharts Ferry runs on, as diagrams and data');
  statecharts
    .command('export')
    .description('Render every chart in statecharts/index.ts as a Mermaid diagram page (or JSON)')
    .addOption(new Option('--format <format>', 'mermaid (a markdown page per chart) or json').choices(['mermaid', 'json']).default('mermaid'))
    .option('--out <dir>', 'write one file per chart into this directory instead of printing')
    .action(async (o) => (await import('./commands/statecharts.js')).runStatechartsExport(o));

  const docs = program.command('docs').description('Generated reference documentation');
  docs
    .command('api')
    .description('Render the API reference (resources, configuration, bus messages) from the zod schemas')
    .option('--out <file>', 'write to this file instead of printing')
    .action(async (o) => (await import('./commands/docs.js')).runApiDocs(o));

  program
    .command('completion')
    .description('Print a shell completion script: source <(ferry completion bash), or zsh')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action(async (shell: 'bash' | 'zsh') => {
      const { bashCompletion, zshCompletion } = await import('./completion.js');
      process.stdout.write(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
    });

  return program;
}

