/**
 * How the dev cluster reaches a Service. A real API server dials the
 * Service's cluster IP and kube-proxy forwards to a ready endpoint; the dev
 * cluster has no pod network, so a process serving a Service (Ferry's webhook
 * in `ferry dev`) says where it listens, and requests for the Service's DNS
 * name go there. The Service object must still exist, as on a real cluster.
 */
export interface ServiceTarget { host: string; port: number }

export class ServiceRouter {
  private readonly routes = new Map<string, ServiceTarget[]>();

  constructor(private readonly serviceExists: (namespace: string, name: string) => boolean) {}

  /** Routes `<name>.<namespace>.svc:<port>` to `target` (one endpoint of the Service); returns the undo. */
  add(namespace: string, name: string, port: number, target: ServiceTarget): () => void {
    const key = `${namespace}/${name}:${port}`;
    const list = this.routes.get(key) ?? [];
    list.push(target);
    this.routes.set(key, list);
    return () => {
      const l = this.routes.get(key) ?? [];
      const i = l.indexOf(target);
      if (i >= 0) l.splice(i, 1);
    };
  }

  /** The endpoint for a call, round-robin over the Service's endpoints, or the error a real cluster gives. */
  resolve(namespace: string, name: string, port: number): ServiceTarget | { error: string } {
    if (!this.serviceExists(namespace, name)) return { error: `service "${name}" not found` };
    const list = this.routes.get(`${namespace}/${name}:${port}`) ?? [];
    const first = list.shift();
    if (!first) return { error: `no endpoints available for service "${name}"` };
    list.push(first);
    return first;
  }
}
