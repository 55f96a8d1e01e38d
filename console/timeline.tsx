import type { ConsoleMigration } from '../src/console/model.js';
import { clock, duration } from './format.js';

/** One bar per phase the migration went through, as long as it stayed there. */
export function Timeline(p: { m: ConsoleMigration; now: number }) {
  const stamps = p.m.phases.map((s) => ({ phase: s.phase, at: Date.parse(s.at) })).filter((s) => Number.isFinite(s.at));
  if (stamps.length === 0) return <p class="empty">No phase recorded yet.</p>;
  const start = Math.min(...stamps.map((s) => s.at), p.m.created ? Date.parse(p.m.created) : Infinity);
  const final = p.m.phase === 'Succeeded' || p.m.phase === 'Failed';
  const end = final ? Math.max(...stamps.map((s) => s.at)) : Math.max(p.now, ...stamps.map((s) => s.at));
  const total = Math.max(1, end - start);
  return (
    <ol class="timeline" aria-label="Phase timeline">
      {stamps.map((s, i) => {
        const until = stamps[i + 1]?.at ?? end;
        const secs = (until - s.at) / 1000;
        const last = i === stamps.length - 1;
        return (
          <li key={`${s.phase}-${i}`} class={`seg phase-${s.phase}`} style={{ '--off': `${(100 * (s.at - start)) / total}%`, '--w': `${Math.max(0.5, (100 * (until - s.at)) / total)}%` }}>
            <span class="label">{s.phase} <small>{clock(new Date(s.at).toISOString())}{last && final ? '' : ` · ${duration(secs)}`}</small></span>
            <span class="track" aria-hidden="true"><span class="bar" /></span>
          </li>
        );
      })}
    </ol>
  );
}
