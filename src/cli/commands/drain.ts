import cliProgress from 'cli-progress';
import { parseObject } from '../../api/meta.js';
import { Node } from '../../api/core.js';
import { MigrationConfiguration } from '../../api/migrationConfig.js';
import { formatBytes } from '../../api/quantity.js';
import { Annotations, EvictionStrategy, VirtualMachineInstance } from '../../api/vmi.js';
import type { VirtualMachineInstanceMigration } from '../../api/vmim.js';
import { evacuationAction, strategyOf, type EvacuationAction } from '../../controller/evacuationRules.js';
import { guestMemoryBytes } from '../../controller/guest.js';
import { describeApiError, isNotFound, KUBEVIRT_RESOURCE, VMI_RESOURCE, VMIM_RESOURCE, type KubeClient } from '../../kube/client.js';
import { formatDuration, formatRate, table } from '../format.js';
import { kubeClientFor } from '../kubeconfig.js';
import { currentTarget, readMigrationFacts, whyWaiting } from '../migrationFacts.js';

interface PlannedVm {
  key: string;
  name: string;
  namespace: string;
  strategy: EvictionStrategy;
  action: EvacuationAction;
  memory: number;
}

interface VmProgress {
  vm: PlannedVm;
  state: 'waiting' | 'migrating' | 'moved' | 'failed' | 'external' | 'left' | 'blocked';
  phase: string;
  target?: string;
  remaining?: number;
  total?: number;
  rate?: number;
  attempts: number;
  failures: number;
  lastReason?: string;
  /** Why it is not moving yet, when we can tell (another migration of it, an unschedulable target pod). */
  waiting?: string;
  startedAt?: number;
  finishedAt?: number;
}

export async function clusterSettings(kube: KubeClient): Promise<{ taintKey: string; defaultStrategy: EvictionStrategy | undefined }> {
  const list = await kube.listCustom(KUBEVIRT_RESOURCE).catch(() => ({ items: [] as unknown[] }));
  const kv = list.items[0] as { spec?: { configuration?: { migrations?: unknown; evictionStrategy?: unknown } } } | undefined;
  const cfg = MigrationConfiguration.safeParse(kv?.spec?.configuration?.migrations ?? {});
  const strat = EvictionStrategy.safeParse(kv?.spec?.configuration?.evictionStrategy);
  return { taintKey: cfg.success ? cfg.data.nodeDrainTaintKey : 'kubevirt.io/drain', defaultStrategy: strat.success ? strat.data : undefined };
}

export async function readNode(kube: KubeClient, name: string): Promise<Node> {
  try {
    const r = parseObject(Node, await kube.core.readNode({ name }));
    if (!r.ok) throw new Error(`node ${name} is malformed: ${r.reason}`);
    return r.value;
  } catch (err) {
    if (isNotFound(err)) throw new Error(`node ${name} not found`);
    throw err;
  }
}

async function listVmis(kube: KubeClient): Promise<VirtualMachineInstance[]> {
  return (await kube.listCustom(VMI_RESOURCE)).items.flatMap((raw) => {
    const r = parseObject(VirtualMachineInstance, raw);
    return r.ok ? [r.value] : [];
  });
}

function describeAction(a: EvacuationAction): string {
  switch (a.kind) {
    case 'migrate': return 'live-migrate';
    case 'mark-external': return 'hand to external controller';
    case 'leave': return `let eviction stop it (${a.reason})`;
    case 'blocked': return `BLOCKED: ${a.reason}`;
  }
}

