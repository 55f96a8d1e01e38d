import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WebhookCall } from '../../src/devcluster/index.js';
import { startDevEnvironment, type DevEnvironment, type DevEnvironmentOptions } from '../../src/devcluster/environment.js';
import { VMI_RESOURCE, VMIM_RESOURCE } from '../../src/kube/client.js';
import { WebhookNames, WebhookPaths } from '../../src/webhook/registration.js';
import { getVmi, launcherPods } from '../support/cluster.js';
import { kubectl, percentile } from '../support/kubectl.js';
import { waitFor } from '../support/wait.js';

/**
 * Ferry's admission webhook, end to end: kubectl against the embedded API
 * server, which calls the webhook over HTTPS as a real one does. Nothing
 * in-process stands between `kubectl drain` and the evacuation.
 */

interface Harness { env: DevEnvironment; dir: string; calls: WebhookCall[]; k(args: string[], input?: string): ReturnType<typeof kubectl> }

async function harness(opts: Partial<DevEnvironmentOptions> = {}): Promise<Harness> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-admission-'));
  const calls: WebhookCall[] = [];
  const kubeconfig = path.join(dir, 'kubeconfig');
  const env = await startDevEnvironment({
    nodes: 3, vms: 9, natsUrl: process.env['NATS_URL']!, kubeconfigPath: kubeconfig, timeScale: 8,
    cluster: { onWebhookCall: (c) => calls.push(c) },
    ...opts,
  });
  return { env, dir, calls, k: (args, input) => kubectl(kubeconfig, path.join(dir, 'cache'), args, input) };
}

async function stop(h: Harness | undefined): Promise<void> {
  await h?.env.stop();
  if (h) rmSync(h.dir, { recursive: true, force: true });
}

async function vmisOn(env: DevEnvironment, node: string): Promise<string[]> {
  const list = (await env.kube.listCustom(VMI_RESOURCE, 'default')).items as Array<{ metadata: { name: string }; status?: { nodeName?: string } }>;
  return list.filter((v) => v.status?.nodeName === node).map((v) => v.metadata.name).sort();
}

/** Every VMI Running, with exactly one launcher pod, on the node its status names. */
async function noVmLost(env: DevEnvironment): Promise<void> {
  const list = (await env.kube.listCustom(VMI_RESOURCE, 'default')).items as Array<{ metadata: { name: string; uid: string } }>;
  for (const raw of list) {
    const vmi = await getVmi(env.kube, raw.metadata.name);
    expect([vmi.metadata.name, vmi.status?.phase]).toEqual([vmi.metadata.name, 'Running']);
    const pods = (await launcherPods(env.kube, raw.metadata.uid)).filter((p) => !p.metadata.deletionTimestamp);
    expect([vmi.metadata.name, pods.map((p) => p.spec?.nodeName)]).toEqual([vmi.metadata.name, [vmi.status?.nodeName]]);
  }
}

describe('kubectl drain through Ferry\'s HTTPS admission webhook', () => {
  let h: Harness;
  beforeAll(async () => { h = await harness(); });
  afterAll(() => stop(h));

  test('evacuates the node: every eviction goes through the webhook, which counts each call', async () => {
    const leaving = await vmisOn(h.env, 'node-2');
    expect(leaving.length).toBe(3);
    const drained = await h.k(['drain', 'node-2', '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=90s']);
    expect(drained.stderr).toContain(`admission webhook "${WebhookNames.eviction}" denied the request: Eviction triggered evacuation of VMI "default/`);
    expect([drained.code, drained.stdout]).toEqual([0, expect.stringContaining('node/node-2 drained')]);
    expect(await vmisOn(h.env, 'node-2')).toEqual([]);
    await noVmLost(h.env);

    const evictionCalls = h.calls.filter((c) => c.webhook === WebhookNames.eviction);
    // The webhook's own metric counts exactly the calls the API server made: no other path decided an eviction.
    expect(await h.env.webhook!.metrics.count(WebhookPaths.eviction)).toBe(evictionCalls.length);
    expect(evictionCalls.length).toBeGreaterThanOrEqual(leaving.length * 2); // a refusal, then the pass once the VM has gone
    expect(evictionCalls.filter((c) => c.outcome === 'failed')).toEqual([]);
    const ms = evictionCalls.map((c) => c.ms);
    // The figure for the report: one admission call, API server to webhook and back, over HTTPS.
    console.log(`eviction webhook latency during kubectl drain: n=${ms.length} p50=${percentile(ms, 50).toFixed(1)} ms p99=${percentile(ms, 99).toFixed(1)} ms max=${Math.max(...ms).toFixed(1)} ms`);
  }, 120_000);
});

