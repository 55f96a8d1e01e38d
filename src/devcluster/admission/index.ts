import type { KubeObject } from '../object.js';
import type { ObjectStore } from '../store.js';
import type { AdmissionAttributes } from './attributes.js';
import { anyPolicyRuleMatches, runPolicies, type PolicySource } from './policies.js';
import { ServiceRouter } from './services.js';
import { anyWebhookRuleMatches, runMutatingWebhooks, runValidatingWebhooks, type WebhookCall, type WebhookSource } from './webhooks.js';

export type { WebhookCall } from './webhooks.js';

export type { AdmissionAttributes, AdmissionUser, Operation } from './attributes.js';
export { ServiceRouter, type ServiceTarget } from './services.js';
export { admissionResources } from './resources.js';

/**
 * The dev cluster's admission chain, in kube-apiserver's plugin order:
 * mutating webhooks, then ValidatingAdmissionPolicies, then validating
 * webhooks. Everything is read from the store on each request, so creating or
 * deleting a configuration takes effect at once (the real server's informers
 * lag by a moment; nothing in Ferry relies on that lag).
 */
export class AdmissionChain {
  readonly router: ServiceRouter;
  private readonly webhooks: WebhookSource;
  private readonly policies: PolicySource;

  constructor(store: ObjectStore, log?: (msg: string) => void, observe?: (call: WebhookCall) => void) {
    this.router = new ServiceRouter((ns, name) => store.tryGet('services', name, ns) !== undefined);
    const nsLabels = (ns: string) => store.tryGet('namespaces', ns)?.metadata.labels;
    this.webhooks = {
      configurations: (kind) => store.list(kind === 'validating' ? 'validatingwebhookconfigurations.admissionregistration.k8s.io' : 'mutatingwebhookconfigurations.admissionregistration.k8s.io').items,
      namespaceLabels: nsLabels,
      router: this.router,
      log,
      observe,
    };
    this.policies = {
      policies: () => store.list('validatingadmissionpolicies.admissionregistration.k8s.io').items,
      bindings: () => store.list('validatingadmissionpolicybindings.admissionregistration.k8s.io').items,
      namespaceLabels: nsLabels,
      namespaceObject: (ns) => store.tryGet('namespaces', ns),
      params: (apiVersion, kind, namespace) => {
        const type = store.registry.byKind(apiVersion, kind);
        if (!type) return undefined;
        return { namespaced: type.namespaced, items: store.list(type, type.namespaced && namespace ? { namespace } : {}).items };
      },
      log,
    };
  }

  /** Whether any webhook or policy has a rule for this kind of request; if not, the request skips admission. */
  concerns(a: AdmissionAttributes): boolean {
    return anyWebhookRuleMatches(a, this.webhooks) || anyPolicyRuleMatches(a, this.policies);
  }

  /**
   * Runs the chain; resolves to the object as mutated, rejects with the
   * ApiError the client gets. `beforeValidation` is the registry's own step
   * between the two phases (a create's generated name is chosen there, so
   * validating webhooks see it, as on the real server).
   */
  async admit(a: AdmissionAttributes, beforeValidation?: (o: KubeObject | null) => KubeObject | null): Promise<KubeObject | null> {
    const mutated = await runMutatingWebhooks(a, this.webhooks);
    const object = beforeValidation ? beforeValidation(mutated) : mutated;
    const admitted = { ...a, object, name: object?.metadata.name ?? a.name };
    await runPolicies(admitted, this.policies);
    await runValidatingWebhooks(admitted, this.webhooks);
    return object;
  }
}
