import { targetPodParts } from '../../../src/controller/launcherPodSpec.js';

const sourceSpec = {
  nodeName: 'node-1',
  hostname: 'vm-1',
  serviceAccountName: 'default',
  securityContext: { runAsUser: 107, fsGroup: 107 },
  tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
  // The previous migration's pin: must not follow the VM to its next target.
  nodeSelector: { 'kubernetes.io/hostname': 'node-1', 'kubevirt.io/schedulable': 'true' },
  affinity: {
    nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } },
  },
  containers: [{
    name: 'compute',
    image: 'quay.io/kubevirt/virt-launcher:v1.6.0',
    command: ['/usr/bin/virt-launcher-monitor', '--qemu-timeout', '269s'],
    resources: { requests: { memory: '1165Mi', cpu: '100m' }, limits: { 'devices.kubevirt.io/kvm': '1' } },
    volumeMounts: [{ name: 'libvirt-runtime', mountPath: '/var/run/libvirt' }, { name: 'public', mountPath: '/var/run/kubevirt' }],
  }],
  volumes: [
    { name: 'private', emptyDir: {} }, { name: 'public', emptyDir: {} }, { name: 'sockets', emptyDir: {} },
    { name: 'libvirt-runtime', emptyDir: {} }, { name: 'rootdisk', persistentVolumeClaim: { claimName: 'vm-1-root' } },
  ],
  restartPolicy: 'Never',
  terminationGracePeriodSeconds: 210,
};

const source = {
  labels: { 'kubevirt.io': 'virt-launcher', 'kubevirt.io/created-by': 'vmi-uid', 'vm.kubevirt.io/name': 'vm-1', 'kubevirt.io/migrationJobUID': 'an-older-migration', 'app': 'db' },
  annotations: { 'kubevirt.io/domain': 'vm-1', 'k8s.v1.cni.cncf.io/networks': '[{"name":"br1"}]', 'kubevirt.io/migrationJobName': 'older' },
  spec: sourceSpec,
};

const parts = () => targetPodParts({
  source, vmiName: 'vm-1', vmiUid: 'vmi-uid', migrationUid: 'mig-uid', migrationName: 'mig-1',
  nodeSelector: { 'kubernetes.io/hostname': 'node-3' }, fallbackContainers: [{ name: 'compute', image: 'x' }],
});

test('same containers, volumes, resources, service account, security context and tolerations as the source launcher; not its node', () => {
  const { spec } = parts();
  expect(spec.containers).toEqual(sourceSpec.containers);
  expect(spec.volumes).toEqual(sourceSpec.volumes);
  expect(spec.serviceAccountName).toBe('default');
  expect(spec.securityContext).toEqual(sourceSpec.securityContext);
  expect(spec.tolerations).toEqual(sourceSpec.tolerations);
  expect(spec.terminationGracePeriodSeconds).toBe(210);
  expect(spec.nodeName).toBeUndefined();
  expect(spec.hostname).toBeUndefined();
  // Rendered from the VMI and the VMIM (as given), not copied from the source pod.
  expect(spec.nodeSelector).toEqual({ 'kubernetes.io/hostname': 'node-3' });
});

test('required anti-affinity by hostname on the VMI\'s created-by label, beside the source\'s own affinity', () => {
  const { spec } = parts();
  expect(spec.affinity?.nodeAffinity).toEqual(sourceSpec.affinity.nodeAffinity);
  expect(spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
    { labelSelector: { matchLabels: { 'kubevirt.io/created-by': 'vmi-uid' } }, topologyKey: 'kubernetes.io/hostname' },
  ]);
});

test('KubeVirt\'s labels and annotations: this migration\'s job uid and name, never the source\'s; network annotations kept', () => {
  const { labels, annotations } = parts();
  expect(labels).toEqual({ 'kubevirt.io': 'virt-launcher', 'kubevirt.io/created-by': 'vmi-uid', 'vm.kubevirt.io/name': 'vm-1', 'kubevirt.io/migrationJobUID': 'mig-uid', app: 'db' });
  expect(annotations).toEqual({ 'kubevirt.io/domain': 'vm-1', 'k8s.v1.cni.cncf.io/networks': '[{"name":"br1"}]', 'kubevirt.io/migrationJobName': 'mig-1' });
});

test('the source pod is not modified, and a missing source falls back to a launcher container', () => {
  const before = JSON.stringify(source);
  const p = parts();
  p.spec.containers[0]!.image = 'changed';
  expect(JSON.stringify(source)).toBe(before);
  const bare = targetPodParts({ source: undefined, vmiName: 'vm-1', vmiUid: 'u', migrationUid: 'm', migrationName: 'n', nodeSelector: {}, fallbackContainers: [{ name: 'compute', image: 'x' }] });
  expect(bare.spec.containers).toEqual([{ name: 'compute', image: 'x' }]);
  expect(bare.spec.nodeSelector).toBeUndefined();
});