describe('with the webhook down', () => {
  let h: Harness;
  beforeAll(async () => { h = await harness({ vms: 6 }); });
  afterAll(() => stop(h));

  test('kubectl drain is refused with the API server\'s wording for a failing webhook, and no VM is lost', async () => {
    await h.env.webhook!.pause();
    const before = await vmisOn(h.env, 'node-1');
    const drained = await h.k(['drain', 'node-1', '--ignore-daemonsets', '--timeout=30s']);
    expect(drained.code).not.toBe(0);
    expect(drained.stderr).toContain(
      `Internal error occurred: failed calling webhook "${WebhookNames.eviction}": failed to call webhook: Post "https://ferry-webhook.ferry-system.svc:443${WebhookPaths.eviction}?timeout=10s": no endpoints available for service "ferry-webhook"`,
    );
    expect(await vmisOn(h.env, 'node-1')).toEqual(before);
    await noVmLost(h.env);

    // Back up: the same drain goes through.
    await h.env.webhook!.resume();
    const retried = await h.k(['drain', 'node-1', '--ignore-daemonsets', '--timeout=90s']);
    expect([retried.code, retried.stdout]).toEqual([0, expect.stringContaining('node/node-1 drained')]);
    await noVmLost(h.env);
  }, 150_000);
});

describe('VMIM validation at create time', () => {
  let h: Harness;
  beforeAll(async () => { h = await harness({ vms: 6 }); });
  afterAll(() => stop(h));

  const vmimYaml = (name: string, vmi: string, extra = '') => `apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceMigration\nmetadata:\n  name: ${name}\n  namespace: default\nspec:\n  vmiName: ${vmi}\n${extra}`;
  const names = async () => ((await h.env.kube.listCustom(VMIM_RESOURCE, 'default')).items as Array<{ metadata: { name: string } }>).map((m) => m.metadata.name).sort();

  test('kubectl create of each bad kind prints the reason, and no object is left behind', async () => {
    // Not running, not migratable: set on two VMIs as KubeVirt would.
    await h.env.kube.patchCustomStatus(VMI_RESOURCE, 'default', 'vm-2', { status: { phase: 'Scheduling' } });
    const vm3 = await getVmi(h.env.kube, 'vm-3');
    const conditions = [...(vm3.status?.conditions ?? []).filter((c) => c.type !== 'LiveMigratable'), { type: 'LiveMigratable', status: 'False', reason: 'DisksNotLiveMigratable', message: 'local disk' }];
    await h.env.kube.patchCustomStatus(VMI_RESOURCE, 'default', 'vm-3', { status: { conditions } });
    // An active migration of vm-4: its guest dirties memory faster than any link, so it keeps copying.
    await h.env.kube.patchCustom(VMI_RESOURCE, 'default', 'vm-4', { metadata: { annotations: { 'ferry.dev/sim-dirty-rate': String(100e9), 'ferry.dev/sim-working-set': String(64 * 2 ** 30) } } });
    const first = await h.k(['create', '-f', '-'], vmimYaml('vm-4-first', 'vm-4'));
    expect(first.code).toBe(0);
    await waitFor('vm-4-first to be running', async () => (await h.env.kube.getCustom(VMIM_RESOURCE, 'default', 'vm-4-first') as { status?: { phase?: string } }).status?.phase === 'Running');

    const cases: Array<[string, string, string]> = [
      // First, while vm-4-first is surely still in flight.
      ['second', 'vm-4', 'in-flight migration detected: migration'],
      ['missing', 'no-such-vm', 'VMI default/no-such-vm does not exist'],
      ['not-running', 'vm-2', 'VMI default/vm-2 is not running (phase Scheduling)'],
      ['not-migratable', 'vm-3', 'Cannot migrate VMI, Reason: DisksNotLiveMigratable'],
    ];
    for (const [name, vmi, reason] of cases) {
      const r = await h.k(['create', '-f', '-'], vmimYaml(name, vmi));
      expect([name, r.code, r.stderr]).toEqual([name, 1, expect.stringContaining(reason)]);
      expect(r.stderr).toContain(`admission webhook "${WebhookNames.migration}" denied the request: ${reason}`);
    }
    expect(await names()).toEqual(['vm-4-first']);
    const listed = await h.k(['get', 'vmim', '-o', 'name']);
    expect(listed.stdout.trim().split('\n')).toEqual(['virtualmachineinstancemigration.kubevirt.io/vm-4-first']);
  }, 60_000);

  test('MigrationPolicy, MaintenanceWindow and KubeVirt migration settings are refused with the field and the reason', async () => {
    const policy = await h.k(['apply', '-f', '-'], 'apiVersion: migrations.kubevirt.io/v1alpha1\nkind: MigrationPolicy\nmetadata:\n  name: bad\nspec:\n  completionTimeoutPerGiB: -5\n');
    expect(policy.stderr).toContain(`admission webhook "${WebhookNames.resources}" denied the request: MigrationPolicy "bad" is invalid: spec.completionTimeoutPerGiB: Too small`);
    const mw = await h.k(['apply', '-f', '-'], 'apiVersion: ferry.dev/v1alpha1\nkind: MaintenanceWindow\nmetadata:\n  name: bad\nspec:\n  nodes: [node-1]\n  window:\n    schedule: "0 2 * * *"\n    duration: two hours\n');
    expect(mw.stderr).toContain('MaintenanceWindow "bad" is invalid: spec.window');
    const kv = await h.k(['apply', '-f', '-'], 'apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata:\n  name: kubevirt\n  namespace: default\nspec:\n  configuration:\n    migrations:\n      parallelMigrationsPerCluster: 0\n');
    expect(kv.stderr).toContain(`admission webhook "${WebhookNames.kubevirt}" denied the request: KubeVirt "kubevirt" is invalid: spec.configuration.migrations.parallelMigrationsPerCluster: Too small`);
    const good = await h.k(['apply', '-f', '-'], 'apiVersion: migrations.kubevirt.io/v1alpha1\nkind: MigrationPolicy\nmetadata:\n  name: good\nspec:\n  completionTimeoutPerGiB: 300\n');
    expect(good.code).toBe(0);
  }, 60_000);
});

