import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DAY_MS, SelfManagedCerts, TlsMaterial, type CertState, type SecretIssuerOptions, type TlsFiles } from '../certs/index.js';
import type { Logger } from '../util/log.js';
import { injectCaBundle, WEBHOOK_CA_SECRET, WEBHOOK_CONFIGURATION, WEBHOOK_SERVICE, WEBHOOK_TLS_SECRET, webhookDnsNames } from './registration.js';

/**
 * Where the webhook's serving certificate comes from, in either mode:
 * - self-managed (default): a CA and a serving certificate in Secrets, renewed
 *   at 20 % of their lifetime left (KubeVirt's rule); the CA bundle goes into
 *   the webhook configuration before a certificate from a new CA is served;
 * - files: a mounted kubernetes.io/tls Secret (cert-manager's, via the
 *   deploy/overlays/cert-manager overlay; cainjector fills the caBundle),
 *   re-read when it changes.
 * Either way the server's TlsMaterial is updated in place: no restart.
 */

export interface SelfManagedServingOptions extends SecretIssuerOptions {
  webhookConfiguration?: string;
  /** Extra SANs (the dev cluster reaches the webhook on 127.0.0.1). */
  ipAddresses?: string[];
}

export interface ServingCertificates {
  material: TlsMaterial;
  /** The state after the last reconcile (tests compare serials). */
  current(): CertState;
  /** Reconciles now (renewal due, or forced in a test by a clock jump); resolves once the server serves the result. */
  reconcileNow(): Promise<CertState>;
  stop(): void;
}

export async function startSelfManagedServing(o: SelfManagedServingOptions): Promise<ServingCertificates> {
  const certs = new SelfManagedCerts({
    client: o.kube,
    clock: o.clock,
    namespace: o.namespace,
    ca: { secretName: WEBHOOK_CA_SECRET, commonName: `${WEBHOOK_SERVICE}-ca@ferry`, validity: o.caValidityMs ?? 7 * DAY_MS },
    leaf: {
      secretName: WEBHOOK_TLS_SECRET,
      commonName: `${WEBHOOK_SERVICE}.${o.namespace}.svc`,
      dnsNames: webhookDnsNames(o.namespace),
      ...(o.ipAddresses ? { ipAddresses: o.ipAddresses } : {}),
      usage: 'server',
      role: 'webhook',
      validity: o.certValidityMs ?? DAY_MS,
    },
    publishCaBundle: async (bundle) => {
      if (await injectCaBundle(o.kube, bundle, o.webhookConfiguration ?? WEBHOOK_CONFIGURATION)) o.log.info('injected the CA bundle into the webhook configuration');
    },
    log: (msg) => o.log.info(msg),
  });
  let state = await certs.reconcile();
  const material = new TlsMaterial(state.files);
  const apply = (s: CertState) => {
    const before = material.generation;
    material.update(s.files);
    state = s;
    if (material.generation !== before) o.log.info({ generation: material.generation }, 'serving certificate reloaded');
  };
  let stopped = false;
  let timer: unknown;
  const every = o.checkEveryMs ?? 60_000;
  const loop = () => {
    timer = o.clock.setTimeout(() => {
      certs.reconcile().then(apply, (err: unknown) => o.log.error({ err: String(err) }, 'certificate rotation failed; retrying'))
        .finally(() => { if (!stopped) loop(); });
    }, every);
  };
  loop();
  return {
    material,
    current: () => state,
    async reconcileNow() {
      const s = await certs.reconcile();
      apply(s);
      return s;
    },
    stop() {
      stopped = true;
      if (timer !== undefined) o.clock.clearTimeout(timer);
    },
  };
}

async function readTlsDir(dir: string): Promise<TlsFiles> {
  const [certPem, keyPem, caPem] = await Promise.all(['tls.crt', 'tls.key', 'ca.crt'].map((f) => readFile(path.join(dir, f), 'utf8').catch(() => '')));
  return { certPem: certPem!, keyPem: keyPem!, caPem: caPem || certPem! };
}

/** Serving material from a mounted TLS Secret, re-read every `everyMs` (kubelet updates mounted Secrets in place). */
export async function startFileServing(dir: string, log: Logger, everyMs = 10_000): Promise<{ material: TlsMaterial; stop(): void }> {
  const material = new TlsMaterial(await readTlsDir(dir));
  const timer = setInterval(() => {
    readTlsDir(dir).then((files) => {
      const before = material.generation;
      material.update(files);
      if (material.generation !== before) log.info({ dir, generation: material.generation }, 'serving certificate reloaded from files');
    }).catch((err: unknown) => log.warn({ dir, err: String(err) }, 'could not reload the serving certificate; keeping the current one'));
  }, everyMs);
  timer.unref();
  return { material, stop: () => clearInterval(timer) };
}
