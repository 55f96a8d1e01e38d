import path from 'node:path';
import { exitWithSupervisor } from '../devcluster/parentWatch.js';
import { buildProgram } from './program.js';

exitWithSupervisor();

// Run as kubectl's plugin (bin/kubectl-ferry.js), usage lines read `kubectl ferry …`.
const asPlugin = path.basename(process.argv[1] ?? '').startsWith('kubectl-ferry');

buildProgram({ name: asPlugin ? 'kubectl ferry' : 'ferry' }).parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`ferry: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
