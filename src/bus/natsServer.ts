import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * Spawns a private nats-server with JetStream on a free loopback port: what
 * `ferry dev` and the test suite run against. Production deployments use the
 * NATS StatefulSet in deploy/ instead.
 */
/** A nats-server child process with JetStream. */
export interface NatsServerHandle {
  url: string;
  port: number;
  proc: ChildProcess;
  storeDir: string;
  stop(): Promise<void>;
}

/** nats-server is not installed: say what is missing and how to get it, as scripts/setup.sh does. */
export class NatsServerMissingError extends Error {
  override readonly name = 'NatsServerMissingError';
  constructor() {
    super(
      'nats-server is not installed (looked in /usr/sbin, /usr/bin, /usr/local/bin and on PATH). ' +
        'Install it with: sudo apt-get install -y nats-server   (or run scripts/setup.sh as root)',
    );
  }
}

/** The nats-server to run: $FERRY_NATS_SERVER when set, else the first installed one, else whatever PATH finds. */
export function natsServerBinary(): string {
  const chosen = process.env['FERRY_NATS_SERVER'];
  if (chosen) return chosen;
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    if (existsSync(p)) return p;
  }
  return 'nats-server';
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nats-server did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/**
 * `port` defaults to a free one. Pass `storeDir` to restart a server on the same
 * JetStream store (it is then left in place on stop); otherwise a temporary
 * store is created and removed on stop. `configFile` and `env` run it with a
 * config of its own (the deploy/ NATS config in its tests), which then sets
 * JetStream's store itself; address and port given here still win.
 */
export async function startNatsServer(
  opts: number | { port?: number; storeDir?: string; configFile?: string; extraArgs?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<NatsServerHandle> {
  const o = typeof opts === 'number' ? { port: opts } : opts;
  const p = o.port ?? (await freePort());
  const ownStore = o.storeDir === undefined;
  const storeDir = o.storeDir ?? mkdtempSync(path.join(os.tmpdir(), 'ferry-nats-'));
  // A config file brings its own JetStream block (nats-server refuses a second store_dir).
  const jetstream = o.configFile ? ['-c', o.configFile] : ['-js', '-sd', storeDir];
  const args = [...jetstream, '-a', '127.0.0.1', '-p', String(p), ...(o.extraArgs ?? [])];
  const proc = spawn(natsServerBinary(), args, { stdio: ['ignore', 'ignore', 'pipe'], ...(o.env ? { env: o.env } : {}) });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  // A binary that cannot be run at all is reported as an 'error' event, not an exit.
  const failedToRun = new Promise<never>((_, reject) => proc.once('error', (err: NodeJS.ErrnoException) => {
    reject(err.code === 'ENOENT' ? new NatsServerMissingError() : new Error(`cannot run nats-server: ${err.message}`));
  }));
  failedToRun.catch(() => undefined);
  try {
    await Promise.race([
      waitForPort(p, 10_000),
      exited.then(() => { throw new Error(`nats-server exited early: ${stderr}`); }),
      failedToRun,
    ]);
  } catch (err) {
    proc.kill('SIGKILL');
    if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `nats://127.0.0.1:${p}`,
    port: p,
    proc,
    storeDir,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
      if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
