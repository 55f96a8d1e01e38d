/**
 * Runs `stop` once on SIGINT/SIGTERM and exits; a second Ctrl-C exits at once.
 * Long-running commands park on the returned promise.
 */
export function untilSignal(stop: (signal: string) => Promise<void>): Promise<never> {
  return new Promise<never>(() => {
    let stopping = false;
    const handler = (signal: string) => {
      if (stopping) process.exit(130);
      stopping = true;
      stop(signal).then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`ferry: shutdown failed: ${String(err)}\n`);
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => handler('SIGINT'));
    process.on('SIGTERM', () => handler('SIGTERM'));
  });
}
