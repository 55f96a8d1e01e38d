import { completeWords } from './completion.js';
import { buildProgram } from './program.js';

// kubectl ≥ 1.26 runs `kubectl_complete-ferry ARGS…` when TAB is pressed after `kubectl ferry`.
process.stdout.write(completeWords(buildProgram({ name: 'kubectl ferry' }), process.argv.slice(2)));
