import { ApiError, qualifiedResource } from '../errors.js';
import type { RequestAttributes } from './requestAttributes.js';
import type { UserInfo } from './user.js';

/**
 * The 403 the API server sends when authorization says no, worded exactly as
 * the real one (clients and people grep for it):
 * `pods "x" is forbidden: User "u" cannot delete resource "pods" in API group "" in the namespace "default"`.
 */
export function forbidden(user: UserInfo, attrs: RequestAttributes, reason: string): ApiError {
  const why = reason ? `${what(user, attrs)}: ${reason}` : what(user, attrs);
  if (!attrs.resourceRequest) return new ApiError(403, 'Forbidden', `forbidden: ${why}`, {});
  const res = qualifiedResource(attrs.resource, attrs.apiGroup);
  const message = attrs.name ? `${res} "${attrs.name}" is forbidden: ${why}` : `${res} is forbidden: ${why}`;
  return new ApiError(403, 'Forbidden', message, { ...(attrs.name ? { name: attrs.name } : {}), group: attrs.apiGroup, kind: attrs.resource });
}

function what(user: UserInfo, attrs: RequestAttributes): string {
  const who = `User "${user.name}"`;
  if (!attrs.resourceRequest) return `${who} cannot ${attrs.verb} path "${attrs.path}"`;
  const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
  const scope = attrs.namespace ? `in the namespace "${attrs.namespace}"` : 'at the cluster scope';
  return `${who} cannot ${attrs.verb} resource "${resource}" in API group "${attrs.apiGroup}" ${scope}`;
}
