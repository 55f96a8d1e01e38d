import { DAY_MS, SelfManagedCerts, type CertState, type SecretIssuerOptions } from '../certs/index.js';
import { HANDLER_SERVER_ROLE, MIGRATION_CLIENT_ROLE } from './roles.js';

/**
 * The migration proxy's certificates in the cluster, issued and rotated by
 * the controller, as KubeVirt's operator keeps virt-handler's:
 *
 * - `ferry-migration-ca`: the CA (tls.crt, tls.key) and `ca-bundle.crt`, the
 *   current CA and every older one not yet expired;
 * - `ferry-handler-server-certs`: the handlers' server identity (role
 *   "handler"), one Secret mounted by every handler, as KubeVirt's
 *   kubevirt-virt-handler-server-certs — handlers are reached by pod IP and
 *   checked by chain and role, not host name, so one identity serves all;
 * - `ferry-migration-client-certs`: the migration client identity (role
 *   "migration"), as KubeVirt's kubevirt-virt-handler-certs.
 *
 * All are `kubernetes.io/tls` with `ca.crt` holding the bundle, the layout
 * `--migration-server-certs` / `--migration-client-certs` read. Leaves are
 * renewed at 20 % of their lifetime left. A CA rotation happens in two
 * steps: first the new bundle (new CA and the old one) goes into every
 * Secret's ca.crt beside the old leaves; only `caPropagationMs` later are
 * leaves from the new CA issued. By then every handler has re-read its
 * Secrets (the kubelet updates mounted Secrets within about a minute), so
 * none meets a leaf from a CA it does not know yet; open connections keep
 * the identity they were made with.
 */
export const MIGRATION_CA_SECRET = 'ferry-migration-ca';
export const HANDLER_SERVER_SECRET = 'ferry-handler-server-certs';
export const MIGRATION_CLIENT_SECRET = 'ferry-migration-client-certs';

/** Well over the kubelet's Secret sync (about a minute) and the handler's 10 s re-read. */
const DEFAULT_CA_PROPAGATION_MS = 10 * 60_000;

export interface MigrationCertSecretsOptions extends SecretIssuerOptions {
  /** After a CA rotation, how long the old leaves stay (with the new bundle) before new ones are issued. Default 10 min. */
  caPropagationMs?: number;
}

export interface MigrationCertSecrets {
  server: CertState;
  client: CertState;
}

function stores(o: MigrationCertSecretsOptions): { server: SelfManagedCerts; client: SelfManagedCerts } {
  const ca = { secretName: MIGRATION_CA_SECRET, commonName: 'ferry-migration-ca', validity: o.caValidityMs ?? 7 * DAY_MS };
  const validity = o.certValidityMs ?? DAY_MS;
  const common = {
    client: o.kube, clock: o.clock, namespace: o.namespace, ca, log: (msg: string) => o.log.info(msg),
    caPropagationMs: o.caPropagationMs ?? DEFAULT_CA_PROPAGATION_MS,
  };
  return {
    server: new SelfManagedCerts({
      ...common,
      leaf: { secretName: HANDLER_SERVER_SECRET, commonName: 'ferry:node:handler', usage: 'server', role: HANDLER_SERVER_ROLE, validity },
    }),
    client: new SelfManagedCerts({
      ...common,
      leaf: { secretName: MIGRATION_CLIENT_SECRET, commonName: 'ferry:client:migration', usage: 'client', role: MIGRATION_CLIENT_ROLE, validity },
    }),
  };
}

/** One pass: the CA, then both leaves, each valid and not due (idempotent; safe from two replicas). */
export async function reconcileMigrationCerts(o: MigrationCertSecretsOptions): Promise<MigrationCertSecrets> {
  const s = stores(o);
  // The server store rotates the CA when due; the client store then finds it current and only re-issues its leaf.
  const server = await s.server.reconcile();
  const client = await s.client.reconcile();
  return { server, client };
}

/** Reconciles now and then every `checkEveryMs` until stopped; failures are logged and retried next round. */
export function runMigrationCerts(o: MigrationCertSecretsOptions): { stop(): void; first: Promise<MigrationCertSecrets> } {
  let stopped = false;
  let timer: unknown;
  let resolveFirst!: (s: MigrationCertSecrets) => void;
  let rejectFirst!: (err: unknown) => void;
  const first = new Promise<MigrationCertSecrets>((res, rej) => { resolveFirst = res; rejectFirst = rej; });
  let isFirst = true;
  const round = async () => {
    try {
      const s = await reconcileMigrationCerts(o);
      if (isFirst) resolveFirst(s);
    } catch (err) {
      o.log.error({ err: (err as Error).message }, 'migration certificates not reconciled; retrying');
      if (isFirst) rejectFirst(err);
    }
    isFirst = false;
    if (!stopped) timer = o.clock.setTimeout(() => void round(), o.checkEveryMs ?? 60_000);
  };
  void round();
  first.catch(() => undefined);
  return {
    first,
    stop() {
      stopped = true;
      if (timer !== undefined) o.clock.clearTimeout(timer);
    },
  };
}
