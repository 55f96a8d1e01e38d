import { exitWithSupervisor } from '../devcluster/parentWatch.js';
import { buildProgram } from './program.js';

exitWithSupervisor();

buildProgram().parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`ferry: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
