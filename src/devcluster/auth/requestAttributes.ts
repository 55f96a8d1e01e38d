/**
 * What RBAC is asked about a request, derived from its method and URL alone,
 * the way the API server's request-info parser does it: discovery and other
 * paths outside /api/<v>/... and /apis/<g>/<v>/... are non-resource requests
 * whose verb is the lowercase HTTP method; resource requests get the
 * Kubernetes verb (get, list, watch, create, update, patch, delete,
 * deletecollection), the namespace, the resource, the subresource and the
 * object's name.
 */
export type RequestAttributes =
  | {
      resourceRequest: true;
      verb: string;
      apiGroup: string;
      apiVersion: string;
      namespace: string;
      resource: string;
      subresource: string;
      name: string;
      path: string;
    }
  | { resourceRequest: false; verb: string; path: string };

/** Path segments that are verbs of their own (`/api/v1/watch/pods`); "proxy" is not served by the dev cluster. */
const PATH_VERBS = new Set(['watch', 'proxy']);
/** `/api/v1/namespaces/<ns>/status` is the namespace's subresource, not a resource type called "status". */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

const METHOD_VERBS: Record<string, string> = { POST: 'create', GET: 'get', HEAD: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };

export function requestAttributes(method: string, url: URL): RequestAttributes {
  const path = url.pathname;
  const nonResource: RequestAttributes = { resourceRequest: false, verb: method.toLowerCase(), path };
  let parts = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  if (parts.length < 3 || (parts[0] !== 'api' && parts[0] !== 'apis')) return nonResource;
  let apiGroup = '';
  if (parts[0] === 'apis') {
    if (parts.length < 4) return nonResource;
    apiGroup = parts[1]!;
    parts = parts.slice(2);
  } else {
    parts = parts.slice(1);
  }
  const apiVersion = parts[0]!;
  parts = parts.slice(1);

  let verb: string;
  if (PATH_VERBS.has(parts[0]!) && parts.length >= 2) {
    verb = parts[0]!;
    parts = parts.slice(1);
  } else {
    verb = METHOD_VERBS[method.toUpperCase()] ?? '';
  }

  let namespace = '';
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1]!;
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
  }
  const resource = parts[0] ?? '';
  let name = parts[1] ?? '';
  const subresource = verb === 'proxy' ? '' : (parts[2] ?? '');

  if (name === '' && verb === 'get') {
    const watch = url.searchParams.get('watch');
    verb = watch === 'true' || watch === '1' ? 'watch' : 'list';
    // A list or watch of one object by name can be allowed by a resourceNames rule.
    const exact = exactNameSelector(url.searchParams.get('fieldSelector'));
    if (exact) name = exact;
  }
  if (name === '' && verb === 'delete') verb = 'deletecollection';
  return { resourceRequest: true, verb, apiGroup, apiVersion, namespace, resource, subresource, name, path };
}

/** "metadata.name=x" (or "==") as the only requirement of a field selector. */
function exactNameSelector(selector: string | null): string | undefined {
  if (!selector) return undefined;
  const terms = selector.split(',').map((t) => t.trim()).filter((t) => t !== '');
  if (terms.length !== 1) return undefined;
  const m = /^metadata\.name\s*==?\s*([^=!\s]+)$/.exec(terms[0]!);
  return m?.[1];
}
