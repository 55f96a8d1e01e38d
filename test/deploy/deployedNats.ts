import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, nkeyAuthenticator, type NatsConnection } from 'nats';
import { inboxPrefix } from '../../src/bus/subjects.js';
import { planNatsAuth, renderAuthConf, type NatsAuthPlan } from '../../scripts/lib/natsAuth.js';
import { freePort, startNatsServer, type NatsServerHandle } from '../support/natsServer.js';
import { findGenerated, render } from './render.js';

/**
 * The NATS cluster as deployed, on loopback: three nats-servers, each run with
 * the shipped nats.conf (rendered by kustomize) and the generated users, with
 * only what cannot work outside a cluster replaced — the volume and certificate
 * paths, and the route, client and monitoring addresses (given as flags, which
 * win over the file). TLS is on for clients and routes, with a CA and server
 * certificate made here by openssl.
 */
export interface DeployedNats {
  urls: string[];
  caFile: string;
  plan: NatsAuthPlan;
  /** Connects as a user of the plan (by seed), with that role's inbox prefix and the CA, as Ferry's processes do. */
  asUser(seed: string, name: string): Promise<NatsConnection>;
  stop(): Promise<void>;
}

function makeCertificates(dir: string): void {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=ferry-test-ca']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', '/CN=ferry-nats']);
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  run(['x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', '1', '-extfile', 'san.ext']);
}

export async function startDeployedNats(nodes: string[]): Promise<DeployedNats> {
  const plan = planNatsAuth(nodes);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-deployed-nats-'));
  const servers: NatsServerHandle[] = [];
  const conns: NatsConnection[] = [];
  try {
    const tlsDir = path.join(dir, 'tls');
    mkdirSync(tlsDir);
    makeCertificates(tlsDir);
    mkdirSync(path.join(dir, 'auth'));
    writeFileSync(path.join(dir, 'auth', 'auth.conf'), renderAuthConf(plan));
    const shipped = (findGenerated(render('overlays/standalone'), 'ConfigMap', 'ferry-nats-config').data as Record<string, string>)['nats.conf']!;
    if (!shipped.includes('store_dir: /data/jetstream') || !shipped.includes('/etc/nats/tls/')) throw new Error('the shipped nats.conf no longer has the paths this harness replaces');
    const members = await Promise.all([1, 2, 3].map(async (i) => ({ i, client: await freePort(), route: await freePort(), monitor: await freePort() })));
    const routes = members.map((m) => `tls://127.0.0.1:${m.route}`).join(',');
    servers.push(...await Promise.all(members.map(async (m) => {
      const store = path.join(dir, `js-${m.i}`);
      const conf = path.join(dir, `nats-${m.i}.conf`);
      writeFileSync(conf, shipped.replace('store_dir: /data/jetstream', `store_dir: ${JSON.stringify(store)}`).replaceAll('/etc/nats/tls/', `${tlsDir}/`));
      return startNatsServer({
        port: m.client,
        configFile: conf,
        storeDir: store,
        extraArgs: ['-m', String(m.monitor), '--cluster', `nats://127.0.0.1:${m.route}`, '--routes', routes],
        env: { ...process.env, SERVER_NAME: `ferry-nats-${m.i - 1}` },
      });
    })));
    const urls = members.map((m) => `tls://127.0.0.1:${m.client}`);
    const caFile = path.join(tlsDir, 'ca.crt');
    const asUser = async (seed: string, name: string) => {
      const node = plan.handlers.find((h) => h.seed === seed)?.node;
      const nc = await connect({
        servers: urls, name, tls: { caFile },
        inboxPrefix: node ? inboxPrefix.handler(node) : inboxPrefix.controller(),
        authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)),
      });
      conns.push(nc);
      return nc;
    };
    // JetStream answers once the three servers have elected a meta leader.
    const probe = await asUser(plan.controller.seed, 'jetstream-probe');
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await (await probe.jetstreamManager({ timeout: 2000 })).getAccountInfo();
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`the deployed NATS cluster's JetStream did not come up: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return {
      urls, caFile, plan, asUser,
      async stop() {
        for (const nc of conns) if (!nc.isClosed()) await nc.close();
        await Promise.all(servers.map((s) => s.stop()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const nc of conns) await nc.close().catch(() => undefined);
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The deployed NATS for a describe block: started before its tests (three servers take a while), stopped after.
 * Read `nats` and the `handlerSeed` of a node inside tests only.
 */
export function useDeployedNats(nodes: string[]): { readonly nats: DeployedNats; handlerSeed(node: string): string } {
  let nats: DeployedNats | undefined;
  beforeAll(async () => {
    nats = await startDeployedNats(nodes);
  }, 60_000);
  afterAll(async () => {
    await nats?.stop();
  });
  const started = () => {
    if (!nats) throw new Error('useDeployedNats: the servers exist only inside tests');
    return nats;
  };
  return {
    get nats() {
      return started();
    },
    handlerSeed: (node) => {
      const h = started().plan.handlers.find((x) => x.node === node);
      if (!h) throw new Error(`useDeployedNats: no handler user for ${node}`);
      return h.seed;
    },
  };
}
