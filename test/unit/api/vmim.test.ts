import { VirtualMachineInstanceMigration } from '../../../src/api/vmim.js';

const vmim = (addedNodeSelector: Record<string, string>) => ({
  metadata: { name: 'm', namespace: 'default' },
  spec: { vmiName: 'vm-1', addedNodeSelector },
});

describe('VMIM addedNodeSelector', () => {
  it('accepts what a pod nodeSelector accepts', () => {
    for (const sel of <Array<Record<string, string>>>[{ 'kubernetes.io/hostname': 'node-2' }, { zone: '' }, { 'example.com/rack_a.b-c': 'R1' }]) {
      expect(VirtualMachineInstanceMigration.safeParse(vmim(sel)).success).toBe(true);
    }
  });

  it('refuses keys and values the API server would refuse on the target pod, saying which', () => {
    for (const sel of <Array<Record<string, string>>>[{ '/f53': 'x' }, { 'V%pK': 'x' }, { ok: '[$4F' }, { ['a'.repeat(64)]: 'x' }, { 'Upper.Case/x': 'y' }]) {
      const r = VirtualMachineInstanceMigration.safeParse(vmim(sel));
      expect(r.success).toBe(false);
      expect(r.error?.issues[0]?.path.slice(0, 2)).toEqual(['spec', 'addedNodeSelector']);
    }
  });
});
