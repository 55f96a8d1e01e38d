import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.js';
import { charts } from '../../statecharts/index.js';
import { renderChartPage } from '../../src/docs/statechartMermaid.js';
import { FIELD_NOTES, renderApiReference } from '../../src/docs/apiReference.js';
import { fieldRows, type JsonSchema } from '../../src/docs/jsonSchemaTable.js';
import { MigrationConfiguration } from '../../src/api/migrationConfig.js';
import { FerryConfig } from '../../src/config/ferryConfig.js';
import { ControllerMetrics } from '../../src/metrics/controllerMetrics.js';
import { HandlerMetrics } from '../../src/metrics/handlerMetrics.js';
import { WebhookMetrics } from '../../src/webhook/metrics.js';

const root = path.resolve(import.meta.dirname, '../..');
const read = (rel: string) => readFileSync(path.join(root, rel), 'utf8');

function markdownFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? markdownFiles(path.join(dir, e.name)) : e.name.endsWith('.md') ? [path.join(dir, e.name)] : [],
  );
}
const documents = [...markdownFiles('docs'), 'README.md'];

/** The code in a markdown text: fenced blocks and inline spans, each with the line it is on. */
function codeFragments(text: string): Array<{ code: string; line: string }> {
  const out: Array<{ code: string; line: string }> = [];
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.trimStart().startsWith('```')) {
      fenced = !fenced;
      continue;
    }
    if (fenced) out.push({ code: line, line });
    else for (const m of line.matchAll(/`([^`]+)`/g)) out.push({ code: m[1]!, line });
  }
  return out;
}

/**
 * Commands the docs announce but that do not exist yet. A mention must say
 * "(planned)" on its line; once the command exists the marker must go.
 */
const PLANNED = new Set<string>();

interface Mention { doc: string; words: string[]; flags: string[]; line: string }

function ferryMentions(): Mention[] {
  const out: Mention[] = [];
  for (const doc of documents) {
    for (const { code, line } of codeFragments(read(doc))) {
      for (const m of code.matchAll(/(?:^|[\s$(;&|])(?:npx\s+)?ferry((?:\s+[a-z][a-z-]*(?=\s|$))+)?((?:\s+\S+)*)/g)) {
        const words = (m[1] ?? '').trim().split(/\s+/).filter(Boolean);
        if (words.length === 0) continue;
        // Flags up to the end of this command (a pipe, comment or next command ends it).
        const rest = (m[2] ?? '').split(/\s[#|&;]/)[0] ?? '';
        const flags = [...rest.matchAll(/(?:^|\s)(--[a-z][a-z-]*)/g)].map((f) => f[1]!);
        out.push({ doc, words, flags, line });
      }
    }
  }
  return out;
}

function resolve(program: Command, words: string[]): { cmd: Command; path: string[] } | undefined {
  let cmd = program;
  const used: string[] = [];
  for (const w of words) {
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (!sub) break;
    cmd = sub;
    used.push(w);
  }
  return used.length ? { cmd, path: used } : undefined;
}

describe('docs are true to the CLI', () => {
  const program = buildProgram();
  const mentions = ferryMentions();

  test('the docs mention commands at all (the scan works)', () => {
    expect(mentions.length).toBeGreaterThan(10);
    expect(mentions.some((m) => m.words[0] === 'drain')).toBe(true);
  });

  test('every `ferry <command>` named in docs/ and README.md exists, down to its subcommand, or is marked planned', () => {
    const problems: string[] = [];
    for (const m of mentions) {
      const first = m.words[0]!;
      const found = resolve(program, m.words);
      if (PLANNED.has(first)) {
        if (found) problems.push(`${m.doc}: \`ferry ${first}\` exists now; drop "(planned)" and describe it (and remove it from PLANNED)`);
        else if (!m.line.includes('(planned)')) problems.push(`${m.doc}: \`ferry ${m.words.join(' ')}\` does not exist; mark the line "(planned)"`);
        continue;
      }
      if (!found) {
        problems.push(`${m.doc}: \`ferry ${m.words.join(' ')}\` is not a command of src/cli/program.ts`);
        continue;
      }
      // A command with subcommands must be named with one of them.
      if (found.cmd.commands.length > 0) problems.push(`${m.doc}: \`ferry ${m.words.join(' ')}\` needs one of its subcommands (${found.cmd.commands.map((c) => c.name()).join(', ')})`);
      const known = new Set(found.cmd.options.flatMap((o) => [o.long, o.negate ? o.long : undefined]).filter(Boolean) as string[]);
      known.add('--help');
      for (const f of m.flags) if (!known.has(f)) problems.push(`${m.doc}: \`ferry ${found.path.join(' ')}\` has no option ${f}`);
    }
    expect(problems).toEqual([]);
  });

  test('planned commands are not in the CLI and are mentioned only with the marker', () => {
    for (const p of PLANNED) expect(resolve(program, [p])).toBeUndefined();
  });
});

