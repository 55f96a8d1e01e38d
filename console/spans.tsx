import { useEffect, useRef, useState } from 'preact/hooks';
import type { ConsoleMigration } from '../src/console/model.js';
import type { SpanView } from '../src/tracing/view.js';
import { duration } from './format.js';

type Loaded = { kind: 'spans'; spans: SpanView[] } | { kind: 'none'; message: string } | { kind: 'loading' };

/**
 * The migration's trace as a waterfall: phases under the migration, commands
 * under their phase, the handler's side and the hypervisor job under those.
 * Fetched when the migration is picked and again when the server pushes a
 * change to it (at most once a second), never on a timer.
 */
export function SpansView(p: { m: ConsoleMigration; now: number }) {
  const [data, setData] = useState<Loaded>({ kind: 'loading' });
  const last = useRef(0);
  const key = `${p.m.uid}|${p.m.phase}|${p.m.dataProcessed ?? ''}`;
  useEffect(() => {
    let gone = false;
    const wait = Math.max(0, 1000 - (Date.now() - last.current));
    const t = setTimeout(() => {
      last.current = Date.now();
      fetch(`api/traces/${encodeURIComponent(p.m.uid)}`).then(async (r) => {
        const body = (await r.json()) as SpanView[] | { message: string };
        if (gone) return;
        setData(Array.isArray(body) ? { kind: 'spans', spans: body } : { kind: 'none', message: body.message });
      }, () => undefined);
    }, wait);
    return () => { gone = true; clearTimeout(t); };
  }, [key]);

  if (data.kind === 'loading') return <p class="empty">Loading spans…</p>;
  if (data.kind === 'none') return <p class="empty">{data.message}</p>;
  const spans = data.spans;
  if (spans.length === 0) return <p class="empty">No spans recorded for this migration.</p>;
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const depth = (s: SpanView): number => {
    let d = 0;
    for (let cur = s; cur.parentSpanId && byId.has(cur.parentSpanId) && d < 10; cur = byId.get(cur.parentSpanId)!) d++;
    return d;
  };
  // Depth-first order: each span right under its parent.
  const children = new Map<string | undefined, SpanView[]>();
  for (const s of spans) {
    const parent = s.parentSpanId && byId.has(s.parentSpanId) ? s.parentSpanId : undefined;
    children.set(parent, [...(children.get(parent) ?? []), s]);
  }
  const ordered: SpanView[] = [];
  const walk = (id: string | undefined) => { for (const c of (children.get(id) ?? []).sort((a, b) => a.start - b.start)) { ordered.push(c); walk(c.spanId); } };
  walk(undefined);
  const start = Math.min(...spans.map((s) => s.start));
  const end = Math.max(...spans.map((s) => s.end ?? p.now), start + 1);
  const total = end - start;
  return (
    <ol class="spans" aria-label="Spans of this migration's trace">
      {ordered.map((s) => {
        const e = s.end ?? p.now;
        return (
          <li key={s.spanId} class={`span${s.error ? ' error' : ''}${s.end === undefined ? ' open' : ''}`} style={{ '--off': `${(100 * (s.start - start)) / total}%`, '--w': `${Math.max(0.4, (100 * (e - s.start)) / total)}%`, '--d': depth(s) }}
            title={Object.entries(s.attributes).map(([k, v]) => `${k}=${v}`).join('\n')}>
            <span class="label">{s.name}{s.attributes['k8s.node.name'] ? <small> @{String(s.attributes['k8s.node.name'])}</small> : null}</span>
            <span class="track" aria-hidden="true"><span class="bar" /></span>
            <span class="num">{s.end === undefined ? `${duration((e - s.start) / 1000)}…` : e - s.start < 1000 ? `${Math.round(e - s.start)} ms` : duration((e - s.start) / 1000)}</span>
          </li>
        );
      })}
    </ol>
  );
}
