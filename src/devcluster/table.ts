import type { KubeObject } from './object.js';
import type { PrinterColumn, ResourceType } from './registry.js';
import { evaluateJsonPath } from './jsonpath.js';

/**
 * Server-side printing: what `kubectl get` shows comes from the server as a
 * `meta.k8s.io/v1` Table when the client asks for `as=Table`.
 */
export type IncludeObject = 'None' | 'Metadata' | 'Object';

export interface TableRow { cells: unknown[]; object?: unknown }
export interface Table {
  kind: 'Table';
  apiVersion: 'meta.k8s.io/v1';
  metadata: { resourceVersion?: string };
  columnDefinitions: { name: string; type: string; format: string; description: string; priority: number }[];
  rows: TableRow[];
}

/** True when the Accept header asks for a meta.k8s.io/v1 Table (kubectl get). */
export function wantsTable(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const params = part.split(';').map((p) => p.trim());
    return params.includes('as=Table') && params.includes('g=meta.k8s.io') && (params.includes('v=v1') || params.includes('v=v1beta1'));
  });
}

export function toTable(type: ResourceType, objects: KubeObject[], opts: { resourceVersion?: string; includeObject?: IncludeObject; now: number }): Table {
  const columns: PrinterColumn[] = [{ name: 'Name', type: 'string', jsonPath: '.metadata.name', description: 'Name must be unique within a namespace.' }, ...type.printerColumns];
  const table: Table = {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: {},
    columnDefinitions: columns.map((c) => ({
      name: c.name,
      type: c.type === 'date' ? 'string' : c.type,
      format: c.name === 'Name' ? 'name' : '',
      description: c.description ?? '',
      priority: c.priority ?? 0,
    })),
    rows: objects.map((obj) => {
      const row: TableRow = { cells: columns.map((c) => cell(c, obj, opts.now)) };
      const include = opts.includeObject ?? 'Metadata';
      if (include === 'Object') row.object = obj;
      else if (include === 'Metadata') row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
      return row;
    }),
  };
  if (opts.resourceVersion !== undefined) table.metadata.resourceVersion = opts.resourceVersion;
  return table;
}

function cell(col: PrinterColumn, obj: KubeObject, now: number): unknown {
  const raw = col.value ? col.value(obj, now) : col.jsonPath ? evaluateJsonPath(obj, col.jsonPath)[0] : undefined;
  if (col.type === 'date') return typeof raw === 'string' ? humanAge(raw, now) : '<unknown>';
  if (raw === undefined || raw === null) return col.type === 'string' ? '' : null;
  if (col.type === 'string' && typeof raw !== 'string') return JSON.stringify(raw);
  return raw;
}

/** Ages the way kubectl shows them: "45s", "3m12s", "25m", "5h3m", "20h", "3d4h", "120d". */
export function humanAge(timestamp: string, now: number): string {
  const t = Date.parse(timestamp);
  if (Number.isNaN(t)) return '<invalid>';
  return humanDuration(Math.max(0, now - t));
}

export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  return y < 8 && d % 365 !== 0 ? `${y}y${d % 365}d` : `${y}y`;
}
