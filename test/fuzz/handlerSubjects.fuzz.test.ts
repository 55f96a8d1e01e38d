import fc from 'fast-check';
import { connect, JSONCodec, type NatsConnection } from 'nats';
import { ErrorReply, Heartbeat, replies } from '../../src/bus/protocol.js';
import { COMMANDS, subjects, type Command } from '../../src/bus/subjects.js';
import { startHandler, type RunningHandler } from '../../src/handler/handler.js';
import { SimDriver } from '../../src/hypervisor/sim.js';
import { silentLogger } from '../../src/util/log.js';

/**
 * Every subject a handler serves, sent arbitrary and malformed payloads over
 * a real nats-server: each gets an answer (a refusal with a reason, or a
 * valid reply), nothing is answered as an internal error, and afterwards the
 * handler still serves and still sends heartbeats. fast-check prints the seed
 * and the shrunk payload of any failure.
 */
const NODE = `fuzz-node-${process.pid}`;
const enc = new TextEncoder();
const json = JSONCodec<unknown>();

/** Payloads near the schemas (right keys, wrong values), random JSON, and bytes that are not JSON at all. */
const nearRef = fc.record({
  migrationUid: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
  attempt: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double(), fc.string()),
  vmi: fc.oneof(fc.string(), fc.constant('')),
}, { requiredKeys: [] });
const nearGuest = fc.record({ name: fc.string(), memoryBytes: fc.oneof(fc.integer(), fc.double(), fc.constant(-1), fc.constant(0)), dirtyRate: fc.double() }, { requiredKeys: [] });
const payload: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.string({ maxLength: 200 }).map((s) => enc.encode(s)),
  fc.jsonValue({ maxDepth: 4 }).map((v) => enc.encode(JSON.stringify(v))),
  fc.tuple(nearRef, nearGuest, fc.string(), fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }))
    .map(([ref, guest, reason, extra]) => enc.encode(JSON.stringify({ ...extra, ...ref, guest, reason, domain: reason, bytesPerSecond: guest.memoryBytes, maxDowntimeMs: guest.dirtyRate, targetNode: reason, targetAddress: reason, sourceNode: reason, controls: extra }))),
  fc.constant(enc.encode('{"a":'.repeat(5000))),
  fc.constant(new Uint8Array(512 * 1024).fill(0x7b)),
);

describe('handler NATS subjects under arbitrary payloads (real nats-server)', () => {
  let nc: NatsConnection;
  let client: NatsConnection;
  let handler: RunningHandler;
  let driver: SimDriver;
  const heartbeats: number[] = [];

  beforeAll(async () => {
    nc = await connect({ servers: process.env['NATS_URL']! });
    client = await connect({ servers: process.env['NATS_URL']! });
    driver = new SimDriver({ node: NODE });
    handler = startHandler({ nc, node: NODE, driver, log: silentLogger, heartbeatIntervalMs: 200, progressIntervalMs: 100 });
    client.subscribe(subjects.heartbeat(NODE), { callback: (_e, m) => { if (Heartbeat.safeParse(json.decode(m.data)).success) heartbeats.push(Date.now()); } });
  });
  afterAll(async () => {
    await handler.stop();
    await driver.close();
    await nc.close();
    await client.close();
  });

  it.each([...COMMANDS, 'no-such-command'])('%s: every payload gets a valid reply or a refusal with a reason, never an internal error', async (command) => {
    await fc.assert(fc.asyncProperty(payload, async (data) => {
      const m = await client.request(`${subjects.nodeCommands(NODE).slice(0, -1)}${command}`, data, { timeout: 3000 });
      const body = json.decode(m.data);
      const refusal = ErrorReply.safeParse(body);
      if (refusal.success) {
        expect(refusal.data.error.length).toBeGreaterThan(0);
        expect(refusal.data.code).not.toBe('internal');
        return;
      }
      expect((COMMANDS as readonly string[]).includes(command)).toBe(true);
      expect(replies[command as Command].safeParse(body).success).toBe(true);
    }), { numRuns: 60 });
  });

  it('is still healthy afterwards: serves list-jobs and keeps sending heartbeats', async () => {
    const m = await client.request(subjects.command(NODE, 'list-jobs'), json.encode({}), { timeout: 3000 });
    expect(replies['list-jobs'].parse(json.decode(m.data)).node).toBe(NODE);
    const seen = heartbeats.length;
    await new Promise((r) => setTimeout(r, 500));
    expect(heartbeats.length).toBeGreaterThan(seen);
  });
});
