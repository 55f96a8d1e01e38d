import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type V1Pod,
} from '@kubernetes/client-node';

/**
 * The few Kubernetes calls Ferry makes, over @kubernetes/client-node, so the
 * same code runs against the embedded dev cluster and any real cluster.
 * Everything here is I/O; callers parse what comes back with the zod schemas.
 */

export interface CustomResource {
  group: string;
  version: string;
  plural: string;
}

export const VMI_RESOURCE: CustomResource = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstances' };
export const VMIM_RESOURCE: CustomResource = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstancemigrations' };
export const KUBEVIRT_RESOURCE: CustomResource = { group: 'kubevirt.io', version: 'v1', plural: 'kubevirts' };

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/** HTTP status of a client-node error, if it carries one. */
export function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

export const isNotFound = (err: unknown) => statusCode(err) === 404;
export const isConflict = (err: unknown) => statusCode(err) === 409;

/** One line saying what the API server answered, for logs and user-facing errors. */
export function describeApiError(err: unknown): string {
  const e = err as { body?: unknown; message?: string };
  let body: unknown = e?.body;
  if (typeof body === 'string') {
    try { body = JSON.parse(body); } catch { /* keep the string */ }
  }
  const msg = (body as { message?: string } | undefined)?.message;
  const code = statusCode(err);
  return `${code ?? 'error'}: ${msg ?? e?.message ?? String(err)}`;
}

export class KubeClient {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;

  constructor(readonly kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  static fromFile(path?: string): KubeClient {
    const kc = new KubeConfig();
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
    return new KubeClient(kc);
  }

  getCustom(r: CustomResource, namespace: string, name: string): Promise<unknown> {
    return this.custom.getNamespacedCustomObject({ ...r, namespace, name });
  }

  async listCustom(r: CustomResource, namespace?: string, labelSelector?: string): Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }> {
    const res = namespace
      ? await this.custom.listNamespacedCustomObject({ ...r, namespace, labelSelector })
      : await this.custom.listClusterCustomObject({ ...r, labelSelector });
    return res as { items: unknown[]; metadata?: { resourceVersion?: string } };
  }

  createCustom(r: CustomResource, namespace: string, body: object): Promise<unknown> {
    return this.custom.createNamespacedCustomObject({ ...r, namespace, body });
  }

  patchCustom(r: CustomResource, namespace: string, name: string, patch: object): Promise<unknown> {
    return this.custom.patchNamespacedCustomObject({ ...r, namespace, name, body: patch }, mergePatch);
  }

  patchCustomJson(r: CustomResource, namespace: string, name: string, ops: JsonPatchOp[]): Promise<unknown> {
    return this.custom.patchNamespacedCustomObject({ ...r, namespace, name, body: ops }, jsonPatch);
  }

  private readonly statusSubresource = new Map<string, Promise<boolean>>();

  /**
   * Whether the API server serves `<plural>/status` for this resource. KubeVirt's
   * own VMI CRD has no status subresource (status is written with the object),
   * Ferry's standalone CRDs and the embedded cluster do; status writes follow
   * what discovery says. Only an answer is remembered: a failed discovery is
   * asked again next time (a blip at start-up must not decide for the life of
   * the process), and a status write that meets a 404 asks again (the CRD may
   * have changed).
   */
  hasStatusSubresource(r: CustomResource): Promise<boolean> {
    const key = `${r.group}/${r.version}/${r.plural}`;
    let known = this.statusSubresource.get(key);
    if (!known) {
      known = this.custom.getAPIResources({ group: r.group, version: r.version }).then(
        (list) => list.resources.some((x) => x.name === `${r.plural}/status`),
        (err: unknown) => {
          if (this.statusSubresource.get(key) === known) this.statusSubresource.delete(key);
          throw new Error(`cannot tell whether ${r.plural}.${r.group}/${r.version} has a status subresource: discovery failed (${describeApiError(err)})`, { cause: err });
        },
      );
      this.statusSubresource.set(key, known);
    }
    return known;
  }

  /** Runs a status write where discovery says; on a 404, discovers again and, if that changes the answer, writes there instead. */
  private async writeStatus(r: CustomResource, write: (viaStatus: boolean) => Promise<unknown>): Promise<unknown> {
    const viaStatus = await this.hasStatusSubresource(r);
    try {
      return await write(viaStatus);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      this.statusSubresource.delete(`${r.group}/${r.version}/${r.plural}`);
      const now = await this.hasStatusSubresource(r);
      // Same answer: the 404 is about the object itself.
      if (now === viaStatus) throw err;
      return write(now);
    }
  }

  patchCustomStatus(r: CustomResource, namespace: string, name: string, patch: object): Promise<unknown> {
    return this.writeStatus(r, (viaStatus) => viaStatus
      ? this.custom.patchNamespacedCustomObjectStatus({ ...r, namespace, name, body: patch }, mergePatch)
      : this.custom.patchNamespacedCustomObject({ ...r, namespace, name, body: patch }, mergePatch));
  }

  patchCustomStatusJson(r: CustomResource, namespace: string, name: string, ops: JsonPatchOp[]): Promise<unknown> {
    return this.writeStatus(r, (viaStatus) => viaStatus
      ? this.custom.patchNamespacedCustomObjectStatus({ ...r, namespace, name, body: ops }, jsonPatch)
      : this.custom.patchNamespacedCustomObject({ ...r, namespace, name, body: ops }, jsonPatch));
  }

  deleteCustom(r: CustomResource, namespace: string, name: string): Promise<unknown> {
    return this.custom.deleteNamespacedCustomObject({ ...r, namespace, name });
  }

  createPod(namespace: string, pod: V1Pod): Promise<V1Pod> {
    return this.core.createNamespacedPod({ namespace, body: pod });
  }

  async deletePod(namespace: string, name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ namespace, name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  patchNode(name: string, patch: object): Promise<unknown> {
    return this.core.patchNode({ name, body: patch }, mergePatch);
  }

  createEvent(namespace: string, event: CoreV1Event): Promise<CoreV1Event> {
    return this.core.createNamespacedEvent({ namespace, body: event });
  }
}
