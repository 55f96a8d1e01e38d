import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { NatsServerMissingError, startNatsServer } from '../../../src/bus/natsServer.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../../..');

describe('a machine without nats-server', () => {
  const saved = process.env['FERRY_NATS_SERVER'];
  afterEach(() => {
    if (saved === undefined) delete process.env['FERRY_NATS_SERVER'];
    else process.env['FERRY_NATS_SERVER'] = saved;
  });

  test('starting one fails with what is missing and how to install it', async () => {
    process.env['FERRY_NATS_SERVER'] = '/nonexistent/nats-server';
    const err = await startNatsServer().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerMissingError);
    expect((err as Error).message).toMatch(/nats-server is not installed.*apt-get install -y nats-server/);
  });

  test('`ferry dev` says so in one line, with no stack trace', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-dev-nonats-'));
    try {
      const res = await run(path.join(root, 'node_modules/.bin/tsx'), [path.join(root, 'src/cli/main.ts'), 'dev', '--log-file', path.join(dir, 'dev.log'), '--kubeconfig', path.join(dir, 'kubeconfig'), '--no-demo'], {
        cwd: root,
        env: { ...process.env, FERRY_NATS_SERVER: '/nonexistent/nats-server', NODE_OPTIONS: '' },
        timeout: 60_000,
      }).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/^ferry: nats-server is not installed .*sudo apt-get install -y nats-server/m);
      expect(res.stderr).not.toMatch(/^\s+at /m);
      expect(res.stderr).not.toMatch(/ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