export async function runDrain(nodeName: string, o: { kubeconfig?: string; dryRun: boolean; output: string; timeout?: number; maxAttempts: number }): Promise<void> {
  if (o.output !== 'table' && o.output !== 'json') throw new Error(`--output must be table or json, not "${o.output}"`);
  const kube = kubeClientFor(o.kubeconfig);
  const node = await readNode(kube, nodeName);
  const { taintKey, defaultStrategy } = await clusterSettings(kube);
  const vms: PlannedVm[] = (await listVmis(kube))
    .filter((v) => v.status?.nodeName === nodeName && v.status?.phase === 'Running')
    .map((v) => ({
      key: `${v.metadata.namespace}/${v.metadata.name}`,
      name: v.metadata.name,
      namespace: v.metadata.namespace ?? 'default',
      strategy: strategyOf(v, defaultStrategy),
      action: evacuationAction(v, defaultStrategy),
      memory: guestMemoryBytes(v),
    }));
  const out = (s: string) => process.stdout.write(`${s}\n`);

  if (o.dryRun) {
    if (o.output === 'json') {
      out(JSON.stringify({ node: nodeName, taint: `${taintKey}:NoSchedule`, vms: vms.map((v) => ({ vmi: v.key, strategy: v.strategy, action: v.action.kind, reason: 'reason' in v.action ? v.action.reason : undefined, memoryBytes: v.memory })) }, null, 2));
      return;
    }
    out(`Would cordon ${nodeName} and taint it ${taintKey}:NoSchedule. ${vms.length} VMI(s) on it:`);
    out(table(['VMI', 'STRATEGY', 'MEMORY', 'ACTION'], vms.map((v) => [v.key, v.strategy, formatBytes(v.memory), describeAction(v.action)])));
    const blocked = vms.filter((v) => v.action.kind === 'blocked').length;
    if (blocked) out(`${blocked} VMI(s) would block the drain.`);
    return;
  }

  // Cordon and taint: the controller's evacuation takes it from here.
  const taints = [...(node.spec?.taints ?? [])];
  if (!taints.some((t) => t.key === taintKey)) taints.push({ key: taintKey, effect: 'NoSchedule' });
  try {
    await kube.patchNode(nodeName, { spec: { unschedulable: true, taints } });
  } catch (err) {
    throw new Error(`could not cordon ${nodeName}: ${describeApiError(err)}`);
  }
  if (o.output === 'table') out(`node/${nodeName} cordoned and tainted ${taintKey}:NoSchedule; evacuating ${vms.filter((v) => v.action.kind === 'migrate').length} of ${vms.length} VMI(s)`);

  const started = Date.now();
  const progress = new Map<string, VmProgress>(vms.map((vm) => [vm.key, initialState(vm)]));
  const tty = Boolean(process.stderr.isTTY) && o.output === 'table';
  const multibar = tty
    ? new cliProgress.MultiBar(
        { format: ' {name} |{bar}| {percentage}% | {status}', hideCursor: true, clearOnComplete: false, stream: process.stderr, barsize: 24 },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const overall = multibar?.create(Math.max(1, vms.filter((v) => v.action.kind === 'migrate').length), 0, { name: 'overall'.padEnd(18), status: '' });
  const bars = new Map(
    vms.filter((v) => v.action.kind === 'migrate').map((v) => [v.key, multibar?.create(100, 0, { name: v.key.padEnd(18).slice(0, 18), status: 'waiting' })]),
  );
  const lastLine = new Map<string, string>();

  for (;;) {
    await refresh(kube, nodeName, progress, o.maxAttempts);
    const list = [...progress.values()];
    const movers = list.filter((p) => p.vm.action.kind === 'migrate');
    const moved = movers.filter((p) => p.state === 'moved').length;
    const rate = movers.reduce((s, p) => s + (p.state === 'migrating' ? p.rate ?? 0 : 0), 0);
    const left = movers.reduce((s, p) => s + (p.state === 'moved' || p.state === 'failed' ? 0 : p.state === 'migrating' ? p.remaining ?? p.vm.memory : p.vm.memory), 0);
    const eta = rate > 0 ? left / rate : undefined;
    for (const p of movers) {
      const status = statusText(p);
      const pct = p.state === 'moved' ? 100 : p.total ? Math.floor(((p.total - (p.remaining ?? p.total)) / p.total) * 99) : 0;
      bars.get(p.vm.key)?.update(pct, { status });
      const key = `${p.state}|${p.phase}|${p.target ?? ''}|${p.waiting ?? ''}|${p.failures}`;
      if (!tty && o.output === 'table' && lastLine.get(p.vm.key) !== key) {
        lastLine.set(p.vm.key, key);
        out(`  ${p.vm.key}: ${status}`);
      }
    }
    overall?.update(moved, { status: `${moved}/${movers.length} moved | ${formatBytes(left)} left | ${formatRate(rate)} | ETA ${eta !== undefined ? formatDuration(eta) : '-'}` });
    const done = movers.every((p) => p.state === 'moved' || p.state === 'failed');
    if (done) break;
    if (o.timeout && Date.now() - started > o.timeout * 1000) {
      multibar?.stop();
      throw new Error(`drain of ${nodeName} did not finish within ${formatDuration(o.timeout)}; ${moved}/${movers.length} VMs moved (the evacuation continues; \`ferry uncordon ${nodeName}\` stops it)`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  multibar?.stop();

  const list = [...progress.values()];
  const failed = list.filter((p) => p.state === 'failed' || p.state === 'blocked');
  const seconds = (Date.now() - started) / 1000;
  if (o.output === 'json') {
    out(JSON.stringify({ node: nodeName, seconds, vms: list.map((p) => ({ vmi: p.vm.key, strategy: p.vm.strategy, result: p.state, target: p.target, attempts: p.attempts, reason: p.lastReason, seconds: p.finishedAt && p.startedAt ? (p.finishedAt - p.startedAt) / 1000 : undefined })) }, null, 2));
  } else {
    out('');
    out(table(['VMI', 'STRATEGY', 'RESULT', 'TARGET', 'ATTEMPTS', 'TIME'], list.map((p) => [
      p.vm.key,
      p.vm.strategy,
      p.state === 'failed' ? `failed: ${p.lastReason ?? ''}` : p.state === 'left' ? `left (${'reason' in p.vm.action ? p.vm.action.reason : ''})` : p.state,
      p.target ?? '',
      String(p.attempts),
      p.finishedAt && p.startedAt ? formatDuration((p.finishedAt - p.startedAt) / 1000) : '',
    ])));
    out('');
    out(failed.length === 0
      ? `node/${nodeName} evacuated in ${formatDuration(seconds)}: ${list.filter((p) => p.state === 'moved').length} VM(s) moved`
      : `node/${nodeName}: ${failed.length} VM(s) could not be moved (see above); the node stays cordoned and their evacuation keeps retrying, with back-off, until you uncordon it`);
  }
  if (failed.length > 0) process.exitCode = 1;
}

function initialState(vm: PlannedVm): VmProgress {
  const state: VmProgress['state'] = vm.action.kind === 'migrate' ? 'waiting' : vm.action.kind === 'mark-external' ? 'external' : vm.action.kind === 'blocked' ? 'blocked' : 'left';
  return { vm, state, phase: '', attempts: 0, failures: 0 };
}

function statusText(p: VmProgress): string {
  switch (p.state) {
    case 'waiting': return `${p.failures > 0 ? `retrying after ${p.failures} failure(s): ${p.lastReason ?? ''}` : 'queued'}${p.waiting ? ` (${p.waiting})` : ''}`;
    case 'migrating': return `${p.phase}${p.remaining !== undefined ? ` ${formatBytes(p.remaining)} left` : ''}${p.rate ? ` @ ${formatRate(p.rate)}` : ''}${p.target ? ` → ${p.target}` : ''}${p.waiting ? ` (${p.waiting})` : ''}`;
    case 'moved': return `moved to ${p.target ?? '?'}`;
    case 'failed': return `failed ${p.failures}x: ${p.lastReason ?? ''}`;
    default: return p.state;
  }
}

async function refresh(kube: KubeClient, nodeName: string, progress: Map<string, VmProgress>, maxAttempts: number): Promise<void> {
  const vmis = new Map((await listVmis(kube)).map((v) => [`${v.metadata.namespace}/${v.metadata.name}`, v]));
  const { valid: all, targetPods, queued } = await readMigrationFacts(kube, VMIM_RESOURCE);
  const podsOf = (m: VirtualMachineInstanceMigration) => targetPods.get(m.metadata.uid ?? '') ?? [];
  const unfinished = (m: VirtualMachineInstanceMigration) => !['Succeeded', 'Failed'].includes(m.status?.phase ?? '');
  for (const p of progress.values()) {
    if (p.vm.action.kind !== 'migrate' || p.state === 'moved' || p.state === 'failed') continue;
    const vmi = vmis.get(p.vm.key);
    const ofVm = all
      .filter((m) => m.metadata.namespace === p.vm.namespace && m.spec.vmiName === p.vm.name)
      .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
    const mine = ofVm.filter((m) => m.metadata.annotations?.[Annotations.evacuationMigration] === nodeName);
    p.attempts = mine.length;
    p.failures = mine.filter((m) => m.status?.phase === 'Failed').length;
    const lastFailed = [...mine].reverse().find((m) => m.status?.phase === 'Failed');
    if (lastFailed) p.lastReason = lastFailed.status?.migrationState?.failureReason ?? lastFailed.status?.conditions?.find((c) => c.type === 'Failed')?.message;
    if (!vmi || (vmi.status?.nodeName && vmi.status.nodeName !== nodeName)) {
      p.state = 'moved';
      p.target = vmi?.status?.nodeName;
      p.waiting = undefined;
      p.finishedAt = Date.now();
      continue;
    }
    if (p.failures >= maxAttempts) {
      p.state = 'failed';
      p.finishedAt = Date.now();
      continue;
    }
    const current = mine.find(unfinished);
    const phase = current?.status?.phase || '';
    if (current && phase && phase !== 'Pending') {
      p.state = 'migrating';
      p.startedAt ??= Date.now();
      p.phase = phase;
      p.target = currentTarget(current, vmi, podsOf(current));
      p.remaining = current.status?.progress?.dataRemaining;
      p.total = current.status?.progress?.dataTotal;
      p.rate = current.status?.progress?.memoryBandwidth;
      p.waiting = whyWaiting(current, podsOf(current), undefined);
    } else {
      p.state = 'waiting';
      p.phase = phase;
      p.target = undefined;
      // Evacuation waits for any other migration of the VM to end (one at a time, as in KubeVirt).
      const other = current ? undefined : ofVm.find(unfinished);
      if (other) {
        const why = whyWaiting(other, podsOf(other), undefined);
        p.waiting = `waiting for migration ${other.metadata.namespace}/${other.metadata.name} (${other.status?.phase || 'Pending'}) to end${why ? `; its ${why}` : ''}`;
      } else {
        p.waiting = current ? whyWaiting(current, podsOf(current), queued.get(current.metadata.uid ?? '')) : undefined;
      }
    }
  }
}

export async function runUncordon(nodeName: string, o: { kubeconfig?: string }): Promise<void> {
  const kube = kubeClientFor(o.kubeconfig);
  const node = await readNode(kube, nodeName);
  const { taintKey } = await clusterSettings(kube);
  const taints = (node.spec?.taints ?? []).filter((t) => t.key !== taintKey);
  try {
    await kube.patchNode(nodeName, { spec: { unschedulable: false, taints: taints.length ? taints : null } });
  } catch (err) {
    throw new Error(`could not uncordon ${nodeName}: ${describeApiError(err)}`);
  }
  process.stdout.write(`node/${nodeName} uncordoned; queued evacuations are withdrawn, running ones finish\n`);
}
