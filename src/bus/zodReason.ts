import type { z } from 'zod';

/** One line naming each failed field, for logs and error replies. */
export function zodReason(err: z.ZodError): string {
  return err.issues
    .map((i) => `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}
