import { isRecord } from './object.js';

/**
 * The JSONPath subset CRD printer columns use: `.a.b`, `.a[0].b`, `.a[*].b`
 * and filters `.a[?(@.type=='Ready')].status`. Returns every match in order.
 */
type Step = { kind: 'field'; name: string } | { kind: 'index'; index: number } | { kind: 'all' } | { kind: 'filter'; path: string[]; value: string };

function parse(path: string): Step[] {
  const steps: Step[] = [];
  let rest = path.trim().replace(/^\{(.*)\}$/, '$1').replace(/^\$/, '');
  while (rest.length > 0) {
    let m: RegExpExecArray | null;
    if ((m = /^\.([A-Za-z0-9_$-]+)/.exec(rest))) steps.push({ kind: 'field', name: m[1]! });
    else if ((m = /^\[(\d+)\]/.exec(rest))) steps.push({ kind: 'index', index: Number(m[1]) });
    else if ((m = /^\[\*\]/.exec(rest))) steps.push({ kind: 'all' });
    else if ((m = /^\[\?\(@((?:\.[A-Za-z0-9_-]+)+)\s*==\s*(['"])(.*?)\2\)\]/.exec(rest))) {
      steps.push({ kind: 'filter', path: m[1]!.slice(1).split('.'), value: m[3]! });
    } else if ((m = /^\['([^']+)'\]/.exec(rest))) steps.push({ kind: 'field', name: m[1]! });
    else throw new Error(`unsupported JSONPath "${path}" at "${rest}"`);
    rest = rest.slice(m[0].length);
  }
  return steps;
}

export function evaluateJsonPath(obj: unknown, path: string): unknown[] {
  let cur: unknown[] = [obj];
  for (const step of parse(path)) {
    const next: unknown[] = [];
    for (const v of cur) {
      if (step.kind === 'field' && isRecord(v) && v[step.name] !== undefined) next.push(v[step.name]);
      else if (step.kind === 'index' && Array.isArray(v) && step.index < v.length) next.push(v[step.index]);
      else if (step.kind === 'all' && Array.isArray(v)) next.push(...v);
      else if (step.kind === 'filter' && Array.isArray(v)) {
        for (const el of v) {
          let x: unknown = el;
          for (const p of step.path) x = isRecord(x) ? x[p] : undefined;
          if (x !== undefined && String(x) === step.value) next.push(el);
        }
      }
    }
    cur = next;
  }
  return cur;
}
