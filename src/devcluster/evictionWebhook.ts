import { Pod } from '../api/core.js';
import { parseObject } from '../api/meta.js';
import { EvictionStrategy, Labels, VirtualMachineInstance } from '../api/vmi.js';
import { evictionVerdict } from '../controller/evacuationRules.js';
import type { EvictionHook } from './eviction.js';
import type { ObjectStore } from './store.js';

/**
 * The stand-in for KubeVirt's eviction admission webhook (virt-api) when the
 * controller runs in other processes (`ferry dev --processes`): an eviction
 * of a launcher pod whose VM must live-migrate marks the VMI for evacuation
 * and is refused with 429, so `kubectl drain` retries until the VM has left.
 * The same rules as the controller's own check (evictionVerdict).
 */
export function evacuationWebhook(store: ObjectStore): EvictionHook {
  return async (podRaw) => {
    const p = parseObject(Pod, podRaw);
    if (!p.ok) return null;
    const vmiUid = p.value.metadata.labels?.[Labels.createdBy];
    if (!vmiUid) return null;
    const raw = store.list('virtualmachineinstances', { namespace: p.value.metadata.namespace }).items.find((v) => v.metadata.uid === vmiUid);
    const vmi = raw ? parseObject(VirtualMachineInstance, raw) : undefined;
    const kv = store.list('kubevirts').items[0] as { spec?: { configuration?: { evictionStrategy?: unknown } } } | undefined;
    const strategy = EvictionStrategy.safeParse(kv?.spec?.configuration?.evictionStrategy);
    const verdict = evictionVerdict(p.value, vmi?.ok ? vmi.value : undefined, strategy.success ? strategy.data : undefined);
    if (verdict.allow) return null;
    const node = p.value.spec?.nodeName;
    if (verdict.markEvacuation && vmi?.ok && node && vmi.value.status?.evacuationNodeName !== node) {
      store.patch('virtualmachineinstances', vmi.value.metadata.name, { status: { evacuationNodeName: node } }, { namespace: vmi.value.metadata.namespace ?? 'default' });
    }
    return { code: verdict.code, message: verdict.message };
  };
}
