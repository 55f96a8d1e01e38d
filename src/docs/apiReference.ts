import { z } from 'zod';
import { MaintenanceWindow, MW_API_VERSION } from '../api/maintenanceWindow.js';
import { MigrationConfiguration } from '../api/migrationConfig.js';
import { MigrationPolicy } from '../api/migrationPolicy.js';
import { Annotations, Labels, VirtualMachineInstance } from '../api/vmi.js';
import { MIGRATION_FINALIZER, VirtualMachineInstanceMigration } from '../api/vmim.js';
import { ErrorReply, Heartbeat, ProgressMessage, replies, requests, ResultMessage } from '../bus/protocol.js';
import { COMMANDS, CONTROLLER_DURABLE, RESULTS_STREAM, subjects } from '../bus/subjects.js';
import { FerryConfig } from '../config/ferryConfig.js';
import { fieldRows, type JsonSchema } from './jsonSchemaTable.js';

/**
 * docs/api-reference.md, generated from the zod schemas the code parses with,
 * so the reference cannot drift from what Ferry accepts (a test re-renders it).
 */

interface Section {
  title: string;
  intro: string[];
  schema: z.ZodType;
  /** Rows shown without their children. */
  collapse?: string[];
  /** Meaning of fields, by path; a test checks every path still exists. */
  notes?: Record<string, string>;
}

/** What each configuration field does, for operators. Keys are field paths. */
export const FIELD_NOTES: Record<string, Record<string, string>> = {
  'KubeVirt migration configuration': {
    parallelMigrationsPerCluster: 'Migrations that may run at once in the cluster (Scheduling through Running).',
    parallelOutboundMigrationsPerNode: 'Migrations that may leave one node at once.',
    bandwidthPerMigration: 'Cap on each migration, bytes/s or a quantity (`64Mi`); 0 = no cap. Ferry shares bandwidth below this cap.',
    completionTimeoutPerGiB: 'Seconds per GiB of guest memory a migration may take; then post-copy (if allowed) or abort. 0 = off.',
    progressTimeout: 'Seconds without a new low of remaining data before the migration is aborted. 0 = off.',
    allowAutoConverge: 'Let the hypervisor throttle the guest CPU so that a busy guest converges.',
    allowPostCopy: 'Switch to post-copy when the completion timeout fires instead of aborting.',
  },
  'Ferry configuration file': {
    'limits.parallelMigrationsPerCluster': 'Pins the cluster limit on Ferry\'s side (the smaller of this and the KubeVirt CR\'s wins). Unset in both: adaptive (see operations.md).',
    'limits.parallelOutboundMigrationsPerNode': 'Pins the per-node outbound limit on Ferry\'s side (the smaller of this and the KubeVirt CR\'s wins). Unset in both: adaptive.',
    'limits.parallelInboundMigrationsPerNode': 'Migrations that may arrive at one node at once (KubeVirt has no such limit). Unset: adaptive.',
    'limits.bandwidthBudget': 'Cluster-wide migration bandwidth, bytes/s or a quantity; 0 = no budget beyond the NICs.',
    'limits.defaultNicCapacity': 'Bandwidth each node can give migrations, each way, unless the node carries the NIC capacity annotation.',
    'limits.nicCapacityAnnotation': 'Node annotation holding that node\'s NIC capacity (a quantity, bytes/s).',
    'timeouts.targetReadySeconds': 'Limit on each of the hand-off (Scheduled) and target preparation (PreparingTarget).',
    'timeouts.abortRetrySeconds': 'How often an abort is re-sent to the source until it answers.',
    'timeouts.retrySeconds': 'Back-off before retrying a failed hand-off or finalisation.',
    'timeouts.progressSilenceSeconds': 'A Running migration whose source handler sent no progress report for this long is put to the arbiter, which asks both handlers where the guest runs (a restarted handler may have lost the job). 0 turns the watch off.',
    'timeouts.resolveSeconds': 'How long Ferry may ask both handlers where a guest runs (after a timeout, a lost record or a lost node) before it reports the migration unresolved; it keeps asking and never fails it on a silence.',
    'timeouts.nodeLostSeconds': 'A node whose handler sent no heartbeat for this long, and whose Node is NotReady, is treated as lost.',
    maxDowntimeMs: 'Largest pause of the guest at switch-over handed to the hypervisor.',
    commandTimeoutMs: 'How long the controller waits for a handler to answer a command.',
  },
};

