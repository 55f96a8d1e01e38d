#!/usr/bin/env node
// kubectl's plugin entry point: kubectl runs `kubectl-ferry` from PATH for
// `kubectl ferry …`, with the arguments after "ferry". Same CLI as `ferry`;
// its help says `kubectl ferry`.
import './ferry.js';
