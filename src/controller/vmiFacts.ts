import { parseObject } from '../api/meta.js';
import { VirtualMachineInstance } from '../api/vmi.js';

/**
 * Why a migration cannot use its VMI when the cache has no usable one: it does
 * not exist, or it exists but is not a VMI the controller can read (the API
 * server took a malformed spec). The second must not be reported as the first:
 * the user would look for a missing object that is right there.
 */
export function unusableVmiReason(raw: unknown, vmiKey: string): string {
  if (raw === undefined || raw === null) return `VMI ${vmiKey} does not exist`;
  const r = parseObject(VirtualMachineInstance, raw);
  return r.ok ? `VMI ${vmiKey} could not be read` : `VMI ${vmiKey} fails validation: ${r.reason}`;
}
