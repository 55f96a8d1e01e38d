import { parseObject } from '../api/meta.js';
import { Pod } from '../api/core.js';
import { Annotations, EvictionStrategy, Labels, VirtualMachineInstance } from '../api/vmi.js';
import { evictionVerdict, isLauncherPod } from '../controller/evacuationRules.js';
import { isNotFound, KUBEVIRT_RESOURCE, VMI_RESOURCE, type KubeClient } from '../kube/client.js';
import type { Logger } from '../util/log.js';
import { allow, tooManyRequests, type AdmissionRequest, type Verdict } from './review.js';

/**
 * Launcher-pod eviction, with KubeVirt's semantics (virt-api's
 * pod-eviction-admitter): an eviction that would stop a VM that should move
 * marks the VMI's status.evacuationNodeName — which the controller turns into
 * an evacuation migration — and is refused with 429 `Eviction triggered
 * evacuation of VMI "ns/name"`, so `kubectl drain` retries until the VM has
 * left and its pod is gone. The decision itself is evictionVerdict(), the
 * same pure rule the controller's evacuation uses.
 */
export async function admitEviction(req: AdmissionRequest, kube: KubeClient, log: Logger): Promise<Verdict> {
  const namespace = req.namespace ?? 'default';
  const podName = req.name ?? '';
  let podRaw: unknown;
  try {
    podRaw = await kube.core.readNamespacedPod({ namespace, name: podName });
  } catch (err) {
    // The API server answers 404 for the eviction itself; nothing for us to protect.
    if (isNotFound(err)) return allow();
    throw err;
  }
  const p = parseObject(Pod, podRaw);
  if (!p.ok || !isLauncherPod(p.value)) return allow();
  const pod = p.value;
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return allow();
  const vmiName = pod.metadata.annotations?.[Annotations.domain];
  if (!vmiName) return allow();
  let vmi: VirtualMachineInstance | undefined;
  try {
    const r = parseObject(VirtualMachineInstance, await kube.getCustom(VMI_RESOURCE, namespace, vmiName));
    vmi = r.ok ? r.value : undefined;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  // A pod of another incarnation of a VMI with the same name is not this VMI's.
  if (vmi && pod.metadata.labels?.[Labels.createdBy] !== vmi.metadata.uid) vmi = undefined;
  const verdict = evictionVerdict(pod, vmi, await clusterEvictionStrategy(kube));
  if (verdict.allow) return allow();
  const node = pod.spec?.nodeName;
  if (verdict.markEvacuation && vmi && node && vmi.status?.evacuationNodeName !== node && !req.dryRun) {
    await kube.patchCustomStatus(VMI_RESOURCE, namespace, vmi.metadata.name, { status: { evacuationNodeName: node } });
    log.info({ vmi: `${namespace}/${vmi.metadata.name}`, node, pod: podName }, 'eviction of launcher pod turned into evacuation');
  }
  return tooManyRequests(verdict.message);
}

async function clusterEvictionStrategy(kube: KubeClient): Promise<EvictionStrategy | undefined> {
  const list = await kube.listCustom(KUBEVIRT_RESOURCE);
  const kv = list.items[0] as { spec?: { configuration?: { evictionStrategy?: unknown } } } | undefined;
  const s = EvictionStrategy.safeParse(kv?.spec?.configuration?.evictionStrategy);
  return s.success ? s.data : undefined;
}
