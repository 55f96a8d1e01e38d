import net from 'node:net';
import { z } from 'zod';
import { isMessage, NatsFrameParser, type NatsFrame } from './natsFrames.js';
import { SeededRandom } from './random.js';

/**
 * A TCP proxy between NATS clients (handlers, controllers) and the NATS
 * servers, one listener per server, that misbehaves like a bad network on
 * purpose and reproducibly (seeded): it drops, duplicates, delays and
 * reorders whole messages (it parses the protocol: PUB/HPUB from clients,
 * MSG/HMSG from servers) and cuts connections. Control frames (INFO, CONNECT,
 * PING/PONG, SUB) pass untouched: a broken handshake is a cut connection,
 * which has its own fault.
 */
export const NatsFaultRates = z.object({
  /** Per message, each way. */
  drop: z.number().min(0).max(1).default(0),
  duplicate: z.number().min(0).max(1).default(0),
  /** Holds this direction of the connection back for delayMs (order kept). */
  delay: z.number().min(0).max(1).default(0),
  delayMs: z.tuple([z.number().min(0), z.number().min(0)]).default([50, 500]),
  /** Holds the message back until the next message in the same direction has passed. */
  reorder: z.number().min(0).max(1).default(0),
  /** Only messages on subjects this matches are faulted (default: all). */
  subjects: z.instanceof(RegExp).optional(),
});
export type NatsFaultRates = z.infer<typeof NatsFaultRates>;

export type NatsFaultKind = 'drop' | 'duplicate' | 'delay' | 'reorder' | 'cut';

export interface NatsProxy {
  /** Client URLs, in the order of the upstreams. */
  urls: string[];
  enable(rates: Partial<z.input<typeof NatsFaultRates>>): void;
  disable(): void;
  /** Cuts every open connection (or those to one upstream): clients reconnect. Returns how many were cut. */
  cut(upstreamIndex?: number): number;
  readonly counts: Record<NatsFaultKind, number>;
  connections(): number;
  close(): Promise<void>;
}

interface Pipe {
  client: net.Socket;
  server: net.Socket;
  upstream: number;
}

export async function startNatsProxy(upstreams: ReadonlyArray<{ host: string; port: number }>, seed: number): Promise<NatsProxy> {
  const random = new SeededRandom(seed);
  let rates: NatsFaultRates | undefined;
  const counts: Record<NatsFaultKind, number> = { drop: 0, duplicate: 0, delay: 0, reorder: 0, cut: 0 };
  const pipes = new Set<Pipe>();
  const servers: net.Server[] = [];

  /** One direction: frames go out in order, except what the faults do to them. */
  const direction = (from: net.Socket, to: net.Socket, onError: () => void) => {
    const parser = new NatsFrameParser();
    let chain = Promise.resolve();
    let held: NatsFrame | undefined;
    const send = (f: NatsFrame) => {
      if (!to.destroyed) to.write(f.raw);
    };
    from.on('data', (chunk: Buffer) => {
      let frames: NatsFrame[];
      try {
        frames = parser.push(chunk);
      } catch {
        onError();
        return;
      }
      for (const f of frames) {
        chain = chain.then(async () => {
          const r = rates;
          if (!r || !isMessage(f) || (r.subjects && !r.subjects.test(f.subject ?? ''))) {
            send(f);
            return;
          }
          if (random.chance(r.drop)) {
            counts.drop++;
            return;
          }
          if (random.chance(r.delay)) {
            counts.delay++;
            const [lo, hi] = r.delayMs;
            await new Promise((res) => setTimeout(res, lo + (hi - lo) * random.next()));
          }
          if (held) {
            // The held message goes out after this one: the two are swapped.
            send(f);
            send(held);
            held = undefined;
            return;
          }
          if (random.chance(r.reorder)) {
            counts.reorder++;
            held = f;
            // Not held forever on a quiet connection.
            setTimeout(() => {
              if (held === f) {
                held = undefined;
                send(f);
              }
            }, 200);
            return;
          }
          send(f);
          if (random.chance(r.duplicate)) {
            counts.duplicate++;
            send(f);
          }
        });
      }
    });
  };

  for (const [i, up] of upstreams.entries()) {
    const server = net.createServer((client) => {
      const upstream = net.connect(up.port, up.host);
      const pipe: Pipe = { client, server: upstream, upstream: i };
      pipes.add(pipe);
      const end = () => {
        pipes.delete(pipe);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end);
      upstream.on('error', end);
      client.on('close', end);
      upstream.on('close', end);
      direction(client, upstream, end);
      direction(upstream, client, end);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    servers.push(server);
  }

  return {
    urls: servers.map((s) => `nats://127.0.0.1:${(s.address() as net.AddressInfo).port}`),
    enable(r) {
      rates = NatsFaultRates.parse(r);
    },
    disable() {
      rates = undefined;
    },
    cut(upstreamIndex) {
      let n = 0;
      for (const p of [...pipes]) {
        if (upstreamIndex !== undefined && p.upstream !== upstreamIndex) continue;
        p.client.destroy();
        p.server.destroy();
        pipes.delete(p);
        n++;
      }
      counts.cut += n;
      return n;
    },
    counts,
    connections: () => pipes.size,
    async close() {
      for (const p of pipes) {
        p.client.destroy();
        p.server.destroy();
      }
      pipes.clear();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}
