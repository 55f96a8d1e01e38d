import { formatBytes } from '../api/quantity.js';

/** Why a queued migration waits, in sentences an operator can act on. */

export const rate = (bytesPerSecond: number): string => `${formatBytes(bytesPerSecond)}/s`;

export const clusterLimit = (running: number, limit: number): string => `cluster limit ${running}/${limit} reached`;

/** Said of a per-node limit nobody set, whose value is Ferry's adaptive cap. */
const adaptiveNote = (field: string): string => `, adaptive: ${field} is not set`;

export const outboundLimit = (node: string, running: number, limit: number, adaptive = false): string =>
  `outbound limit on ${node} (${running}/${limit}${adaptive ? adaptiveNote('parallelOutboundMigrationsPerNode') : ''})`;

export const inboundLimit = (node: string, running: number, limit: number, adaptive = false): string =>
  `inbound limit on ${node} (${running}/${limit}${adaptive ? adaptiveNote('parallelInboundMigrationsPerNode') : ''})`;

/** Adaptive admission: the share left would make the migration wasteful or too slow. */
export const efficientShareTooSmall = (share: number, where: string, need: number, capacity: number): string =>
  need >= capacity
    ? `needs ${where} to itself to migrate efficiently (${rate(need)}; with less it re-sends over 2 % more or nears its completion timeout); waiting for it to be free`
    : `share ${rate(Math.max(0, share))} on ${where} is below the ${rate(need)} it needs to migrate efficiently (with less it re-sends over 2 % more or nears its completion timeout); waiting for bandwidth`;

export const pinnedUnknown = (node: string): string => `pinned target ${node} is not a known node`;
export const pinnedIsSource = (node: string): string => `pinned target ${node} is the node it runs on`;
export const pinnedUnschedulable = (node: string): string => `pinned target ${node} is not schedulable`;
export const pinnedMemory = (node: string, free: number, needed: number): string =>
  `pinned target ${node} has ${formatBytes(free)} free memory, needs ${formatBytes(needed)}`;

export const noOtherNode = (source: string): string => `no schedulable node to move to besides ${source}`;
export const allAtInboundLimit = (limit: number, adaptive = false): string =>
  `every schedulable node has reached its inbound limit (${limit}${adaptive ? adaptiveNote('parallelInboundMigrationsPerNode') : ''})`;
export const noMemory = (needed: number): string => `no schedulable node has ${formatBytes(needed)} free memory`;

export const shareTooSmall = (share: number, where: string, dirtyRate: number, need: number, capacity: number): string =>
  need > capacity
    ? `share ${rate(Math.max(0, share))} on ${where} cannot beat dirty rate ${rate(dirtyRate)} (needs ${rate(need)}, more than its ${rate(capacity)}); waiting for it to be free`
    : `share ${rate(Math.max(0, share))} on ${where} cannot beat dirty rate ${rate(dirtyRate)} (needs ${rate(need)}); waiting for bandwidth`;

export const noTargetHeadroom = (dirtyRate: number, need: number): string =>
  `no target node has ${rate(need)} of NIC left to beat dirty rate ${rate(dirtyRate)}; waiting for bandwidth`;

export const behind = (id: string, where: string): string => `waiting behind ${id} for bandwidth on ${where}`;
