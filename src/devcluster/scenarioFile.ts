import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseQuantity } from '../api/quantity.js';
import { Random } from './scenarioRandom.js';
import type { SimVm } from '../runbook/simulation/policy.js';
import { pinnedIn, type PinnedLimits } from '../limits/adaptive.js';

/**
 * Drain scenarios: a cluster, its VMs and the nodes to empty, from YAML or JSON.
 * Big clusters are described by a `generate:` block (see README.md) so the file
 * stays small; the result is always the same explicit `Scenario`.
 */

const quantity = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseQuantity(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});
const positive = quantity.pipe(z.number().positive());
const nonNegative = quantity.pipe(z.number().min(0));

/** A number drawn per VM: a constant, one of a list, or uniform / log-uniform in a range. */
const distribution = z.union([
  quantity,
  z
    .strictObject({ choice: z.array(quantity).min(1), weights: z.array(z.number().positive()).optional() })
    .refine((d) => !d.weights || d.weights.length === d.choice.length, { message: 'weights must have one entry per choice' }),
  z.strictObject({ uniform: z.tuple([quantity, quantity]) }),
  z.strictObject({ logUniform: z.tuple([positive, positive]) }),
]);
type Distribution = z.infer<typeof distribution>;

const NodeSpec = z.strictObject({ name: z.string().min(1), nic: positive.optional(), memory: positive.optional() });
const VmSpec = z.strictObject({
  name: z.string().min(1),
  node: z.string().min(1),
  memory: positive,
  dirtyRate: nonNegative.default(0),
  workingSet: nonNegative.optional(),
  zeroFraction: z.number().min(0).max(1).default(0),
});

const VmGroup = z.strictObject({
  count: z.number().int().min(1),
  prefix: z.string().min(1).default('vm-'),
  memory: distribution,
  dirtyRate: distribution.default(0),
  /** Bytes, or `workingSetFraction` of the VM's memory; default: all of it. */
  workingSet: distribution.optional(),
  workingSetFraction: distribution.optional(),
  zeroFraction: distribution.default(0),
});

const DrainPick = z.union([
  z.array(z.string().min(1)),
  z.strictObject({ first: z.number().int().min(1) }),
  z.strictObject({ every: z.number().int().min(1) }),
]);

const NodeGroup = z.strictObject({ count: z.number().int().min(1), prefix: z.string().min(1).default('node-'), nic: positive, memory: positive });

const Generate = z.strictObject({
  seed: z.number().int().default(1),
  /** One group of identical nodes, or several (numbered on across groups). */
  nodes: z.union([NodeGroup, z.array(NodeGroup).min(1)]),
  /** VMs are dealt round-robin over all nodes, group after group. */
  vms: z.array(VmGroup).default([]),
  drain: DrainPick.optional(),
});

const Config = z.strictObject({
  parallelMigrationsPerCluster: z.number().int().min(1).optional(),
  parallelOutboundMigrationsPerNode: z.number().int().min(1).optional(),
  parallelInboundMigrationsPerNode: z.number().int().min(1).optional(),
  bandwidthPerMigration: nonNegative.optional(),
  completionTimeoutPerGiB: z.number().min(0).optional(),
  progressTimeout: z.number().min(0).optional(),
  allowAutoConverge: z.boolean().optional(),
  allowPostCopy: z.boolean().optional(),
  maxDowntimeMs: z.number().positive().optional(),
});

const ScenarioFile = z.strictObject({
  name: z.string().optional(),
  description: z.string().optional(),
  cluster: z.strictObject({ bandwidthBudget: nonNegative.optional() }).default({}),
  config: Config.default({}),
  /** For nodes that do not say. */
  defaults: z.strictObject({ nic: positive.optional(), memory: positive.optional() }).default({}),
  nodes: z.array(NodeSpec).default([]),
  vms: z.array(VmSpec).default([]),
  drain: DrainPick.default([]),
  generate: Generate.optional(),
});
export type ScenarioFile = z.input<typeof ScenarioFile>;

export interface ScenarioNode {
  name: string;
  /** Bytes/s each way. */
  nic: number;
  /** Bytes. */
  memory: number;
}

/** A scenario's VM is exactly what the simulation engine moves. */
export type ScenarioVm = SimVm;

/** KubeVirt's migration settings plus Ferry's, with what the scenario left out filled in. */
export interface ScenarioConfig {
  parallelMigrationsPerCluster: number;
  parallelOutboundMigrationsPerNode: number;
  parallelInboundMigrationsPerNode: number;
  bandwidthPerMigration: number;
  completionTimeoutPerGiB: number;
  progressTimeout: number;
  allowAutoConverge: boolean;
  allowPostCopy: boolean;
  maxDowntimeMs: number;
}

export interface Scenario {
  name: string;
  description: string;
  bandwidthBudget: number;
  config: ScenarioConfig;
  /** What the file's `config` sets itself (a cluster built from it configures only these). */
  given: Partial<ScenarioConfig>;
  /** The parallel limits the file sets: Ferry holds to those and adapts the rest. */
  pinned: PinnedLimits;
  nodes: ScenarioNode[];
  vms: ScenarioVm[];
  drain: string[];
}

/** KubeVirt's defaults (research/kubevirt.md §3), Ferry's inbound default, libvirt's max downtime. */
export const DEFAULT_CONFIG: ScenarioConfig = {
  parallelMigrationsPerCluster: 5,
  parallelOutboundMigrationsPerNode: 2,
  parallelInboundMigrationsPerNode: 2,
  bandwidthPerMigration: 0,
  completionTimeoutPerGiB: 150,
  progressTimeout: 150,
  allowAutoConverge: false,
  allowPostCopy: false,
  maxDowntimeMs: 300,
};

