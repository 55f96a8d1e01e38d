import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig, CoreV1Api } from '@kubernetes/client-node';
import type { DevCluster } from '../../../src/devcluster/index.js';
import { startFastCluster } from './support.js';

const run = promisify(execFile);
let cluster: DevCluster;
let dir: string;
beforeAll(async () => {
  cluster = await startFastCluster({ secure: true });
  dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-secure-'));
});
afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A GET that trusts the cluster's certificate and nothing else. */
function get(pathname: string, headers: Record<string, string> = {}): Promise<{ code: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${cluster.url}${pathname}`, { ca: cluster.caCert, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
  });
}

describe('the dev API server of `ferry dev` (secure)', () => {
  test('serves HTTPS and answers a request without a token 401, worded as kube-apiserver does', async () => {
    expect(cluster.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await get('/api/v1/namespaces/default/pods')).toEqual({
      code: 401,
      body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 },
    });
    expect((await get('/api/v1/namespaces/default/pods', { Authorization: 'Bearer wrong' })).code).toBe(401);
    expect((await get('/api/v1/namespaces/default/pods', { Authorization: `Bearer ${cluster.token}` })).code).toBe(200);
  });

  test('the kubeconfig it writes works for client-node and kubectl, verifying the certificate', async () => {
    const file = path.join(dir, 'kubeconfig');
    await cluster.writeKubeconfig(file);
    const kc = new KubeConfig();
    kc.loadFromFile(file);
    expect(kc.getCurrentCluster()?.skipTLSVerify).toBeFalsy();
    const names = (await kc.makeApiClient(CoreV1Api).listNamespace()).items.map((n) => n.metadata?.name);
    expect(names).toContain('default');
    const { stdout } = await run('kubectl', ['--kubeconfig', file, '--cache-dir', path.join(dir, 'cache'), 'get', 'namespaces', '-o', 'name'], { timeout: 15_000 });
    expect(stdout).toContain('namespace/default');
  });
});
