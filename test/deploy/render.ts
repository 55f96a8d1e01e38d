import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

/** Renders Ferry's kustomizations with the kubectl on PATH (kubectl kustomize), as an operator would. */
export const ROOT = path.resolve(import.meta.dirname, '../..');
export const KUBECTL = process.env['KUBECTL'] ?? 'kubectl';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export const KUSTOMIZATIONS = ['overlays/standalone', 'overlays/with-kubevirt', 'overlays/launchers', 'monitoring'] as const;

const cache = new Map<string, K8sObject[]>();

export function render(dir: string): K8sObject[] {
  const hit = cache.get(dir);
  if (hit) return hit;
  let out: string;
  try {
    out = execFileSync(KUBECTL, ['kustomize', path.join(ROOT, 'deploy', dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${KUBECTL} kustomize deploy/${dir} failed: ${e.stderr || e.message}`);
  }
  const objects = parseYaml(out);
  cache.set(dir, objects);
  return objects;
}

export function parseYaml(text: string): K8sObject[] {
  return parseAllDocuments(text).flatMap((d) => {
    if (d.errors.length) throw new Error(d.errors.map((e) => e.message).join('; '));
    const v = d.toJS() as K8sObject | null;
    return v ? [v] : [];
  });
}

export function readRepoFile(rel: string): string {
  return readFileSync(path.join(ROOT, rel), 'utf8');
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} among ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}

/** ConfigMaps from generators carry a content hash suffix (v2 and v5 compute it differently). */
export function findGenerated(objects: K8sObject[], kind: string, prefix: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && (x.metadata.name === prefix || x.metadata.name.startsWith(`${prefix}-`)));
  if (!o) throw new Error(`no generated ${kind} ${prefix}`);
  return o;
}
