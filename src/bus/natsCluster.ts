import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { freePort, startNatsServer, type NatsServerHandle } from './natsServer.js';

/**
 * A JetStream cluster of nats-servers on loopback, each with its own store and
 * route port: what `ferry dev --processes` and the chaos campaign run, so one
 * or two servers can be killed and restarted on their own while the results
 * stream (3 replicas) keeps its messages.
 */
export interface NatsClusterMember {
  name: string;
  clientPort: number;
  routePort: number;
  storeDir: string;
  /** The running server, or undefined while it is down. */
  server: NatsServerHandle | undefined;
}

export interface NatsCluster {
  readonly members: readonly NatsClusterMember[];
  /** Every client URL, comma-separated: what `--nats` takes. */
  readonly urls: string;
  readonly urlList: readonly string[];
  /** SIGKILLs one server (its store stays). */
  kill(name: string): Promise<void>;
  /** Starts a killed server again on its ports and store. */
  restart(name: string): Promise<void>;
  /** Resolves once JetStream answers with a meta leader (a quorum of servers is up). */
  waitForJetStream(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  size?: number;
  /** Parent directory of the servers' stores; a temporary one (removed on stop) by default. */
  dir?: string;
  name?: string;
}

export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  if (size < 1) throw new RangeError(`a NATS cluster needs at least one server, got ${size}`);
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'ferry-nats-cluster-'));
  const clusterName = opts.name ?? 'ferry';
  const members: NatsClusterMember[] = [];
  for (let i = 1; i <= size; i++) {
    const storeDir = path.join(dir, `nats-${i}`);
    mkdirSync(storeDir, { recursive: true });
    members.push({ name: `nats-${i}`, clientPort: await freePort(), routePort: await freePort(), storeDir, server: undefined });
  }
  const routes = members.map((m) => `nats://127.0.0.1:${m.routePort}`).join(',');
  const start = async (m: NatsClusterMember) => {
    m.server = await startNatsServer({
      port: m.clientPort,
      storeDir: m.storeDir,
      extraArgs: ['--server_name', m.name, '--cluster_name', clusterName, '--cluster', `nats://127.0.0.1:${m.routePort}`, '--routes', routes,
        // Clients use the URLs they were given (maybe a fault proxy's), not the servers' own.
        '--no_advertise'],
    });
  };
  const byName = (name: string) => {
    const m = members.find((x) => x.name === name);
    if (!m) throw new Error(`no NATS server ${name} in this cluster (have ${members.map((x) => x.name).join(', ')})`);
    return m;
  };
  const urlList = members.map((m) => `nats://127.0.0.1:${m.clientPort}`);
  const cluster: NatsCluster = {
    members,
    urls: urlList.join(','),
    urlList,
    async kill(name) {
      const m = byName(name);
      const s = m.server;
      if (!s) return;
      m.server = undefined;
      const exited = new Promise<void>((resolve) => {
        if (s.proc.exitCode !== null || s.proc.signalCode !== null) resolve();
        else s.proc.once('exit', () => resolve());
      });
      s.proc.kill('SIGKILL');
      await exited;
    },
    async restart(name) {
      const m = byName(name);
      if (m.server) return;
      await start(m);
    },
    async waitForJetStream(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let nc: NatsConnection | undefined;
      let last = '';
      try {
        nc = await connect({ servers: urlList, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
        while (Date.now() < deadline) {
          try {
            const jsm = await nc.jetstreamManager({ timeout: 2000 });
            await jsm.getAccountInfo();
            return;
          } catch (err) {
            last = (err as Error).message;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        throw new Error(`the NATS cluster's JetStream did not come up within ${timeoutMs} ms: ${last}`);
      } finally {
        await nc?.close();
      }
    },
    async stop() {
      await Promise.all(members.map(async (m) => {
        const s = m.server;
        m.server = undefined;
        await s?.stop();
      }));
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(members.map(start));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
