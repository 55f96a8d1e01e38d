import { readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { parseAllDocuments } from 'yaml';
import { MaintenanceWindow, MaintenanceWindowSpec, MW_API_VERSION, MW_KIND, type NodeProgress } from '../../api/maintenanceWindow.js';
import { parseObject } from '../../api/meta.js';
import { formatBytes } from '../../api/quantity.js';
import { Annotations } from '../../api/vmi.js';
import { VirtualMachineInstanceMigration } from '../../api/vmim.js';
import { loadFerryConfig } from '../../config/ferryConfig.js';
import { describeApiError, isNotFound, VMIM_RESOURCE, type KubeClient } from '../../kube/client.js';
import { createMaintenanceWindow, getMaintenanceWindow, listMaintenanceWindowsRaw, patchMaintenanceWindow } from '../../runbook/api.js';
import { planFromCluster, type ClusterPlan } from '../../runbook/planFromCluster.js';
import { age, formatDuration, formatRate, table } from '../format.js';
import { kubeClientFor } from '../kubeconfig.js';

/** `ferry runbook plan|apply|status`: maintenance-window runbooks from the command line. */

const TERMINAL = new Set(['Completed', 'WindowClosed', 'Failed']);

interface RunbookFile {
  name: string;
  spec: MaintenanceWindowSpec;
  raw: Record<string, unknown>;
}

export function readRunbookFile(file: string): RunbookFile {
  let docs: unknown[];
  try {
    docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJSON() as unknown).filter((d) => d !== null);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  const doc = docs.find((d) => (d as { kind?: string } | undefined)?.kind === MW_KIND);
  if (!doc) throw new Error(`${file} has no ${MW_KIND} (apiVersion ${MW_API_VERSION})`);
  const r = parseObject(MaintenanceWindow, doc);
  if (!r.ok) throw new Error(`${file}: not a valid ${MW_KIND}: ${r.reason}`);
  return { name: r.value.metadata.name, spec: r.value.spec, raw: doc as Record<string, unknown> };
}

const clock = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
const rel = (ms: number | undefined, from: number) => (ms === undefined ? '-' : `+${formatDuration((ms - from) / 1000)}`);

export function renderPlan(name: string, spec: MaintenanceWindowSpec, p: ClusterPlan): string {
  const { plan, window } = p;
  const lines = [
    `Maintenance window ${name}: ${plan.order.length} node(s), ${spec.maxNodesInMaintenance} at a time`,
    `Window: ${clock(window.start)} → ${clock(window.end)}; plan starts ${clock(plan.start)}`,
    '',
    table(
      ['#', 'NODE', 'BATCH', 'VMS', 'MEMORY', 'START', 'EMPTY', 'DONE', 'NOTE'],
      plan.nodes.map((n, i) => [
        String(i + 1),
        n.name,
        n.batch !== undefined ? String(n.batch) : '-',
        `${n.vmsToMove}${n.vmsStaying ? ` (+${n.vmsStaying} stay)` : ''}`,
        formatBytes(n.bytesToMove),
        rel(n.start, plan.start),
        rel(n.evacuated, plan.start),
        rel(n.finish, plan.start),
        n.fits ? '' : `won't fit: ${n.reason ?? ''}`,
      ]),
    ),
    '',
    plan.predictedEnd !== undefined
      ? `Predicted end: ${clock(plan.predictedEnd)} (${rel(plan.predictedEnd, plan.start)} after the start)`
      : 'Predicted end: - (no node fits in the window)',
  ];
  if (plan.wontFit.length > 0) lines.push(`Won't fit in the window: ${plan.wontFit.join(', ')}`);
  if (p.missing.length > 0) lines.push(`Not nodes of this cluster (skipped): ${p.missing.join(', ')}`);
  return lines.join('\n');
}

export async function runRunbookPlan(file: string, o: { kubeconfig?: string; output: string; timeScale: number; config?: string }): Promise<void> {
  if (o.output !== 'table' && o.output !== 'json') throw new Error(`--output must be table or json, not "${o.output}"`);
  const rb = readRunbookFile(file);
  const kube = kubeClientFor(o.kubeconfig);
  const p = await planFromCluster(kube, rb.spec, { config: loadFerryConfig(o.config), timeScale: o.timeScale });
  if (o.output === 'json') {
    const t = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
    process.stdout.write(`${JSON.stringify({
      name: rb.name,
      window: { start: t(p.window.start), end: t(p.window.end) },
      start: t(p.plan.start),
      order: p.plan.order,
      batches: p.plan.batches,
      nodes: p.plan.nodes.map((n) => ({
        name: n.name,
        batch: n.batch,
        fits: n.fits,
        reason: n.reason,
        vmsToMove: n.vmsToMove,
        vmsStaying: n.vmsStaying,
        bytesToMove: n.bytesToMove,
        predictedStart: t(n.start),
        predictedEvacuated: t(n.evacuated),
        predictedFinish: t(n.finish),
      })),
      predictedEnd: t(p.plan.predictedEnd),
      wontFit: p.plan.wontFit,
      missing: p.missing,
    }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${renderPlan(rb.name, rb.spec, p)}\n`);
}

export async function runRunbookApply(file: string, o: { kubeconfig?: string; wait: boolean; timeout?: number }): Promise<void> {
  const rb = readRunbookFile(file);
  const kube = kubeClientFor(o.kubeconfig);
  let existed = true;
  try {
    await getMaintenanceWindow(kube, rb.name);
  } catch (err) {
    if (!isNotFound(err)) throw new Error(`cannot read maintenance window ${rb.name}: ${describeApiError(err)}`);
    existed = false;
  }
  try {
    if (existed) {
      const meta = rb.raw['metadata'] as { labels?: unknown; annotations?: unknown } | undefined;
      await patchMaintenanceWindow(kube, rb.name, { metadata: { labels: meta?.labels ?? {}, annotations: meta?.annotations ?? {} }, spec: rb.raw['spec'] });
    } else {
      await createMaintenanceWindow(kube, rb.raw);
    }
  } catch (err) {
    throw new Error(`could not ${existed ? 'update' : 'create'} maintenance window ${rb.name}: ${describeApiError(err)}`);
  }
  process.stdout.write(`maintenancewindow.ferry.dev/${rb.name} ${existed ? 'configured' : 'created'}\n`);
  if (!o.wait) return;
  await runRunbookStatus(rb.name, { kubeconfig: o.kubeconfig, watch: true, output: 'table', ...(o.timeout ? { timeout: o.timeout } : {}) }, kube);
}

/** Bytes/s now leaving each node in evacuation migrations. */
async function ratesByNode(kube: KubeClient): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const list = await kube.listCustom(VMIM_RESOURCE).catch(() => ({ items: [] as unknown[] }));
  for (const raw of list.items) {
    const r = parseObject(VirtualMachineInstanceMigration, raw);
    if (!r.ok || r.value.status?.phase !== 'Running') continue;
    const node = r.value.metadata.annotations?.[Annotations.evacuationMigration];
    if (node) out.set(node, (out.get(node) ?? 0) + (r.value.status.progress?.memoryBandwidth ?? 0));
  }
  return out;
}

function nodeLine(n: NodeProgress, now: number): string {
  const eta = n.phase === 'Evacuating' && n.predictedFinish ? formatDuration((Date.parse(n.predictedFinish) - now) / 1000) : '-';
  return `${n.name}: ${n.phase}${n.startedAt && n.vmsTotal !== undefined ? ` ${n.vmsMoved ?? 0}/${n.vmsTotal} VMs` : ''}${n.phase === 'Evacuating' ? ` ETA ${eta}` : ''}${n.reason ? ` (${n.reason})` : ''}`;
}

function summary(mw: MaintenanceWindow): string {
  const s = mw.status ?? {};
  const rows = (s.nodes ?? []).map((n) => [
    n.name,
    n.phase,
    n.batch !== undefined ? String(n.batch) : '-',
    n.startedAt && n.vmsTotal !== undefined ? `${n.vmsMoved ?? 0}/${n.vmsTotal}` : '-',
    n.predictedFinish ? clock(Date.parse(n.predictedFinish)) : '-',
    n.finishedAt ? clock(Date.parse(n.finishedAt)) : n.readyAt ? `ready ${clock(Date.parse(n.readyAt))}` : '-',
    n.reason ?? '',
  ]);
  return [
    `Maintenance window ${mw.metadata.name}: ${s.phase ?? 'Pending'}, ${s.progress ?? '0/0'} nodes done${s.window ? `; window ${clock(Date.parse(s.window.start))} → ${clock(Date.parse(s.window.end))}` : ''}`,
    table(['NODE', 'PHASE', 'BATCH', 'VMS MOVED', 'PREDICTED', 'FINISHED', 'REASON'], rows),
    s.plan?.predictedEnd ? `Planned end: ${clock(Date.parse(s.plan.predictedEnd))}${s.finishedAt ? `; finished ${clock(Date.parse(s.finishedAt))}` : s.eta ? `; ETA ${clock(Date.parse(s.eta))}` : ''}` : '',
    ...(s.conditions ?? []).filter((c) => c.type !== 'Progressing').map((c) => `${c.type}: ${c.message ?? ''}`),
  ].filter((l) => l !== '').join('\n');
}

export async function runRunbookStatus(
  name: string | undefined,
  o: { kubeconfig?: string | undefined; watch: boolean; output: string; timeout?: number },
  client?: KubeClient,
): Promise<void> {
  if (o.output !== 'table' && o.output !== 'json') throw new Error(`--output must be table or json, not "${o.output}"`);
  const kube = client ?? kubeClientFor(o.kubeconfig);
  if (!name) {
    if (o.watch) throw new Error('--watch follows one runbook: give its NAME');
    const items = (await listMaintenanceWindowsRaw(kube)).items.flatMap((raw) => {
      const r = parseObject(MaintenanceWindow, raw);
      return r.ok ? [r.value] : [];
    });
    if (o.output === 'json') {
      process.stdout.write(`${JSON.stringify(items.map((m) => ({ name: m.metadata.name, ...m.status })), null, 2)}\n`);
      return;
    }
    if (items.length === 0) {
      process.stdout.write('No maintenance windows.\n');
      return;
    }
    const rows = items.map((m) => [m.metadata.name, m.status?.phase ?? 'Pending', m.status?.progress ?? '-', m.status?.currentBatch || '-', m.status?.eta ?? '-', m.status?.window?.end ?? '-', age(m.metadata.creationTimestamp)]);
    process.stdout.write(`${table(['NAME', 'PHASE', 'NODES', 'BATCH', 'ETA', 'WINDOW-END', 'AGE'], rows)}\n`);
    return;
  }

  const read = async () => {
    try {
      return await getMaintenanceWindow(kube, name);
    } catch (err) {
      if (isNotFound(err)) throw new Error(`maintenance window ${name} not found`);
      throw err;
    }
  };
  let mw = await read();
  const finished = (m: MaintenanceWindow) => TERMINAL.has(m.status?.phase ?? '') && !(m.status?.nodes ?? []).some((n) => n.phase === 'Evacuating' || n.phase === 'ReadyForMaintenance');
  if (o.watch) mw = await follow(kube, name, read, finished, o.timeout);
  if (o.output === 'json') process.stdout.write(`${JSON.stringify({ name, ...mw.status }, null, 2)}\n`);
  else process.stdout.write(`${summary(mw)}\n`);
  if (mw.status?.phase === 'Failed') {
    const why = mw.status.conditions?.find((c) => c.type === 'Failed')?.message ?? 'see its events';
    throw new Error(`maintenance window ${name} failed: ${why}`);
  }
}

/**
 * Follows a runbook until it settles: one progress bar per node (VMs moved,
 * bytes/s leaving it, time to its predicted finish) on a terminal, one line
 * per change otherwise.
 */
async function follow(
  kube: KubeClient,
  name: string,
  read: () => Promise<MaintenanceWindow>,
  finished: (m: MaintenanceWindow) => boolean,
  timeoutS: number | undefined,
): Promise<MaintenanceWindow> {
  const out = process.stderr;
  const tty = Boolean(out.isTTY);
  const started = Date.now();
  const multibar = tty
    ? new cliProgress.MultiBar(
        { format: ' {node} {bar} {value}/{total} {phase} {rate} ETA {eta}', hideCursor: true, clearOnComplete: false, stream: out, barsize: 16 },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const bars = new Map<string, cliProgress.SingleBar>();
  const header = multibar?.create(1, 0, { node: name, phase: 'Pending', rate: '-', eta: '-' }, { format: ' {node}: {phase}' });
  const lastLine = new Map<string, string>();
  let lastPhase = '';
  try {
    for (;;) {
      const mw = await read();
      const s = mw.status ?? {};
      const now = Date.now();
      const rates = await ratesByNode(kube);
      const phaseLine = `${s.phase ?? 'Pending'} ${s.progress ?? ''} nodes done${s.currentBatch ? ` | batch ${s.currentBatch}` : ''}${s.eta ? ` | ETA ${formatDuration((Date.parse(s.eta) - now) / 1000)}` : ''}`;
      if (header) header.update(0, { phase: phaseLine });
      else if (phaseLine !== lastPhase) out.write(`${name}: ${phaseLine}\n`);
      lastPhase = phaseLine;
      for (const n of s.nodes ?? []) {
        if (multibar) {
          let bar = bars.get(n.name);
          if (!bar) bars.set(n.name, (bar = multibar.create(Math.max(1, n.vmsTotal ?? 1), 0, { node: n.name.padEnd(10).slice(0, 10), phase: n.phase, rate: '-', eta: '-' })));
          bar.setTotal(Math.max(1, n.vmsTotal ?? 1));
          const eta = n.phase === 'Evacuating' && n.predictedFinish ? formatDuration((Date.parse(n.predictedFinish) - now) / 1000) : '-';
          bar.update(n.vmsMoved ?? 0, { phase: n.phase.padEnd(19), rate: formatRate(rates.get(n.name)).padStart(9), eta });
        } else {
          const line = nodeLine(n, now);
          const key = `${n.phase}|${n.vmsMoved ?? ''}`;
          if (lastLine.get(n.name) !== key) {
            lastLine.set(n.name, key);
            out.write(`  ${line}\n`);
          }
        }
      }
      if (finished(mw)) return mw;
      if (timeoutS && now - started > timeoutS * 1000) {
        throw new Error(`maintenance window ${name} still ${s.phase ?? 'Pending'} after ${formatDuration(timeoutS)}; it carries on (\`ferry runbook status ${name} --watch\` follows it again)`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    multibar?.stop();
  }
}
