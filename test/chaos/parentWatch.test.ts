import { spawn } from 'node:child_process';
import path from 'node:path';

/** A supervised child ends when its supervisor is gone (kill -9 of ferry dev --processes, a timed-out test). */
describe('children of ferry dev --processes follow their supervisor', () => {
  it('exits within a few seconds once the supervisor process is gone', async () => {
    const supervisor = spawn('sleep', ['30']);
    const module = path.resolve('src/devcluster/parentWatch.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(module)}).then((m) => { m.exitWithSupervisor(process.env, 100); setInterval(() => {}, 1000); });`], {
      env: { ...process.env, FERRY_SUPERVISOR_PID: String(supervisor.pid) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<{ at: number; signal: string | null }>((resolve) => child.once('exit', (_c, signal) => resolve({ at: Date.now(), signal })));
    await new Promise((r) => setTimeout(r, 1500)); // still running while the supervisor lives
    expect(child.exitCode).toBeNull();
    const killedAt = Date.now();
    supervisor.kill('SIGKILL');
    const { at, signal } = await exited;
    expect(signal).toBe('SIGTERM');
    expect(at - killedAt).toBeLessThan(3000);
    expect(stderr).toContain(`supervisor (pid ${supervisor.pid}) is gone; exiting`);
  }, 15_000);
});
