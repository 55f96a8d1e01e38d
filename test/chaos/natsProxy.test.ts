import { connect, Events, type NatsConnection } from 'nats';
import { NatsFrameParser } from '../../src/chaos/natsFrames.js';
import { startNatsProxy, type NatsProxy } from '../../src/chaos/natsProxy.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe('NATS frame parser', () => {
  it('splits control lines and messages, whole, across any chunking', () => {
    const stream = Buffer.from('INFO {"a":1}\r\nPING\r\nPUB foo.bar reply.1 5\r\nhello\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG x 1 0\r\n\r\n');
    for (const step of [1, 3, 7, stream.length]) {
      const p = new NatsFrameParser();
      const frames = [];
      for (let i = 0; i < stream.length; i += step) frames.push(...p.push(stream.subarray(i, i + step)));
      expect(frames.map((f) => [f.op, f.subject])).toEqual([['INFO', undefined], ['PING', undefined], ['PUB', 'foo.bar'], ['HPUB', 'h'], ['MSG', 'x']]);
      expect(Buffer.concat(frames.map((f) => f.raw)).equals(stream)).toBe(true);
    }
  });

  it('refuses what is not NATS', () => {
    expect(() => new NatsFrameParser().push(Buffer.from('PUB foo notanumber\r\n'))).toThrow(/malformed NATS PUB/);
    expect(() => new NatsFrameParser().push(Buffer.alloc(70 * 1024, 65))).toThrow(/too long/);
  });
});

describe('NATS fault proxy (real nats-server)', () => {
  let proxy: NatsProxy;
  let pub: NatsConnection;
  let sub: NatsConnection;
  beforeAll(async () => {
    const url = new URL(process.env['NATS_URL']!);
    proxy = await startNatsProxy([{ host: url.hostname, port: Number(url.port) }], 42);
    pub = await connect({ servers: proxy.urls, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    sub = await connect({ servers: process.env['NATS_URL']! });
  });
  afterAll(async () => {
    await pub.close();
    await sub.close();
    await proxy.close();
  });
  afterEach(() => proxy.disable());

  async function received(subject: string, send: () => void, waitMs = 300): Promise<string[]> {
    const got: string[] = [];
    const s = sub.subscribe(subject, { callback: (_e, m) => got.push(dec(m.data)) });
    await sub.flush();
    send();
    await pub.flush();
    await new Promise((r) => setTimeout(r, waitMs));
    s.unsubscribe();
    return got;
  }

  it('passes messages untouched while disabled', async () => {
    expect(await received('p.clean', () => { pub.publish('p.clean', enc('a')); pub.publish('p.clean', enc('b')); })).toEqual(['a', 'b']);
  });

  it('drops messages on the subjects it is told to, and only those', async () => {
    proxy.enable({ drop: 1, subjects: /^p\.lossy$/ });
    expect(await received('p.lossy', () => pub.publish('p.lossy', enc('x')))).toEqual([]);
    expect(await received('p.fine', () => pub.publish('p.fine', enc('y')))).toEqual(['y']);
    expect(proxy.counts.drop).toBeGreaterThanOrEqual(1);
  });

  it('duplicates and reorders messages', async () => {
    proxy.enable({ duplicate: 1, subjects: /^p\.dup$/ });
    expect(await received('p.dup', () => pub.publish('p.dup', enc('d')))).toEqual(['d', 'd']);
    proxy.enable({ reorder: 1, subjects: /^p\.swap$/ });
    expect(await received('p.swap', () => { pub.publish('p.swap', enc('1')); pub.publish('p.swap', enc('2')); })).toEqual(['2', '1']);
  });

  it('delays messages, keeping their order', async () => {
    proxy.enable({ delay: 1, delayMs: [150, 150], subjects: /^p\.slow$/ });
    const t0 = Date.now();
    const got = await received('p.slow', () => { pub.publish('p.slow', enc('1')); pub.publish('p.slow', enc('2')); }, 600);
    expect(got).toEqual(['1', '2']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
  });

  it('cuts connections; the client reconnects through it and carries on', async () => {
    const reconnected = (async () => {
      for await (const s of pub.status()) if (s.type === Events.Reconnect) return true;
      return false;
    })();
    expect(proxy.cut()).toBeGreaterThanOrEqual(1);
    expect(await reconnected).toBe(true);
    expect(await received('p.after', () => pub.publish('p.after', enc('z')))).toEqual(['z']);
  });
});
