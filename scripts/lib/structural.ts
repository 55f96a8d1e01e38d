/**
 * Turns the JSON Schema zod 4 emits (`z.toJSONSchema`, OpenAPI 3.0 flavour)
 * into a Kubernetes *structural* schema, the only kind a v1 CRD accepts:
 * every node has a type (or says it keeps unknown fields / is int-or-string),
 * `properties` and `additionalProperties` never meet, unions are folded into
 * one typed node (with `anyOf` holding only `required` alternatives), and no
 * `$ref`s. Pure; `structuralProblems` checks the result independently.
 */
export type Schema = Record<string, unknown>;

export interface StructuralOptions {
  /** Keep `default` values (the API server then applies them when objects are written). */
  keepDefaults: boolean;
}

const VALUE_KEYS = [
  'description', 'format', 'enum', 'nullable', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
  'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'uniqueItems', 'multipleOf', 'minProperties', 'maxProperties',
] as const;
const SAFE_INT = Number.MAX_SAFE_INTEGER;
const PRESERVE = 'x-kubernetes-preserve-unknown-fields';
const INT_OR_STRING = 'x-kubernetes-int-or-string';

const isSchema = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const isEmpty = (s: Schema) => Object.keys(s).filter((k) => k !== 'description').length === 0;

export function toStructural(input: Schema, opts: StructuralOptions, path = '#'): Schema {
  if ('$ref' in input || 'definitions' in input || '$defs' in input) throw new Error(`${path}: $ref/definitions cannot appear in a CRD schema`);
  const alternatives = (input['anyOf'] ?? input['oneOf']) as Schema[] | undefined;
  if (alternatives) {
    const rest: Schema = { ...input };
    delete rest['anyOf'];
    delete rest['oneOf'];
    const folded = foldAlternatives(alternatives.map((a, i) => toStructural(a, opts, `${path}/anyOf/${i}`)), path);
    return withCommon(folded, rest, opts);
  }
  if (Array.isArray(input['allOf'])) throw new Error(`${path}: allOf is not supported by the CRD generator`);
  if (isEmpty(input)) return withCommon({ [PRESERVE]: true }, input, opts);

  const out: Schema = {};
  let type = input['type'];
  if (type === 'number' && input['multipleOf'] === 1) type = 'integer';
  if (type !== undefined) out['type'] = type;
  for (const k of VALUE_KEYS) if (input[k] !== undefined) out[k] = input[k];
  // zod's .int() adds ±MAX_SAFE_INTEGER bounds; Kubernetes integers are int64, the bounds are noise.
  if (out['minimum'] === -SAFE_INT) delete out['minimum'];
  if (out['maximum'] === SAFE_INT) delete out['maximum'];
  if (opts.keepDefaults && input['default'] !== undefined) out['default'] = input['default'];

  if (type === 'object') {
    const props = isSchema(input['properties']) ? input['properties'] : undefined;
    const extra = input['additionalProperties'];
    if (props && Object.keys(props).length > 0) {
      out['properties'] = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, toStructural(v as Schema, opts, `${path}/properties/${k}`)]));
      if (Array.isArray(input['required']) && input['required'].length > 0) out['required'] = input['required'];
      // A loose object: known fields typed, the rest kept as is (KubeVirt's objects have many more fields).
      if (extra === true || (isSchema(extra) && isEmpty(extra))) out[PRESERVE] = true;
    } else if (isSchema(extra) && !isEmpty(extra)) {
      out['additionalProperties'] = toStructural(extra, opts, `${path}/additionalProperties`);
    } else if (extra === true || isSchema(extra)) {
      out[PRESERVE] = true;
    }
  } else if (type === 'array') {
    out['items'] = isSchema(input['items']) ? toStructural(input['items'], opts, `${path}/items`) : { [PRESERVE]: true };
  } else if (type === undefined) {
    out[PRESERVE] = true;
  }
  return out;
}

/** Description, nullable and default of a union node go on the folded node. */
function withCommon(folded: Schema, outer: Schema, opts: StructuralOptions): Schema {
  const out = { ...folded };
  if (typeof outer['description'] === 'string') out['description'] = outer['description'];
  if (outer['nullable'] === true) out['nullable'] = true;
  if (opts.keepDefaults && outer['default'] !== undefined) out['default'] = outer['default'];
  else if (!opts.keepDefaults) delete out['default'];
  return out;
}

