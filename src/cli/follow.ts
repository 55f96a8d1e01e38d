import { Watch } from '@kubernetes/client-node';
import cliProgress from 'cli-progress';
import { formatBytes } from '../api/quantity.js';
import { parseObject } from '../api/meta.js';
import { FINAL_PHASES, VirtualMachineInstanceMigration } from '../api/vmim.js';
import type { KubeClient } from '../kube/client.js';
import { formatDuration, formatRate } from './format.js';

export interface FollowResult {
  vmim: VirtualMachineInstanceMigration;
  phase: string;
  seconds: number;
}

/**
 * Watches one VMIM until it is Succeeded or Failed (or gone), showing a live
 * progress bar: phase, bytes left, transfer rate, ETA. Without a TTY it prints
 * one line per phase change instead, so logs of scripted runs stay readable.
 */
export async function followMigration(
  kube: KubeClient,
  namespace: string,
  name: string,
  opts: { out?: NodeJS.WriteStream; timeoutMs?: number; tty?: boolean } = {},
): Promise<FollowResult> {
  const out = opts.out ?? process.stderr;
  const tty = opts.tty ?? Boolean(out.isTTY);
  const started = Date.now();
  const bar = tty
    ? new cliProgress.SingleBar(
        {
          format: '  {name} {phase} |{bar}| {percentage}% | {left} left | {rate} | ETA {eta_h}',
          barCompleteChar: '\u2588',
          barIncompleteChar: '\u2591',
          hideCursor: true,
          stream: out,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(100, 0, { name, phase: 'Pending'.padEnd(15), left: '-', rate: '-', eta_h: '-' });
  let lastPhase = '';
  let latest: VirtualMachineInstanceMigration | undefined;

  const show = (vmim: VirtualMachineInstanceMigration) => {
    latest = vmim;
    const phase = vmim.status?.phase || 'Pending';
    const p = vmim.status?.progress;
    const total = p?.dataTotal ?? 0;
    const left = p?.dataRemaining ?? total;
    const pct = phase === 'Succeeded' ? 100 : total > 0 ? Math.max(0, Math.min(99, Math.floor(((total - left) / total) * 100))) : 0;
    if (bar) {
      bar.update(pct, {
        phase: phase.padEnd(15),
        left: total ? formatBytes(left) : '-',
        rate: formatRate(p?.memoryBandwidth),
        eta_h: p?.etaSeconds !== undefined && phase === 'Running' ? formatDuration(p.etaSeconds) : '-',
      });
    } else if (phase !== lastPhase) {
      out.write(`${name}: ${phase}${total ? ` (${formatBytes(left)} left, ${formatRate(p?.memoryBandwidth)})` : ''}\n`);
    }
    lastPhase = phase;
  };

  const finish = (vmim: VirtualMachineInstanceMigration | undefined, phase: string): FollowResult => {
    bar?.stop();
    return { vmim: vmim ?? (latest as VirtualMachineInstanceMigration), phase, seconds: (Date.now() - started) / 1000 };
  };

  const initial = await kube.getCustom({ group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstancemigrations' }, namespace, name);
  const first = parseObject(VirtualMachineInstanceMigration, initial);
  if (!first.ok) throw new Error(`migration ${namespace}/${name} is malformed: ${first.reason}`);
  show(first.value);
  const firstPhase = first.value.status?.phase;
  if (firstPhase && FINAL_PHASES.has(firstPhase)) return finish(first.value, firstPhase);

  const rv = first.value.metadata.resourceVersion;
  return await new Promise<FollowResult>((resolve, reject) => {
    let abort: AbortController | undefined;
    let settled = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => done(new Error(`gave up following ${namespace}/${name} after ${formatDuration(opts.timeoutMs! / 1000)}`)), opts.timeoutMs)
      : undefined;
    const done = (err: Error | undefined, result?: FollowResult) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      abort?.abort();
      if (err) {
        bar?.stop();
        reject(err);
      } else resolve(result!);
    };
    const watch = new Watch(kube.kc);
    const start = async (fromRv: string | undefined): Promise<void> => {
      try {
        abort = await watch.watch(
          `/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachineinstancemigrations`,
          { fieldSelector: `metadata.name=${name}`, ...(fromRv ? { resourceVersion: fromRv } : {}) },
          (type, obj) => {
            if (type === 'DELETED') return done(undefined, finish(latest, latest?.status?.phase || 'Deleted'));
            const r = parseObject(VirtualMachineInstanceMigration, obj);
            if (!r.ok) return;
            show(r.value);
            const ph = r.value.status?.phase;
            if (ph && FINAL_PHASES.has(ph)) done(undefined, finish(r.value, ph));
          },
          (err) => {
            if (settled) return;
            // Watches end (server timeout, 410): resume from what we saw last.
            setTimeout(() => void start(err ? undefined : latest?.metadata.resourceVersion), err ? 500 : 0);
          },
        );
      } catch (e) {
        done(e as Error);
      }
    };
    void start(rv);
  });
}
