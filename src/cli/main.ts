import { buildProgram } from './program.js';

buildProgram().parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`ferry: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
