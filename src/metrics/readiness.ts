import { Events, type NatsConnection } from 'nats';
import { fail, pass, type Check, type Checks } from './healthServer.js';

/**
 * Whether `nc` is connected now. nats.js reconnects on its own and has no
 * "connected?" call, so this follows its status events.
 */
export function natsConnectionCheck(nc: NatsConnection): Check {
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === Events.Disconnect) connected = false;
      else if (s.type === Events.Reconnect) connected = true;
    }
  })();
  return () => {
    if (nc.isClosed()) return fail('NATS connection is closed');
    if (nc.isDraining()) return fail('NATS connection is draining (shutting down)');
    return connected ? pass(`connected to ${nc.getServer()}`) : fail(`disconnected from NATS (last server ${nc.getServer()}); reconnecting`);
  };
}

/**
 * Controller readiness. A standby replica (not holding the lease) is ready:
 * readiness gates rollouts and Service endpoints, not leadership, and a
 * Deployment whose standbys were never Ready could not finish a rolling update.
 * The leader is ready once its caches have synced. Leadership shows in the
 * report and in `ferry_controller_leader`.
 */
export function controllerReadiness(deps: { nats: Check; cachesSynced: () => boolean; isLeader: () => boolean }): Checks {
  return {
    nats: deps.nats,
    caches: () => {
      if (!deps.isLeader()) return pass('standby: caches start when this replica takes the lease');
      return deps.cachesSynced() ? pass('synced') : fail('informer caches have not synced yet');
    },
    leadership: () => pass(deps.isLeader() ? 'leader' : 'standby'),
  };
}

/** Handler readiness: it can take commands only while connected to NATS. */
export function handlerReadiness(deps: { nats: Check }): Checks {
  return { nats: deps.nats };
}

/** Liveness: the process answers HTTP, which is all a restart would fix. */
export function liveness(): Checks {
  return { process: () => pass(`up ${Math.round(process.uptime())}s`) };
}
