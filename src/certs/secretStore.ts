import type { V1Secret } from '@kubernetes/client-node';
import { isConflict, isNotFound, type KubeClient } from '../kube/client.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { checkCertificate } from './peer.js';
import { createCa, issue, needsRenewal, splitPemBundle, validity, type KeyPairPem, type LeafOptions } from './pki.js';
import type { TlsFiles } from './tlsMaterial.js';

/**
 * Self-managed certificates kept in Kubernetes Secrets, as KubeVirt's operator
 * keeps its own: one CA Secret and one Secret per serving/client leaf, both
 * `kubernetes.io/tls`. Each replica runs reconcile() on a timer; writes carry
 * the resourceVersion they read, so when two replicas rotate at once one wins
 * and the other re-reads what it wrote. Nothing is kept in memory that is not
 * also in a Secret.
 *
 * Rotation keeps every peer trusting every certificate in use:
 * - the CA Secret's `ca-bundle.crt` holds the new CA *and* every older CA not
 *   yet expired, so a leaf signed by the previous CA still verifies;
 * - publishCaBundle() (e.g. injecting caBundle into webhook configurations)
 *   runs before a leaf signed by a new CA is written, so no client sees a
 *   certificate from a CA it has not been told about.
 */

export const TLS_CERT = 'tls.crt';
export const TLS_KEY = 'tls.key';
export const CA_CERT = 'ca.crt';
export const CA_BUNDLE = 'ca-bundle.crt';

export interface SelfManagedCertsOptions {
  client: KubeClient;
  clock: Clock;
  namespace: string;
  ca: { secretName: string; commonName: string; validity: number };
  leaf: { secretName: string } & Omit<LeafOptions, 'clock'>;
  /** Renew when at most this fraction of a certificate's lifetime is left (KubeVirt: 0.2). */
  renewFraction?: number;
  /** Called with the CA bundle whenever it changes, before a leaf from a new CA is stored. */
  publishCaBundle?: (caBundlePem: string) => Promise<void>;
  /**
   * After a CA rotation, keep serving the old leaves (now with the new bundle
   * in ca.crt) this long from the new CA's start before re-issuing them, so
   * that every peer that mounts a Secret has re-read the bundle before it
   * meets a leaf from the new CA (the kubelet updates mounted Secrets within
   * about a minute). 0 (default): re-issue at once, for a webhook whose
   * clients learn the bundle through publishCaBundle first.
   */
  caPropagationMs?: number;
  /** Called once per reconcile that changed anything, saying what and why. */
  log?: (msg: string) => void;
}

export interface CertState {
  ca: KeyPairPem;
  /** Current CA first, then older CAs that have not expired. */
  caBundle: string;
  leaf: KeyPairPem;
  /** Ready for TlsMaterial. */
  files: TlsFiles;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

export class SelfManagedCerts {
  private readonly renewFraction: number;

  constructor(private readonly o: SelfManagedCertsOptions) {
    this.renewFraction = o.renewFraction ?? 0.2;
  }

  /** Brings both Secrets to a valid, not-due state and returns what they hold. Idempotent. */
  async reconcile(): Promise<CertState> {
    const { ca, caBundle } = await this.ensureCa();
    if (this.o.publishCaBundle) await this.o.publishCaBundle(caBundle);
    const leaf = await this.ensureLeaf(ca, caBundle);
    return { ca, caBundle, leaf, files: { certPem: leaf.certPem, keyPem: leaf.keyPem, caPem: caBundle } };
  }

  /**
   * Runs reconcile() now and then every `everyMs` until the returned stop() is
   * called; `onState` gets each result (to update a TlsMaterial), `onError`
   * each failure (the next round retries).
   */
  run(everyMs: number, onState: (s: CertState) => void, onError: (err: unknown) => void): () => void {
    let stopped = false;
    let timer: unknown;
    const round = async () => {
      try {
        const s = await this.reconcile();
        if (!stopped) onState(s);
      } catch (err) {
        if (!stopped) onError(err);
      }
      if (!stopped) timer = this.o.clock.setTimeout(() => void round(), everyMs);
    };
    void round();
    return () => {
      stopped = true;
      if (timer !== undefined) this.o.clock.clearTimeout(timer);
    };
  }

