/**
 * Flattens a JSON Schema (as zod's `z.toJSONSchema` writes it) into one row per
 * field, for reference tables. Pure.
 */

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  minItems?: number;
  [k: string]: unknown;
}

export interface FieldRow {
  path: string;
  type: string;
  required: boolean;
  default?: unknown;
  constraints: string[];
}

const isNull = (s: JsonSchema) => s.type === 'null';
const isAny = (s: JsonSchema) => Object.keys(s).length === 0;

/** Alternatives of a union, with null and "anything" members folded into the others. */
function alternatives(s: JsonSchema): JsonSchema[] {
  const alts = s.anyOf ?? s.oneOf;
  if (!alts) return [s];
  return alts.flatMap((a) => alternatives(a)).filter((a) => !isNull(a) && !isAny(a));
}

export function typeName(s: JsonSchema): string {
  if (s.anyOf || s.oneOf) {
    const alts = alternatives(s);
    if (alts.length === 0) return 'any';
    return [...new Set(alts.map(typeName))].join(' \\| ');
  }
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return 'string';
  const t = Array.isArray(s.type) ? s.type.join(' \\| ') : s.type;
  if (t === 'array') return `${s.items ? typeName(s.items) : 'any'}[]`;
  if (t === 'object' && !s.properties && s.additionalProperties && typeof s.additionalProperties === 'object') {
    return `map[string]${typeName(s.additionalProperties)}`;
  }
  return t ?? 'any';
}

function constraints(s: JsonSchema): string[] {
  const out: string[] = [];
  const alts = alternatives(s);
  for (const a of alts.length ? alts : [s]) {
    if (a.enum) out.push(`one of ${a.enum.map((v) => `\`${String(v)}\``).join(', ')}`);
    if (a.pattern) out.push(`pattern \`${a.pattern}\``);
    if (a.minLength !== undefined && a.minLength > 0) out.push('non-empty');
    if (a.minItems !== undefined) out.push(`at least ${a.minItems} item${a.minItems === 1 ? '' : 's'}`);
    if (a.exclusiveMinimum !== undefined) out.push(`> ${a.exclusiveMinimum}`);
    if (a.minimum !== undefined && a.minimum > Number.MIN_SAFE_INTEGER) out.push(`≥ ${a.minimum}`);
    if (a.maximum !== undefined && a.maximum < Number.MAX_SAFE_INTEGER) out.push(`≤ ${a.maximum}`);
  }
  if ((s.anyOf ?? s.oneOf)?.some(isNull)) out.push('may be null');
  return out;
}

/**
 * Every field under `schema`, depth first, paths dotted (`spec.window.start`,
 * `items[].name`). `collapse` lists paths shown as one row without their
 * children (e.g. the standard `metadata`).
 */
export function fieldRows(schema: JsonSchema, opts: { collapse?: string[] } = {}): FieldRow[] {
  const rows: FieldRow[] = [];
  const visit = (s: JsonSchema, path: string, required: boolean) => {
    const row: FieldRow = { path, type: typeName(s), required, constraints: constraints(s) };
    if (s.default !== undefined) row.default = s.default;
    rows.push(row);
    if (!opts.collapse?.includes(path)) visitChildren(s, path);
  };
  const visitChildren = (s: JsonSchema, path: string) => {
    const alts = alternatives(s);
    if (alts.length > 1) {
      // A union of object forms: the fields of each, marked with their form.
      alts.forEach((a, i) => {
        const before = rows.length;
        visitChildren(a, path);
        for (const r of rows.slice(before)) r.constraints.unshift(`form ${i + 1} of ${alts.length}`);
      });
      return;
    }
    const o = alts[0] ?? s;
    const prefix = path ? `${path}.` : '';
    if (o.properties) {
      for (const [k, v] of Object.entries(o.properties)) visit(v, `${prefix}${k}`, (o.required ?? []).includes(k));
    } else if (o.type === 'array' && o.items) {
      visitChildren(o.items, `${path}[]`);
    } else if (o.additionalProperties && typeof o.additionalProperties === 'object') {
      visitChildren(o.additionalProperties, `${path}.<key>`);
    }
  };
  visitChildren(schema, '');
  return rows;
}
