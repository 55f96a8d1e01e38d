import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Quantity } from '../api/quantity.js';



/**
 * Ferry's own settings, beside KubeVirt's `migrations` configuration (which is
 * read from the KubeVirt custom resource). Bandwidths are bytes/s.
 */
export const FerryConfig = z.object({
  limits: z
    .object({
      /**
       * Parallel limits pinned on Ferry's side (beside KubeVirt's own, which the
       * KubeVirt CR pins); the smaller wins. A limit nobody pins is adaptive
       * (docs/operations.md, "Adaptive concurrency").
       */
      parallelMigrationsPerCluster: z.number().int().min(1).optional(),
      parallelOutboundMigrationsPerNode: z.number().int().min(1).optional(),
      parallelInboundMigrationsPerNode: z.number().int().min(1).optional(),
      /** Cluster-wide migration bandwidth; 0 = no budget beyond the NICs. */
      bandwidthBudget: Quantity.pipe(z.number().min(0)).default(0),
      /** Each way, per node, unless the node's annotation overrides it. */
      defaultNicCapacity: Quantity.pipe(z.number().positive()).default(1.25e9),
      nicCapacityAnnotation: z.string().default('ferry.dev/nic-capacity'),
    })
    .prefault({}),
  timeouts: z
    .object({
      /** Target pod ready → target prepared; KubeVirt has no such timer, so generous. */
      targetReadySeconds: z.number().positive().default(300),
      abortRetrySeconds: z.number().positive().default(5),
      retrySeconds: z.number().positive().default(2),
      /**
       * How long the arbiter (a migration whose outcome Ferry does not know) may go
       * without an answer before it is reported unresolved. It keeps asking after that.
       */
      resolveSeconds: z.number().positive().default(120),
      /**
       * A Running migration whose source sent no progress report for this long is
       * put to the arbiter (a restarted handler may have lost the job); 0 = never.
       */
      progressSilenceSeconds: z.number().min(0).default(15),
      /** A node whose handler sent no heartbeat for this long, and whose Node is NotReady, is lost. */
      nodeLostSeconds: z.number().positive().default(30),
    })
    .prefault({}),
  evacuation: z
    .object({
      /** KubeVirt retries a failed evacuation after 20 s, doubling each time. */
      backoffBaseSeconds: z.number().positive().default(20),
    })
    .prefault({}),
  /** Max downtime handed to the hypervisor (libvirt's default is 300 ms). */
  maxDowntimeMs: z.number().positive().default(300),
  /** Downtime stepping: after this many rounds, double the allowed downtime every `every` rounds up to `capMs`. */
  downtimeSteps: z
    .object({
      firstStepAfter: z.number().int().min(1).default(4),
      every: z.number().int().min(1).default(2),
      capMs: z.number().positive().default(2000),
    })
    .prefault({}),
  commandTimeoutMs: z.number().int().positive().default(5000),
});
export type FerryConfig = z.infer<typeof FerryConfig>;

export const defaultFerryConfig: FerryConfig = FerryConfig.parse({});

export class ConfigError extends Error {}

export function loadFerryConfig(path: string | undefined): FerryConfig {
  if (!path) return defaultFerryConfig;
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read config ${path}: ${(e as Error).message}`);
  }
  const r = FerryConfig.safeParse(raw ?? {});
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid config ${path}: ${why}`);
  }
  return r.data;
}
