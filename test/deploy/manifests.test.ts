import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { FerryConfig } from '../../src/config/ferryConfig.js';
import { handlerSeedKey, SECRET_NAMES } from '../../scripts/lib/natsAuth.js';
import { schemaErrors } from './kubeSchemas.js';
import { find, findGenerated, KUSTOMIZATIONS, render, ROOT, type K8sObject } from './render.js';

type Obj = Record<string, unknown>;
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'ValidatingWebhookConfiguration']);
const WORKLOADS = new Set(['Deployment', 'DaemonSet', 'StatefulSet']);
const at = (o: unknown, ...keys: Array<string | number>): any => keys.reduce<any>((v, k) => (v == null ? undefined : v[k]), o); // eslint-disable-line @typescript-eslint/no-explicit-any
const podSpec = (w: K8sObject): Obj => at(w, 'spec', 'template', 'spec');
const containers = (w: K8sObject): Obj[] => at(podSpec(w), 'containers');
const argAfter = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

describe.each(KUSTOMIZATIONS)('deploy/%s', (dir) => {
  test('renders, and every object is valid against the Kubernetes (and Prometheus Operator) schemas', async () => {
    const objects = render(dir);
    expect(objects.length).toBeGreaterThan(0);
    const errors: string[] = [];
    for (const o of objects) {
      const e = await schemaErrors(o);
      if (e) errors.push(`${o.kind}/${o.metadata.name}: ${e}`);
    }
    expect(errors).toEqual([]);
  });

  test('every object is Ferry\'s, and everything namespaced lives in ferry-system', () => {
    for (const o of render(dir)) {
      expect([o.kind, o.metadata.labels?.['app.kubernetes.io/part-of']]).toEqual([o.kind, 'ferry']);
      expect([o.kind, o.metadata.name, o.metadata.namespace]).toEqual([o.kind, o.metadata.name, CLUSTER_SCOPED.has(o.kind) ? undefined : 'ferry-system']);
    }
  });
});

