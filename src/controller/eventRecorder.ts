import type { KubeClient } from '../kube/client.js';
import type { Logger } from '../util/log.js';

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string | undefined;
}

/**
 * Kubernetes Events: the one sentence `kubectl describe` shows a user about why
 * something happened. Best effort: failing to record an event never fails a migration.
 */
export class EventRecorder {
  constructor(private readonly kube: KubeClient, private readonly log: Logger, private readonly component = 'ferry-controller') {}

  record(obj: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const now = new Date();
    this.kube
      .createEvent(obj.namespace, {
        metadata: { generateName: `${obj.name}.`, namespace: obj.namespace },
        involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.namespace, name: obj.name, uid: obj.uid },
        type,
        reason,
        message,
        source: { component: this.component },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        reportingComponent: this.component,
      })
      .catch((err: unknown) => this.log.debug({ err: String(err), reason }, 'could not record event'));
  }
}
