import * as why from '../../../src/limits/reasons.js';
import { rejectionReasonClass, waitingReasonClass } from '../../../src/metrics/admissionReason.js';

const GiB = 2 ** 30;
const MiBs = 2 ** 20;

describe('waiting reasons are counted by class, not by sentence', () => {
  test.each([
    [why.clusterLimit(5, 5), 'cluster-limit'],
    [why.outboundLimit('node-1', 2, 2), 'outbound-limit'],
    [why.inboundLimit('node-2', 2, 2), 'inbound-limit'],
    [why.allAtInboundLimit(2), 'inbound-limit'],
    [why.pinnedUnknown('node-9'), 'pinned-target'],
    [why.pinnedIsSource('node-1'), 'pinned-target'],
    [why.pinnedUnschedulable('node-3'), 'pinned-target'],
    [why.pinnedMemory('node-3', GiB, 4 * GiB), 'memory'],
    [why.noMemory(4 * GiB), 'memory'],
    [why.noOtherNode('node-1'), 'no-target-node'],
    [why.shareTooSmall(10 * MiBs, 'node-1→node-2', 50 * MiBs, 60 * MiBs, 1000 * MiBs), 'bandwidth'],
    [why.shareTooSmall(10 * MiBs, 'node-1→node-2', 50 * MiBs, 2000 * MiBs, 1000 * MiBs), 'bandwidth'],
    [why.noTargetHeadroom(50 * MiBs, 60 * MiBs), 'bandwidth'],
    [why.behind('uid-1', 'node-1'), 'bandwidth'],
  ])('%s → %s', (sentence, cls) => {
    expect(waitingReasonClass(sentence)).toBe(cls);
  });

  test('an unknown sentence is "other", so the label set stays bounded', () => {
    expect(waitingReasonClass('the moon is in the wrong phase')).toBe('other');
  });
});

describe('rejections are counted by class', () => {
  test.each([
    ['VMI default/vm-1 does not exist', 'vmi-missing'],
    ['VMI default/vm-1 is being deleted', 'vmi-not-running'],
    ['VMI default/vm-1 is Succeeded', 'vmi-not-running'],
    ['Cannot migrate VMI, Reason: DisksNotLiveMigratable', 'not-live-migratable'],
    ['another migration job (default/m-1) is in progress for VMI default/vm-1', 'another-migration'],
    ['something else', 'other'],
  ])('%s → %s', (sentence, cls) => {
    expect(rejectionReasonClass(sentence)).toBe(cls);
  });
});
