import { getPath, type KubeObject } from '../object.js';
import type { ResourceDefinition } from '../registry.js';

/** The admissionregistration.k8s.io/v1 types, and Services (webhooks are reached through one). */
const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' } as const;
const count = (path: string) => (o: KubeObject) => {
  const v = getPath(o, path);
  return Array.isArray(v) ? v.length : 0;
};

export const admissionResources: ResourceDefinition[] = [
  {
    group: 'admissionregistration.k8s.io', version: 'v1', kind: 'ValidatingWebhookConfiguration', plural: 'validatingwebhookconfigurations', namespaced: false,
    printerColumns: [{ name: 'Webhooks', type: 'integer', value: count('webhooks') }, age],
  },
  {
    group: 'admissionregistration.k8s.io', version: 'v1', kind: 'MutatingWebhookConfiguration', plural: 'mutatingwebhookconfigurations', namespaced: false,
    printerColumns: [{ name: 'Webhooks', type: 'integer', value: count('webhooks') }, age],
  },
  {
    group: 'admissionregistration.k8s.io', version: 'v1', kind: 'ValidatingAdmissionPolicy', plural: 'validatingadmissionpolicies', namespaced: false, hasStatus: true,
    printerColumns: [{ name: 'Validations', type: 'integer', value: count('spec.validations') }, { name: 'ParamKind', type: 'string', jsonPath: '.spec.paramKind' }, age],
  },
  {
    group: 'admissionregistration.k8s.io', version: 'v1', kind: 'ValidatingAdmissionPolicyBinding', plural: 'validatingadmissionpolicybindings', namespaced: false,
    printerColumns: [{ name: 'PolicyName', type: 'string', jsonPath: '.spec.policyName' }, { name: 'ParamRef', type: 'string', jsonPath: '.spec.paramRef' }, age],
  },
  {
    group: '', version: 'v1', kind: 'Service', plural: 'services', shortNames: ['svc'], namespaced: true, hasStatus: true, strategicMergePatch: true, categories: ['all'],
    printerColumns: [
      { name: 'Type', type: 'string', value: (s) => String(getPath(s, 'spec.type') ?? 'ClusterIP') },
      { name: 'Cluster-IP', type: 'string', value: (s) => String(getPath(s, 'spec.clusterIP') ?? '<none>') },
      { name: 'Port(s)', type: 'string', value: (s) => ((getPath(s, 'spec.ports') as { port?: number; protocol?: string }[] | undefined) ?? []).map((p) => `${p.port}/${p.protocol ?? 'TCP'}`).join(',') || '<none>' },
      age,
    ],
  },
];
