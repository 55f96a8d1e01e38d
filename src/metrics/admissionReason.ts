/**
 * Admission decisions are counted by a small, fixed set of reason classes: the
 * limits core explains every wait in a sentence naming nodes and rates, which
 * would make one time series per sentence. The classes follow the sentences of
 * src/limits/reasons.ts and the controller's rejections (a unit test builds the
 * sentences with those very functions, so a rewording shows up there).
 */

export type AdmissionResult = 'started' | 'queued' | 'rejected';

export const WAITING_CLASSES = [
  'cluster-limit',
  'outbound-limit',
  'inbound-limit',
  'pinned-target',
  'no-target-node',
  'memory',
  'bandwidth',
  'other',
] as const;
export type WaitingClass = (typeof WAITING_CLASSES)[number];

export const REJECTION_CLASSES = ['vmi-missing', 'vmi-not-running', 'not-live-migratable', 'another-migration', 'other'] as const;
export type RejectionClass = (typeof REJECTION_CLASSES)[number];

/** The reason label of an admitted migration. */
export const ADMITTED = 'admitted';

export type AdmissionReasonClass = WaitingClass | RejectionClass | typeof ADMITTED;

const WAITING: Array<[RegExp, WaitingClass]> = [
  [/^cluster limit /, 'cluster-limit'],
  [/^outbound limit on /, 'outbound-limit'],
  [/^inbound limit on /, 'inbound-limit'],
  [/reached its inbound limit/, 'inbound-limit'],
  [/^pinned target .* free memory/, 'memory'],
  [/^pinned target /, 'pinned-target'],
  [/^no schedulable node to move to/, 'no-target-node'],
  [/^no schedulable node has .* free memory/, 'memory'],
  [/cannot beat dirty rate|of NIC left|waiting behind .* for bandwidth|to migrate efficiently/, 'bandwidth'],
];

/** The class of a limits-core waiting reason (Decision.waiting values). */
export function waitingReasonClass(reason: string): WaitingClass {
  for (const [re, cls] of WAITING) if (re.test(reason)) return cls;
  return 'other';
}

const REJECTION: Array<[RegExp, RejectionClass]> = [
  [/^VMI \S+ does not exist/, 'vmi-missing'],
  [/^VMI \S+ is /, 'vmi-not-running'],
  [/^Cannot migrate VMI/, 'not-live-migratable'],
  [/^another migration job /, 'another-migration'],
];

/** The class of the reason a VMIM was refused before it started. */
export function rejectionReasonClass(reason: string): RejectionClass {
  for (const [re, cls] of REJECTION) if (re.test(reason)) return cls;
  return 'other';
}
