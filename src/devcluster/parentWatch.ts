/**
 * A child of `ferry dev --processes` (or of the chaos campaign) ends when the
 * process supervising it is gone, whatever killed it: otherwise a killed or
 * timed-out parent would leave controllers and handlers running on their own.
 * The supervisor names itself in FERRY_SUPERVISOR_PID.
 */
export const SUPERVISOR_PID_ENV = 'FERRY_SUPERVISOR_PID';

export function exitWithSupervisor(env: NodeJS.ProcessEnv = process.env, intervalMs = 1000): void {
  const pid = Number(env[SUPERVISOR_PID_ENV]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const timer = setInterval(() => {
    try {
      process.kill(pid, 0);
    } catch {
      process.stderr.write(`ferry: supervisor (pid ${pid}) is gone; exiting\n`);
      process.kill(process.pid, 'SIGTERM');
    }
  }, intervalMs);
  timer.unref();
}