describe.each(['overlays/standalone', 'overlays/with-kubevirt'])('deploy/%s workloads', (dir) => {
  const objects = () => render(dir);

  test('run as non-root on read-only root filesystems, within the restricted Pod Security profile, with memory limits', () => {
    const workloads = objects().filter((o) => WORKLOADS.has(o.kind));
    expect(workloads.map((w) => w.metadata.name).sort()).toEqual(['ferry-controller', 'ferry-handler', 'ferry-nats', 'ferry-webhook']);
    for (const w of workloads) {
      expect([w.metadata.name, at(podSpec(w), 'securityContext')]).toMatchObject([w.metadata.name, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }]);
      for (const c of containers(w)) {
        expect([w.metadata.name, c['securityContext']]).toEqual([w.metadata.name, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }]);
        expect(at(c, 'resources', 'limits', 'memory')).toBeDefined();
        expect(at(c, 'resources', 'requests', 'cpu')).toBeDefined();
      }
    }
    expect(find(objects(), 'Namespace', 'ferry-system').metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });

  test('the controller: two leader-elected replicas with its config, NATS key, probes on its metrics port', () => {
    const d = find(objects(), 'Deployment', 'ferry-controller');
    expect(at(d, 'spec', 'replicas')).toBe(2);
    const spec = podSpec(d);
    expect(spec['serviceAccountName']).toBe('ferry-controller');
    const [c] = containers(d) as [Obj];
    const args = c['args'] as string[];
    expect(args[0]).toBe('controller');
    expect(argAfter(args, '--nats')).toBe('tls://ferry-nats.ferry-system.svc:4222');
    expect(args).not.toContain('--no-leader-elect');
    const port = Number(argAfter(args, '--metrics-port'));
    expect(at(c, 'ports', 0, 'containerPort')).toBe(port);
    expect(at(c, 'livenessProbe', 'httpGet', 'path')).toBe('/healthz');
    expect(at(c, 'readinessProbe', 'httpGet', 'path')).toBe('/readyz');
    expect(at(c, 'env').find((e: Obj) => e['name'] === 'POD_NAMESPACE')).toMatchObject({ valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });

    // --config names the file the ConfigMap is mounted as, and that ConfigMap is in the output.
    const mounts = c['volumeMounts'] as Obj[];
    const volumes = spec['volumes'] as Obj[];
    const configMount = mounts.find((m) => m['mountPath'] === argAfter(args, '--config'))!;
    const configVolume = volumes.find((v) => v['name'] === configMount['name'])!;
    const cm = find(objects(), 'ConfigMap', at(configVolume, 'configMap', 'name'));
    expect(Object.keys(cm['data'] as Obj)).toEqual([configMount['subPath']]);
    // The NATS key file is the controller Secret's "nkey".
    const keyPath = argAfter(args, '--nats-nkey')!;
    const keyMount = mounts.find((m) => keyPath.startsWith(`${m['mountPath']}/`))!;
    expect(at(volumes.find((v) => v['name'] === keyMount['name']), 'secret', 'secretName')).toBe(SECRET_NAMES.controller);
    expect(path.basename(keyPath)).toBe('nkey');

    // The Lease it elects on is the one its Role lets it renew.
    const role = find(objects(), 'Role', 'ferry-controller-leader-election');
    expect(at(role, 'rules').flatMap((r: Obj) => (r['resourceNames'] as string[] | undefined) ?? [])).toEqual([argAfter(args, '--lease-name')]);
  });

  test('the shipped Ferry configuration is valid and every setting in it is one Ferry knows', () => {
    const cm = findGenerated(objects(), 'ConfigMap', 'ferry-config');
    const raw = parseYaml((cm['data'] as Record<string, string>)['config.yaml']!) as Obj;
    const parsed = FerryConfig.parse(raw) as unknown as Obj;
    const unknownKeys = (given: Obj, known: Obj, prefix = ''): string[] =>
      Object.entries(given).flatMap(([k, v]) =>
        !(k in known) ? [`${prefix}${k}`] : v && typeof v === 'object' && !Array.isArray(v) ? unknownKeys(v as Obj, known[k] as Obj, `${prefix}${k}.`) : [],
      );
    expect(unknownKeys(raw, parsed)).toEqual([]);
    expect(parsed).toMatchObject({ limits: { defaultNicCapacity: 1.25e9 } });
  });

  test('the handler runs on every node, drained or not, as its node\'s NATS user, with no API token', () => {
    const ds = find(objects(), 'DaemonSet', 'ferry-handler');
    const spec = podSpec(ds);
    expect(spec['tolerations']).toEqual([{ operator: 'Exists' }]);
    expect(spec['automountServiceAccountToken']).toBe(false);
    expect(spec['serviceAccountName']).toBe('ferry-handler');
    const [c] = containers(ds) as [Obj];
    const args = c['args'] as string[];
    expect(args.slice(0, 3)).toEqual(['handler', '--node', '$(NODE_NAME)']);
    expect(at(c, 'env')).toEqual([{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
    const keyPath = argAfter(args, '--nats-nkey')!;
    expect(path.basename(keyPath)).toBe(handlerSeedKey('$(NODE_NAME)'));
    const keyMount = (c['volumeMounts'] as Obj[]).find((m) => keyPath.startsWith(`${m['mountPath']}/`))!;
    expect(at((spec['volumes'] as Obj[]).find((v) => v['name'] === keyMount['name']), 'secret', 'secretName')).toBe(SECRET_NAMES.handlers);
    // No API permissions at all.
    const bound = objects().filter((o) => (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') && at(o, 'subjects').some((s: Obj) => s['name'] === 'ferry-handler'));
    expect(bound).toEqual([]);
  });

  test('NATS keeps JetStream on a volume and reads the generated users next to its config', () => {
    const sts = find(objects(), 'StatefulSet', 'ferry-nats');
    const [c] = containers(sts) as [Obj];
    expect(c['image']).toBe('nats:2.10-alpine');
    const conf = (findGenerated(objects(), 'ConfigMap', 'ferry-nats-config')['data'] as Record<string, string>)['nats.conf']!;
    const configPath = argAfter(c['command'] as string[], '--config')!;
    const include = /^include\s+(\S+)/m.exec(conf)![1]!;
    const includePath = path.posix.normalize(path.posix.join(path.posix.dirname(configPath), include));
    const mounts = c['volumeMounts'] as Obj[];
    const authMount = mounts.find((m) => includePath.startsWith(`${m['mountPath']}/`))!;
    expect(at((podSpec(sts)['volumes'] as Obj[]).find((v) => v['name'] === authMount['name']), 'secret', 'secretName')).toBe(SECRET_NAMES.server);
    expect(path.posix.basename(includePath)).toBe('auth.conf');
    const store = /store_dir:\s*(\S+)/.exec(conf)![1]!;
    const dataMount = mounts.find((m) => store.startsWith(`${m['mountPath']}/`))!;
    expect(at(sts, 'spec', 'volumeClaimTemplates').map((t: Obj) => at(t, 'metadata', 'name'))).toContain(dataMount['name']);
  });

  test('NATS is a three-server JetStream cluster, TLS on client and route connections; clients verify it and keep results at three replicas', () => {
    const sts = find(objects(), 'StatefulSet', 'ferry-nats');
    expect(at(sts, 'spec', 'replicas')).toBe(3);
    expect(at(sts, 'spec', 'podManagementPolicy')).toBe('Parallel');
    const conf = (findGenerated(objects(), 'ConfigMap', 'ferry-nats-config')['data'] as Record<string, string>)['nats.conf']!;
    // Routes name each of the three pods through the headless Service, on the port the pods declare.
    const headless = at(sts, 'spec', 'serviceName') as string;
    const routes = [...conf.matchAll(/nats-route:\/\/([^\s:]+):(\d+)/g)].map((m) => [m[1], Number(m[2])]);
    expect(routes).toEqual([0, 1, 2].map((i) => [`ferry-nats-${i}.${headless}.ferry-system.svc`, 6222]));
    const [c] = containers(sts) as [Obj];
    expect((c['ports'] as Obj[]).find((p) => p['name'] === 'cluster')?.['containerPort']).toBe(6222);
    // Both tls blocks (clients, routes) use files of the mounted ferry-nats-tls Secret; routes verify each other.
    const tlsFiles = [...conf.matchAll(/(cert_file|key_file|ca_file):\s*(\S+)/g)].map((m) => m[2]!);
    expect(tlsFiles).toHaveLength(6);
    const mounts = c['volumeMounts'] as Obj[];
    for (const f of tlsFiles) {
      const m = mounts.find((x) => f.startsWith(`${x['mountPath']}/`))!;
      expect(at((podSpec(sts)['volumes'] as Obj[]).find((v) => v['name'] === m['name']), 'secret', 'secretName')).toBe('ferry-nats-tls');
    }
    expect(/cluster\s*{[\s\S]*tls\s*{[\s\S]*verify:\s*true/.test(conf)).toBe(true);
    // Controller and handlers verify the servers with the Secret's CA only, and the controller asks for three replicas.
    for (const [kind, name] of [['Deployment', 'ferry-controller'], ['DaemonSet', 'ferry-handler']] as const) {
      const w = find(objects(), kind, name);
      const [wc] = containers(w) as [Obj];
      const args = wc['args'] as string[];
      const ca = argAfter(args, '--nats-ca')!;
      const m = (wc['volumeMounts'] as Obj[]).find((x) => ca.startsWith(`${x['mountPath']}/`))!;
      const vol = (podSpec(w)['volumes'] as Obj[]).find((v) => v['name'] === m['name'])!;
      expect(at(vol, 'secret', 'secretName')).toBe('ferry-nats-tls');
      expect(at(vol, 'secret', 'items')).toEqual([{ key: 'ca.crt', path: path.basename(ca) }]);
      if (name === 'ferry-controller') expect(argAfter(args, '--results-replicas')).toBe('3');
    }
    // A budget keeps a quorum through drains.
    expect(at(find(objects(), 'PodDisruptionBudget', 'ferry-nats'), 'spec', 'maxUnavailable')).toBe(1);
  });

  test('every Service selects pods that exist and targets a port they declare', () => {
    const pods = objects().filter((o) => WORKLOADS.has(o.kind)).map((w) => ({ labels: at(w, 'spec', 'template', 'metadata', 'labels') as Record<string, string>, ports: containers(w).flatMap((c) => (c['ports'] as Obj[]) ?? []) }));
    for (const svc of objects().filter((o) => o.kind === 'Service')) {
      const selector = at(svc, 'spec', 'selector') as Record<string, string>;
      const matching = pods.filter((p) => Object.entries(selector).every(([k, v]) => p.labels[k] === v));
      expect([svc.metadata.name, matching.length]).toEqual([svc.metadata.name, 1]);
      for (const port of at(svc, 'spec', 'ports') as Obj[]) {
        expect([svc.metadata.name, matching[0]!.ports.some((p) => p['name'] === port['targetPort'])]).toEqual([svc.metadata.name, true]);
      }
    }
  });
});

describe('the two overlays', () => {
  const crds = (dir: string) => render(dir).filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name).sort();

  test('standalone brings KubeVirt-compatible CRDs; with-kubevirt leaves KubeVirt\'s alone', () => {
    expect(crds('overlays/standalone')).toEqual([
      'kubevirts.kubevirt.io',
      'maintenancewindows.ferry.dev',
      'migrationpolicies.migrations.kubevirt.io',
      'virtualmachineinstancemigrations.kubevirt.io',
      'virtualmachineinstances.kubevirt.io',
    ]);
    expect(crds('overlays/with-kubevirt')).toEqual(['maintenancewindows.ferry.dev']);
  });

  test('with-kubevirt: Ferry takes only labelled migrations, and the admission policies keep KubeVirt off those same ones', () => {
    const objects = render('overlays/with-kubevirt');
    const args = at(find(objects, 'Deployment', 'ferry-controller'), 'spec', 'template', 'spec', 'containers', 0, 'args') as string[];
    const [key, value] = argAfter(args, '--owner-label')!.split('=') as [string, string];
    expect([key, value]).toEqual(['ferry.dev/migration-controller', 'ferry']);
    expect(render('overlays/standalone').some((o) => o.kind === 'Deployment' && (at(o, 'spec', 'template', 'spec', 'containers', 0, 'args') as string[]).includes('--owner-label'))).toBe(false);

    const update = find(objects, 'ValidatingAdmissionPolicy', 'ferry.dev-kubevirt-leaves-ferry-migrations');
    expect(at(update, 'spec', 'validations', 0, 'expression')).toContain(`oldObject.metadata.labels['${key}'] != '${value}'`);
    const podsBinding = find(objects, 'ValidatingAdmissionPolicyBinding', 'ferry.dev-kubevirt-creates-no-target-pods-for-ferry');
    expect(at(podsBinding, 'spec', 'paramRef', 'selector', 'matchLabels')).toEqual({ [key]: value });
    for (const p of objects.filter((o) => o.kind === 'ValidatingAdmissionPolicy')) {
      expect(at(p, 'spec', 'matchConditions', 0, 'expression')).toBe("request.userInfo.username == 'system:serviceaccount:kubevirt:kubevirt-controller'");
      expect(objects.some((b) => b.kind === 'ValidatingAdmissionPolicyBinding' && at(b, 'spec', 'policyName') === p.metadata.name)).toBe(true);
    }
  });
});

describe('kustomizations', () => {
  // What kustomize v2.0.3 (kubectl 1.20, Debian's kubernetes-client) understands.
  const V2_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'bases', 'configMapGenerator', 'secretGenerator', 'generatorOptions', 'patchesJson6902', 'patchesStrategicMerge', 'namespace', 'namePrefix', 'nameSuffix', 'commonLabels', 'commonAnnotations', 'images', 'vars', 'crds']);
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = path.join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e === 'kustomization.yaml') files.push(p);
    }
  };
  walk(path.join(ROOT, 'deploy'));

  test.each(files.map((f) => [path.relative(ROOT, f)]))('%s stays within kustomize v2 (kubectl 1.20) and v5', (rel) => {
    const k = parseYaml(readFileSync(path.join(ROOT, rel), 'utf8')) as Obj;
    expect(Object.keys(k).filter((f) => !V2_FIELDS.has(f))).toEqual([]);
    // v2 takes directories only under `bases`; `resources` must be files.
    for (const r of (k['resources'] as string[] | undefined) ?? []) expect([r, statSync(path.join(ROOT, path.dirname(rel), r)).isFile()]).toEqual([r, true]);
    for (const b of (k['bases'] as string[] | undefined) ?? []) expect([b, statSync(path.join(ROOT, path.dirname(rel), b, 'kustomization.yaml')).isFile()]).toEqual([b, true]);
  });
});

describe('the command lines in the manifests', () => {
  test.each(['overlays/standalone', 'overlays/with-kubevirt'])('%s: every flag is one the `ferry` subcommand knows', async (dir) => {
    const { buildProgram } = await import('../../src/cli/program.js');
    const program = buildProgram();
    for (const w of render(dir).filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet')) {
      const args = at(w, 'spec', 'template', 'spec', 'containers', 0, 'args') as string[];
      const sub = program.commands.find((c) => c.name() === args[0]);
      expect([w.metadata.name, sub?.name()]).toEqual([w.metadata.name, args[0]]);
      const known = new Set(sub!.options.flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f))));
      const unknown = args.filter((a) => a.startsWith('-') && !known.has(a.split('=')[0]!));
      expect([args[0], unknown]).toEqual([args[0], []]);
    }
  });
});
