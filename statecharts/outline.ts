import type { AnyStateNode } from 'xstate';

type AnyTransition = AnyStateNode['transitions'] extends Map<string, Array<infer T>> ? T : never;

/**
 * A plain-data outline of an xstate chart (states, transitions, named actions,
 * guards, actors and timers), for drawing the charts in the docs. Shared by
 * every chart under statecharts/.
 */
export interface ChartTransition {
  /** Event type; `after(<delay>)` for timers, `always` for eventless transitions. */
  event: string;
  /** Target state ids; empty for a transition that stays put. */
  targets: string[];
  guard?: string;
  actions: string[];
  reenter?: true;
}

export interface ChartNode {
  id: string;
  key: string;
  type: string;
  initial?: string;
  description?: string;
  entry: string[];
  invoke: string[];
  transitions: ChartTransition[];
  states: ChartNode[];
}

function actionName(a: unknown): string {
  if (typeof a === 'string') return a;
  if (a && typeof a === 'object' && 'type' in a && typeof a.type === 'string') return a.type;
  return 'inline';
}

function guardName(g: unknown): string | undefined {
  if (g === undefined) return undefined;
  if (typeof g === 'string') return g;
  // and()/or()/not() are functions carrying their operands.
  if (typeof g === 'function' && 'guards' in g && Array.isArray(g.guards)) {
    return `${g.name}(${g.guards.map((x: unknown) => guardName(x) ?? '?').join(', ')})`;
  }
  if (g && typeof g === 'object' && 'type' in g && typeof g.type === 'string') {
    // Parameterised guards show their parameter: resumeAt(Running), resumeAt(Running|Paused).
    const params = 'params' in g ? (g.params as { phase?: unknown; phases?: unknown } | undefined) : undefined;
    if (typeof params?.phase === 'string') return `${g.type}(${params.phase})`;
    if (Array.isArray(params?.phases)) return `${g.type}(${params.phases.join('|')})`;
    return g.type;
  }
  return 'inline';
}

function describeTransition(t: AnyTransition, event: string): ChartTransition {
  const guard = guardName(t.guard);
  return {
    event,
    targets: (t.target ?? []).map((s) => s.id),
    ...(guard ? { guard } : {}),
    actions: t.actions.map(actionName),
    ...(t.reenter ? { reenter: true as const } : {}),
  };
}

/** Timers as after(<delay>), invoked actors' outcomes as done(<id>) / error(<id>). */
function eventName(eventType: string): string {
  const delay = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (delay) return `after(${delay[1]})`;
  const done = /^xstate\.(done|error)\.actor\.(.+)$/.exec(eventType);
  if (done) return `${done[1]}(${done[2]})`;
  return eventType;
}

export function describeNode(node: AnyStateNode): ChartNode {
  const transitions: ChartTransition[] = [];
  for (const [eventType, list] of node.transitions) for (const t of list) transitions.push(describeTransition(t, eventName(eventType)));
  for (const t of node.always ?? []) transitions.push(describeTransition(t, 'always'));
  const initial = node.initial?.target[0]?.key;
  return {
    id: node.id,
    key: node.key,
    type: node.type,
    ...(initial ? { initial } : {}),
    ...(node.description ? { description: node.description } : {}),
    entry: node.entry.map(actionName),
    invoke: node.invoke.map((i) => (typeof i.src === 'string' ? i.src : i.id)),
    transitions,
    states: Object.values(node.states).map(describeNode),
  };
}