describe('certificates rotated while a drain runs', () => {
  let h: Harness;
  // A 12 s CA and 4 s serving certificates, checked every 250 ms: during the drain the serving
  // certificate is renewed several times and the CA at least once (both at 20 % of lifetime left).
  beforeAll(async () => { h = await harness({ webhook: { caValidityMs: 12_000, certValidityMs: 4_000, checkEveryMs: 250 } }); });
  afterAll(() => stop(h));

  test('the drain finishes and no admission call fails', async () => {
    const certs = h.env.webhook!.certificates;
    const firstCa = new X509Certificate(certs.current().ca.certPem).serialNumber;
    const generation = certs.material.generation;
    const drained = await h.k(['drain', 'node-3', '--ignore-daemonsets', '--timeout=90s']);
    // Keep going until the CA has turned over at least once, with evictions still flowing.
    await waitFor('the CA to rotate', () => new X509Certificate(certs.current().ca.certPem).serialNumber !== firstCa, { timeoutMs: 15_000 });
    expect([drained.code, drained.stdout]).toEqual([0, expect.stringContaining('node/node-3 drained')]);
    expect(drained.stderr).not.toContain('failed calling webhook');
    expect(certs.material.generation - generation).toBeGreaterThanOrEqual(2);
    expect(h.calls.filter((c) => c.outcome === 'failed')).toEqual([]);
    const eviction = h.calls.filter((c) => c.webhook === WebhookNames.eviction);
    expect(eviction.length).toBeGreaterThanOrEqual(6);
    // A call after the CA rotation: the API server trusts the new CA from the injected bundle.
    const r = await h.k(['create', '-f', '-'], 'apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceMigration\nmetadata:\n  name: after-rotation\nspec:\n  vmiName: no-such-vm\n');
    expect(r.stderr).toContain(`admission webhook "${WebhookNames.migration}" denied the request: VMI default/no-such-vm does not exist`);
    await noVmLost(h.env);
  }, 150_000);
});
