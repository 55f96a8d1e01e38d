import { loadScenario } from './scenario.js';
import { simulate } from './run.js';
const s = loadScenario(process.argv[2]!);
for (let rep = 0; rep < 2; rep++) {
const { policy } = simulate(s, 'ferry');
const lat = (policy as any).cpuTimes as number[];
const idx = lat.map((t, i) => [t, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 8);
const sorted = [...lat].sort((a,b)=>a-b);
console.log('p50', sorted[Math.floor(sorted.length*0.5)]!.toFixed(3), 'p99', sorted[Math.floor(sorted.length*0.99)]!.toFixed(3), 'n', lat.length, 'top', idx.map(([t, i]) => `${i}:${t.toFixed(2)}`).join(' '));
}
