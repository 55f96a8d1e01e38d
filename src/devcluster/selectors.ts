import { Errors } from './errors.js';
import { isRecord } from './object.js';

/**
 * Label selectors as query strings ("app=x,tier!=db,env in (a,b),!legacy")
 * and as objects (matchLabels/matchExpressions), and field selectors
 * ("spec.nodeName=node-1,status.phase!=Running").
 */
export type Requirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'doesnotexist' };

export type Labels = Record<string, string> | undefined;

export function parseLabelSelector(text: string): Requirement[] {
  const reqs: Requirement[] = [];
  for (const part of splitTopLevel(text)) {
    const s = part.trim();
    if (s === '') continue;
    reqs.push(parseRequirement(s));
  }
  return reqs;
}

/** Splits on commas that are not inside "( ... )". */
function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

const KEY = String.raw`[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const VALUE = String.raw`([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const SET_RE = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s*\(([^)]*)\)$`);
const EQ_RE = new RegExp(String.raw`^(${KEY})\s*(==|=|!=)\s*(${VALUE})$`);
const EXISTS_RE = new RegExp(String.raw`^(!?)\s*(${KEY})$`);

function parseRequirement(s: string): Requirement {
  let m = SET_RE.exec(s);
  if (m) {
    const values = (m[4] ?? '').split(',').map((v) => v.trim());
    if (values.some((v) => !new RegExp(`^${VALUE}$`).test(v))) throw badSelector(s, 'invalid value in set');
    return { key: m[1]!, op: m[3] === 'in' ? 'in' : 'notin', values };
  }
  m = EQ_RE.exec(s);
  if (m) return { key: m[1]!, op: m[3] === '!=' ? 'notin' : 'in', values: [m[4] ?? ''] };
  m = EXISTS_RE.exec(s);
  if (m) return { key: m[2]!, op: m[1] === '!' ? 'doesnotexist' : 'exists' };
  throw badSelector(s, 'expected key, !key, key=value, key!=value, key in (...) or key notin (...)');
}

function badSelector(s: string, why: string) {
  return Errors.badRequest(`unable to parse requirement: "${s}": ${why}`);
}

export function matchesRequirements(reqs: Requirement[], labels: Labels): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'doesnotexist':
        return !has;
      case 'in':
        return has && r.values.includes(l[r.key]!);
      case 'notin':
        return !has || !r.values.includes(l[r.key]!);
    }
  });
}

/** A metav1.LabelSelector object. `undefined`/null selects nothing; `{}` selects everything. */
export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export function labelSelectorObjectToRequirements(sel: LabelSelectorObject): Requirement[] {
  const reqs: Requirement[] = Object.entries(sel.matchLabels ?? {}).map(([key, v]) => ({ key, op: 'in' as const, values: [v] }));
  for (const e of sel.matchExpressions ?? []) {
    switch (e.operator) {
      case 'In':
        reqs.push({ key: e.key, op: 'in', values: e.values ?? [] });
        break;
      case 'NotIn':
        reqs.push({ key: e.key, op: 'notin', values: e.values ?? [] });
        break;
      case 'Exists':
        reqs.push({ key: e.key, op: 'exists' });
        break;
      case 'DoesNotExist':
        reqs.push({ key: e.key, op: 'doesnotexist' });
        break;
      default:
        throw Errors.badRequest(`"${e.operator}" is not a valid label selector operator`);
    }
  }
  return reqs;
}

export function matchesLabelSelectorObject(sel: unknown, labels: Labels): boolean {
  if (!isRecord(sel)) return false;
  return matchesRequirements(labelSelectorObjectToRequirements(sel as LabelSelectorObject), labels);
}

export interface FieldRequirement { field: string; op: '=' | '!='; value: string }

export function parseFieldSelector(text: string, supported: (field: string) => boolean): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  for (const raw of text.split(',')) {
    const s = raw.trim();
    if (s === '') continue;
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(s);
    if (!m) throw Errors.badRequest(`invalid selector: '${s}'; can't understand '${s}'`);
    const field = m[1]!;
    if (!supported(field)) throw Errors.badRequest(`field label not supported: ${field}`);
    out.push({ field, op: m[2] === '!=' ? '!=' : '=', value: m[3] ?? '' });
  }
  return out;
}

export function matchesFields(reqs: FieldRequirement[], valueOf: (field: string) => string): boolean {
  return reqs.every((r) => (valueOf(r.field) === r.value) === (r.op === '='));
}
