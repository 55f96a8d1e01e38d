#!/usr/bin/env node
// kubectl's completion hook for the plugin: `kubectl ferry <TAB>` asks this
// program (found on PATH beside kubectl-ferry) what to offer.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/kubectl-complete.js', import.meta.url);
if (existsSync(entry)) await import(entry.href);
