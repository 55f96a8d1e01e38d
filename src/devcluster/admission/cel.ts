import { Environment } from '@marcbachmann/cel-js';

/**
 * CEL for admission, over @marcbachmann/cel-js: the expressions of
 * matchConditions, ValidatingAdmissionPolicy validations, messageExpressions
 * and variables. Kubernetes declares its variables (object, oldObject,
 * request, params, namespaceObject, variables) as dynamic, and so do we.
 * Expressions are compiled once and cached by their text.
 */

const env = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false, enableOptionalTypes: true });
type Compiled = ReturnType<Environment['parse']>;
const cache = new Map<string, Compiled | Error>();

export class CelError extends Error {}

function compile(expression: string): Compiled {
  let c = cache.get(expression);
  if (!c) {
    try {
      c = env.parse(expression);
    } catch (err) {
      c = new CelError(`compilation failed: ${(err as Error).message.split('\n')[0]}`);
    }
    if (cache.size > 2000) cache.clear();
    cache.set(expression, c);
  }
  if (c instanceof Error) throw c;
  return c;
}

/** Compiles without evaluating: the error a create of a policy with a bad expression would get. */
export function checkSyntax(expression: string): string | undefined {
  try {
    compile(expression);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The library accepts plain objects of its own realm only; objects copied by
 * structuredClone (the store's snapshots) may come from another. A JSON copy
 * is what the real server's CEL sees anyway: the object as JSON.
 */
const plainCopies = new WeakMap<object, Record<string, unknown>>();
function plain(vars: Record<string, unknown>): Record<string, unknown> {
  let p = plainCopies.get(vars);
  if (!p) {
    p = JSON.parse(JSON.stringify(vars)) as Record<string, unknown>;
    plainCopies.set(vars, p);
  }
  return p;
}

export function evaluate(expression: string, vars: Record<string, unknown>): unknown {
  const c = compile(expression);
  try {
    return c(plain(vars));
  } catch (err) {
    throw new CelError((err as Error).message.split('\n')[0] ?? String(err));
  }
}

/** Evaluates an expression that must yield a bool, as matchConditions and validations must. */
export function evaluateBool(expression: string, vars: Record<string, unknown>): boolean {
  const v = evaluate(expression, vars);
  if (typeof v !== 'boolean') throw new CelError(`expression must evaluate to bool, got ${typeof v === 'bigint' ? 'int' : typeof v}`);
  return v;
}

export interface MatchCondition { name: string; expression: string }

/**
 * matchConditions, as kube-apiserver evaluates them: any false → no match
 * (even if another errors); otherwise any error → the caller's failurePolicy
 * decides; otherwise match.
 */
export function evaluateMatchConditions(conditions: MatchCondition[] | undefined, vars: Record<string, unknown>): { matches: boolean; error?: string } {
  let error: string | undefined;
  for (const c of conditions ?? []) {
    try {
      if (!evaluateBool(c.expression, vars)) return { matches: false };
    } catch (err) {
      error ??= `matchCondition "${c.name}" evaluation error: ${(err as Error).message}`;
    }
  }
  return error ? { matches: false, error } : { matches: true };
}
