import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { ActionResult, ConsoleAction, ConsoleMigration, ConsoleNode, ConsoleSnapshot } from '../src/console/model.js';
import { bytes, clock, drift, duration, percent, rate } from './format.js';
import { StatechartView, type Chart } from './statechart.js';
import { SpansView } from './spans.js';
import { Timeline } from './timeline.js';

type Conn = 'connecting' | 'live' | 'reconnecting';
type Notice = { id: number; kind: 'ok' | 'refused'; text: string };

const FINAL = new Set(['Succeeded', 'Failed']);
const TOKEN_KEY = 'ferry-console-token';
// A wall of hundreds of queued rows helps no one; the count is in the header.
const QUEUE_ROWS = 40;

/** The one live feed: the server pushes a snapshot whenever a watch reports a change (EventSource reconnects by itself). */
function useSnapshot(): { snap: ConsoleSnapshot | undefined; conn: Conn; unavailable: string[] } {
  const [snap, setSnap] = useState<ConsoleSnapshot>();
  const [conn, setConn] = useState<Conn>('connecting');
  const [unavailable, setUnavailable] = useState<string[]>([]);
  useEffect(() => {
    const es = new EventSource('api/events');
    es.addEventListener('snapshot', (e) => {
      setSnap(JSON.parse((e as MessageEvent<string>).data) as ConsoleSnapshot);
      setConn('live');
    });
    es.addEventListener('unavailable', (e) => setUnavailable(JSON.parse((e as MessageEvent<string>).data) as string[]));
    es.onerror = () => setConn('reconnecting');
    return () => es.close();
  }, []);
  return { snap, conn, unavailable };
}

async function act(a: ConsoleAction): Promise<ActionResult> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  try {
    const res = await fetch('api/actions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(a),
    });
    return (await res.json()) as ActionResult;
  } catch (err) {
    return { ok: false, status: 0, message: `the console did not answer: ${(err as Error).message}` };
  }
}