  private async ensureCa(): Promise<{ ca: KeyPairPem; caBundle: string }> {
    const { namespace, clock } = this.o;
    const name = this.o.ca.secretName;
    for (let attempt = 0; ; attempt++) {
      const existing = await this.read(name);
      const cert = unb64(existing?.data?.[TLS_CERT]);
      const key = unb64(existing?.data?.[TLS_KEY]);
      const now = clock.now();
      if (existing && cert && key && !needsRenewal(cert, now, this.renewFraction)) {
        return { ca: { certPem: cert, keyPem: key }, caBundle: unb64(existing.data?.[CA_BUNDLE]) ?? cert };
      }
      const ca = await createCa({ commonName: this.o.ca.commonName, validity: this.o.ca.validity, clock });
      // Keep the CAs that still sign live leaves trusted until they expire.
      const previous = splitPemBundle(unb64(existing?.data?.[CA_BUNDLE]) ?? cert ?? '').filter((p) => validity(p).notAfter > now);
      const caBundle = [ca.certPem, ...previous].join('');
      const why = !existing ? 'none existed' : !cert || !key ? 'the Secret was incomplete' : 'the old one reached its renewal point';
      const wrote = await this.write(name, existing, { [TLS_CERT]: ca.certPem, [TLS_KEY]: ca.keyPem, [CA_BUNDLE]: caBundle });
      if (wrote) {
        this.o.log?.(`created a new CA in Secret ${namespace}/${name} because ${why}; bundle holds ${previous.length + 1} CA(s)`);
        return { ca, caBundle };
      }
      if (attempt >= 3) throw new Error(`Secret ${namespace}/${name}: lost the race to write the CA four times in a row`);
    }
  }

  private async ensureLeaf(ca: KeyPairPem, caBundle: string): Promise<KeyPairPem> {
    const { namespace, clock, leaf: spec } = this.o;
    const name = spec.secretName;
    for (let attempt = 0; ; attempt++) {
      const existing = await this.read(name);
      const cert = unb64(existing?.data?.[TLS_CERT]);
      const key = unb64(existing?.data?.[TLS_KEY]);
      const now = clock.now();
      let why = this.leafProblem(cert, key, ca, now);
      if (why === 'the CA was rotated' && this.stillPropagating(cert!, ca, caBundle, now)) why = undefined;
      if (!why) {
        const leaf = { certPem: cert!, keyPem: key! };
        if (unb64(existing?.data?.[CA_CERT]) === caBundle) return leaf;
        // Same leaf, but peers reading ca.crt from this Secret must learn the new bundle.
        if (await this.write(name, existing, { [TLS_CERT]: leaf.certPem, [TLS_KEY]: leaf.keyPem, [CA_CERT]: caBundle })) return leaf;
      } else {
        const { secretName: _unused, ...leafOpts } = spec;
        const leaf = await issue(ca, { ...leafOpts, clock });
        if (await this.write(name, existing, { [TLS_CERT]: leaf.certPem, [TLS_KEY]: leaf.keyPem, [CA_CERT]: caBundle })) {
          this.o.log?.(`issued a new certificate for ${spec.commonName} into Secret ${namespace}/${name} because ${why}`);
          return leaf;
        }
      }
      if (attempt >= 3) throw new Error(`Secret ${namespace}/${name}: lost the race to write the certificate four times in a row`);
    }
  }

  /** The new CA is younger than caPropagationMs and the old leaf still holds under the bundle: keep it for now. */
  private stillPropagating(cert: string, ca: KeyPairPem, caBundle: string, now: number): boolean {
    const wait = this.o.caPropagationMs ?? 0;
    if (wait <= 0 || now >= validity(ca.certPem).notBefore + wait) return false;
    const underBundle = checkCertificate(cert, { caPem: caBundle, now, roles: this.o.leaf.role ? [this.o.leaf.role] : undefined });
    return underBundle.ok && !needsRenewal(cert, now, this.renewFraction);
  }

  /** Why the stored leaf must be replaced, or undefined if it is good. */
  private leafProblem(cert: string | undefined, key: string | undefined, ca: KeyPairPem, now: number): string | undefined {
    if (!cert || !key) return 'none existed';
    const verdict = checkCertificate(cert, { caPem: ca.certPem, now, roles: this.o.leaf.role ? [this.o.leaf.role] : undefined });
    if (!verdict.ok) return verdict.reason.includes('not signed') ? 'the CA was rotated' : verdict.reason;
    if (needsRenewal(cert, now, this.renewFraction)) return 'it reached its renewal point';
    return undefined;
  }

  private async read(name: string): Promise<V1Secret | undefined> {
    try {
      return await this.o.client.core.readNamespacedSecret({ namespace: this.o.namespace, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Creates or replaces (guarded by resourceVersion) the Secret; false if another writer got there first. */
  private async write(name: string, existing: V1Secret | undefined, data: Record<string, string>): Promise<boolean> {
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name,
        namespace: this.o.namespace,
        labels: { ...(existing?.metadata?.labels ?? {}), 'app.kubernetes.io/managed-by': 'ferry' },
        ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
      },
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
    };
    try {
      if (existing) await this.o.client.core.replaceNamespacedSecret({ namespace: this.o.namespace, name, body });
      else await this.o.client.core.createNamespacedSecret({ namespace: this.o.namespace, body });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }
}

export const DAY_MS = 86_400_000;

/** What every component that keeps its own CA and certificates in Secrets is given (the webhook, the migration proxy). */
export interface SecretIssuerOptions {
  kube: KubeClient;
  clock: Clock;
  log: Logger;
  namespace: string;
  /** KubeVirt's defaults: CA 7 days, certificates 24 hours. */
  caValidityMs?: number;
  certValidityMs?: number;
  /** How often the Secrets are checked for renewal (and for another replica's rotation). Default 60 s. */
  checkEveryMs?: number;
}
