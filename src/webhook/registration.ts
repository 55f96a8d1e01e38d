import { AdmissionregistrationV1Api, type V1ValidatingWebhookConfiguration, type V1Service } from '@kubernetes/client-node';
import { isConflict, isNotFound, type KubeClient } from '../kube/client.js';

/**
 * How the API server finds Ferry's webhook: a Service in front of the webhook
 * Deployment and one ValidatingWebhookConfiguration. deploy/base/webhook.yaml
 * holds the same objects (test/deploy checks they agree), and `ferry dev`
 * applies these, so the dev cluster calls the webhook exactly as a real one does.
 */

export const WEBHOOK_NAMESPACE = 'ferry-system';
export const WEBHOOK_SERVICE = 'ferry-webhook';
export const WEBHOOK_CONFIGURATION = 'ferry-admission';
export const WEBHOOK_SERVICE_PORT = 443;
export const WEBHOOK_TARGET_PORT = 8443;
/** Secrets of the self-managed certificates (deploy/base/webhook.yaml's RBAC names them). */
export const WEBHOOK_CA_SECRET = 'ferry-webhook-ca';
export const WEBHOOK_TLS_SECRET = 'ferry-webhook-tls';

export const WebhookPaths = {
  eviction: '/validate-pod-eviction',
  migration: '/validate-migration',
  resources: '/validate-resources',
} as const;

export const WebhookNames = {
  eviction: 'virt-launcher-eviction-interceptor.ferry.dev',
  migration: 'vmim-create-validator.ferry.dev',
  resources: 'ferry-resources-validator.ferry.dev',
  kubevirt: 'kubevirt-migration-config-validator.ferry.dev',
} as const;

/** The Service's DNS names, which the serving certificate must carry. */
export function webhookDnsNames(namespace = WEBHOOK_NAMESPACE, service = WEBHOOK_SERVICE): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

const partOf = { 'app.kubernetes.io/part-of': 'ferry', 'app.kubernetes.io/component': 'webhook' };

export function webhookService(namespace = WEBHOOK_NAMESPACE): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: WEBHOOK_SERVICE, namespace, labels: { ...partOf } },
    spec: {
      selector: { 'app.kubernetes.io/name': 'ferry-webhook' },
      ports: [{ name: 'https', port: WEBHOOK_SERVICE_PORT, targetPort: 'https', protocol: 'TCP' }],
    },
  };
}

/**
 * The webhooks. Eviction fails closed, as KubeVirt's does: with the webhook
 * down, an eviction of a launcher pod is refused rather than let through to
 * stop a VM. The KubeVirt CR check fails open: Ferry being down must not
 * stop KubeVirt's operator from changing its own configuration.
 */
export function webhookConfiguration(caBundle?: string, namespace = WEBHOOK_NAMESPACE): V1ValidatingWebhookConfiguration {
  const client = (path: string) => ({ service: { namespace, name: WEBHOOK_SERVICE, path, port: WEBHOOK_SERVICE_PORT }, ...(caBundle ? { caBundle } : {}) });
  const common = { admissionReviewVersions: ['v1'], matchPolicy: 'Equivalent', timeoutSeconds: 10 };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: WEBHOOK_CONFIGURATION, labels: { ...partOf } },
    webhooks: [
      {
        name: WebhookNames.eviction,
        clientConfig: client(WebhookPaths.eviction),
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['*'], resources: ['pods/eviction'], scope: 'Namespaced' }],
        failurePolicy: 'Fail',
        sideEffects: 'NoneOnDryRun',
        matchConditions: [{ name: 'only-launchers', expression: 'object.metadata.name.startsWith("virt-launcher")' }],
        ...common,
      },
      {
        name: WebhookNames.migration,
        clientConfig: client(WebhookPaths.migration),
        rules: [{ apiGroups: ['kubevirt.io'], apiVersions: ['v1'], operations: ['CREATE'], resources: ['virtualmachineinstancemigrations'], scope: 'Namespaced' }],
        failurePolicy: 'Fail',
        sideEffects: 'None',
        ...common,
      },
      {
        name: WebhookNames.resources,
        clientConfig: client(WebhookPaths.resources),
        rules: [
          { apiGroups: ['migrations.kubevirt.io'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE'], resources: ['migrationpolicies'], scope: 'Cluster' },
          { apiGroups: ['ferry.dev'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE'], resources: ['maintenancewindows'], scope: 'Cluster' },
        ],
        failurePolicy: 'Fail',
        sideEffects: 'None',
        ...common,
      },
      {
        name: WebhookNames.kubevirt,
        clientConfig: client(WebhookPaths.resources),
        rules: [{ apiGroups: ['kubevirt.io'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['kubevirts'], scope: 'Namespaced' }],
        failurePolicy: 'Ignore',
        sideEffects: 'None',
        ...common,
      },
    ],
  };
}

/**
 * Writes `caBundle` (base64 PEM) into every webhook of the configuration, as
 * KubeVirt's operator does for virt-api's; a no-op when it is already there.
 */
export async function injectCaBundle(kube: KubeClient, caBundlePem: string, name = WEBHOOK_CONFIGURATION): Promise<boolean> {
  const api = kube.kc.makeApiClient(AdmissionregistrationV1Api);
  const bundle = Buffer.from(caBundlePem, 'utf8').toString('base64');
  for (let attempt = 0; ; attempt++) {
    let current: V1ValidatingWebhookConfiguration;
    try {
      current = await api.readValidatingWebhookConfiguration({ name });
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
    const hooks = current.webhooks ?? [];
    if (hooks.every((w) => w.clientConfig.caBundle === bundle)) return false;
    for (const w of hooks) w.clientConfig.caBundle = bundle;
    try {
      await api.replaceValidatingWebhookConfiguration({ name, body: current });
      return true;
    } catch (err) {
      if (!isConflict(err) || attempt >= 4) throw err;
    }
  }
}

/** Creates or replaces the Service and the configuration (what `kubectl apply -k deploy/...` does), for `ferry dev`. */
export async function registerWebhook(kube: KubeClient, caBundlePem: string, namespace = WEBHOOK_NAMESPACE): Promise<void> {
  const api = kube.kc.makeApiClient(AdmissionregistrationV1Api);
  try {
    await kube.core.createNamespacedService({ namespace, body: webhookService(namespace) });
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
  const body = webhookConfiguration(Buffer.from(caBundlePem, 'utf8').toString('base64'), namespace);
  try {
    await api.createValidatingWebhookConfiguration({ body });
  } catch (err) {
    if (!isConflict(err)) throw err;
    await injectCaBundle(kube, caBundlePem);
  }
}
