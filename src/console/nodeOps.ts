import { clusterSettings } from '../cli/commands/drain.js';
import { Node } from '../api/core.js';
import { parseObject } from '../api/meta.js';
import type { KubeClient } from '../kube/client.js';
import type { NodeDrainOps } from './actions.js';

/**
 * Drain and uncordon as `ferry drain` / `ferry uncordon` do them (cordon and
 * the drain taint; the controller's evacuation does the rest), without the
 * CLI's following. API errors are thrown as they come, so the console can show
 * the server's status and words.
 */
async function readNode(kube: KubeClient, name: string): Promise<Node> {
  const r = parseObject(Node, await kube.core.readNode({ name }));
  if (!r.ok) throw new Error(`node ${name} is malformed: ${r.reason}`);
  return r.value;
}

export const nodeDrainOps = (now: () => number): NodeDrainOps => ({
  async drain(kube, name) {
    const node = await readNode(kube, name);
    const { taintKey } = await clusterSettings(kube);
    const taints = [...(node.spec?.taints ?? [])];
    // timeAdded lets the console show when the drain began.
    if (!taints.some((t) => t.key === taintKey)) taints.push({ key: taintKey, effect: 'NoSchedule', timeAdded: new Date(now()).toISOString() });
    await kube.patchNode(name, { spec: { unschedulable: true, taints } });
    return `node/${name} cordoned and tainted ${taintKey}:NoSchedule; its VMs are being evacuated`;
  },
  async uncordon(kube, name) {
    const node = await readNode(kube, name);
    const { taintKey } = await clusterSettings(kube);
    const taints = (node.spec?.taints ?? []).filter((t) => t.key !== taintKey);
    await kube.patchNode(name, { spec: { unschedulable: false, taints: taints.length ? taints : null } });
    return `node/${name} uncordoned; queued evacuations are withdrawn, running ones finish`;
  },
});
