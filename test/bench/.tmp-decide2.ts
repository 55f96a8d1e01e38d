import { loadScenario } from './scenario.js';
import { makePolicy } from './run.js';
import { DrainSimulator } from './simulator.js';
import * as D from '../../src/limits/decide.js';
import { performance } from 'node:perf_hooks';
const s = loadScenario(process.argv[2]!);
for (let rep = 0; rep < 3; rep++) {
  const policy = makePolicy('ferry', s) as any;
  const inner = policy.inner ?? policy;
  const orig = inner.decide.bind(inner);
  const rows: string[] = [];
  inner.decide = (view: any) => { const t0 = performance.now(); const r = orig(view); const dt = performance.now() - t0; rows.push(`${dt.toFixed(2)} q=${view.queue.length} r=${view.running.length} start=${r.start.length}`); return r; };
  new DrainSimulator(s, policy).run();
  const lat = inner.cpuTimes as number[];
  const sorted = [...lat].sort((a,b)=>a-b);
  console.log('p99', sorted[Math.floor(sorted.length*0.99)]!.toFixed(3), rows.map((r,i)=>[parseFloat(r), i + ' ' + r] as const).sort((a,b)=>b[0]-a[0]).slice(0,6).map(x=>x[1]).join(' | '));
}
