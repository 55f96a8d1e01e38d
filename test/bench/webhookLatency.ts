/**
 * Admission webhook latency during a real `kubectl drain`: the embedded API
 * server times every call to Ferry's HTTPS webhook (TLS handshake, review,
 * answer) and this prints p50/p99 per webhook.
 *   npx tsx test/bench/webhookLatency.ts [--vms 30] [--node node-2]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WebhookCall } from '../../src/devcluster/index.js';
import { startDevEnvironment } from '../../src/devcluster/environment.js';
import { kubectl, percentile } from '../support/kubectl.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const vms = Number(arg('vms', '30'));
const node = arg('node', 'node-2');
const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-webhook-latency-'));
const calls: WebhookCall[] = [];
const kubeconfig = path.join(dir, 'kubeconfig');
const env = await startDevEnvironment({ nodes: 3, vms, kubeconfigPath: kubeconfig, timeScale: 8, cluster: { onWebhookCall: (c) => calls.push(c) } });
try {
  const started = Date.now();
  const r = await kubectl(kubeconfig, path.join(dir, 'cache'), ['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=300s']);
  if (r.code !== 0) throw new Error(`kubectl drain failed: ${r.stderr}`);
  console.log(`kubectl drain ${node} (${vms} VMs on 3 nodes): ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const by = new Map<string, WebhookCall[]>();
  for (const c of calls) by.set(c.webhook, [...(by.get(c.webhook) ?? []), c]);
  for (const [webhook, list] of by) {
    const ms = list.map((c) => c.ms);
    const failed = list.filter((c) => c.outcome === 'failed').length;
    console.log(`${webhook}: n=${ms.length} failed=${failed} p50=${percentile(ms, 50).toFixed(1)} ms p99=${percentile(ms, 99).toFixed(1)} ms max=${Math.max(...ms).toFixed(1)} ms`);
  }
  // One call at a time, nothing else running: server-side dry-run evictions (the webhook decides, marks nothing).
  const pods = await env.kube.core.listNamespacedPod({ namespace: 'default', labelSelector: 'kubevirt.io=virt-launcher' });
  const target = pods.items.find((p) => p.spec?.nodeName === 'node-1' && !p.metadata?.deletionTimestamp)!;
  const before = calls.length;
  for (let i = 0; i < 50; i++) {
    await env.kube.core.createNamespacedPodEviction({ name: target.metadata!.name!, namespace: 'default', dryRun: 'All', body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: target.metadata!.name!, namespace: 'default' } } }).catch(() => undefined);
  }
  const idle = calls.slice(before).map((c) => c.ms);
  console.log(`eviction webhook, one call at a time (dry run): n=${idle.length} p50=${percentile(idle, 50).toFixed(1)} ms p99=${percentile(idle, 99).toFixed(1)} ms`);

  // The webhook's own view (its histogram): time spent deciding, without the TLS handshake and the API server.
  const h = (await env.webhook!.metrics.duration.get()).values;
  for (const path of new Set(h.map((v) => String(v.labels.webhook)))) {
    const sum = h.find((v) => v.labels.webhook === path && v.metricName?.endsWith('_sum'))?.value ?? 0;
    const count = h.find((v) => v.labels.webhook === path && v.metricName?.endsWith('_count'))?.value ?? 0;
    if (count) console.log(`webhook server ${path}: n=${count} mean=${((sum / count) * 1000).toFixed(1)} ms (time deciding, incl. its API reads/writes)`);
  }
} finally {
  await env.stop();
  rmSync(dir, { recursive: true, force: true });
}
