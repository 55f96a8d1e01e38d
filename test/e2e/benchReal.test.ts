import { fileURLToPath } from 'node:url';
import { loadScenario } from '../bench/scenario.js';
import { runReal } from '../bench/real.js';
import { simulate } from '../bench/run.js';

/**
 * The drain benchmark's model against the system it stands for: the small-rack
 * scenario drained through the real controller, NATS and handlers (sim driver
 * at 4× speed, about 15 s of wall time), beside the same drain in virtual time.
 */
test('bench --real: the small rack drains through the real control plane, no faster than the model allows', async () => {
  const s = loadScenario(fileURLToPath(new URL('../bench/scenarios/small-rack.yaml', import.meta.url)));
  const virtual = simulate(s, 'ferry').result;
  const real = await runReal(s, { timeScale: 4, natsUrl: process.env['NATS_URL']!, timeoutMs: 50_000 });
  expect(real.unfinished).toEqual([]);
  expect(real.phases['Failed'] ?? 0).toBe(0);
  // Every VMIM the evacuation created moved its VM: one per VM on the drained node.
  expect(Object.values(real.phases).reduce((a, b) => a + b, 0)).toBe(s.vms.filter((v) => v.node === 'node-1').length);
  // The handlers run each migration at the bandwidth the controller allots, on the same NICs: the
  // real drain cannot beat the model, and its control-plane latency is all that may slow it.
  expect(real.makespanS!).toBeGreaterThanOrEqual((virtual.makespanMs! / 1000) * 0.97);
  expect(real.makespanS!).toBeLessThan((virtual.makespanMs! / 1000) * 2);
  expect(real.apiRequests['PATCH'] ?? 0).toBeGreaterThan(0);
  // The VMI's status costs three writes per migration: the hand-off, the target's address with the start
  // time, and the move (no evacuation mark for a VM that got its VMIM). A conflict retry or two may add to it.
  const moved = Object.values(real.phases).reduce((a, b) => a + b, 0);
  expect(real.apiWrites['PATCH virtualmachineinstances/status'] ?? 0).toBeGreaterThan(0);
  expect(real.apiWrites['PATCH virtualmachineinstances/status'] ?? 0).toBeLessThanOrEqual(3 * moved + 2);
}, 60_000);
