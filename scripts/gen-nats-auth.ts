/**
 * Generates Ferry's NATS credentials: one nkey user for the controller and
 * one per node for the handlers, with permissions that keep each handler to
 * its own node's subjects. Prints three Secrets (server config, controller
 * seed, handler seeds) to apply before the kustomization:
 *
 *   npx tsx scripts/gen-nats-auth.ts --nodes "$(kubectl get nodes -o name | cut -d/ -f2 | paste -sd,)" > ferry-nats-auth.yaml
 *   kubectl apply -f ferry-nats-auth.yaml
 *
 * Re-run with `--existing ferry-nats-auth.yaml` (or `kubectl get secret -n ferry-system -o yaml ...`)
 * when nodes come and go: the keys of nodes still listed are kept.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';
import { existingSeeds, natsAuthSecrets, planNatsAuth } from './lib/natsAuth.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const nodes = (arg('--nodes') ?? '').split(',').map((n) => n.trim()).filter((n) => n !== '');
if (nodes.length === 0) {
  process.stderr.write('usage: gen-nats-auth.ts --nodes node-a,node-b [--namespace ferry-system] [--existing FILE]\n');
  process.exit(2);
}
const namespace = arg('--namespace') ?? 'ferry-system';
const existingFile = arg('--existing');
const previous = existingFile
  ? parseAllDocuments(readFileSync(existingFile, 'utf8')).flatMap((d) => {
      const v = d.toJS() as { kind?: string; items?: unknown[] } | null;
      return v?.kind === 'List' ? (v.items ?? []) : v ? [v] : [];
    })
  : [];
const plan = planNatsAuth(nodes, existingSeeds(previous));
process.stdout.write(natsAuthSecrets(plan, namespace).map((s) => stringify(s, { lineWidth: 0 })).join('---\n'));
