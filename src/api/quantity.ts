import { z } from 'zod';

/**
 * Kubernetes resource quantities ("2Gi", "500M", "1.5", "100m") as plain numbers.
 * Only what Ferry reads: memory sizes and bandwidths.
 */
const SUFFIX: Record<string, number> = {
  '': 1,
  m: 1e-3,
  k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]{0,2})$/;

export class QuantityError extends Error {}

export function parseQuantity(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new QuantityError(`quantity ${value} is not a finite number`);
    return value;
  }
  const m = QUANTITY.exec(value.trim());
  const factor = m ? SUFFIX[m[2] ?? ''] : undefined;
  if (!m || factor === undefined) {
    throw new QuantityError(`"${value}" is not a Kubernetes quantity (expected e.g. 512Mi, 2Gi, 100M)`);
  }
  return Number(m[1]) * factor;
}

/** Binary-suffixed rendering for humans and for status fields ("1.5Gi"). */
export function formatBytes(bytes: number): string {
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${units[i]}`;
}

/** A quantity field in a config or scenario file: "2Gi", "500M" or a plain number, parsed to a number. */
export const Quantity = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseQuantity(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});
