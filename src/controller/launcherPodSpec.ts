import type { V1Affinity, V1PodAffinityTerm, V1PodSpec } from '@kubernetes/client-node';
import { Annotations, Labels } from '../api/vmi.js';

/**
 * The migration target pod's spec, derived from the source launcher pod's,
 * as KubeVirt renders the target from the same manifest as the source: the
 * same containers (images, commands, resources, mounts), volumes, service
 * account, security context, tolerations, DNS and scheduling settings; never
 * the source's node binding. Pure: no I/O.
 */

/**
 * Spec fields that bind a pod to where the source runs, or are set by the
 * cluster: not copied. The node selector is rendered afresh from the VMI and
 * the VMIM (as KubeVirt renders it from the VMI): the source's may carry the
 * previous migration's pin to the node the VM now runs on.
 */
const NOT_COPIED = new Set(['nodeName', 'nodeSelector', 'hostname', 'subdomain', 'schedulerName', 'ephemeralContainers']);

/** Labels and annotations of the source pod that describe the source only. */
const SOURCE_ONLY_LABELS = new Set<string>([Labels.migrationJobUID, 'pod-template-hash', 'controller-revision-hash']);
const SOURCE_ONLY_ANNOTATIONS = new Set<string>([Annotations.migrationJobName, 'kubevirt.io/migration-target-ready-timestamp', 'kubectl.kubernetes.io/last-applied-configuration']);

export interface TargetPodSpecInput {
  /** The source launcher pod's metadata and spec (as read from the API). */
  source: { labels?: Record<string, string>; annotations?: Record<string, string>; spec?: V1PodSpec | Record<string, unknown> } | undefined;
  vmiName: string;
  vmiUid: string;
  migrationUid: string;
  migrationName: string;
  /** Node selector of the target: the VMIM's addedNodeSelector and the VMI's, plus a pin when the limits core chose the node (the source pod's is not used). */
  nodeSelector: Record<string, string>;
  /** Used only when there is no source pod to copy (a VMI whose pod is gone). */
  fallbackContainers: V1PodSpec['containers'];
}

export interface TargetPodParts {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  spec: V1PodSpec;
}

/** KubeVirt's rule: never two launchers of one VMI on one host. */
export function antiAffinityTerm(vmiUid: string): V1PodAffinityTerm {
  return { labelSelector: { matchLabels: { [Labels.createdBy]: vmiUid } }, topologyKey: 'kubernetes.io/hostname' };
}

function withAntiAffinity(affinity: V1Affinity | undefined, vmiUid: string): V1Affinity {
  const anti = affinity?.podAntiAffinity;
  const required = (anti?.requiredDuringSchedulingIgnoredDuringExecution ?? []).filter(
    (t) => !(t.topologyKey === 'kubernetes.io/hostname' && t.labelSelector?.matchLabels?.[Labels.createdBy] === vmiUid),
  );
  return {
    ...(affinity ?? {}),
    podAntiAffinity: { ...(anti ?? {}), requiredDuringSchedulingIgnoredDuringExecution: [...required, antiAffinityTerm(vmiUid)] },
  };
}

const clone = <T>(v: T): T => structuredClone(v);

export function targetPodParts(input: TargetPodSpecInput): TargetPodParts {
  const src = (input.source?.spec ?? {}) as Record<string, unknown>;
  const spec: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) if (!NOT_COPIED.has(k) && v !== undefined) spec[k] = clone(v);
  const containers = Array.isArray(src['containers']) && src['containers'].length > 0 ? clone(src['containers']) : clone(input.fallbackContainers);
  const nodeSelector = input.nodeSelector;
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.source?.labels ?? {})) if (!SOURCE_ONLY_LABELS.has(k)) labels[k] = v;
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.source?.annotations ?? {})) if (!SOURCE_ONLY_ANNOTATIONS.has(k)) annotations[k] = v;
  return {
    labels: {
      ...labels,
      [Labels.app]: 'virt-launcher',
      [Labels.createdBy]: input.vmiUid,
      [Labels.migrationJobUID]: input.migrationUid,
      'vm.kubevirt.io/name': input.vmiName,
    },
    annotations: { ...annotations, [Annotations.domain]: input.vmiName, [Annotations.migrationJobName]: input.migrationName },
    spec: {
      ...(spec as Partial<V1PodSpec>),
      containers: containers as V1PodSpec['containers'],
      ...(Object.keys(nodeSelector).length > 0 ? { nodeSelector } : { nodeSelector: undefined }),
      affinity: withAntiAffinity(src['affinity'] as V1Affinity | undefined, input.vmiUid),
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: (src['terminationGracePeriodSeconds'] as number | undefined) ?? 30,
    },
  };
}
