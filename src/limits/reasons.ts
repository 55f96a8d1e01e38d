import { formatBytes } from '../api/quantity.js';

/** Why a queued migration waits, in sentences an operator can act on. */

export const rate = (bytesPerSecond: number): string => `${formatBytes(bytesPerSecond)}/s`;

export const clusterLimit = (running: number, limit: number): string => `cluster limit ${running}/${limit} reached`;

export const outboundLimit = (node: string, running: number, limit: number): string =>
  `outbound limit on ${node} (${running}/${limit})`;

export const inboundLimit = (node: string, running: number, limit: number): string =>
  `inbound limit on ${node} (${running}/${limit})`;

export const pinnedUnknown = (node: string): string => `pinned target ${node} is not a known node`;
export const pinnedIsSource = (node: string): string => `pinned target ${node} is the node it runs on`;
export const pinnedUnschedulable = (node: string): string => `pinned target ${node} is not schedulable`;
export const pinnedMemory = (node: string, free: number, needed: number): string =>
  `pinned target ${node} has ${formatBytes(free)} free memory, needs ${formatBytes(needed)}`;

export const noOtherNode = (source: string): string => `no schedulable node to move to besides ${source}`;
export const allAtInboundLimit = (limit: number): string =>
  `every schedulable node has reached its inbound limit (${limit})`;
export const noMemory = (needed: number): string => `no schedulable node has ${formatBytes(needed)} free memory`;

export const shareTooSmall = (share: number, where: string, dirtyRate: number, need: number, capacity: number): string =>
  need > capacity
    ? `share ${rate(Math.max(0, share))} on ${where} cannot beat dirty rate ${rate(dirtyRate)} (needs ${rate(need)}, more than its ${rate(capacity)}); waiting for it to be free`
    : `share ${rate(Math.max(0, share))} on ${where} cannot beat dirty rate ${rate(dirtyRate)} (needs ${rate(need)}); waiting for bandwidth`;

export const noTargetHeadroom = (dirtyRate: number, need: number): string =>
  `no target node has ${rate(need)} of NIC left to beat dirty rate ${rate(dirtyRate)}; waiting for bandwidth`;

export const behind = (id: string, where: string): string => `waiting behind ${id} for bandwidth on ${where}`;
