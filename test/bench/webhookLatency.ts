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
} finally {
  await env.stop();
  rmSync(dir, { recursive: true, force: true });
}