export class ScenarioError extends Error {}

export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ScenarioError(`cannot read scenario ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ScenarioError(`scenario ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  const name = path.split('/').pop()?.replace(/\.(ya?ml|json)$/, '') ?? path;
  return parseScenario(raw, name, path);
}

/** Validates and expands a scenario; `where` names it in errors. */
export function parseScenario(raw: unknown, fallbackName: string, where = fallbackName): Scenario {
  const parsed = ScenarioFile.safeParse(raw ?? {});
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(top)'}: ${i.message}`).join('\n');
    throw new ScenarioError(`invalid scenario ${where}:\n${why}`);
  }
  const f = parsed.data;
  const problems: string[] = [];

  const nodes: ScenarioNode[] = [];
  for (const n of f.nodes) {
    const nic = n.nic ?? f.defaults.nic;
    const memory = n.memory ?? f.defaults.memory;
    if (nic === undefined) problems.push(`node ${n.name} has no nic and there is no defaults.nic`);
    if (memory === undefined) problems.push(`node ${n.name} has no memory and there is no defaults.memory`);
    nodes.push({ name: n.name, nic: nic ?? 0, memory: memory ?? 0 });
  }
  const vms: ScenarioVm[] = f.vms.map((v) => ({ ...v, workingSet: Math.min(v.workingSet ?? v.memory, v.memory) }));
  const drain = [...pickDrain(f.drain, nodes)];

  if (f.generate) {
    const g = f.generate;
    const rng = new Random(g.seed);
    const first = nodes.length;
    const groups = Array.isArray(g.nodes) ? g.nodes : [g.nodes];
    const width = String(groups.reduce((sum, grp) => sum + grp.count, 0)).length;
    let nth = 0;
    for (const grp of groups) {
      for (let i = 0; i < grp.count; i++) nodes.push({ name: `${grp.prefix}${String(++nth).padStart(width, '0')}`, nic: grp.nic, memory: grp.memory });
    }
    if (nth < 2) problems.push('generate.nodes: at least 2 nodes');
    const generated = nodes.slice(first);
    const total = g.vms.reduce((s, grp) => s + grp.count, 0);
    const vmWidth = String(total).length;
    let k = 0;
    for (const grp of g.vms) {
      for (let i = 0; i < grp.count; i++, k++) {
        const memory = draw(grp.memory, rng);
        const ws = grp.workingSet !== undefined ? draw(grp.workingSet, rng) : grp.workingSetFraction !== undefined ? draw(grp.workingSetFraction, rng) * memory : memory;
        vms.push({
          name: `${grp.prefix}${String(k + 1).padStart(vmWidth, '0')}`,
          node: (generated[k % generated.length] as ScenarioNode).name,
          memory,
          dirtyRate: draw(grp.dirtyRate, rng),
          workingSet: Math.min(ws, memory),
          zeroFraction: draw(grp.zeroFraction, rng),
        });
      }
    }
    if (g.drain) drain.push(...pickDrain(g.drain, generated));
  }

  check(nodes, vms, drain, problems);
  if (problems.length > 0) throw new ScenarioError(`invalid scenario ${where}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  const given: Partial<ScenarioConfig> = {};
  for (const [k, v] of Object.entries(f.config)) if (v !== undefined) (given as Record<string, unknown>)[k] = v;
  const config: ScenarioConfig = { ...DEFAULT_CONFIG, ...given };
  return {
    name: f.name ?? fallbackName,
    description: f.description ?? '',
    bandwidthBudget: f.cluster.bandwidthBudget ?? 0,
    config,
    given,
    pinned: pinnedIn(given),
    nodes,
    vms,
    drain: [...new Set(drain)],
  };
}

function pickDrain(pick: z.infer<typeof DrainPick>, nodes: readonly ScenarioNode[]): string[] {
  if (Array.isArray(pick)) return pick;
  if ('first' in pick) return nodes.slice(0, pick.first).map((n) => n.name);
  return nodes.filter((_, i) => i % pick.every === 0).map((n) => n.name);
}

function draw(d: Distribution, rng: Random): number {
  if (typeof d === 'number') return d;
  if ('choice' in d) return rng.pick(d.choice, d.weights);
  if ('uniform' in d) return rng.uniform(d.uniform[0], d.uniform[1]);
  return Math.exp(rng.uniform(Math.log(d.logUniform[0]), Math.log(d.logUniform[1])));
}

function check(nodes: ScenarioNode[], vms: ScenarioVm[], drain: string[], problems: string[]): void {
  const byName = new Map<string, ScenarioNode>();
  for (const n of nodes) {
    if (byName.has(n.name)) problems.push(`node ${n.name} is listed twice`);
    byName.set(n.name, n);
  }
  const used = new Map<string, number>();
  const seen = new Set<string>();
  for (const v of vms) {
    if (seen.has(v.name)) problems.push(`vm ${v.name} is listed twice`);
    seen.add(v.name);
    if (!byName.has(v.node)) problems.push(`vm ${v.name} runs on ${v.node}, which is not a node`);
    used.set(v.node, (used.get(v.node) ?? 0) + v.memory);
  }
  for (const [node, bytes] of used) {
    const n = byName.get(node);
    if (n && n.memory > 0 && bytes > n.memory) problems.push(`node ${node} holds ${bytes} bytes of VMs but has only ${n.memory}`);
  }
  for (const d of drain) if (!byName.has(d)) problems.push(`drain names ${d}, which is not a node`);
  if (drain.length === 0) problems.push('nothing to drain: list nodes under drain');
  if (nodes.length > 0 && new Set(drain).size >= nodes.length) problems.push('every node is drained: there is nowhere to go');
}