function tableOf(section: Section): string[] {
  const schema = z.toJSONSchema(section.schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  // Defaults the JSON Schema cannot carry (after a transform) come from parsing an empty document.
  const parsed = section.schema.safeParse({});
  const defaults = parsed.success ? parsed.data : undefined;
  const defaultAt = (path: string): unknown => {
    let v: unknown = defaults;
    for (const k of path.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    return v !== null && typeof v !== 'object' ? v : undefined;
  };
  const rows = fieldRows(schema, section.collapse ? { collapse: section.collapse } : {});
  const out = ['| field | type | required | default | notes |', '| --- | --- | --- | --- | --- |'];
  for (const r of rows) {
    const dflt = r.default !== undefined ? r.default : defaultAt(r.path);
    const shownDefault = dflt === undefined || (typeof dflt === 'object' && dflt !== null && Object.keys(dflt).length === 0) ? '' : `\`${JSON.stringify(dflt)}\``;
    const rules = r.constraints.join('; ');
    const note = section.notes?.[r.path];
    const notes = note ? (rules ? `${note} (${rules})` : note) : rules;
    out.push(`| \`${r.path}\` | ${r.type} | ${r.required ? 'yes' : ''} | ${shownDefault} | ${notes.replace(/\|/g, '\\|')} |`);
  }
  return out;
}

function sections(): Array<{ heading: string; sections: Section[] }> {
  const commandSections: Section[] = COMMANDS.flatMap((c) => [
    { title: `\`${c}\` request`, intro: [`Subject \`${subjects.command('{node}', c)}\`.`], schema: requests[c] },
    { title: `\`${c}\` reply`, intro: ['On failure the handler answers with an [error reply](#error-reply) instead.'], schema: replies[c] },
  ]);
  return [
    {
      heading: 'Kubernetes resources',
      sections: [
        {
          title: 'VirtualMachineInstanceMigration',
          intro: [
            '`kubevirt.io/v1`, namespaced (`kubectl get vmim`). Creating one asks Ferry to move the VMI; deleting it aborts the migration.',
            `Ferry adds the finalizer \`${MIGRATION_FINALIZER}\` and the label \`${Labels.vmiName}\`, writes \`status\` as KubeVirt does, plus \`status.progress\` (Ferry's own, read-only).`,
            `Annotations Ferry honours: \`${Annotations.unschedulablePodTimeout}\` and \`${Annotations.pendingPodTimeout}\` (seconds, override the target pod timeouts), \`${Annotations.evacuationMigration}\` (set on evacuations; highest priority), \`ferry.dev/priority: background\` (lowest priority).`,
            'The fields below are the ones Ferry reads or writes; others are kept untouched.',
          ],
          schema: VirtualMachineInstanceMigration,
          collapse: ['metadata'],
        },
        {
          title: 'VirtualMachineInstance',
          intro: [
            '`kubevirt.io/v1`, namespaced. Ferry reads where the VM runs and whether it can move; during a migration it writes `status.migrationState`, and on success `status.nodeName`, `status.activePods` and the `kubevirt.io/nodeName` label.',
          ],
          schema: VirtualMachineInstance,
          collapse: ['metadata'],
        },
        {
          title: 'MigrationPolicy',
          intro: [
            "`migrations.kubevirt.io/v1alpha1`, cluster-scoped. Overrides parts of the migration configuration for the VMIs it selects, with KubeVirt's precedence (most matching labels win).",
          ],
          schema: MigrationPolicy,
          collapse: ['metadata'],
        },
        {
          title: 'MaintenanceWindow',
          intro: [`\`${MW_API_VERSION}\`, cluster-scoped, with a status subresource: empty these nodes, N at a time, inside this window.`],
          schema: MaintenanceWindow,
          collapse: ['metadata'],
        },
      ],
    },
    {
      heading: 'Configuration',
      sections: [
        {
          title: 'KubeVirt migration configuration',
          intro: [
            "`spec.configuration.migrations` of the `KubeVirt` custom resource (`kubevirt.io/v1`), read live: a change applies to migrations admitted from then on. Defaults are KubeVirt's. Bandwidths are bytes/s or Kubernetes quantities.",
          ],
          schema: MigrationConfiguration,
          notes: FIELD_NOTES['KubeVirt migration configuration']!,
        },
        {
          title: 'Ferry configuration file',
          intro: ['YAML given to `ferry controller --config FILE`; read at start. Every field is optional. Bandwidths are bytes/s or Kubernetes quantities.'],
          schema: FerryConfig,
          notes: FIELD_NOTES['Ferry configuration file']!,
        },
      ],
    },
    {
      heading: 'NATS protocol',
      sections: [
        {
          title: 'Progress message',
          intro: [`Core NATS, lossy, published by the source handler while a migration runs: \`${subjects.progress('{migrationUid}')}\`.`],
          schema: ProgressMessage,
        },
        {
          title: 'Result message',
          intro: [
            `JetStream stream \`${RESULTS_STREAM}\`, subject \`${subjects.result('{migrationUid}', '{node}')}\` (\`{node}\` is the source node; the controller ignores a result whose subject, \`node\` and migration source disagree), message id \`{migrationUid}-{attempt}-{outcome}-{node}\` (duplicates are dropped); the controller consumes it with the durable consumer \`${CONTROLLER_DURABLE}\`.`,
          ],
          schema: ResultMessage,
        },
        {
          title: 'Heartbeat',
          intro: [`Core NATS, every few seconds from each handler: \`${subjects.heartbeat('{node}')}\`.`],
          schema: Heartbeat,
        },
        {
          title: 'Error reply',
          intro: [
            'What a handler answers to a command it refuses or fails.',
            'Every command may carry the header `Ferry-Epoch` (decimal; absent = 0): the leadership epoch of the controller that sent it (its Lease\'s `leaseTransitions`). A handler remembers the highest epoch it has obeyed (on disk, when it has a state directory) and refuses an older one with `stale-epoch`; `list-jobs`, which changes nothing, is not fenced.',
            '`bad-request`, `conflict`, `stale-epoch` and `driver-error` are definite: nothing was done. Any other code, and no answer at all, leaves the outcome open: the controller must ask (`list-jobs`) before it assumes nothing happened.',
          ],
          schema: ErrorReply,
        },
        ...commandSections,
      ],
    },
  ];
}

function anchor(title: string): string {
  return title
    .toLowerCase()
    .replace(/[`]/g, '')
    .replace(/[^a-z0-9 -]/g, '')
    .trim()
    .replace(/ /g, '-');
}

export async function renderApiReference(): Promise<string> {
  const groups = sections();
  const out: string[] = [
    '# API reference',
    '',
    '<!-- Generated by `ferry docs api --out docs/api-reference.md` from the zod schemas in src/api, src/config and src/bus; do not edit. -->',
    '',
    'What Ferry reads and writes, field by field, exactly as its schemas accept it. `map[string]T` is an object with any keys; `<key>` stands for any key; a quantity is a number or a Kubernetes quantity string (`512Mi`, `1G`).',
    '',
  ];
  for (const g of groups) {
    out.push(`- ${g.heading}: ${g.sections.map((s) => `[${s.title.replace(/`/g, '')}](#${anchor(s.title)})`).join(', ')}`);
  }
  for (const g of groups) {
    out.push('', `## ${g.heading}`);
    for (const s of g.sections) {
      out.push('', `### ${s.title}`, '', ...s.intro.flatMap((p) => [p, '']), ...tableOf(s));
    }
  }
  return `${out.join('\n')}\n`;
}
