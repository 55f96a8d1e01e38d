import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDevEnvironment, type DevEnvironment } from '../../../src/devcluster/environment.js';
import { migrationTraceIds } from '../../../src/tracing/ids.js';
import { startTracing, type Tracing } from '../../../src/tracing/setup.js';
import { TraceStore } from '../../../src/tracing/store.js';
import { createVmim, getVmim, waitForPhase } from '../../support/cluster.js';
import { waitFor } from '../../support/wait.js';

/**
 * One trace per VMIM, through the real controller, NATS and handlers: the
 * phases under the migration's root span, each handler command as a client
 * span in the controller and a server span in the handler joined through the
 * NATS message headers, and the hypervisor job under the command that started it.
 */
describe('a migration\'s trace', () => {
  let env: DevEnvironment;
  let tracing: Tracing;
  let dir: string;
  const store = new TraceStore();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-trace-'));
    tracing = startTracing({ service: 'ferry-dev', store, file: path.join(dir, 'traces.jsonl') })!;
    env = await startDevEnvironment({ nodes: 2, vms: 2, natsUrl: process.env['NATS_URL']!, kubeconfigPath: path.join(dir, 'kubeconfig'), timeScale: 4 });
  }, 30_000);
  afterAll(async () => {
    await env?.stop();
    await tracing?.shutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('has its phases, commands across NATS and the hypervisor job, in one trace named by the VMIM uid', async () => {
    const name = await createVmim(env.kube, 'vm-1');
    await waitForPhase(env.kube, name, ['Succeeded'], 20_000);
    const uid = (await getVmim(env.kube, name))!.metadata.uid!;
    const { traceId, rootSpanId } = migrationTraceIds(uid);
    const spans = await waitFor('the root span to end', () => {
      const s = store.spans(traceId);
      return s.find((x) => x.spanId === rootSpanId && x.end !== undefined) ? s : undefined;
    });
    const byName = (n: string) => spans.filter((s) => s.name === n);
    const root = spans.find((s) => s.spanId === rootSpanId)!;
    expect(root.name).toBe('migration default/vm-1');
    expect(root.attributes['ferry.migration.uid']).toBe(uid);

    const phases = spans.filter((s) => s.name.startsWith('phase '));
    expect(phases.map((s) => s.name)).toEqual(expect.arrayContaining(['phase Pending', 'phase Scheduling', 'phase TargetReady', 'phase Running']));
    for (const p of phases) {
      expect(p.parentSpanId).toBe(rootSpanId);
      expect(p.end).toBeDefined();
      expect(p.end!).toBeGreaterThanOrEqual(p.start);
    }

    // The controller's client span and the handler's server span of the same command are parent and child:
    // the context crossed NATS in the headers.
    const client = byName('command start-source')[0]!;
    const server = byName('handler start-source')[0]!;
    expect(server.parentSpanId).toBe(client.spanId);
    expect(server.attributes['k8s.node.name']).toBe(client.attributes['k8s.node.name']);
    expect(phases.map((p) => p.spanId)).toContain(client.parentSpanId);

    const job = byName('hypervisor job')[0]!;
    expect(job.parentSpanId).toBe(server.spanId);
    expect(job.attributes['ferry.job.outcome']).toBe('completed');
    expect(job.end! - job.start).toBeGreaterThan(0);

    // The same spans reach the file as OTLP/JSON.
    await waitFor('the trace in the file', () => readFileSync(path.join(dir, 'traces.jsonl'), 'utf8').includes(traceId), { timeoutMs: 5000 });
    const lines = readFileSync(path.join(dir, 'traces.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ traceId: string; name: string }> }> }> });
    const inFile = lines.flatMap((l) => l.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans))).filter((s) => s.traceId === traceId).map((s) => s.name);
    expect(inFile).toEqual(expect.arrayContaining(['migration default/vm-1', 'phase Running', 'handler start-source', 'hypervisor job']));
  });
});
