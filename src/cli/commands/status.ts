import { formatBytes } from '../../api/quantity.js';
import { parseObject } from '../../api/meta.js';
import { VirtualMachineInstanceMigration } from '../../api/vmim.js';
import { describeApiError, isNotFound, VMIM_RESOURCE, type KubeClient } from '../../kube/client.js';
import { age, formatRate, table } from '../format.js';
import { kubeClientFor, splitRef } from '../kubeconfig.js';

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

async function renderStatus(kube: KubeClient, o: { namespace?: string; output: string }): Promise<string> {
  const list = await kube.listCustom(VMIM_RESOURCE, o.namespace);
  const items = list.items.flatMap((raw) => {
    const r = parseObject(VirtualMachineInstanceMigration, raw);
    return r.ok ? [r.value] : [];
  });
  items.sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
  if (o.output === 'json') {
    return `${JSON.stringify(items.map((m) => ({
      namespace: m.metadata.namespace,
      name: m.metadata.name,
      vmi: m.spec.vmiName,
      phase: m.status?.phase || 'Pending',
      source: m.status?.migrationState?.sourceNode,
      target: m.status?.migrationState?.targetNode,
      progress: m.status?.progress,
      reason: m.status?.migrationState?.failureReason,
    })), null, 2)}\n`;
  }
  if (items.length === 0) return 'No migrations.\n';
  const rows = items.map((m) => {
    const p = m.status?.progress;
    const ms = m.status?.migrationState;
    const phase = m.status?.phase || 'Pending';
    const progress = phase === 'Running' && p?.dataTotal ? `${formatBytes(p.dataRemaining ?? 0)} left @ ${formatRate(p.memoryBandwidth)}` : phase === 'Failed' ? (ms?.failureReason ?? '') : '';
    return [m.metadata.namespace ?? '', m.metadata.name, m.spec.vmiName, phase, ms?.sourceNode ?? '', ms?.targetNode ?? '', progress, age(m.metadata.creationTimestamp)];
  });
  return `${table(['NAMESPACE', 'NAME', 'VMI', 'PHASE', 'SOURCE', 'TARGET', 'PROGRESS', 'AGE'], rows)}\n`;
}

export async function runCancel(ref: string, o: { kubeconfig?: string }): Promise<void> {
  const { namespace, name } = splitRef(ref, 'VMIM');
  const kube = kubeClientFor(o.kubeconfig);
  try {
    await kube.deleteCustom(VMIM_RESOURCE, namespace, name);
  } catch (err) {
    if (isNotFound(err)) throw new Error(`migration ${namespace}/${name} not found`);
    throw new Error(`could not cancel ${namespace}/${name}: ${describeApiError(err)}`);
  }
  process.stdout.write(`migration ${namespace}/${name} cancelled (the VM stays where it runs unless it already switched over)\n`);
}
