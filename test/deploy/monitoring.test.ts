import { ControllerMetrics, HandlerMetrics } from '../../src/metrics/index.js';
import { find, readRepoFile, render, type K8sObject } from './render.js';

/**
 * The alerts and the dashboard query what Ferry exports: every metric name
 * they use is registered by the controller's or the handler's metrics, and
 * the series each is asked for by job is the one that process exports.
 */
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function exported(registry: { getMetricsAsArray(): Array<{ name: string; type: unknown }> }): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of registry.getMetricsAsArray()) {
    out.set(m.name, String(m.type));
    // Histograms are queried through their series.
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.set(m.name + s, 'histogram series');
  }
  return out;
}
const controllerNames = exported(new ControllerMetrics().registry);
const handlerNames = exported(new HandlerMetrics().registry);

/** Every `metric{job="..."}` selector in a PromQL expression (all of Ferry's queries name their job). */
function selectors(expr: string): Array<{ metric: string; job: string | undefined }> {
  return [...expr.matchAll(/\b((?:kubevirt|ferry)_[a-z0-9_]+)\s*(\{[^}]*\})?/g)].map((m) => ({ metric: m[1]!, job: /job="([^"]+)"/.exec(m[2] ?? '')?.[1] }));
}

function checkQueries(exprs: string[]): string[] {
  const problems: string[] = [];
  for (const expr of exprs) {
    let depth = 0;
    for (const ch of expr) {
      if (ch === '(') depth++;
      if (ch === ')') depth--;
      if (depth < 0) break;
    }
    if (depth !== 0) problems.push(`unbalanced parentheses: ${expr}`);
    for (const { metric, job } of selectors(expr)) {
      const names = job === 'ferry-controller-metrics' ? controllerNames : job === 'ferry-handler-metrics' ? handlerNames : undefined;
      if (!names) problems.push(`${metric}: no job="ferry-controller-metrics" or "ferry-handler-metrics" selector`);
      else if (!names.has(metric)) problems.push(`${metric}: not exported by the ${job === 'ferry-controller-metrics' ? 'controller' : 'handler'}`);
    }
  }
  return problems;
}

const dashboard = JSON.parse(readRepoFile('deploy/monitoring/grafana-dashboard.json')) as Obj;
const panels = (dashboard['panels'] as Obj[]).filter((p) => p['type'] !== 'row');
const dashboardExprs = panels.flatMap((p) => (p['targets'] as Obj[]).map((t) => String(t['expr'])));
const rules = (find(render('monitoring'), 'PrometheusRule', 'ferry') as K8sObject & Obj)['spec']['groups'].flatMap((g: Obj) => g['rules']) as Obj[];

describe('monitoring', () => {
  test('every alert queries metrics Ferry exports, from the process that exports them', () => {
    expect(checkQueries(rules.map((r) => String(r['expr'])))).toEqual([]);
  });

  test('every dashboard panel queries metrics Ferry exports, from the process that exports them', () => {
    expect(checkQueries(dashboardExprs)).toEqual([]);
  });

  test('the dashboard shows the migration, admission, bandwidth and health metrics', () => {
    const used = new Set(dashboardExprs.flatMap((e) => selectors(e).map((s) => s.metric)));
    expect([...used].sort()).toEqual(
      expect.arrayContaining([
        'kubevirt_vmi_migrations_in_pending_phase',
        'kubevirt_vmi_migrations_in_scheduling_phase',
        'kubevirt_vmi_migrations_in_running_phase',
        'kubevirt_vmi_migration_succeeded',
        'kubevirt_vmi_migration_failed',
        'kubevirt_vmi_migration_data_processed_bytes',
        'kubevirt_vmi_migration_data_remaining_bytes',
        'kubevirt_vmi_migration_dirty_memory_rate_bytes',
        'kubevirt_vmi_migration_memory_transfer_rate_bytes',
        'ferry_migration_queue_length',
        'ferry_node_bandwidth_allocated_bytes_per_second',
        'ferry_node_nic_capacity_bytes_per_second',
        'ferry_cluster_migrations_active',
        'ferry_cluster_migrations_limit',
        'ferry_node_migrations_active',
        'ferry_node_migrations_limit',
        'ferry_nats_command_duration_seconds_bucket',
        'ferry_reconcile_errors_total',
        'ferry_controller_leader',
        'ferry_handler_heartbeat_age_seconds',
      ]),
    );
  });

  test('the dashboard is well-formed: unique panel ids, every panel on the datasource variable, inside the 24-column grid', () => {
    const ids = (dashboard['panels'] as Obj[]).map((p) => p['id']);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard['templating']['list'].map((v: Obj) => [v['name'], v['type'], v['query']])).toEqual([['datasource', 'datasource', 'prometheus']]);
    for (const p of panels) {
      expect([p['title'], p['datasource']]).toEqual([p['title'], { type: 'prometheus', uid: '${datasource}' }]);
      expect(p['gridPos']['x'] + p['gridPos']['w']).toBeLessThanOrEqual(24);
      expect((p['targets'] as Obj[]).length).toBeGreaterThan(0);
    }
  });

  test('the alerts the issue asks for exist, each with a severity and a summary', () => {
    expect(rules.map((r) => r['alert']).sort()).toEqual(
      expect.arrayContaining(['FerryDrainNotProgressing', 'FerryHandlerHeartbeatMissing', 'FerryMigrationRunningTooLong', 'FerryMigrationsStuckScheduling', 'FerryNoLeader']),
    );
    for (const r of rules) {
      expect([r['alert'], r['labels']?.['severity']]).toEqual([r['alert'], expect.stringMatching(/^(warning|critical)$/)]);
      expect(r['annotations']?.['summary']).toEqual(expect.any(String));
    }
    expect(rules.find((r) => r['alert'] === 'FerryHandlerHeartbeatMissing')!['expr']).toMatch(/ferry_handler_heartbeat_age_seconds\{[^}]*\}\) > 30$/);
    expect(rules.find((r) => r['alert'] === 'FerryMigrationRunningTooLong')!['expr']).toMatch(/> 900/);
  });

  test('the ServiceMonitor scrapes the controller, handler and webhook metrics Services by their port name', () => {
    const sm = find(render('monitoring'), 'ServiceMonitor', 'ferry') as Obj;
    const services = render('overlays/standalone').filter((o) => o.kind === 'Service' && o.metadata.name.endsWith('-metrics'));
    expect(services.map((s) => s.metadata.name).sort()).toEqual(['ferry-controller-metrics', 'ferry-handler-metrics', 'ferry-webhook-metrics']);
    for (const svc of services) {
      const labels = svc.metadata.labels ?? {};
      const selected = (sm['spec']['selector']['matchExpressions'] as Obj[]).every((e) => (e['values'] as string[]).includes(labels[e['key']] ?? ''));
      expect([svc.metadata.name, selected]).toEqual([svc.metadata.name, true]);
      expect((svc as Obj)['spec']['ports'].map((p: Obj) => p['name'])).toContain(sm['spec']['endpoints'][0]['port']);
    }
  });
});
