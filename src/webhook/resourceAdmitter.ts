import type { z } from 'zod';
import { MaintenanceWindow } from '../api/maintenanceWindow.js';
import { MigrationConfiguration } from '../api/migrationConfig.js';
import { MigrationPolicy } from '../api/migrationPolicy.js';
import { EvictionStrategy } from '../api/vmi.js';
import { allow, invalid, type AdmissionRequest, type Verdict } from './review.js';

/**
 * Validation of Ferry's resources and of KubeVirt's migration configuration
 * from the same zod schemas the controller reads them with: what the webhook
 * accepts is exactly what the controller can use. A refusal names each field
 * and why, as the API server's own validation does.
 */

function fieldErrors(err: z.ZodError, prefix: string): string {
  return err.issues.map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.')}: ${i.message}`).join(', ');
}

function describe(kind: string, req: AdmissionRequest): string {
  const name = (req.object as { metadata?: { name?: string } } | undefined)?.metadata?.name ?? req.name ?? '';
  return `${kind} "${name}" is invalid`;
}

export function admitResource(req: AdmissionRequest): Verdict {
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allow();
  switch (`${req.resource.group}/${req.resource.resource}`) {
    case 'migrations.kubevirt.io/migrationpolicies': {
      const r = MigrationPolicy.safeParse(req.object);
      return r.success ? allow() : invalid(`${describe('MigrationPolicy', req)}: ${fieldErrors(r.error, '')}`);
    }
    case 'ferry.dev/maintenancewindows': {
      const r = MaintenanceWindow.safeParse(req.object);
      return r.success ? allow() : invalid(`${describe('MaintenanceWindow', req)}: ${fieldErrors(r.error, '')}`);
    }
    case 'kubevirt.io/kubevirts': {
      const configuration = (req.object as { spec?: { configuration?: { migrations?: unknown; evictionStrategy?: unknown } } } | undefined)?.spec?.configuration;
      const problems: string[] = [];
      const m = MigrationConfiguration.safeParse(configuration?.migrations ?? {});
      if (!m.success) problems.push(fieldErrors(m.error, 'spec.configuration.migrations'));
      if (configuration?.evictionStrategy !== undefined) {
        const e = EvictionStrategy.safeParse(configuration.evictionStrategy);
        if (!e.success) problems.push(fieldErrors(e.error, 'spec.configuration.evictionStrategy'));
      }
      return problems.length ? invalid(`${describe('KubeVirt', req)}: ${problems.join(', ')}`) : allow();
    }
    default:
      return allow();
  }
}
