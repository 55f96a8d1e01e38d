import { formatBytes } from '../../api/quantity.js';
import { VMIM_RESOURCE, type KubeClient } from '../../kube/client.js';
import { age, formatRate, table } from '../format.js';
import { kubeClientFor } from '../kubeconfig.js';
import { currentTarget, readMigrationFacts, whyWaiting } from '../migrationFacts.js';

export async function runStatus(o: { kubeconfig?: string; namespace?: string; output: string; watch?: boolean }): Promise<void> {
  if (o.output !== 'table' && o.output !== 'json') throw new Error(`--output must be table or json, not "${o.output}"`);
  const kube = kubeClientFor(o.kubeconfig);
  if (!o.watch) {
    process.stdout.write(await renderStatus(kube, o));
    return;
  }
  // Redraw in place on a terminal; elsewhere print the table again only when it changes.
  const tty = Boolean(process.stdout.isTTY);
  let last = '';
  for (;;) {
    const text = await renderStatus(kube, o).catch((err: unknown) => `error: ${(err as Error).message}\n`);
    if (tty) process.stdout.write(`\x1b[H\x1b[2J${new Date().toLocaleTimeString()}  ferry status --watch (Ctrl-C to stop)\n\n${text}`);
    else if (text.replace(/\s+\S+\n/g, '\n') !== last.replace(/\s+\S+\n/g, '\n')) process.stdout.write(`${text}\n`);
    last = text;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

interface Row {
  namespace: string;
  name: string;
  vmi: string;
  phase: string;
  source: string | undefined;
  target: string | undefined;
  /** Bytes left and rate while Running. */
  progress: string;
  /** Why it failed, why it waits, or why the object is invalid. */
  reason: string | undefined;
  created: string | undefined;
}

export async function renderStatus(kube: KubeClient, o: { namespace?: string; output: string }): Promise<string> {
  const facts = await readMigrationFacts(kube, VMIM_RESOURCE, o.namespace);
  const rows: Row[] = facts.valid.map((m) => {
    const p = m.status?.progress;
    const ms = m.status?.migrationState;
    const phase = m.status?.phase || 'Pending';
    const pods = facts.targetPods.get(m.metadata.uid ?? '') ?? [];
    return {
      namespace: m.metadata.namespace ?? 'default',
      name: m.metadata.name,
      vmi: m.spec.vmiName,
      phase,
      source: ms?.sourceNode,
      target: currentTarget(m, undefined, pods),
      progress: phase === 'Running' && p?.dataTotal ? `${formatBytes(p.dataRemaining ?? 0)} left @ ${formatRate(p.memoryBandwidth)}` : '',
      reason: phase === 'Failed' ? ms?.failureReason ?? m.status?.conditions?.find((c) => c.type === 'Failed')?.message : waitingText(phase, whyWaiting(m, pods, facts.queued.get(m.metadata.uid ?? ''))),
      created: m.metadata.creationTimestamp,
    };
  });
  // Objects the controller ignores are listed too, so a user sees why nothing happens to them.
  for (const bad of facts.invalid) {
    rows.push({ namespace: bad.namespace, name: bad.name, vmi: bad.vmi ?? '', phase: 'Invalid', source: undefined, target: undefined, progress: '', reason: `ignored by the controller: ${bad.reason}`, created: bad.creationTimestamp });
  }
  rows.sort((a, b) => (a.created ?? '').localeCompare(b.created ?? ''));
  if (o.output === 'json') {
    return `${JSON.stringify(rows.map((r) => ({
      namespace: r.namespace,
      name: r.name,
      vmi: r.vmi,
      phase: r.phase,
      source: r.source,
      target: r.target,
      progress: facts.valid.find((m) => m.metadata.namespace === r.namespace && m.metadata.name === r.name)?.status?.progress,
      reason: r.reason,
    })), null, 2)}\n`;
  }
  if (rows.length === 0) return 'No migrations.\n';
  const body = rows.map((r) => [r.namespace, r.name, r.vmi, r.phase, r.source ?? '', r.target ?? '', r.progress || r.reason || '', age(r.created)]);
  return `${table(['NAMESPACE', 'NAME', 'VMI', 'PHASE', 'SOURCE', 'TARGET', 'PROGRESS', 'AGE'], body, { maxWidths: [63, 63, 63] })}\n`;
}

function waitingText(phase: string, why: string | undefined): string | undefined {
  return why && phase === 'Pending' ? `queued: ${why}` : why;
}