/** One typed node for a union of alternatives (already structural). */
function foldAlternatives(alts: Schema[], path: string): Schema {
  const nullable = alts.some((a) => a['nullable'] === true);
  const flat = alts.filter((a) => !(a['type'] === 'null'));
  const mark = (s: Schema) => (nullable ? { ...s, nullable: true } : s);
  if (flat.some((a) => a[PRESERVE] === true && a['type'] === undefined)) return mark({ [PRESERVE]: true });
  const types = new Set(flat.map((a) => a['type']));
  if (types.size === 1) {
    const [type] = types;
    if (type === 'string' || type === 'boolean' || type === 'integer' || type === 'number') {
      const out: Schema = { type };
      if (flat.every((a) => Array.isArray(a['enum']))) out['enum'] = [...new Set(flat.flatMap((a) => a['enum'] as unknown[]))];
      const formats = new Set(flat.map((a) => a['format']));
      if (formats.size === 1 && [...formats][0] !== undefined) out['format'] = [...formats][0];
      return mark(out);
    }
    if (type === 'object') return mark(foldObjects(flat, path));
    if (type === 'array') return mark({ type: 'array', items: foldAlternatives(flat.map((a) => a['items'] as Schema), `${path}/items`) });
  }
  if ([...types].every((t) => t === 'string' || t === 'integer' || t === 'number') && types.has('string')) {
    // Kubernetes' own "quantity or number" shape.
    return mark({ [INT_OR_STRING]: true, anyOf: [{ type: 'integer' }, { type: 'string' }] });
  }
  return mark({ [PRESERVE]: true });
}

/** A union of objects: every branch's properties, and the branches' required sets as `anyOf` alternatives. */
function foldObjects(branches: Schema[], path: string): Schema {
  const props: Record<string, Schema[]> = {};
  for (const b of branches) for (const [k, v] of Object.entries((b['properties'] as Record<string, Schema>) ?? {})) (props[k] ??= []).push(v);
  const out: Schema = { type: 'object' };
  out['properties'] = Object.fromEntries(
    Object.entries(props).map(([k, vs]) => [k, vs.length === 1 ? vs[0]! : sameJson(vs) ? vs[0]! : foldAlternatives(vs, `${path}/properties/${k}`)]),
  );
  const requiredSets = branches.map((b) => (Array.isArray(b['required']) ? (b['required'] as string[]) : []));
  if (requiredSets.every((r) => r.length > 0)) {
    const common = requiredSets.reduce((acc, r) => acc.filter((x) => r.includes(x)));
    if (common.length > 0) out['required'] = common;
    const alternatives = requiredSets.map((r) => r.filter((x) => !common.includes(x))).filter((r) => r.length > 0);
    if (alternatives.length === requiredSets.length) out['anyOf'] = alternatives.map((required) => ({ required }));
  }
  if (branches.some((b) => b[PRESERVE] === true)) out[PRESERVE] = true;
  return out;
}

function sameJson(vs: Schema[]): boolean {
  const first = JSON.stringify(vs[0]);
  return vs.every((v) => JSON.stringify(v) === first);
}

/**
 * Violations of the structural-schema rules the API server enforces on a v1
 * CRD, as "path: problem" lines; empty when the schema is structural.
 */
export function structuralProblems(schema: Schema, path = '#', inJunctor = false): string[] {
  const out: string[] = [];
  const here = (m: string) => out.push(`${path}: ${m}`);
  if ('$ref' in schema) here('$ref is not allowed');
  if (inJunctor) {
    for (const k of ['type', 'description', 'default', 'nullable', 'additionalProperties', PRESERVE, INT_OR_STRING]) {
      if (k in schema) here(`${k} is not allowed inside anyOf/allOf/oneOf/not`);
    }
  } else if (schema['type'] === undefined && schema[PRESERVE] !== true && schema[INT_OR_STRING] !== true) {
    here('a type is required (or x-kubernetes-preserve-unknown-fields / x-kubernetes-int-or-string)');
  }
  if (schema['properties'] !== undefined && schema['additionalProperties'] !== undefined) here('properties and additionalProperties are mutually exclusive');
  if (schema['additionalProperties'] === false) here('additionalProperties: false is not allowed');
  if (schema[INT_OR_STRING] === true && schema['type'] !== undefined) here('x-kubernetes-int-or-string excludes a type');
  for (const [k, v] of Object.entries((schema['properties'] as Record<string, Schema>) ?? {})) out.push(...structuralProblems(v, `${path}/properties/${k}`, inJunctor));
  if (isSchema(schema['additionalProperties'])) out.push(...structuralProblems(schema['additionalProperties'], `${path}/additionalProperties`, inJunctor));
  if (isSchema(schema['items'])) out.push(...structuralProblems(schema['items'], `${path}/items`, inJunctor));
  for (const j of ['anyOf', 'allOf', 'oneOf'] as const) {
    const list = schema[j];
    if (!Array.isArray(list)) continue;
    list.forEach((s: Schema, i) => {
      // Kubernetes' int-or-string idiom is the one place a junctor may name types.
      const intOrString = schema[INT_OR_STRING] === true && Object.keys(s).length === 1 && (s['type'] === 'integer' || s['type'] === 'string');
      if (!intOrString) out.push(...structuralProblems(s, `${path}/${j}/${i}`, true));
    });
  }
  if (isSchema(schema['not'])) out.push(...structuralProblems(schema['not'], `${path}/not`, true));
  return out;
}