describe('docs are true to the metrics', () => {
  const registered = new Map<string, { type: string; labels: string[] }>();
  for (const registry of [new ControllerMetrics().registry, new HandlerMetrics().registry, new WebhookMetrics().registry]) {
    for (const metric of registry.getMetricsAsArray()) {
      const m = metric as unknown as { name: string; type?: string; labelNames: string[] };
      const type = m.constructor.name.toLowerCase();
      registered.set(m.name, { type, labels: [...m.labelNames] });
    }
  }
  const histograms = [...registered].filter(([, v]) => v.type === 'histogram').map(([k]) => k);
  const base = (name: string) => {
    for (const h of histograms) if ([`${h}_bucket`, `${h}_sum`, `${h}_count`].includes(name)) return h;
    return name;
  };

  test('every metric name mentioned in docs/ and README.md is registered by ControllerMetrics, HandlerMetrics or WebhookMetrics', () => {
    const unknown: string[] = [];
    for (const doc of documents) {
      for (const m of read(doc).matchAll(/\b(?:kubevirt|ferry)_[a-z0-9_]*[a-z0-9]\b/g)) {
        if (!registered.has(base(m[0]))) unknown.push(`${doc}: ${m[0]}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  test('docs/metrics.md lists every registered metric once, with its real type and labels', () => {
    const rows = new Map<string, { type: string; labels: string[] }>();
    for (const line of read('docs/metrics.md').split('\n')) {
      const m = /^\| `([a-z_]+)` \| (\w+) \|([^|]*)\|/.exec(line);
      if (!m) continue;
      expect(rows.has(m[1]!)).toBe(false);
      rows.set(m[1]!, { type: m[2]!, labels: [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((l) => l[1]!) });
    }
    expect([...rows.keys()].sort()).toEqual([...registered.keys()].sort());
    for (const [name, doc] of rows) expect({ name, ...doc }).toEqual({ name, ...registered.get(name) });
  });
});

describe('generated docs are up to date', () => {
  test.each(charts.map((c) => [c.name, c] as const))('docs/statecharts/%s.md matches the chart (regenerate: npx ferry statecharts export --out docs/statecharts)', (name, chart) => {
    expect(read(`docs/statecharts/${name}.md`)).toBe(renderChartPage(chart));
  });

  test('docs/statecharts holds a page for every chart and nothing else', () => {
    expect(readdirSync(path.join(root, 'docs/statecharts')).sort()).toEqual(charts.map((c) => `${c.name}.md`).sort());
  });

  test('docs/api-reference.md matches the schemas (regenerate: npx ferry docs api --out docs/api-reference.md)', async () => {
    expect(read('docs/api-reference.md')).toBe(await renderApiReference());
  });

  test('every field note in the API reference generator names a field that exists', () => {
    const schemas: Record<string, z.ZodType> = { 'KubeVirt migration configuration': MigrationConfiguration, 'Ferry configuration file': FerryConfig };
    for (const [section, notes] of Object.entries(FIELD_NOTES)) {
      const schema = schemas[section];
      expect(schema).toBeDefined();
      const paths = new Set(fieldRows(z.toJSONSchema(schema!, { io: 'input', unrepresentable: 'any' }) as JsonSchema).map((r) => r.path));
      for (const p of Object.keys(notes)) expect(`${section}: ${p} ${paths.has(p) ? 'exists' : 'is gone'}`).toBe(`${section}: ${p} exists`);
    }
  });

  test('the exported diagram has every state of the chart and a transition into every non-initial one', () => {
    for (const c of charts) {
      const page = read(`docs/statecharts/${c.name}.md`);
      const ids: string[] = [];
      // Regions of a parallel state are entered with it, so no arrow points at them.
      const regions = new Set<string>();
      const root = c.describe();
      const idOf = (s: ReturnType<typeof c.describe>) => s.id.slice(root.id.length + 1).replace(/\./g, '_');
      const walk = (n: ReturnType<typeof c.describe>) =>
        n.states.forEach((s) => {
          ids.push(idOf(s));
          if (n.type === 'parallel') regions.add(idOf(s));
          walk(s);
        });
      walk(root);
      for (const id of ids) expect(page).toMatch(new RegExp(`(^|\\s|as )${id}(\\s|$)`, 'm'));
      for (const id of ids.filter((i) => i !== 'Resume' && !regions.has(i))) expect(page).toMatch(new RegExp(`--> ${id} :|\\[\\*\\] --> ${id}$`, 'm'));
    }
  });
});
