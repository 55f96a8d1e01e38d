export type * from './types.js';
export { decide } from './decide.js';
export { allocateBandwidth } from './allocate.js';
export { pickTargetNode, type PlacementInput } from './placement.js';
export { convergenceNeed, requiredBandwidth, migrationCap, MIN_NEED } from './convergence.js';
export { queueOrder, inQueueOrder, PRIORITY_RANK } from './priority.js';
export { waterFill, CAPACITY_TOLERANCE, type Flow } from './waterfill.js';
export { resolveLimits, pinnedIn, efficientShare, ADAPTIVE_STREAMS_PER_NODE, EFFICIENCY_SLACK, TIMEOUT_SHARE, type PinnedLimits } from './adaptive.js';
