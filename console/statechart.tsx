import type { ConsoleMigration } from '../src/console/model.js';

/** The shape /api/statecharts sends: statecharts/outline.ts's ChartNode per chart. */
export interface ChartNode {
  id: string;
  key: string;
  type: string;
  initial?: string;
  description?: string;
  transitions: Array<{ event: string; targets: string[]; guard?: string; actions: string[] }>;
  states: ChartNode[];
}
export interface Chart {
  name: string;
  title: string;
  chart: ChartNode;
}

/**
 * Where in the migration chart a VMIM is, as far as its status tells: the
 * top-level state is its phase; inside Running, an abort or post-copy shows
 * in status too. Deeper states live only in the controller.
 */
export function currentPath(m: ConsoleMigration): string[] {
  if (m.phase !== 'Running') return [m.phase];
  if (m.abortRequested) return ['Running', 'aborting'];
  if (m.mode === 'PostCopy') return ['Running', 'postCopy'];
  return ['Running', 'migrating'];
}

const short = (id: string, chartId: string) => id.replace(`${chartId}.`, '');

/** The chart's states as boxes in definition order, the current one lit, and the ways out of it. */
export function StatechartView(p: { chart: Chart; m: ConsoleMigration }) {
  const root = p.chart.chart;
  const path = currentPath(p.m);
  const top = root.states.find((s) => s.key === path[0]);
  const sub = top?.states.find((s) => s.key === path[1]);
  const exits = [...(top?.transitions ?? []), ...(sub?.transitions ?? [])].filter((t) => t.targets.length > 0);
  return (
    <div class="chart" aria-label={`${p.chart.title}: current state ${path.join('.')}`}>
      <ol class="states">
        {root.states.map((s) => {
          const lit = s.key === path[0];
          return (
            <li key={s.id} class={`state${lit ? ' lit' : ''}${s.type === 'final' ? ' final' : ''}`} aria-current={lit ? 'step' : undefined} title={s.description}>
              <span class="name">{s.key}</span>
              {s.states.length > 0 && (
                <ul>{s.states.map((c) => <li key={c.id} class={lit && c.key === path[1] ? 'lit' : ''} aria-current={lit && c.key === path[1] ? 'step' : undefined}>{c.key}</li>)}</ul>
              )}
            </li>
          );
        })}
      </ol>
      {exits.length > 0 && (
        <p class="exits"><strong>Ways out of {path.join('.')}:</strong>{' '}
          {exits.slice(0, 12).map((t, i) => <span key={i} class="exit">{t.event}{t.guard ? ` [${t.guard}]` : ''} → {t.targets.map((x) => short(x, root.id)).join(', ')}</span>)}
        </p>
      )}
    </div>
  );
}
