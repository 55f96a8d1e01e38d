import { ApiError, Errors } from './errors.js';
import { clone, isRecord, jsonEqual } from './object.js';

/** The patch content types the real API server accepts. */
export type PatchType = 'merge' | 'json' | 'strategic';

export const PATCH_CONTENT_TYPES: Record<string, PatchType> = {
  'application/merge-patch+json': 'merge',
  'application/json-patch+json': 'json',
  'application/strategic-merge-patch+json': 'strategic',
};

/** RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return clone(patch);
  const out: Record<string, unknown> = isRecord(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

export interface JsonPatchOp { op: string; path: string; value?: unknown; from?: string }

/**
 * RFC 6902 JSON patch. A failing operation (including `test`) throws a 422,
 * as the real server answers; a malformed patch document throws a 400.
 */
export function applyJsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw Errors.badRequest('json patch must be a JSON array of operations');
  let doc = clone(target);
  ops.forEach((raw, i) => {
    if (!isRecord(raw) || typeof raw['op'] !== 'string' || typeof raw['path'] !== 'string') {
      throw Errors.badRequest(`json patch operation ${i} needs string "op" and "path"`);
    }
    doc = applyOp(doc, raw as unknown as JsonPatchOp);
  });
  return doc;
}

function unprocessable(message: string): ApiError {
  return new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${message}`);
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw Errors.badRequest(`json patch path "${path}" must start with "/"`);
  return path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function getAt(doc: unknown, tokens: string[], path: string): unknown {
  let cur = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      const i = Number(t);
      if (!/^\d+$/.test(t) || i >= cur.length) throw unprocessable(`path "${path}" does not exist`);
      cur = cur[i];
    } else if (isRecord(cur) && Object.prototype.hasOwnProperty.call(cur, t)) {
      cur = cur[t];
    } else throw unprocessable(`path "${path}" does not exist`);
  }
  return cur;
}

function parentOf(doc: unknown, tokens: string[], path: string): { parent: unknown; last: string } {
  if (tokens.length === 0) throw unprocessable(`path "${path}" cannot address the whole document here`);
  return { parent: getAt(doc, tokens.slice(0, -1), path), last: tokens[tokens.length - 1]! };
}

function addAt(doc: unknown, path: string, value: unknown): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return clone(value);
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!(last === '-' || /^\d+$/.test(last)) || i > parent.length) throw unprocessable(`array index in "${path}" is out of range`);
    parent.splice(i, 0, clone(value));
  } else if (isRecord(parent)) {
    parent[last] = clone(value);
  } else throw unprocessable(`parent of "${path}" is not an object or array`);
  return doc;
}

function removeAt(doc: unknown, path: string): { doc: unknown; removed: unknown } {
  const tokens = parsePointer(path);
  const removed = getAt(doc, tokens, path);
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else if (isRecord(parent)) delete parent[last];
  return { doc, removed };
}

function applyOp(doc: unknown, op: JsonPatchOp): unknown {
  switch (op.op) {
    case 'add':
      if (!('value' in op)) throw Errors.badRequest(`json patch "add" at "${op.path}" has no value`);
      return addAt(doc, op.path, op.value);
    case 'remove':
      return removeAt(doc, op.path).doc;
    case 'replace': {
      if (!('value' in op)) throw Errors.badRequest(`json patch "replace" at "${op.path}" has no value`);
      const tokens = parsePointer(op.path);
      getAt(doc, tokens, op.path); // must exist
      if (tokens.length === 0) return clone(op.value);
      const { parent, last } = parentOf(doc, tokens, op.path);
      if (Array.isArray(parent)) parent[Number(last)] = clone(op.value);
      else (parent as Record<string, unknown>)[last] = clone(op.value);
      return doc;
    }
    case 'move': {
      if (typeof op.from !== 'string') throw Errors.badRequest('json patch "move" needs "from"');
      const { doc: d, removed } = removeAt(doc, op.from);
      return addAt(d, op.path, removed);
    }
    case 'copy': {
      if (typeof op.from !== 'string') throw Errors.badRequest('json patch "copy" needs "from"');
      return addAt(doc, op.path, getAt(doc, parsePointer(op.from), op.from));
    }
    case 'test': {
      const actual = getAt(doc, parsePointer(op.path), op.path);
      if (!jsonEqual(actual, op.value)) {
        throw unprocessable(`testing value ${op.path} failed: expected ${JSON.stringify(op.value)}, found ${JSON.stringify(actual)}`);
      }
      return doc;
    }
    default:
      throw Errors.badRequest(`json patch operation "${op.op}" is not supported`);
  }
}

/**
 * Lists that built-in types merge by key under strategic merge patch (the
 * `patchMergeKey` tags of the core API), and primitive lists merged as sets.
 * Lists not named here are replaced, like a merge patch.
 */
const MERGE_KEYS: Record<string, string> = {
  conditions: 'type',
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  env: 'name',
  ports: 'containerPort',
  ownerReferences: 'uid',
  addresses: 'type',
  imagePullSecrets: 'name',
};
const SET_LISTS = new Set(['finalizers']);

/**
 * Strategic merge patch for built-in types: a merge patch, except that the
 * lists above merge element-wise by their key, `{"$patch": "delete"}` removes
 * a keyed element, and `$patch: replace` on a map replaces it.
 */
export function applyStrategicMergePatch(target: unknown, patch: unknown, field = ''): unknown {
  if (Array.isArray(patch)) return mergeList(target, patch, field);
  if (!isRecord(patch)) return clone(patch);
  if (patch['$patch'] === 'replace') {
    const { $patch: _ignored, ...rest } = patch;
    return clone(rest);
  }
  if (patch['$patch'] === 'delete') return undefined;
  const out: Record<string, unknown> = isRecord(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) {
      delete out[k];
      continue;
    }
    const merged = applyStrategicMergePatch(out[k], v, k);
    if (merged === undefined) delete out[k];
    else out[k] = merged;
  }
  return out;
}

function mergeList(target: unknown, patch: unknown[], field: string): unknown {
  const current = Array.isArray(target) ? clone(target) : [];
  if (SET_LISTS.has(field)) {
    const out = [...current];
    for (const v of patch) if (!out.some((x) => jsonEqual(x, v))) out.push(clone(v));
    return out;
  }
  const key = MERGE_KEYS[field];
  if (!key || !patch.every((p) => isRecord(p) && key in p)) return clone(patch);
  const out = current as unknown[];
  for (const p of patch as Record<string, unknown>[]) {
    const idx = out.findIndex((x) => isRecord(x) && jsonEqual(x[key], p[key]));
    if (p['$patch'] === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = applyStrategicMergePatch(out[idx], p);
    else out.push(applyStrategicMergePatch(undefined, p));
  }
  return out;
}

export function applyPatch(type: PatchType, target: unknown, patch: unknown): unknown {
  switch (type) {
    case 'merge':
      return applyMergePatch(target, patch);
    case 'json':
      return applyJsonPatch(target, patch);
    case 'strategic':
      return applyStrategicMergePatch(target, patch);
  }
}
