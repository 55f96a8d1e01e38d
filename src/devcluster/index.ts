/**
 * The embedded dev cluster: an in-memory Kubernetes API server (the subset
 * Ferry, client-node and kubectl use, with the real server's semantics), a
 * scheduler and a kubelet stand-in for pods, and demo seeding.
 */
export { startDevCluster, type DevCluster, type DevClusterOptions } from './cluster.js';
export { seedDemo, launcherPodFor } from './seed.js';
export {
  ObjectStore,
  type WatchEvent,
  type WatchEventType,
  type ListOptions,
  type WatchOptions,
  type CreateOptions,
  type UpdateOptions,
  type PatchOptions,
  type DeleteOptions,
  type Watcher,
} from './store.js';
export { ResourceRegistry, type ResourceDefinition, type ResourceType, type ResourceRef, type PrinterColumn } from './registry.js';
export { ApiError, isApiError, type Status } from './errors.js';
export type { KubeObject, StoredObject, ObjectMetadata, OwnerReference } from './object.js';
export { disruptionStatus, type DisruptionStatus } from './eviction.js';
export type { ServiceTarget, WebhookCall } from './admission/index.js';
export type { PatchType } from './patch.js';
export { placePod, podMemoryRequest } from './scheduling.js';
export { runningPodStatus } from './kubelet.js';