function App() {
  const { snap, conn, unavailable } = useSnapshot();
  const [charts, setCharts] = useState<Chart[]>([]);
  const [notices, setNotices] = useState<Notice[]>([]);
  const [selected, setSelected] = useState<string>();
  const [busy, setBusy] = useState<string>();
  // The statecharts never change while the page is open: fetched once.
  useEffect(() => {
    fetch('api/statecharts').then((r) => r.json()).then((c: Chart[]) => setCharts(c), () => undefined);
  }, []);

  const run = async (key: string, a: ConsoleAction) => {
    setBusy(key);
    const r = await act(a);
    setBusy(undefined);
    const id = Date.now() + Math.random();
    const notice: Notice = { id, kind: r.ok ? 'ok' : 'refused', text: r.ok ? r.message : `Refused${r.status ? ` (${r.status})` : ''}: ${r.message}` };
    setNotices((n) => [notice, ...n].slice(0, 4));
  };

  if (!snap) return <main class="loading" aria-busy="true">Connecting to the cluster…</main>;
  const inFlight = snap.migrations.filter((m) => !FINAL.has(m.phase) && m.phase !== 'Pending');
  const queued = snap.migrations.filter((m) => m.phase === 'Pending');
  const recent = snap.migrations.filter((m) => FINAL.has(m.phase)).sort((a, b) => (b.finished ?? '').localeCompare(a.finished ?? '')).slice(0, 12);
  const sel = snap.migrations.find((m) => m.uid === selected);
  const vmCount = snap.nodes.reduce((n, x) => n + x.vms.length, 0);

  return (
    <>
      <header class="top">
        <h1>Ferry</h1>
        <span class={`conn conn-${conn}`} role="status" aria-label={`connection ${conn}`}>{conn === 'live' ? '● live' : conn === 'reconnecting' ? '○ reconnecting…' : '○ connecting…'}</span>
        <span class="server" title="API server (the console acts with your kubeconfig's user)">{snap.server}</span>
        <dl class="counts">
          <div><dt>Nodes</dt><dd>{snap.nodes.length}</dd></div>
          <div><dt>VMs</dt><dd>{vmCount}</dd></div>
          <div><dt>Migrating</dt><dd data-testid="count-inflight">{inFlight.length}</dd></div>
          <div><dt>Queued</dt><dd>{queued.length}</dd></div>
        </dl>
        <MigrateForm nodes={snap.nodes} busy={busy === 'migrate'} onMigrate={(a) => run('migrate', a)} />
        <TokenField />
      </header>
      <div class="notices" role="log" aria-live="polite" aria-label="Action results">
        {notices.map((n) => (
          <p key={n.id} class={`notice notice-${n.kind}`} role={n.kind === 'refused' ? 'alert' : undefined}>
            {n.text}
            <button type="button" class="dismiss" aria-label="Dismiss" onClick={() => setNotices((all) => all.filter((x) => x.id !== n.id))}>×</button>
          </p>
        ))}
        {unavailable.map((u) => <p key={u} class="notice notice-refused">Not shown (cannot watch) — {u}</p>)}
      </div>
      <main class="grid">
        <section class="panel wide" aria-labelledby="h-flight">
          <h2 id="h-flight">Migrations in flight</h2>
          {inFlight.length === 0 ? <p class="empty">No migration is running.</p> : (
            <ul class="flights">
              {inFlight.map((m) => (
                <Flight key={m.uid} m={m} selected={m.uid === selected} onSelect={() => setSelected(m.uid)}
                  busy={busy === `cancel:${m.uid}`} onCancel={() => run(`cancel:${m.uid}`, { action: 'cancel', namespace: m.namespace, name: m.name })} />
              ))}
            </ul>
          )}
        </section>
        {sel && (
          <section class="panel wide detail" aria-labelledby="h-detail">
            <h2 id="h-detail">
              {sel.namespace}/{sel.vmi} <small>{sel.name}</small>
              <button type="button" class="dismiss" aria-label="Close migration details" onClick={() => setSelected(undefined)}>×</button>
            </h2>
            <p class="detail-line">
              {sel.phase}{sel.sourceNode ? ` · ${sel.sourceNode} → ${sel.targetNode ?? '?'}` : ''}{sel.mode ? ` · ${sel.mode}` : ''}
              {sel.failureReason ? ` · ${sel.failureReason}` : ''}{sel.queueReason ? ` · waiting: ${sel.queueReason}` : ''}
            </p>
            <h3>Phase timeline</h3>
            <Timeline m={sel} now={Date.parse(snap.at)} />
            <h3>Trace</h3>
            <SpansView m={sel} now={Date.parse(snap.at)} />
            {charts[0] && <><h3>Statechart</h3><StatechartView chart={charts.find((c) => c.name === 'migration') ?? charts[0]} m={sel} /></>}
          </section>
        )}
        <section class="panel" aria-labelledby="h-queue">
          <h2 id="h-queue">Queue</h2>
          {queued.length === 0 ? <p class="empty">Nothing waits.</p> : (
            <table>
              <thead><tr><th scope="col">VM</th><th scope="col">Why it waits</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
              <tbody>
                {queued.slice(0, QUEUE_ROWS).map((m) => (
                  <tr key={m.uid} data-testid={`queued-${m.vmi}`}>
                    <td><button type="button" class="link" onClick={() => setSelected(m.uid)}>{m.vmi}</button>{m.evacuationOf ? <small> (drain {m.evacuationOf})</small> : null}</td>
                    <td>{m.queueReason ?? 'waiting for the controller'}</td>
                    <td><button type="button" aria-label={`Cancel migration of ${m.vmi}`} disabled={busy === `cancel:${m.uid}`} onClick={() => run(`cancel:${m.uid}`, { action: 'cancel', namespace: m.namespace, name: m.name })}>Cancel</button></td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {queued.length > QUEUE_ROWS && <p class="empty">and {queued.length - QUEUE_ROWS} more waiting</p>}
        </section>
        <section class="panel" aria-labelledby="h-drains">
          <h2 id="h-drains">Drains</h2>
          {snap.drains.length === 0 ? <p class="empty">No node is draining.</p> : (
            <table>
              <thead><tr><th scope="col">Node</th><th scope="col">VMs left</th><th scope="col">Left</th><th scope="col">Rate</th><th scope="col">Started</th><th scope="col">Predicted end</th><th scope="col">Actual end</th></tr></thead>
              <tbody>
                {snap.drains.map((d) => (
                  <tr key={d.node} data-testid={`drain-${d.node}`}>
                    <th scope="row">{d.node}</th>
                    <td>{d.vmsLeft}/{d.vmsTotal}</td>
                    <td>{bytes(d.bytesLeft)}</td>
                    <td>{rate(d.bytesPerSecond)}</td>
                    <td>{clock(d.startedAt)}</td>
                    <td>{d.finishedAt ? '–' : clock(d.predictedEnd)}</td>
                    <td>{d.finishedAt ? <>{clock(d.finishedAt)} <small>({duration((Date.parse(d.finishedAt) - Date.parse(d.startedAt)) / 1000)})</small></> : '–'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section class="panel" aria-labelledby="h-runbooks">
          <h2 id="h-runbooks">Runbooks</h2>
          {snap.runbooks.length === 0 ? <p class="empty">No maintenance window.</p> : snap.runbooks.map((r) => (
            <article key={r.name} class="runbook" data-testid={`runbook-${r.name}`}>
              <h3>{r.name} <span class={`phase phase-${r.phase}`}>{r.phase}{r.paused && r.phase !== 'Paused' ? ' (paused)' : ''}</span> <small>{r.progress ?? ''} nodes</small></h3>
              <p>
                Window {clock(r.windowStart)}–{clock(r.windowEnd)} · predicted end <strong>{clock(r.predictedEnd)}</strong>
                {r.finishedAt ? <> · actual end <strong>{clock(r.finishedAt)}</strong> {drift(r.predictedEnd, r.finishedAt)}</> : r.eta ? <> · now expected <strong>{clock(r.eta)}</strong> {drift(r.predictedEnd, r.eta)}</> : null}
              </p>
              <button type="button" aria-label={`${r.paused ? 'Resume' : 'Pause'} runbook ${r.name}`} disabled={busy === `rb:${r.name}`}
                onClick={() => run(`rb:${r.name}`, { action: r.paused ? 'resume' : 'pause', runbook: r.name })}>{r.paused ? 'Resume' : 'Pause'}</button>
              <table>
                <thead><tr><th scope="col">Node</th><th scope="col">Phase</th><th scope="col">VMs</th><th scope="col">Predicted</th><th scope="col">Finished</th></tr></thead>
                <tbody>{r.nodes.map((n) => (
                  <tr key={n.name}><th scope="row">{n.name}</th><td title={n.reason}>{n.phase}</td><td>{n.vmsTotal !== undefined ? `${n.vmsMoved ?? 0}/${n.vmsTotal}` : '–'}</td><td>{clock(n.predictedFinish)}</td><td>{clock(n.finishedAt)} {drift(n.predictedFinish, n.finishedAt)}</td></tr>
                ))}</tbody>
              </table>
            </article>
          ))}
        </section>
        <section class="panel wide" aria-labelledby="h-nodes">
          <h2 id="h-nodes">Nodes</h2>
          <ul class="nodes">
            {snap.nodes.map((n) => <NodeCard key={n.name} n={n} busy={busy === `node:${n.name}`} onAction={(a) => run(`node:${n.name}`, a)} />)}
          </ul>
        </section>
        <section class="panel wide" aria-labelledby="h-recent">
          <h2 id="h-recent">Recently finished</h2>
          {recent.length === 0 ? <p class="empty">None yet.</p> : (
            <table>
              <thead><tr><th scope="col">VM</th><th scope="col">Outcome</th><th scope="col">From → to</th><th scope="col">Took</th><th scope="col">Finished</th></tr></thead>
              <tbody>
                {recent.map((m) => (
                  <tr key={m.uid} data-testid={`recent-${m.vmi}`}>
                    <td><button type="button" class="link" onClick={() => setSelected(m.uid)}>{m.namespace}/{m.vmi}</button></td>
                    <td class={`phase-${m.phase}`}>{m.phase}{m.failureReason ? `: ${m.failureReason}` : ''}</td>
                    <td>{m.sourceNode ?? '?'} → {m.targetNode ?? '?'}</td>
                    <td>{m.created && m.finished ? duration((Date.parse(m.finished) - Date.parse(m.created)) / 1000) : '–'}</td>
                    <td>{clock(m.finished)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      </main>
    </>
  );
}

function Flight(p: { m: ConsoleMigration; selected: boolean; busy: boolean; onSelect: () => void; onCancel: () => void }) {
  const { m } = p;
  const pct = percent(m.dataProcessed, m.dataTotal);
  return (
    <li class={`flight${p.selected ? ' selected' : ''}`} data-testid={`flight-${m.vmi}`}>
      <button type="button" class="link vm" onClick={p.onSelect} aria-label={`Details of the migration of ${m.vmi}`}>{m.vmi}</button>
      <span class="route" aria-label={`from ${m.sourceNode ?? 'unknown'} to ${m.targetNode ?? 'not yet chosen'}`}>
        <span>{m.sourceNode ?? '?'}</span><span class="arrow" aria-hidden="true" style={{ '--p': `${pct}%` }} /><span>{m.targetNode ?? '…'}</span>
      </span>
      <span class="phase">{m.phase}{m.abortRequested ? ' (cancelling)' : ''}{m.mode === 'PostCopy' ? ' · post-copy' : ''}</span>
      <span class="bar" role="progressbar" aria-label={`progress of ${m.vmi}`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(pct)}>
        <span style={{ width: `${pct}%` }} />
      </span>
      <span class="num" data-testid="rate">{rate(m.bytesPerSecond)}</span>
      <span class="num">{bytes(m.dataRemaining)} left</span>
      <span class="num">ETA {duration(m.etaSeconds)}</span>
      <button type="button" aria-label={`Cancel migration of ${m.vmi}`} disabled={p.busy || m.abortRequested} onClick={p.onCancel}>Cancel</button>
    </li>
  );
}

function NodeCard(p: { n: ConsoleNode; busy: boolean; onAction: (a: ConsoleAction) => void }) {
  const { n } = p;
  const mem = n.vms.reduce((s, v) => s + v.memoryBytes, 0);
  return (
    <li class={`node${n.draining ? ' draining' : ''}${n.ready ? '' : ' notready'}`} data-testid={`node-${n.name}`}>
      <h3>{n.name}</h3>
      <p class="badges">
        {!n.ready && <span class="badge bad">NotReady</span>}
        {n.draining ? <span class="badge warn">draining</span> : !n.schedulable ? <span class="badge warn">cordoned</span> : null}
        <span>{n.vms.length} VMs · {bytes(mem)}</span>
      </p>
      <ul class="vms" aria-label={`VMs on ${n.name}`}>
        {n.vms.map((v) => <li key={`${v.namespace}/${v.name}`} class={v.migrating ? 'moving' : ''} title={`${v.namespace}/${v.name} · ${bytes(v.memoryBytes)}${v.migrating ? ' · migrating' : ''}`}>{v.name}</li>)}
      </ul>
      {n.draining || !n.schedulable
        ? <button type="button" aria-label={`Uncordon ${n.name}`} disabled={p.busy} onClick={() => p.onAction({ action: 'uncordon', node: n.name })}>Uncordon</button>
        : <button type="button" aria-label={`Drain ${n.name}`} disabled={p.busy} onClick={() => p.onAction({ action: 'drain', node: n.name })}>Drain</button>}
    </li>
  );
}

function MigrateForm(p: { nodes: ConsoleNode[]; busy: boolean; onMigrate: (a: ConsoleAction) => void }) {
  const [vm, setVm] = useState('');
  const [node, setNode] = useState('');
  const vms = useMemo(() => p.nodes.flatMap((n) => n.vms.map((v) => `${v.namespace}/${v.name}`)), [p.nodes]);
  return (
    <form class="migrate" onSubmit={(e) => {
      e.preventDefault();
      const [ns, name] = vm.includes('/') ? vm.split('/', 2) : ['default', vm];
      if (!name) return;
      p.onMigrate({ action: 'migrate', namespace: ns!, vmi: name, ...(node ? { node } : {}) });
    }}>
      <label>VM <input list="vm-names" value={vm} onInput={(e) => setVm((e.target as HTMLInputElement).value)} placeholder="namespace/name" required /></label>
      <datalist id="vm-names">{vms.slice(0, 500).map((v) => <option key={v} value={v} />)}</datalist>
      <label>to <select value={node} onChange={(e) => setNode((e.target as HTMLSelectElement).value)}>
        <option value="">any node</option>
        {p.nodes.filter((n) => n.schedulable).map((n) => <option key={n.name} value={n.name}>{n.name}</option>)}
      </select></label>
      <button type="submit" disabled={p.busy}>Migrate</button>
    </form>
  );
}

/** An optional bearer token, for a console that runs elsewhere (kept for this tab only). */
function TokenField() {
  const [set, setSet] = useState(Boolean(sessionStorage.getItem(TOKEN_KEY)));
  return (
    <details class="token">
      <summary>{set ? 'Acting with your token' : 'Act as…'}</summary>
      <form onSubmit={(e) => {
        e.preventDefault();
        const v = ((e.target as HTMLFormElement).elements.namedItem('token') as HTMLInputElement).value.trim();
        if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
        setSet(Boolean(v));
      }}>
        <label>Bearer token for actions <input name="token" type="password" autocomplete="off" /></label>
        <button type="submit">{set ? 'Replace' : 'Use'}</button>
        <p><small>Without one, actions use the kubeconfig the console was started with.</small></p>
      </form>
    </details>
  );
}

render(<App />, document.getElementById('app')!);
